"""Sweep: a strategy's parameter grid as a heatmap of any metric; click a cell (or pick the pair) to see
that combination's backtest."""
from __future__ import annotations

import streamlit as st

from app.dashboard import figures, services
from app.dashboard import params as P
from app.dashboard.ui import (
    cached_backtest,
    cached_bars,
    cached_sweep,
    cost_inputs,
    data_inputs,
    error_boundary,
    param_inputs,
    strategy_input,
)

st.title("Parameter sweep")


@st.cache_data(show_spinner="Deflated Sharpe ratio and PBO...", max_entries=16)
def cached_overfitting(spec, start, end, strategy, grid, fees, slippage, execution, metric):
    """``(backtest.overfitting.sweep_overfitting(...), "")`` of the cached sweep, or ``(None, why)`` when it
    does not apply (fewer than 2 combinations that trade, a best combination that never trades)."""
    from backtest.overfitting import sweep_overfitting

    table = cached_sweep(spec, start, end, strategy, grid, fees, slippage, execution)
    bars, _ = cached_bars(spec, start, end)
    try:
        return sweep_overfitting(table, bars, strategy, metric=metric, fees=fees, slippage=slippage,
                                 execution=execution), ""
    except ValueError as exc:
        return None, str(exc)

with error_boundary("Inputs"):
    from backtest.decisions import entries, get

    spec, start, end = data_inputs("sw")
    eligible = [e.name for e in entries() if len(P.sweepable(e.space)) >= 2]
    if not eligible:
        st.info("No registered strategy has two numeric parameters to sweep.")
        st.stop()
    strategy = strategy_input("sw", only=eligible)
    declared = get(strategy).space.params
    defaults = get(strategy).defaults
    numeric = P.sweepable(get(strategy).space)
    a1, a2, a3, a4 = st.columns(4)
    x = a1.selectbox("X axis", numeric, index=0, key=f"sw_x_{strategy}")
    x_text = a2.text_input(f"{x} values", P.default_axis(declared[x]), key=f"sw_xv_{strategy}_{x}",
                           help="start:stop:step (stop included when on the grid) or values a|b|c")
    y_options = [n for n in numeric if n != x]
    y = a3.selectbox("Y axis", y_options, index=0, key=f"sw_y_{strategy}")
    y_text = a4.text_input(f"{y} values", P.default_axis(declared[y]), key=f"sw_yv_{strategy}_{y}",
                           help="start:stop:step (stop included when on the grid) or values a|b|c")
    x_values = P.axis_values(x, x_text, declared[x])
    y_values = P.axis_values(y, y_text, declared[y])
    with st.expander("Other parameters (fixed)"):
        fixed = param_inputs(strategy, key="sw", skip=(x, y))
    fees, slippage, execution = cost_inputs("sw")
    st.caption(f"{len(x_values)} x {len(y_values)} = {len(x_values) * len(y_values)} combinations")

with error_boundary(f"Sweep of {strategy} on {spec}"):
    changed = {k: (v,) for k, v in fixed.items() if v != defaults[k]}
    grid = tuple(sorted({x: tuple(x_values), y: tuple(y_values), **changed}.items()))
    table = cached_sweep(spec, start, end, strategy, grid, fees, slippage, execution)
    if len(table) == 0:
        raise ValueError(f"no valid combination: {table.attrs.get('note') or 'the grid is empty'}; change the axes")
    param_cols = [c for c in table.columns if c in defaults]
    metric_cols = [c for c in table.columns if c not in defaults and table[c].dtype.kind in "fiu"]
    if not metric_cols:
        raise ValueError(f"the sweep returned no metric columns (columns: {', '.join(map(str, table.columns))})")
    metric = st.selectbox("Metric", metric_cols,
                          index=metric_cols.index("sharpe") if "sharpe" in metric_cols else 0, key="sw_metric")
    fig = figures.heatmap_figure(table, x=x, y=y, metric=metric)

event = st.plotly_chart(fig, key="sw_heatmap", on_select="rerun", selection_mode="points")
points = (event.selection.points if event and event.selection else None) or []
cell = figures.selected_cell(points, x_values, y_values)
if cell is not None and st.session_state.get("sw_last_click") != cell:  # a clicked cell picks that pair
    st.session_state["sw_last_click"] = cell
    st.session_state["sw_pick_x"], st.session_state["sw_pick_y"] = cell
if table.attrs.get("note"):
    st.caption(str(table.attrs["note"]))

best = table.sort_values(metric, ascending=False, na_position="last")
st.subheader(f"Top combinations by {metric}")
st.dataframe(best.head(10), hide_index=True, key="sw_top")

with error_boundary("Overfitting statistics"):  # how much of the best result is selection luck
    fit, why = cached_overfitting(spec, start, end, strategy, grid, fees, slippage, execution, metric)
st.subheader("Overfitting")
if fit is None:
    st.caption(f"Deflated Sharpe ratio and PBO: n/a ({why})")
else:
    o1, o2 = st.columns(2)
    o1.metric("Deflated Sharpe ratio of the best", f"{fit.deflated.dsr:.3f}",
              help="Probability that the best combination's true Sharpe ratio beats the best of as many "
                   "skill-less trials (Bailey & López de Prado 2014); 0.95 is the bar for a discovery.")
    o2.metric("Probability of backtest overfitting", "n/a" if fit.pbo is None else f"{fit.pbo.pbo:.3f}",
              help="How often the in-sample best is at or below the out-of-sample median (CSCV, Bailey et al. "
                   "2017); about 0.5 for noise, near 0 for a real edge.")
    for line in fit.lines():
        st.caption(line)

st.subheader("One combination")
for axis, values in ((x, x_values), (y, y_values)):  # default pick: the best cell; keep a valid pick
    state_key = "sw_pick_x" if axis == x else "sw_pick_y"
    if st.session_state.get(state_key) not in values:
        top = best.iloc[0][axis] if len(best) else values[0]
        st.session_state[state_key] = next((v for v in values if v == top), values[0])
p1, p2 = st.columns(2)
pick_x = p1.selectbox(x, x_values, key="sw_pick_x")
pick_y = p2.selectbox(y, y_values, key="sw_pick_y")
with error_boundary(f"{strategy}({x}={pick_x}, {y}={pick_y})"):
    chosen = {**fixed, x: pick_x, y: pick_y}
    view = cached_backtest(spec, start, end, strategy, tuple(sorted(chosen.items())), fees, slippage, execution)
    st.plotly_chart(
        figures.equity_figure(services.equity_of(view.result), services.equity_of(view.benchmark),
                              title=f"{strategy} {x}={pick_x}, {y}={pick_y} vs buy & hold"),
        key="sw_equity",
    )
    st.dataframe(services.metrics_table(view.result.metrics, view.benchmark.metrics), key="sw_metrics")
