"""Reports: every file written, strict JSON equal to the metrics, the HTML carries the traces offline."""
from __future__ import annotations

import json
import math
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from backtest.report import metrics_to_json, write_report
from tests.backtest.test_strategies import make_bars


def fake_result(bars: pd.DataFrame) -> SimpleNamespace:
    """A hand-built result: hold 50% of the asset from bar 1 at the close, no costs."""
    close = bars["close"]
    r = close.pct_change().fillna(0.0) * 0.5
    r.iloc[0] = 0.0
    equity = (1 + r).cumprod().rename("equity")
    positions = pd.DataFrame({"TEST": np.r_[0.0, np.full(len(bars) - 1, 0.5)]}, index=bars.index)
    trades = pd.DataFrame({"timestamp": [bars.index[1]], "asset": ["TEST"], "side": ["buy"], "quantity": [0.005],
                           "price": [close.iloc[1]], "notional": [0.5], "fee": [0.0]})
    metrics = {"total_return": float(equity.iloc[-1] - 1), "sharpe": 0.75, "sortino": float("inf"),
               "calmar": float("nan"), "n_trades": 1, "max_drawdown": -0.12}
    return SimpleNamespace(equity=equity, returns=r, positions=positions, turnover=positions.diff().abs().sum(axis=1),
                           trades=trades, metrics=metrics)


