"""Backtest page (AppTest on the real page script) and the plain helpers behind it."""
from __future__ import annotations

import base64
import json
import math
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

import app.dashboard
from app.dashboard import services
from tests.backtest.registry_helpers import weights

ENTRY = str(Path(app.dashboard.__file__).with_name("main.py"))
SPEC, START, END = "sample:SP500", "2010-01-01", "2017-12-31"
FEES = 0.001  # the page's default 10 bps


def _values(arr) -> np.ndarray:
    if isinstance(arr, dict):
        return np.frombuffer(base64.b64decode(arr["bdata"]), dtype=np.dtype(arr["dtype"]))
    return np.asarray(arr)


def _page() -> AppTest:
    at = AppTest.from_file(ENTRY, default_timeout=120)
    at.switch_page("views/backtest.py")
    return at.run()


def _direct(strategy: str = "trend", **params):
    """The same backtest without the dashboard: markets.load -> decision-maker -> backtest.run."""
    import backtest
    import markets
    from tests.backtest.registry_helpers import weights

    bars = markets.load(SPEC, START, END)
    result = backtest.run(bars, weights(strategy, bars, **params), fees=FEES, execution="next_open")
    bench = backtest.run(bars, weights("buy_and_hold", bars), fees=FEES, execution="next_open")
    return bars, result, bench


def _charts(at) -> dict[str, dict]:
    specs = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    return {s["layout"]["title"]["text"].split(":")[0]: s for s in specs}


def test_backtest_page_default_run_matches_the_engine():
    bars, result, bench = _direct()
    at = _page()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    tiles = {m.label: m.value for m in at.metric}
    assert tiles["Sharpe"] == f"{result.metrics['sharpe']:.2f}"
    assert tiles["Max drawdown"] == f"{result.metrics['max_drawdown']:.2%}"
    charts = _charts(at)
    assert {"Equity", "Drawdown", "Exposure"} <= set(charts)
    strat, bh = charts["Equity"]["data"]
    assert (strat["name"], bh["name"]) == ("strategy", "buy & hold")
    eq, be = result.equity.to_numpy(), bench.equity.to_numpy()
    np.testing.assert_allclose(_values(strat["y"]), eq / eq[0], rtol=1e-12)
    np.testing.assert_allclose(_values(bh["y"]), be / be[0], rtol=1e-12)
    table = at.dataframe[0].value
    assert table.loc["sharpe", "strategy"] == pytest.approx(result.metrics["sharpe"])
    assert table.loc["total_return", "buy & hold"] == pytest.approx(bench.metrics["total_return"])
    trades = at.dataframe[1].value
    assert len(trades) == len(result.trades) > 0
    assert [b.label for b in at.get("download_button")] == ["Download metrics (JSON)", "Download HTML report"]
    assert any(f"{len(bars):,} bars" in c.value for c in at.caption)


def test_backtest_page_parameters_change_the_result():
    _, result, _ = _direct(fast=10, slow=50)
    at = _page()
    at.number_input(key="bt_p_trend_fast").set_value(10)
    at.number_input(key="bt_p_trend_slow").set_value(50).run()
    assert not at.exception and not at.error
    assert {m.label: m.value for m in at.metric}["Sharpe"] == f"{result.metrics['sharpe']:.2f}"
    assert at.dataframe[0].value.loc["n_trades", "strategy"] == result.metrics["n_trades"]


def test_backtest_page_every_registered_strategy_renders():
    from backtest.decisions import entries

    at = _page()
    # The project's decision-makers; test-only ones (tests register toy ones from tests/) are skipped.
    registered = {e.name: e for e in entries() if not e.source.startswith("tests.")}
    names = sorted(registered)
    assert {"trend", "reversal", "breakout", "positioning", "buy_and_hold"} <= set(names)
    for name in names:
        at.selectbox(key="bt_strategy").set_value(name).run()
        assert not at.exception, (name, at.exception)
        assert not at.error, (name, [e.value for e in at.error])
        assert "Equity" in _charts(at), name
        for param in registered[name].space.params:  # one input per declared parameter
            assert at.get_by_key(f"bt_p_{name}_{param}") is not None, (name, param)


def test_backtest_page_bad_spec_is_one_error_line_not_a_traceback():
    at = _page()
    at.text_input(key="bt_spec").set_value("sample:NOPE").run()
    assert not at.exception
    assert len(at.error) == 1
    msg = at.error[0].value
    assert msg.startswith("Backtest of trend on sample:NOPE:") and "NOPE" in msg and "\n" not in msg
    assert not at.get("plotly_chart")


