"""Paper trading: runs from the ledger -- status, last tick, equity curve, positions, orders, fills."""
from __future__ import annotations

import streamlit as st

from app.dashboard import figures
from app.dashboard.ui import cached_ledger, error_boundary

st.title("Paper trading")


def _when(ts) -> str:
    return "never" if ts is None else f"{ts:%Y-%m-%d %H:%M:%S} UTC"


with error_boundary("Paper ledger"):
    from sqlalchemy.engine import make_url

    from app.paper.ledger import default_ledger_url

    c1, c2 = st.columns([4, 1])
    url = c1.text_input("Ledger URL", default_ledger_url(), key="pp_url",
                        help="any SQLAlchemy URL; default SQLite under $DREX_HOME/paper").strip()
    if c2.button("Refresh", key="pp_refresh"):
        st.rerun()
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        from pathlib import Path

        if not Path(parsed.database).is_file():
            st.info(f"No paper ledger at {parsed.database} yet: create a run with `drex paper init NAME "
                    "--config paper.yaml`, then `drex paper tick NAME`.")
            st.stop()
    ledger = cached_ledger(url)
    runs = ledger.list_runs()
    if runs.empty:
        st.info("The ledger has no runs yet: create one with `drex paper init NAME --config paper.yaml`.")
        st.stop()

st.dataframe(runs, hide_index=True, key="pp_runs")
name = st.selectbox("Run", list(runs["name"]), key="pp_run")

with error_boundary(f"Run {name}"):
    summary = ledger.run_summary(name)
    curve = ledger.equity_curve(name)
    positions, orders, fills = ledger.positions(name), ledger.orders(name), ledger.fills(name)
    decisions = ledger.decisions(name)

cfg = summary.config
st.caption(f"{cfg.get('strategy')} on {cfg.get('data')} ({cfg.get('interval')}, {summary.mode}); "
           f"params {cfg.get('params') or {}}; last tick {_when(summary.last_tick_at)}; "
           f"last bar {_when(summary.last_bar)}")
m = st.columns(5)
m[0].metric("Status", summary.status)
m[1].metric("Equity", f"{summary.equity:,.2f}",
            delta=f"{summary.equity / float(cfg.get('initial_cash', summary.equity)) - 1:.2%}")
m[2].metric("Cash", f"{summary.cash:,.2f}")
m[3].metric("Positions value", f"{summary.positions_value:,.2f}")
m[4].metric("Bars processed", f"{summary.bars_processed:,}")
if summary.last_error:
    st.warning(f"Last error: {summary.last_error}")

if len(curve):
    st.plotly_chart(figures.equity_figure(curve["equity"], title=f"Paper equity: {name}", normalize=False),
                    key="pp_equity")
else:
    st.info("No bars processed yet: run `drex paper tick " + name + "`.")

tabs = st.tabs([f"Positions ({len(positions)})", f"Orders ({len(orders)})", f"Fills ({len(fills)})",
                f"Decisions ({len(decisions)})"])
for tab, frame, key in zip(tabs, (positions, orders, fills, decisions), ("pos", "ord", "fill", "dec")):
    with tab:
        if key == "dec" and len(frame):
            frame = frame.assign(explanation=frame["explanation"].map(str))
        st.dataframe(frame, hide_index=True, key=f"pp_{key}")
