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