def test_write_report_files_and_contents(tmp_path):
    bars = make_bars(300)
    result = fake_result(bars)
    paths = write_report(result, tmp_path / "rep", bars=bars, title="trend on TEST", rolling_window=50,
                         periods_per_year=252, benchmark=bars["close"])
    assert set(paths) == {"html", "png", "metrics", "trades", "equity", "round_trips", "plotly"}
    for p in paths.values():
        assert p.exists() and p.stat().st_size > 0, p
    assert paths["png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    loaded = json.loads(paths["metrics"].read_text())  # strict JSON
    assert loaded["total_return"] == result.metrics["total_return"]
    assert loaded["sharpe"] == 0.75 and loaded["n_trades"] == 1 and loaded["max_drawdown"] == -0.12
    assert loaded["sortino"] is None and loaded["calmar"] is None  # undefined (inf, NaN) -> null

    html = paths["html"].read_text()
    for trace in ('"name":"strategy"', '"name":"buy & hold"', '"name":"drawdown"', '"name":"rolling Sharpe"',
                  '"name":"gross exposure"', '"name":"close"', '"name":"long entry"', "trend on TEST"):
        assert trace in html, trace
    # plotly.js: one shared local file next to the report folder, nothing fetched from the network
    assert paths["plotly"] == (tmp_path / paths["plotly"].name) and paths["plotly"].stat().st_size > 1_000_000
    assert f"<script src='../{paths['plotly'].name}'>" in html and "cdn." not in html
    assert len(html) < 300_000

    eq = pd.read_csv(paths["equity"], index_col="timestamp", parse_dates=True)
    np.testing.assert_allclose(eq["equity"].to_numpy(), result.equity.to_numpy())
    # benchmark: the price series given, scaled to the strategy's first equity value
    np.testing.assert_allclose(eq["benchmark"].to_numpy(), (bars["close"] / bars["close"].iloc[0]).to_numpy())
    # drawdown and rolling Sharpe by hand at one bar
    t = 200
    e = result.equity.to_numpy()
    assert eq["drawdown"].iloc[t] == pytest.approx(e[t] / e[: t + 1].max() - 1)
    window = result.returns.to_numpy()[t - 49: t + 1]
    assert eq["rolling_sharpe"].iloc[t] == pytest.approx(window.mean() / window.std(ddof=1) * math.sqrt(252))
    assert eq["rolling_sharpe"].iloc[:49].isna().all()
    assert eq["gross_exposure"].iloc[-1] == 0.5

    trades = pd.read_csv(paths["trades"])
    assert list(trades.columns) == ["timestamp", "asset", "side", "quantity", "price", "notional", "fee"]
    assert len(trades) == 1


def test_metrics_to_json_is_strict():
    text = metrics_to_json({"a": np.float64(1.5), "b": float("nan"), "c": float("-inf"), "d": np.int64(3)})
    assert json.loads(text) == {"a": 1.5, "b": None, "c": None, "d": 3}
    assert "NaN" not in text and "Infinity" not in text


def test_report_rejects_many_curves(tmp_path):
    bars = make_bars(50)
    result = fake_result(bars)
    result.equity = pd.concat([result.equity, result.equity], axis=1)
    with pytest.raises(ValueError, match="one equity curve, got 2 columns"):
        write_report(result, tmp_path)


def test_report_of_a_real_backtest(tmp_path):
    import backtest
    import markets
    bars = markets.load("sample:SP500", "2016-01-01", "2018-12-31")
    run = backtest.run_strategy(bars, "trend", {"fast": 10, "slow": 50}, fees=0.001, init_cash=1000.0)
    result = run.result
    bench = backtest.benchmark(bars, fees=0.001, init_cash=1000.0)
    paths = write_report(result, tmp_path, bars=bars, benchmark=bench.equity, trace=run.decision.trace)
    pd.testing.assert_frame_equal(pd.read_parquet(paths["trace"]), run.decision.trace)
    loaded = json.loads(paths["metrics"].read_text())
    assert set(result.metrics) < set(loaded)  # the metrics, then the Sharpe interval, trade statistics, units
    assert {"sharpe_ci_low", "sharpe_ci_high", "win_rate", "profit_factor", "units"} < set(loaded)
    assert loaded["units"]["max_drawdown_duration"] == "bars"
    for key, value in result.metrics.items():
        expected = None if isinstance(value, float) and math.isnan(value) else value
        assert loaded[key] == expected, key
    assert len(pd.read_csv(paths["trades"])) == len(result.trades)
    eq = pd.read_csv(paths["equity"], index_col="timestamp")
    np.testing.assert_allclose(eq["equity"].to_numpy(), result.equity.to_numpy())
    assert eq["benchmark"].iloc[0] == pytest.approx(1000.0)
    # THE benchmark: buy and hold through the same engine with the same costs (one order, one fee)
    np.testing.assert_allclose(eq["benchmark"].to_numpy(), bench.equity.to_numpy())
    assert bench.metrics["n_trades"] >= 1 and eq["benchmark"].iloc[-1] < 1000.0 * (
        bars["open"].iloc[-1] / bars["open"].iloc[1]) * (bars["close"].iloc[-1] / bars["open"].iloc[-1])


# ------------------------------------------------------------------ thinning, size, offline, all-or-nothing
def test_thin_keeps_every_extreme():
    from backtest.report_figures import MAX_BUCKETS, thin

    rng = np.random.default_rng(0)
    x = rng.normal(size=1_000_003)
    x[123_457], x[987_654] = 50.0, -50.0  # a spike and a crash
    x[10:20] = np.nan
    pos = thin(x)
    assert len(pos) <= 4 * MAX_BUCKETS + 1 and pos[0] == 0 and pos[-1] == len(x) - 1
    assert 123_457 in pos and 987_654 in pos
    k = -(-len(x) // MAX_BUCKETS)
    for b in (0, 7, 500, MAX_BUCKETS - 1):  # each bucket's min and max survive
        chunk = x[b * k:(b + 1) * k]
        kept = x[pos[(pos >= b * k) & (pos < (b + 1) * k)]]
        assert np.nanmax(kept) == np.nanmax(chunk) and np.nanmin(kept) == np.nanmin(chunk)
    np.testing.assert_array_equal(thin(np.arange(100.0)), np.arange(100))  # short series: every point


def _long_run(n: int):
    import backtest

    rng = np.random.default_rng(1)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 1e-4, n)))
    idx = pd.date_range("2020-01-01", periods=n, freq="1min", tz="UTC", name="timestamp")
    bars = pd.DataFrame({"open": close, "high": close, "low": close, "close": close, "volume": 0.0}, index=idx)
    bars.attrs["symbol"] = "SYN"
    w = pd.Series(np.where((np.arange(n) // 5000) % 2 == 0, 1.0, 0.0), index=idx)
    return bars, backtest.run(bars, w, fees=0.001)


def _check_small_report(tmp_path, n: int) -> None:
    bars, res = _long_run(n)
    paths = write_report(res, tmp_path / "rep", bars=bars, benchmark=bars["close"], title="long")
    page = paths["html"].stat().st_size + paths["png"].stat().st_size + paths["metrics"].stat().st_size
    assert page < 2_000_000, page  # the page of any length: about 1 MB (the bound: 10 MB)
    assert paths["equity"].suffix == ".parquet" and len(pd.read_parquet(paths["equity"])) == n  # nothing lost
    trips = pd.read_csv(paths["round_trips"])
    assert len(trips) == n // 10_000 + (n % 10_000 > 0)  # one long trip per 10,000 bars


def test_report_of_200k_bars_stays_small(tmp_path):
    _check_small_report(tmp_path, 200_000)


@pytest.mark.slow
def test_report_of_2m_bars_stays_small(tmp_path):
    """The issue's case: 2M one-minute bars made a 483 MB report.html."""
    _check_small_report(tmp_path, 2_000_000)


def test_plotly_is_shared_offline_or_inlined(tmp_path):
    bars = make_bars(120)
    result = fake_result(bars)
    a = write_report(result, tmp_path / "a", bars=bars)
    stamp = a["plotly"].stat().st_mtime_ns
    b = write_report(result, tmp_path / "b", bars=bars)
    assert a["plotly"] == b["plotly"] and a["plotly"].stat().st_mtime_ns == stamp  # written once per folder
    assert [p.name for p in tmp_path.glob("*.js")] == [a["plotly"].name]
    c = write_report(result, tmp_path / "c" / "d", bars=bars, inline_plotly=True)
    page = c["html"].read_text()
    assert "plotly" not in c and "<script src=" not in page and len(page) > 1_000_000
    assert not list((tmp_path / "c").glob("*.js"))


def test_a_failed_report_leaves_nothing(tmp_path, monkeypatch):
    """A crash or full disk while writing: no file of the report appears, an older report stays whole."""
    import backtest.report_figures as figures

    bars = make_bars(120)
    result = fake_result(bars)
    old = write_report(result, tmp_path / "rep", bars=bars)
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}

    def broken_png(path, frame, title):
        path.write_bytes(b"\x89PNG half")
        raise OSError(28, "No space left on device", str(path))

    monkeypatch.setattr(figures, "write_png", broken_png)
    with pytest.raises(OSError, match="No space left"):
        write_report(result, tmp_path / "rep", bars=bars, title="new title")
    with pytest.raises(OSError, match="No space left"):
        write_report(result, tmp_path / "fresh" / "rep", bars=bars)
    after = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    assert after == before and not (tmp_path / "fresh").exists()
    assert "new title" not in old["html"].read_text()


def test_run_settings_and_units_are_recorded(tmp_path):
    bars = make_bars(300)
    run = {"strategy": "trend", "params": {"fast": 5, "slow": 20}, "fees": 0.001, "slippage": 0.0005,
           "execution": "next_open", "start": str(bars.index[0]), "end": str(bars.index[-1])}
    paths = write_report(fake_result(bars), tmp_path / "rep", bars=bars, run=run)
    loaded = json.loads(paths["metrics"].read_text())
    assert loaded["run"] == run
    assert loaded["units"]["avg_holding_days"] == "days" and loaded["units"]["avg_win"] == "cash"
    page = paths["html"].read_text()
    for text in ("fast=5, slow=20", "next_open", "0.0005", str(bars.index[0]), "95% confidence interval",
                 "win_rate", "profit_factor", "avg_holding_bars"):
        assert text in page, text


def test_max_drawdown_days_matches_the_duration_in_bars():
    import backtest
    import markets
    from backtest.report import report_summary

    bars = markets.load("sample:SP500", "2005-01-01", "2012-12-31")
    res = backtest.run(bars, pd.Series(1.0, index=bars.index))
    summary = report_summary(res, bars=bars)
    # 2007-10 peak to the end (not recovered by 2012): the bars counted and the calendar days agree
    bars_dd = int(res.metrics["max_drawdown_duration"])
    assert summary["max_drawdown_days"] == (bars.index[-1] - bars.index[len(bars) - 1 - bars_dd]).days
