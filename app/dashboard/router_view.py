"""Plain helpers of the dashboard's Router page (no Streamlit here): routing frames out of a ``drex`` trace,
the price + routing-weights figure, and the details of one bar (its chart image, weights, experts' answers).

A ``drex`` trace has, per bar, ``w_<expert>`` (routing weights), ``h_<expert>`` (each expert's weight),
``answer_<expert>`` (LLM experts), ``p_<regime>``, ``regime``, ``raw``, ``position``, ``chart_first`` and
``chart_last`` (``ASSET/``-prefixed on several assets: :func:`asset_trace` strips the prefix).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
import plotly.graph_objects as go

__all__ = ["BarDetails", "asset_trace", "bar_details", "experts_of", "regimes_of", "router_figure",
           "selected_bar"]

REGIME_COLORS = {"up": "#26a69a", "down": "#ef5350", "sideways": "#90a4ae", "breakout": "#ffa726"}
EXPERT_COLORS = ("#1f77b4", "#9467bd", "#ff7f0e", "#2ca02c", "#8c564b", "#e377c2", "#17becf", "#bcbd22")


def asset_trace(trace: pd.DataFrame, asset: str | None) -> pd.DataFrame:
    """The columns of one asset without their ``ASSET/`` prefix (the trace itself for one asset)."""
    if asset is None:
        return trace
    pre = f"{asset}/"
    cols = [c for c in trace.columns if str(c).startswith(pre)]
    if not cols:
        raise KeyError(f"the trace has no columns of asset {asset!r}")
    return trace[cols].rename(columns=lambda c: str(c)[len(pre):])


def experts_of(trace: pd.DataFrame) -> list[str]:
    """Expert labels in routing order (from the ``w_<expert>`` columns)."""
    return [str(c)[2:] for c in trace.columns if str(c).startswith("w_")]


def regimes_of(trace: pd.DataFrame) -> list[str]:
    """Regime classes (from the ``p_<regime>`` columns)."""
    return [str(c)[2:] for c in trace.columns if str(c).startswith("p_")]


def router_figure(close: pd.Series, trace: pd.DataFrame, *, title: str = "Routing") -> go.Figure:
    """Three panes on one time axis: the close with the chosen regime as coloured markers; the routing
    weights as a stacked area (they sum to 1); each expert's weight and the final position."""
    from plotly.subplots import make_subplots

    experts = experts_of(trace)
    fig = make_subplots(rows=3, cols=1, shared_xaxes=True, vertical_spacing=0.04, row_heights=[0.45, 0.3, 0.25],
                        subplot_titles=("Price and regime", "Routing weights", "Expert exposures and position"))
    x = trace.index
    fig.add_trace(go.Scatter(x=x, y=close.reindex(x), name="close", line={"color": "#444", "width": 1.2},
                             legendgroup="price"), row=1, col=1)
    for regime in regimes_of(trace):
        on = trace["regime"] == regime
        fig.add_trace(go.Scatter(x=x[on], y=close.reindex(x)[on], mode="markers", name=f"regime {regime}",
                                 marker={"size": 5, "color": REGIME_COLORS.get(regime, "#555")},
                                 legendgroup="regime"), row=1, col=1)
    for j, name in enumerate(experts):
        color = EXPERT_COLORS[j % len(EXPERT_COLORS)]
        fig.add_trace(go.Scatter(x=x, y=trace[f"w_{name}"], name=f"w {name}", stackgroup="weights",
                                 line={"width": 0.5, "color": color}, legendgroup=name), row=2, col=1)
        fig.add_trace(go.Scatter(x=x, y=trace[f"h_{name}"], name=f"h {name}", line={"width": 1, "color": color},
                                 opacity=0.6, legendgroup=name, showlegend=False), row=3, col=1)
    fig.add_trace(go.Scatter(x=x, y=trace["position"], name="position", line={"width": 2, "color": "#000"}),
                  row=3, col=1)
    fig.update_yaxes(range=[0, 1], row=2, col=1)
    fig.update_layout(title={"text": title}, height=720, margin={"l": 40, "r": 20, "t": 60, "b": 30},
                      hovermode="x unified", legend={"orientation": "h", "y": -0.05})
    return fig


def selected_bar(points: Sequence[Mapping], index: pd.DatetimeIndex) -> int | None:
    """Position in ``index`` of the first clicked point (Streamlit's ``event.selection.points``), or None."""
    for point in points or ():
        x = point.get("x")
        if x is None:
            continue
        ts = pd.Timestamp(x)
        ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
        pos = int(index.get_indexer([ts], method="nearest")[0])
        if pos >= 0:
            return pos
    return None


class BarDetails(NamedTuple):
    """One bar: ``picture`` (H, W, 3) uint8 chart as the router saw it, ``experts`` (expert, weight,
    exposure, answer), ``regimes`` (regime, probability), ``row`` (the trace row as a dict)."""

    picture: np.ndarray
    experts: pd.DataFrame
    regimes: pd.DataFrame
    row: dict[str, Any]


def bar_details(bars: pd.DataFrame, trace: pd.DataFrame, i: int, *, window: int = 64, height: int = 64,
                volume_rows: int = 16, scale: int = 6) -> BarDetails:
    """Details of trace row ``i`` (its bar is ``bars`` row ``bars.index.get_loc(trace.index[i])``)."""
    from router.charts import render, to_rgb

    ts = trace.index[i]
    t = int(bars.index.get_loc(ts))
    chart = render(bars, [t], window=window, height=height, volume_rows=volume_rows)[0]
    row = trace.iloc[i].to_dict()
    experts = experts_of(trace)
    table = pd.DataFrame({
        "expert": experts,
        "weight": [float(row[f"w_{e}"]) for e in experts],
        "exposure": [float(row[f"h_{e}"]) for e in experts],
        "answer": [row.get(f"answer_{e}") if row.get(f"answer_{e}") is not None else "" for e in experts],
    })
    regimes = regimes_of(trace)
    probs = pd.DataFrame({"regime": regimes, "probability": [float(row[f"p_{r}"]) for r in regimes]})
    return BarDetails(to_rgb(chart, scale=scale), table, probs, row)
