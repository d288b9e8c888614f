"""Figures and pages of the reports: plotly charts thinned to a bounded size, one shared plotly.js, a PNG.

* ``thin(values, buckets)``: the positions to plot of a long series, keeping its extremes: per bucket of
  consecutive points the first, last, minimum and maximum (so a spike or a crash is never smoothed away).
  ``MAX_BUCKETS`` buckets per trace bound a report's size whatever the number of bars (2M one-minute bars
  give a report of the same size as 4,000).
* ``backtest_figure``: price with entry/exit markers (one asset), equity vs the benchmark, drawdown, rolling
  Sharpe, exposure. ``heatmap_figure``: a metric over two parameters (the sweep report).
* ``html_page``: one HTML page; plotly.js is either inlined (one self-contained file, the dashboard's
  download) or, by default, loaded from ONE shared file ``plotly-<version>.min.js`` in the folder above the
  report folder (written once per reports folder; every report there shares it; no CDN, works offline).
* ``write_png``: equity and drawdown with matplotlib (Agg, no pyplot).
"""
from __future__ import annotations

import html
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from backtest.jsonable import jsonable

__all__ = ["MAX_BUCKETS", "MAX_MARKERS", "backtest_figure", "heatmap_figure", "html_page", "plotly_js",
           "table_html", "thin", "write_png"]

MAX_BUCKETS = 1000
"""Buckets per plotted series (each keeps at most 4 points: first, last, min, max)."""
MAX_MARKERS = 2000
"""Entry/exit markers drawn at most (evenly thinned beyond; the round-trip table lists them all)."""