def test_backtest_page_bad_parameter_and_dates_are_reported():
    at = _page()
    at.number_input(key="bt_p_trend_fast").set_value(200).run()  # fast >= slow
    assert not at.exception and len(at.error) == 1 and "fast" in at.error[0].value
    at = _page()
    at.date_input(key="bt_start_sample").set_value(np.datetime64("2016-01-01").item())
    at.date_input(key="bt_end_sample").set_value(np.datetime64("2015-01-01").item()).run()
    assert not at.exception and len(at.error) == 1 and "after end" in at.error[0].value


# ------------------------------------------------------------------------------------------- helpers
def test_metrics_json_is_strict_json_with_context():
    text = services.metrics_json({"sharpe": 1.5, "calmar": math.nan, "sortino": math.inf, "n_trades": 3},
                                 spec="sample:SP500", params={"fast": 5}, benchmark={"sharpe": math.nan})
    data = json.loads(text)
    assert data == {"spec": "sample:SP500", "params": {"fast": 5}, "benchmark": {"sharpe": None},
                    "metrics": {"sharpe": 1.5, "calmar": None, "sortino": None, "n_trades": 3}}


def test_benchmark_is_buy_and_hold_with_the_same_costs_single_and_multi_asset():
    import backtest
    import markets

    for spec, n in (("sample:MSFT", 1), ("sample:AAPL,JPM", 2)):
        bars = markets.load(spec, "2017-01-01", "2017-06-01")
        view = services.run_backtest(bars, "trend", {"fast": 5, "slow": 20}, fees=0.002, slippage=0.001)
        direct = backtest.run(bars, weights("buy_and_hold", bars), fees=0.002, slippage=0.001)
        np.testing.assert_allclose(view.benchmark.equity.to_numpy(), direct.equity.to_numpy(), rtol=0)
        assert view.benchmark.trades["fee"].sum() > 0  # costs paid, as the strategy pays them
        first = view.benchmark.trades[view.benchmark.trades["timestamp"] == bars.index[1]]
        assert len(first) == n and np.allclose(view.benchmark.positions.iloc[1].sum(), 1.0, atol=0.01)


def test_sample_specs_lists_the_bundled_data():
    specs = services.sample_specs()
    assert {"sample:SP500", "sample:MSFT", "sample:SP20", "sample:AAPL"} <= set(specs)


def test_report_html_is_the_offline_report():
    bars, result, _ = _direct()
    html = services.report_html(result, bars, title="trend on sample:SP500").decode()
    assert html.lstrip().lower().startswith("<!doctype html") or "<html" in html[:500].lower()
    assert "trend on sample:SP500" in html and "plotly" in html.lower()


def test_backtest_page_multi_asset_spec_matches_the_engine():
    import backtest
    import markets
    from tests.backtest.registry_helpers import weights

    bars = markets.load("sample:AAPL,JPM", START, END)
    result = backtest.run(bars, weights("trend", bars), fees=FEES)
    at = _page()
    at.text_input(key="bt_spec").set_value("sample:AAPL,JPM").run()
    at.checkbox(key="bt_limit_typed").check().run()  # a typed spec starts unlimited; limit it to the range
    assert not at.exception and not at.error
    assert {m.label: m.value for m in at.metric}["Sharpe"] == f"{result.metrics['sharpe']:.2f}"
    strat = _charts(at)["Equity"]["data"][0]
    eq = result.equity.to_numpy()
    np.testing.assert_allclose(_values(strat["y"]), eq / eq[0], rtol=1e-12)
    assert set(at.dataframe[1].value["asset"]) == {"AAPL", "JPM"}


def test_error_boundary_shows_one_line_for_any_exception():
    def script():
        from app.dashboard.ui import error_boundary

        with error_boundary("Step A"):
            raise KeyError("unknown strategy 'x'; registered: trend")

    def script_bug():
        from app.dashboard.ui import error_boundary

        with error_boundary():
            raise RuntimeError("boom\nsecond line")

    at = AppTest.from_function(script).run()
    assert not at.exception and [e.value for e in at.error] == ["Step A: unknown strategy 'x'; registered: trend"]
    at = AppTest.from_function(script_bug).run()
    assert not at.exception and [e.value for e in at.error] == ["RuntimeError: boom"]


def test_a_typed_spec_is_not_clipped_to_the_samples_dates(tmp_path):
    """The issue: a GOOG file typed after the default sample kept the sample's 2010-2017 limits and the
    backtest silently covered 2010-2013 only. A typed spec now covers its whole history unless limited."""
    import markets

    path = tmp_path / "GOOG.csv"
    markets.load("sample:MSFT", "2004-08-19", "2013-12-31").to_csv(path)
    at = _page()
    at.text_input(key="bt_spec").set_value(f"file:{path}").run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    caption = " ".join(c.value for c in at.caption)
    assert "the whole history" in caption and "2004-08-19 to 2013-12-31" in caption
    assert not at.checkbox(key="bt_limit_typed").value
