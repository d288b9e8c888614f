"""Router page (AppTest on the real page script) and the plain helpers behind it."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
from streamlit.testing.v1 import AppTest

import app.dashboard
import markets
import router.plugin  # noqa: F401  (registers "drex" until the drex.plugins entry point is installed)
from app.dashboard import registry
from app.dashboard import router_view as rv
from backtest.decisions import decide
from router.charts import render, to_rgb

ENTRY = str(Path(app.dashboard.__file__).with_name("main.py"))
SPEC, START, END = "sample:SP500", "2016-01-01", "2017-12-31"


def _direct():
    bars = markets.load(SPEC, START, END)
    return bars, decide("drex", bars).trace


def _page() -> AppTest:
    at = AppTest.from_file(ENTRY, default_timeout=180)
    at.switch_page("views/router.py")
    return at.run()


def test_router_page_shows_the_routing_and_one_bar():
    _, trace = _direct()
    at = _page()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    spec = json.loads(at.get("plotly_chart")[0].proto.spec)
    names = [t.get("name") for t in spec["data"]]
    assert {"w trend", "w reversal", "w breakout", "w positioning", "position", "close"} <= set(names)
    stacked = [t for t in spec["data"] if t.get("stackgroup") == "weights"]
    assert len(stacked) == 4
    # default bar: the last one; its table equals the decision's trace
    table = at.dataframe[0].value
    last = trace.iloc[-1]
    np.testing.assert_allclose(table["weight"].to_numpy(), [last[f"w_{e}"] for e in table["expert"]])
    np.testing.assert_allclose(table["exposure"].to_numpy(), [last[f"h_{e}"] for e in table["expert"]])
    assert f"regime {last['regime']}" in at.subheader[0].value
    # pick another bar: its chart and numbers follow
    day = trace.index[100].strftime("%Y-%m-%d")
    at.selectbox(key="rt_bar").set_value(day).run()
    assert not at.exception, at.exception
    table = at.dataframe[0].value
    np.testing.assert_allclose(table["weight"].to_numpy(), [trace.iloc[100][f"w_{e}"] for e in table["expert"]])
    assert at.subheader[0].value.startswith(day)


def test_helpers_by_hand():
    bars, trace = _direct()
    assert rv.experts_of(trace) == ["trend", "reversal", "breakout", "positioning"]
    assert rv.regimes_of(trace) == ["up", "down", "sideways", "breakout"]
    d = rv.bar_details(bars, trace, 10)
    t = bars.index.get_loc(trace.index[10])
    np.testing.assert_array_equal(d.picture, to_rgb(render(bars, [t])[0], scale=6))
    assert d.experts["weight"].sum() == __import__("pytest").approx(1.0)
    assert rv.selected_bar([{"x": "2016-03-01"}], trace.index) == trace.index.get_loc(pd.Timestamp("2016-03-01",
                                                                                                    tz="UTC"))
    assert rv.selected_bar([], trace.index) is None
    multi = pd.concat({"A": trace[["w_trend", "regime"]]}, axis=1)
    multi.columns = [f"{a}/{c}" for a, c in multi.columns]
    assert list(rv.asset_trace(multi, "A").columns) == ["w_trend", "regime"]
    assert any(p.script == "router.py" for p in registry.PAGES)