def thin(values: np.ndarray, buckets: int = MAX_BUCKETS) -> np.ndarray:
    """Sorted positions of ``values (T,)`` to plot: all of them when ``T <= 4 * buckets``, else per bucket of
    consecutive points the first, last, minimum and maximum (NaN ignored; an all-NaN bucket keeps its ends)."""
    v = np.asarray(values, dtype=np.float64)
    T = v.shape[0]
    if T <= 4 * buckets:
        return np.arange(T)
    k = -(-T // buckets)  # points per bucket
    pad = k * buckets - T
    lo = np.pad(np.where(np.isnan(v), np.inf, v), (0, pad), constant_values=np.inf).reshape(buckets, k)
    hi = np.pad(np.where(np.isnan(v), -np.inf, v), (0, pad), constant_values=-np.inf).reshape(buckets, k)
    base = np.arange(buckets) * k
    keep = np.concatenate([base, np.minimum(base + k - 1, T - 1), base + lo.argmin(axis=1),
                           base + hi.argmax(axis=1), [T - 1]])
    return np.unique(keep[keep < T])


def _line(go: Any, series: pd.Series, name: str, **kw: Any) -> Any:
    pos = thin(series.to_numpy(dtype=np.float64))
    return go.Scatter(x=series.index[pos], y=series.to_numpy()[pos], name=name, mode="lines", **kw)


def _markers(go: Any, when: pd.Series, price: pd.Series, name: str, symbol: str, color: str) -> Any:
    if len(when) > MAX_MARKERS:
        pick = np.linspace(0, len(when) - 1, MAX_MARKERS).round().astype(int)
        when, price, name = when.iloc[pick], price.iloc[pick], f"{name} ({MAX_MARKERS:,} of {len(when):,})"
    return go.Scatter(x=when, y=price, name=name, mode="markers",
                      marker={"symbol": symbol, "color": color, "size": 9, "line": {"width": 1, "color": "#333"}})


def backtest_figure(frame: pd.DataFrame, *, title: str, window: int, price: pd.Series | None = None,
                    trips: pd.DataFrame | None = None) -> Any:
    """The report's chart: [price with entry/exit markers,] equity vs benchmark, drawdown, rolling Sharpe,
    exposure; every line thinned (``thin``). ``frame``: the per-bar frame of ``write_report``; ``price`` the
    close of a single asset; ``trips`` its round trips (``backtest.trades.round_trips``)."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    titles = ["Equity", "Drawdown", f"Rolling Sharpe ({window} bars)", "Exposure"]
    heights = [0.34, 0.16, 0.16, 0.16]
    if price is not None:
        titles, heights = ["Price, entries and exits", *titles], [0.3, 0.26, 0.14, 0.14, 0.14]
    fig = make_subplots(rows=len(titles), cols=1, shared_xaxes=True, vertical_spacing=0.035,
                        row_heights=heights, subplot_titles=titles)
    row = 1
    if price is not None:
        fig.add_trace(_line(go, price, "close", line={"color": "#555", "width": 1}), row=1, col=1)
        if trips is not None and len(trips):
            long_, short = trips[trips["side"] > 0], trips[trips["side"] < 0]
            for part, label, symbol, color in ((long_, "long entry", "triangle-up", "#2ca02c"),
                                               (short, "short entry", "triangle-down", "#d62728")):
                if len(part):
                    fig.add_trace(_markers(go, part["entry"], part["entry_price"], label, symbol, color),
                                  row=1, col=1)
            closed = trips[~trips["open"]]
            if len(closed):
                fig.add_trace(_markers(go, closed["exit"], closed["exit_price"], "exit", "x", "#1f77b4"),
                              row=1, col=1)
        row = 2
    fig.add_trace(_line(go, frame["equity"], "strategy"), row=row, col=1)
    if "benchmark" in frame:
        fig.add_trace(_line(go, frame["benchmark"], "buy & hold", line={"dash": "dot"}), row=row, col=1)
    fig.add_trace(_line(go, frame["drawdown"], "drawdown", fill="tozeroy"), row=row + 1, col=1)
    fig.add_trace(_line(go, frame["rolling_sharpe"], "rolling Sharpe"), row=row + 2, col=1)
    if "gross_exposure" in frame:
        fig.add_trace(_line(go, frame["gross_exposure"], "gross exposure"), row=row + 3, col=1)
        fig.add_trace(_line(go, frame["net_exposure"], "net exposure"), row=row + 3, col=1)
    fig.update_layout(title=title, height=260 * len(titles), template="plotly_white", hovermode="x unified")
    fig.update_yaxes(tickformat=".0%", row=row + 1, col=1)
    return fig


def heatmap_figure(table: pd.DataFrame, *, x: str, y: str, metric: str, title: str) -> Any:
    """``metric`` over the grid of parameters ``x`` and ``y`` (the best value over any other parameters)."""
    import plotly.graph_objects as go

    pivot = table.pivot_table(index=y, columns=x, values=metric, aggfunc="max")
    fig = go.Figure(go.Heatmap(z=pivot.to_numpy(), x=[str(v) for v in pivot.columns],
                               y=[str(v) for v in pivot.index], colorscale="RdYlGn", colorbar={"title": metric},
                               hovertemplate=f"{x}=%{{x}}<br>{y}=%{{y}}<br>{metric}=%{{z:.4g}}<extra></extra>"))
    fig.update_layout(title=title, xaxis_title=x, yaxis_title=y, template="plotly_white", height=560)
    return fig


def table_html(rows: dict[str, Any] | pd.DataFrame, *, units: dict[str, str] | None = None) -> str:
    """A small HTML table: a dict as ``key | value [unit]`` rows, or a DataFrame (header + rows)."""
    def cell(v: Any) -> str:
        v = jsonable(v)
        return html.escape(f"{v:.6g}" if isinstance(v, float) else ("n/a" if v is None else str(v)))

    if isinstance(rows, pd.DataFrame):
        head = "".join(f"<th>{html.escape(str(c))}</th>" for c in rows.columns)
        body = "".join("<tr>" + "".join(f"<td>{cell(v)}</td>" for v in r) + "</tr>"
                       for r in rows.itertuples(index=False))
        return f"<table class='grid'><tr>{head}</tr>{body}</table>"
    units = units or {}
    body = "".join(f"<tr><th>{html.escape(str(k))}</th><td>{cell(v)}"
                   f"{' ' + html.escape(units[k]) if k in units and jsonable(v) is not None else ''}</td></tr>"
                   for k, v in rows.items())
    return f"<table class='grid'>{body}</table>"


def plotly_js() -> tuple[str, str]:
    """``(file name, source)`` of the plotly.js bundled with the installed plotly package (no network)."""
    import plotly
    from plotly.offline import get_plotlyjs

    return f"plotly-{plotly.__version__}.min.js", get_plotlyjs()


_STYLE = ("body{font-family:sans-serif;margin:1.5em;max-width:1400px}h2{margin-top:1.2em}"
          "table.grid{border-collapse:collapse;margin:.5em 0}table.grid th,table.grid td{border:1px solid #ccc;"
          "padding:2px 8px;text-align:left}.cols{display:flex;gap:2em;flex-wrap:wrap}.note{color:#666}")
_MISSING = ("<script>if(typeof Plotly==='undefined'){document.body.insertAdjacentHTML('afterbegin',"
            "\"<p style='color:#b00'>The charts need {src} next to this report's folder (written with it). "
            "The tables below and equity.png do not.</p>\");}</script>")


def html_page(title: str, blocks: list[str], figures: list[Any], *, out_dir: Path,
              inline_plotly: bool = False) -> tuple[str, str | None]:
    """The page (``blocks`` of HTML, then the figures) and the relative path of the shared plotly.js it
    loads (None when inlined). ``out_dir``: the folder the page is written to."""
    name, source = plotly_js()
    if inline_plotly:
        script, src = f"<script>{source}</script>", None
    else:
        src = os.path.relpath(out_dir.resolve().parent / name, out_dir.resolve()).replace(os.sep, "/")
        script = f"<script src='{html.escape(src)}'></script>"
    charts = "".join(f.to_html(full_html=False, include_plotlyjs=False, config={"responsive": True})
                     for f in figures)
    missing = _MISSING.replace("{src}", html.escape(src or name))
    page = ("<!DOCTYPE html><html><head><meta charset='utf-8'>"
            f"<title>{html.escape(title)}</title><style>{_STYLE}</style>{script}</head>"
            f"<body><h1>{html.escape(title)}</h1>{''.join(blocks)}{charts}{missing if src else ''}</body></html>")
    return page, src


def write_png(path: Path, frame: pd.DataFrame, title: str) -> None:
    """Equity (and the benchmark) over drawdown, thinned like the HTML charts."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 6), dpi=100)  # Agg canvas, no pyplot: no global state, no GUI backend
    FigureCanvasAgg(fig)
    ax, ax_dd = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    for col, label, style in (("equity", "strategy", "-"), ("benchmark", "buy & hold", "--")):
        if col in frame:
            pos = thin(frame[col].to_numpy(dtype=np.float64))
            ax.plot(frame.index[pos], frame[col].to_numpy()[pos], label=label, lw=1.1, ls=style)
    ax.set_title(title)
    ax.set_ylabel("equity")
    ax.legend(loc="upper left")
    ax.grid(alpha=0.3)
    pos = thin(frame["drawdown"].to_numpy(dtype=np.float64))
    ax_dd.fill_between(frame.index[pos], frame["drawdown"].to_numpy()[pos], 0.0, color="tab:red", alpha=0.4)
    ax_dd.set_ylabel("drawdown")
    ax_dd.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, format="png")
