"""Experts: an LLM expert's exposure under the price chart next to its rule-based teacher; click a bar (or pick
it) to read the prompt the expert read and the answer it wrote."""
from __future__ import annotations

import datetime as dt

import streamlit as st

from app.dashboard import expert_view
from app.dashboard.ui import cached_bars, data_inputs, error_boundary, param_inputs


@st.cache_data(show_spinner="Asking the expert...", max_entries=16)
def cached_view(spec: str, start: str | None, end: str | None, name: str,
                params: tuple[tuple[str, object], ...]) -> expert_view.ExpertView:
    bars, _ = cached_bars(spec, start, end)
    return expert_view.inspect(bars, name, dict(params))


st.title("Experts")

with error_boundary("Inputs"):
    names = expert_view.expert_names()
    if not names:
        st.info("No LLM experts are registered (the experts package registers expert:trend, ... through the "
                "drex.plugins entry point; is DREX installed with its dependencies?).")
        st.stop()
    # two years by default: a cold expert decides each bar once (then the decision cache answers)
    spec, start, end = data_inputs("ex", default_start=dt.date(2016, 1, 1), default_end=dt.date(2017, 12, 31))
    default = names.index("expert:trend") if "expert:trend" in names else 0
    name = st.selectbox("Expert", names, index=default, key="ex_expert",
                        help="an LLM expert; its teacher is the rule-based decision-maker of the same style")
    with st.expander("Parameters"):
        params = param_inputs(name, key="ex")

with error_boundary(f"{name} on {spec}"):
    view = cached_view(spec, start, end, name, tuple(sorted(params.items())))
    _, notes = cached_bars(spec, start, end)
    if not len(view.exposure):
        raise ValueError(f"{spec} has no bars between {start} and {end}; widen the date range")

for note in notes:
    st.warning(note)
asset = st.selectbox("Asset", view.assets, key="ex_asset") if len(view.assets) > 1 else view.assets[0]
teacher, _ = expert_view.teacher_of(name, params)
stats = expert_view.agreement(view, asset)
c1, c2, c3, c4 = st.columns(4)
c1.metric("Direction agreement with teacher", f"{stats['agreement']:.1%}")
c2.metric("Mean exposure (expert)", f"{stats['expert_mean']:+.2f}")
c3.metric(f"Mean exposure (teacher: {teacher})", f"{stats['teacher_mean']:+.2f}")
c4.metric("Malformed answers", f"{stats['malformed']:.1%}")

index = view.exposure.index
labels = [f"{t:%Y-%m-%d %H:%M}" if t.hour or t.minute else f"{t:%Y-%m-%d}" for t in index]
if st.session_state.get("ex_bar") not in labels:  # a new expert/range: start at the newest bar
    st.session_state["ex_bar"] = labels[-1]
chosen = labels.index(st.session_state["ex_bar"])
event = st.plotly_chart(expert_view.figure(view, asset, selected=chosen), key="ex_chart", on_select="rerun",
                        selection_mode="points")
clicked = expert_view.clicked_row(event.selection.points if event and event.selection else None, index)
if clicked is not None and st.session_state.get("ex_last_click") != clicked:  # a click picks that bar
    st.session_state["ex_last_click"] = clicked
    st.session_state["ex_bar"] = labels[clicked]
    st.rerun()
st.caption(f"{len(index):,} bars of {spec}; click a point of the chart or pick a bar to read the expert's prompt "
           "and answer there. Exposure: fraction of the asset's sleeve (-1 short .. 1 long).")
pick = st.selectbox("Bar", labels, key="ex_bar")
detail = expert_view.bar_detail(view, labels.index(pick), asset)

left, right = st.columns([3, 2])
with left:
    st.subheader(f"Expert: {detail['exposure']:+.1f}")
    st.caption("Prompt (built from bars up to this bar's close; the answer executes at the next bar)")
    st.code(detail["prompt"], language=None)
    st.caption("Answer" + (" (malformed: read as flat)" if detail["malformed"] else ""))
    st.code(detail["answer"] if detail["answer"].strip() else "(empty)", language=None)
with right:
    st.subheader(f"Teacher ({teacher}): {detail['teacher_exposure']:+.2f}")
    st.caption("The rule-based decision-maker's own trace at this bar")
    st.json(detail["teacher_trace"], expanded=True)
