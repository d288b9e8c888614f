"""Sweep page (AppTest on the real page script): heatmap values equal backtest.sweep, the picked combination
equals a direct backtest.run, invalid combinations are blank, bad axes are one error line."""
from __future__ import annotations

import base64
import json
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

import app.dashboard
from app.dashboard import figures, services

ENTRY = str(Path(app.dashboard.__file__).with_name("main.py"))
SPEC, START, END, FEES = "sample:SP500", "2010-01-01", "2017-12-31", 0.001
FAST, SLOW = [5, 10, 15, 20, 25, 30, 35, 40], [25, 50, 75, 100, 125, 150, 175, 200]  # the page's default axes


def _values(arr) -> np.ndarray:
    if isinstance(arr, dict):
        return np.frombuffer(base64.b64decode(arr["bdata"]), dtype=np.dtype(arr["dtype"]))
    return np.asarray(arr)


@pytest.fixture(scope="module")
def reference():
    import backtest
    import markets

    bars = markets.load(SPEC, START, END)
    return bars, backtest.sweep("trend", {"fast": FAST, "slow": SLOW}, bars, fees=FEES)


def _page() -> AppTest:
    at = AppTest.from_file(ENTRY, default_timeout=120)
    at.switch_page("views/sweep.py")
    return at.run()


def _heatmap(at) -> dict:
    spec = json.loads(at.get("plotly_chart")[0].proto.spec)
    return spec


def test_sweep_page_heatmap_equals_backtest_sweep(reference):
    _bars, table = reference
    at = _page()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    assert "8 x 8 = 64 combinations" in [c.value for c in at.caption]
    assert any("dropped" in c.value.lower() or "invalid" in c.value.lower() for c in at.caption)  # fast >= slow
    spec = _heatmap(at)
    assert spec["layout"]["title"]["text"] == "sharpe by fast and slow"
    heat = spec["data"][0]
    assert heat["type"] == "heatmap" and heat["x"] == [str(v) for v in FAST] and heat["y"] == [str(v) for v in SLOW]
    z = np.array(heat["z"], dtype=float).reshape(len(SLOW), len(FAST)) if not isinstance(heat["z"], dict) \
        else _values(heat["z"]).reshape(len(SLOW), len(FAST))
    for _, row in table.iterrows():
        assert z[SLOW.index(row["slow"]), FAST.index(row["fast"])] == pytest.approx(row["sharpe"], rel=1e-12)
    assert np.isnan(z[SLOW.index(25), FAST.index(30)])  # fast >= slow: dropped by the sweep, blank cell
    assert np.isfinite(z).sum() == len(table)

    top = at.dataframe[0].value
    best = table.loc[table["sharpe"].idxmax()]
    assert (top.iloc[0]["fast"], top.iloc[0]["slow"]) == (best["fast"], best["slow"])
    # the combination shown below defaults to the best cell, and its backtest agrees with the sweep row
    assert (at.selectbox(key="sw_pick_x").value, at.selectbox(key="sw_pick_y").value) == (best["fast"], best["slow"])
    metrics = at.dataframe[1].value
    assert metrics.loc["sharpe", "strategy"] == pytest.approx(best["sharpe"], rel=1e-9)
    assert metrics.loc["total_return", "strategy"] == pytest.approx(best["total_return"], rel=1e-9)


def test_sweep_page_pick_a_pair_and_change_the_metric(reference):
    bars, table = reference
    view = services.run_backtest(bars, "trend", {"fast": 10, "slow": 50}, fees=FEES)
    at = _page()
    at.selectbox(key="sw_pick_x").set_value(10)
    at.selectbox(key="sw_pick_y").set_value(50).run()
    assert not at.exception and not at.error
    metrics = at.dataframe[1].value
    assert metrics.loc["sharpe", "strategy"] == pytest.approx(view.result.metrics["sharpe"], rel=1e-12)
    row = table[(table["fast"] == 10) & (table["slow"] == 50)].iloc[0]
    assert row["sharpe"] == pytest.approx(view.result.metrics["sharpe"], rel=1e-9)  # sweep == run
    equity = json.loads(at.get("plotly_chart")[1].proto.spec)
    assert equity["layout"]["title"]["text"] == "trend fast=10, slow=50 vs buy & hold"
    eq = view.result.equity.to_numpy()
    np.testing.assert_allclose(_values(equity["data"][0]["y"]), eq / eq[0], rtol=1e-12)

    at.selectbox(key="sw_metric").set_value("cagr").run()
    assert _heatmap(at)["layout"]["title"]["text"] == "cagr by fast and slow"


def test_sweep_page_bad_axis_is_one_error_line():
    at = _page()
    at.text_input(key="sw_xv_trend_fast").set_value("50:5:5").run()
    assert not at.exception
    assert len(at.error) == 1 and "axis 'fast'" in at.error[0].value and "stop >= start" in at.error[0].value


def test_selected_cell_maps_plotly_labels_back_to_values():
    assert figures.selected_cell([{"x": "10", "y": "50", "point_index": 3}], [5, 10], [25, 50]) == (10, 50)
    assert figures.selected_cell([{"x": "0.5", "y": "2"}], [0.25, 0.5], [1, 2]) == (0.5, 2)
    assert figures.selected_cell([{"x": "99", "y": "50"}], [5, 10], [25, 50]) is None
    assert figures.selected_cell([], [5], [25]) is None


def test_sweep_page_shows_the_deflated_sharpe_ratio_and_pbo(reference):
    from backtest.overfitting import sweep_overfitting

    bars, table = reference
    want = sweep_overfitting(table, bars, "trend", fees=FEES)
    at = _page()
    assert not at.exception and not at.error
    shown = {m.label: m.value for m in at.metric}
    assert shown["Deflated Sharpe ratio of the best"] == f"{want.deflated.dsr:.3f}"
    assert shown["Probability of backtest overfitting"] == f"{want.pbo.pbo:.3f}"
    captions = [c.value for c in at.caption]
    assert any(c.startswith("deflated Sharpe ratio of the best:") for c in captions)
    assert any(c.startswith("probability of backtest overfitting:") and f"partitions, {len(table)} combinations)" in c
               for c in captions)


@pytest.mark.parametrize("content, fragment", [
    (None, "no such file"),
    (("Gmt time,Open,High,Low,Close,Volume\n01.02.2017 00:00:00.000,1,2,0.5,1.5,1\n"
     "02.02.2017 00:00:00.000,1,2,0.5,1.5,1\n03.02.2017 00:00:00.000,1,2,0.5,1.5,1\n"), "dayfirst"),
    ("timestamp,open,high,low,close,volume\n2020-01-01,1,2,0.5,abc,1\n2020-01-02,1,2,0.5,1.5,1\n", "non-number"),
])
def test_sweep_page_bad_file_is_one_error_line(tmp_path, content, fragment):
    """A file the data layer refuses shows its one-line reason (never a raw pandas error or a traceback)."""
    path = tmp_path / "bars.csv"
    if content is not None:
        path.write_text(content)
    at = _page()
    at.text_input(key="sw_spec").set_value(f"file:{path}").run()
    assert not at.exception
    assert len(at.error) == 1 and fragment in at.error[0].value and "\n" not in at.error[0].value
    assert at.error[0].value.startswith("Sweep of trend on file:")


def test_sweep_page_reports_an_all_invalid_grid():
    at = _page()
    at.text_input(key="sw_xv_trend_fast").set_value("60:80:10")
    at.text_input(key="sw_yv_trend_slow").set_value("20|40").run()
    assert not at.exception
    assert len(at.error) == 1 and "no valid combination: 6 of 6 combinations dropped" in at.error[0].value
