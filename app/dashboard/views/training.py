"""Training monitor: metrics of RL runs under ``$DREX_HOME/runs``, several runs overlaid per chart."""
from __future__ import annotations

import pandas as pd
import streamlit as st

from app.dashboard import figures, training_runs
from app.dashboard.ui import cached_run_metrics, error_boundary

st.title("Training monitor")

with error_boundary("Training runs"):
    from markets.home import data_home

    root = data_home("runs")
    runs = training_runs.list_runs(root)
    if not runs:
        st.info(f"No training runs yet: run folders with a metrics.jsonl appear here (looked in {root}).")
        st.stop()
    c1, c2 = st.columns([3, 1])
    chosen = c1.multiselect("Runs (overlaid)", runs, default=runs[: min(3, len(runs))], key="tm_runs")
    weight = c2.slider("Smoothing", 0.0, 0.99, 0.0, 0.01, key="tm_smooth",
                       help="exponential moving average, as in TensorBoard (0 = raw)")
    if c2.button("Reload", key="tm_reload"):
        st.rerun()
    if not chosen:
        st.info("Select at least one run.")
        st.stop()
    loaded = {name: cached_run_metrics(root / name) for name in chosen}

summary = []
for name, run in loaded.items():
    last = run.frame.iloc[-1] if len(run.frame) else pd.Series(dtype=float)
    summary.append({
        "run": name, "steps": len(run.frame),
        "last step": int(run.frame.index[-1]) if len(run.frame) else None,
        **{k: last.get(k) for k in ("reward/mean", "entropy", "kl", "approx_kl", "grad_norm") if k in last},
        "loss": run.config.get("loss") or run.config.get("loss_name") or "",
    })
    if run.partial_tail:
        st.caption(f"{name}: last line incomplete (run still writing?) - skipped.")
    if run.bad_lines:
        st.warning(f"{name}: skipped malformed line(s) {', '.join(map(str, run.bad_lines[:10]))}")
st.dataframe(pd.DataFrame(summary), hide_index=True, key="tm_summary")

frames = {name: training_runs.smooth(run.frame, weight) for name, run in loaded.items()}
all_cols = list(dict.fromkeys(c for f in frames.values() for c in f.columns))
groups = training_runs.group_columns(all_cols)
other = groups.pop("Other", [])
if not groups and not other:
    st.info("The selected runs have no numeric metrics yet.")
left, right = st.columns(2)
for i, (title, keys) in enumerate(groups.items()):
    with left if i % 2 == 0 else right:
        st.plotly_chart(figures.runs_figure(frames, keys, title=title), key=f"tm_chart_{title}")
if other:
    extra = st.multiselect("More metrics", other, default=[], key="tm_other")
    for key in extra:
        st.plotly_chart(figures.runs_figure(frames, [key], title=key), key=f"tm_other_{key}")

with st.expander("Run configs"):
    for name, run in loaded.items():
        st.markdown(f"**{name}**")
        st.json(run.config or {}, expanded=False)
