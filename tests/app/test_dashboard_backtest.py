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
    """The same backtest without the dashboard: markets.load -> strategy -> backtest.run."""
    import backtest
    import markets
    from backtest.strategies import STRATEGIES

    bars = markets.load(SPEC, START, END)
    result = backtest.run(bars, STRATEGIES[strategy](bars, **params), fees=FEES, execution="next_open")
    bench = backtest.run(bars, services.benchmark_weights(bars), fees=FEES, execution="next_open")
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
    from backtest.strategies import SPECS

    at = _page()
    # The project's strategies; test-only ones (paper tests register toy strategies from tests/) are skipped.
    names = sorted(n for n, spec in SPECS.items() if not spec.fn.__module__.startswith("tests."))
    assert {"trend", "reversal", "breakout", "positioning", "buy_and_hold"} <= set(names)
    for name in names:
        at.selectbox(key="bt_strategy").set_value(name).run()
        assert not at.exception, (name, at.exception)
        assert not at.error, (name, [e.value for e in at.error])
        assert "Equity" in _charts(at), name
        for param in SPECS[name].defaults:  # one input per parameter, rendered from the default's type
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
    at.date_input(key="bt_start").set_value(np.datetime64("2016-01-01").item())
    at.date_input(key="bt_end").set_value(np.datetime64("2015-01-01").item()).run()
    assert not at.exception and len(at.error) == 1 and "after end" in at.error[0].value


# ------------------------------------------------------------------------------------------- helpers
def test_metrics_json_is_strict_json_with_context():
    text = services.metrics_json({"sharpe": 1.5, "calmar": math.nan, "sortino": math.inf, "n_trades": 3},
                                 spec="sample:SP500", params={"fast": 5}, benchmark={"sharpe": math.nan})
    data = json.loads(text)
    assert data == {"spec": "sample:SP500", "params": {"fast": 5}, "benchmark": {"sharpe": None},
                    "metrics": {"sharpe": 1.5, "calmar": None, "sortino": None, "n_trades": 3}}


def test_benchmark_weights_single_and_multi_asset():
    import markets

    one = markets.load("sample:MSFT", "2017-01-01", "2017-02-01")
    w = services.benchmark_weights(one)
    assert (w == 1.0).all() and w.index.equals(one.index)
    many = markets.load("sample:AAPL,JPM", "2017-01-01", "2017-02-01")
    w = services.benchmark_weights(many)
    assert list(w.columns) == ["AAPL", "JPM"] and np.allclose(w.to_numpy(), 0.5)


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
    from backtest.strategies import STRATEGIES

    bars = markets.load("sample:AAPL,JPM", START, END)
    result = backtest.run(bars, STRATEGIES["trend"](bars), fees=FEES)
    at = _page()
    at.text_input(key="bt_spec").set_value("sample:AAPL,JPM").run()
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
