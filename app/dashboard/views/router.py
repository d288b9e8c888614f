"""Router: the routed DREX strategy bar by bar: price with the chosen regime, routing weights as a stacked
area, each expert's exposure and the position; click a bar (or pick its date) to see the chart the router
read, its weights and the experts' answers."""
from __future__ import annotations

import datetime as dt

import pandas as pd
import streamlit as st

from app.dashboard import router_view as rv
from app.dashboard.ui import cached_bars, data_inputs, error_boundary, param_inputs


@st.cache_data(show_spinner="Routing...", max_entries=16)
def _routing(spec: str, start: str | None, end: str | None, params: tuple) -> tuple[pd.DataFrame, pd.DataFrame]:
    from backtest.decisions import decide

    bars, _ = cached_bars(spec, start, end)
    d = decide("drex", bars, dict(params))
    return bars, d.trace


st.title("Router")
st.caption("The DREX router weights the experts bar by bar; position = sum of weight x expert exposure, "
           "projected onto the constraints, executed at the next bar.")

with error_boundary("Inputs"):
    spec, start, end = data_inputs("rt", default_start=dt.date(2016, 1, 1))
    with st.expander("Router parameters"):
        params = param_inputs("drex", key="rt")

with error_boundary(f"Routing of {spec}"):
    bars, trace = _routing(spec, start, end, tuple(sorted(params.items())))
    asset = None
    if isinstance(bars.columns, pd.MultiIndex):
        assets = list(dict.fromkeys(bars.columns.get_level_values(0)))
        asset = st.selectbox("Asset", assets, key="rt_asset")
    one = bars[asset] if asset is not None else bars
    tr = rv.asset_trace(trace, asset)
    fig = rv.router_figure(one["close"], tr, title=f"drex on {spec}" + (f" ({asset})" if asset else ""))

event = st.plotly_chart(fig, key="rt_figure", on_select="rerun", selection_mode="points")
points = (event.selection.points if event and event.selection else None) or []
clicked = rv.selected_bar(points, tr.index)
dates = [ts.strftime("%Y-%m-%d %H:%M") if ts.hour or ts.minute else ts.strftime("%Y-%m-%d") for ts in tr.index]
if clicked is not None and st.session_state.get("rt_last_click") != clicked:  # a click picks that bar
    st.session_state["rt_last_click"] = clicked
    st.session_state["rt_bar"] = dates[clicked]
if st.session_state.get("rt_bar") not in dates:
    st.session_state["rt_bar"] = dates[-1]
pick = st.selectbox("Bar", dates, key="rt_bar")

with error_boundary(f"Bar {pick}"):
    from backtest.decisions import build

    i = dates.index(pick)
    d = rv.bar_details(one, tr, i, **build("drex", params).chart)  # the chart layout the router reads
    st.subheader(f"{pick}: regime {d.row['regime']}, position {d.row['position']:+.3f}")
    c1, c2 = st.columns([1, 1])
    with c1:
        st.image(d.picture, caption=f"chart {d.row['chart_first'][:10]} .. {d.row['chart_last'][:10]}",
                 width="stretch")
    with c2:
        st.dataframe(d.experts, hide_index=True, key="rt_experts")
        st.dataframe(d.regimes, hide_index=True, key="rt_regimes")
