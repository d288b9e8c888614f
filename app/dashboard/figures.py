"""Plotly figures for the dashboard pages (no Streamlit here; each function returns a ``go.Figure``).

Series/frames are indexed by time (backtests, paper trading) or by optimizer step (training runs).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.colors import qualitative

__all__ = [
    "drawdown",
    "drawdown_figure",
    "equity_figure",
    "exposure_figure",
    "heatmap_figure",
    "runs_figure",
    "selected_cell",
]

_COLORS = qualitative.Plotly
_DASHES = ("solid", "dash", "dot", "dashdot", "longdash", "longdashdot")


def _layout(fig: go.Figure, title: str, *, y_title: str = "", height: int = 340) -> go.Figure:
    fig.update_layout(
        title=title, height=height, margin={"l": 10, "r": 10, "t": 40, "b": 50}, hovermode="x unified",
        legend={"orientation": "h", "yanchor": "top", "y": -0.1 - 30 / height, "xanchor": "left", "x": 0}, yaxis_title=y_title,
    )
    return fig


def drawdown(equity: pd.Series) -> pd.Series:
    """Drawdown of an equity curve (T,): ``equity / running max - 1`` (0 at new highs, negative below)."""
    return equity / equity.cummax() - 1.0


def equity_figure(equity: pd.Series, benchmark: pd.Series | None = None, *, title: str = "Equity",
                  normalize: bool = True) -> go.Figure:
    """Strategy equity (T,) vs an optional benchmark (T,), both rebased to 1.0 when ``normalize``."""
    fig = go.Figure()
    curves = [("strategy", equity, _COLORS[0])]
    if benchmark is not None:
        curves.append(("buy & hold", benchmark, "#888888"))
    for name, series, color in curves:
        y = series / series.iloc[0] if normalize and len(series) else series
        fig.add_trace(go.Scatter(x=series.index, y=y, name=name, mode="lines", line={"color": color}))
    return _layout(fig, title, y_title="growth of 1" if normalize else "equity")


def drawdown_figure(equity: pd.Series, benchmark: pd.Series | None = None) -> go.Figure:
    """Drawdown (T,) of the strategy (filled) and of the benchmark (line)."""
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=equity.index, y=drawdown(equity), name="strategy", mode="lines",
                             fill="tozeroy", line={"color": "#d62728"}))
    if benchmark is not None:
        fig.add_trace(go.Scatter(x=benchmark.index, y=drawdown(benchmark), name="buy & hold", mode="lines",
                                 line={"color": "#888888"}))
    fig.update_yaxes(tickformat=".0%")
    return _layout(fig, "Drawdown", height=260)


def exposure_figure(positions: pd.Series | pd.DataFrame) -> go.Figure:
    """Gross (sum |w|) and net (sum w) exposure per bar from position weights (T,) or (T, N)."""
    pos = positions.to_frame() if isinstance(positions, pd.Series) else positions
    gross = pos.abs().sum(axis=1)
    net = pos.sum(axis=1)
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=pos.index, y=gross, name="gross", mode="lines", fill="tozeroy",
                             line={"color": _COLORS[2]}))
    fig.add_trace(go.Scatter(x=pos.index, y=net, name="net", mode="lines", line={"color": _COLORS[3]}))
    fig.update_yaxes(tickformat=".0%")
    return _layout(fig, "Exposure", y_title="fraction of equity", height=260)


def heatmap_figure(table: pd.DataFrame, *, x: str, y: str, metric: str) -> go.Figure:
    """Heatmap of ``metric`` over the (``x``, ``y``) parameter grid of a sweep table (one row per combo).

    Missing combinations (invalid or not run) stay blank. Several rows per cell (other parameters varied)
    are averaged -- the title says so.
    """
    for col in (x, y, metric):
        if col not in table.columns:
            raise KeyError(f"sweep table has no column {col!r}; columns: {', '.join(map(str, table.columns))}")
    counts = table.groupby([y, x]).size()
    grid = table.pivot_table(index=y, columns=x, values=metric, aggfunc="mean", dropna=False)
    z = grid.to_numpy(dtype=float)
    text = np.where(np.isfinite(z), np.vectorize(lambda v: f"{v:.2f}")(np.nan_to_num(z)), "")
    xs, ys = [str(v) for v in grid.columns], [str(v) for v in grid.index]
    fig = go.Figure(go.Heatmap(z=z, x=xs, y=ys, text=text, texttemplate="%{text}", colorscale="RdYlGn",
                               colorbar={"title": metric}, hoverinfo="skip"))
    # an invisible marker on every cell: point selection (click) is reliable on scatter traces
    gx, gy = np.meshgrid(np.arange(len(xs)), np.arange(len(ys)))
    fig.add_trace(go.Scatter(
        x=[xs[i] for i in gx.ravel()], y=[ys[j] for j in gy.ravel()], mode="markers", customdata=z.ravel(),
        marker={"size": 28, "symbol": "square", "opacity": 0.01, "color": "black"}, showlegend=False, name="cells",
        hovertemplate=f"{x}=%{{x}}<br>{y}=%{{y}}<br>{metric}=%{{customdata:.4f}}<extra></extra>",
    ))
    fig.update_xaxes(title=x, type="category")
    fig.update_yaxes(title=y, type="category")
    suffix = " (mean over other parameters)" if len(counts) and counts.max() > 1 else ""
    _layout(fig, f"{metric} by {x} and {y}{suffix}", height=520)
    return fig.update_layout(hovermode="closest")  # click/hover one cell, not a column


def runs_figure(frames: Mapping[str, pd.DataFrame], keys: Sequence[str], *, title: str) -> go.Figure:
    """One line per (run, key) over ``step``: colour = run, dash = key; runs lacking a key are skipped."""
    fig = go.Figure()
    for i, (run, frame) in enumerate(frames.items()):
        color = _COLORS[i % len(_COLORS)]
        for j, key in enumerate(keys):
            if key not in frame.columns:
                continue
            series = frame[key].dropna()
            label = f"{run} · {key}" if len(keys) > 1 else run
            fig.add_trace(go.Scatter(x=series.index, y=series.to_numpy(), name=label, mode="lines",
                                     line={"color": color, "dash": _DASHES[j % len(_DASHES)]}))
    fig.update_xaxes(title="step")
    return _layout(fig, title, height=320)


def selected_cell(points: Sequence[Mapping], x_values: Sequence, y_values: Sequence) -> tuple | None:
    """The (x, y) parameter values of the first selected heatmap cell, or None.

    ``points``: Streamlit's ``event.selection.points`` (dicts with category labels ``"x"``, ``"y"``);
    labels are matched back to the typed values by ``str(value)``.
    """
    by_x = {str(v): v for v in x_values}
    by_y = {str(v): v for v in y_values}
    for point in points or ():
        px, py = str(point.get("x")), str(point.get("y"))
        if px in by_x and py in by_y:
            return by_x[px], by_y[py]
    return None
