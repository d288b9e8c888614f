"""Backtest: data spec + dates + any registered strategy with its parameters -> metrics, charts, trades."""
from __future__ import annotations

import re

import streamlit as st

from app.dashboard import figures, services
from app.dashboard.ui import (
    cached_backtest,
    cached_bars,
    cost_inputs,
    data_inputs,
    error_boundary,
    param_inputs,
    strategy_input,
)

_HEADLINE = (("sharpe", "Sharpe", "{:.2f}"), ("cagr", "CAGR", "{:.2%}"), ("total_return", "Total return", "{:.2%}"),
             ("max_drawdown", "Max drawdown", "{:.2%}"), ("ann_volatility", "Volatility", "{:.2%}"))

st.title("Backtest")

with error_boundary("Inputs"):
    spec, start, end = data_inputs("bt")
    strategy = strategy_input("bt")
    with st.expander("Parameters", expanded=True):
        params = param_inputs(strategy, key="bt")
    fees, slippage, execution = cost_inputs("bt")

with error_boundary(f"Backtest of {strategy} on {spec}"):
    bars, notes = cached_bars(spec, start, end)
    view = cached_backtest(spec, start, end, strategy, tuple(sorted(params.items())), fees, slippage, execution)
    equity = services.equity_of(view.result)
    bench = services.equity_of(view.benchmark)

for note in notes:
    st.warning(note)
metrics = view.result.metrics
st.caption(f"{spec}: {len(bars):,} bars, {bars.index[0]:%Y-%m-%d} to {bars.index[-1]:%Y-%m-%d}; "
           f"{strategy}({', '.join(f'{k}={v!r}' for k, v in params.items())}); fees {fees * 1e4:g} bps, "
           f"slippage {slippage * 1e4:g} bps, {execution}")
shown = [(k, label, fmt) for k, label, fmt in _HEADLINE if k in metrics]
for col, (k, label, fmt) in zip(st.columns(max(len(shown), 1)), shown):
    value, base = metrics[k], view.benchmark.metrics.get(k)
    col.metric(label, fmt.format(value), delta=None if base is None else f"{fmt.format(value - base)} vs B&H")

st.plotly_chart(figures.equity_figure(equity, bench, title=f"Equity: {strategy} vs buy & hold"), key="bt_equity")
c1, c2 = st.columns(2)
with c1:
    st.plotly_chart(figures.drawdown_figure(equity, bench), key="bt_drawdown")
with c2:
    st.plotly_chart(figures.exposure_figure(view.result.positions), key="bt_exposure")

st.subheader("Metrics")
st.dataframe(services.metrics_table(metrics, view.benchmark.metrics), key="bt_metrics")

trades = view.result.trades
st.subheader(f"Trades ({len(trades):,})")
st.dataframe(trades, hide_index=True, key="bt_trades")

slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", f"{spec}-{strategy}").strip("_")
d1, d2 = st.columns(2)
d1.download_button(
    "Download metrics (JSON)",
    services.metrics_json(metrics, spec=spec, start=start, end=end, strategy=strategy, params=params, fees=fees,
                          slippage=slippage, execution=execution, benchmark=view.benchmark.metrics),
    file_name=f"{slug}-metrics.json", mime="application/json", key="bt_dl_json",
)
d2.download_button(
    "Download HTML report",
    lambda: services.report_html(view.result, bars, title=f"{strategy} on {spec}", benchmark=bench),
    file_name=f"{slug}-report.html", mime="text/html", key="bt_dl_html",
)
