"""The sweep report: one folder with the metric's heatmap over two parameters, the top combinations and the
best combination's equity, written all or nothing (``backtest.atomic``).

Files: ``report.html`` (settings, the dropped-combinations note, heatmap, top table, the best combination's
equity and drawdown vs the benchmark and its metrics), ``metrics.json`` (the best combination's
``backtest.report.report_summary`` with ``run``: the sweep's settings and the best parameters), ``top.csv``
and ``best_equity.csv``. plotly.js is the shared file next to the folder, as in ``backtest.report``.
"""
from __future__ import annotations

import contextlib
import html
from pathlib import Path
from typing import Any

import pandas as pd

from backtest.atomic import StagedFiles

__all__ = ["write_sweep_report"]


def _axes(table: pd.DataFrame, grid: list[str]) -> list[str]:
    """The first two grid parameters with more than one value (the heatmap's x and y)."""
    return [g for g in grid if table[g].nunique(dropna=False) > 1][:2]


def _metric_figure(table: pd.DataFrame, axes: list[str], metric: str, title: str) -> Any:
    import plotly.graph_objects as go

    from backtest.report_figures import heatmap_figure

    if len(axes) == 2:
        return heatmap_figure(table, x=axes[0], y=axes[1], metric=metric, title=title)
    x = axes[0] if axes else table.columns[0]
    best = table.groupby(x, sort=True)[metric].max()
    fig = go.Figure(go.Scatter(x=[str(v) for v in best.index], y=best.to_numpy(), mode="lines+markers",
                               name=metric))
    fig.update_layout(title=title, xaxis_title=x, yaxis_title=metric, template="plotly_white", height=420)
    return fig


def write_sweep_report(ranked: pd.DataFrame, out_dir: str | Path, *, grid: list[str], metric: str,
                       ascending: bool, top: int, best: Any, benchmark: pd.Series | None, bars: pd.DataFrame,
                       run: dict[str, Any], title: str, inline_plotly: bool = False,
                       stage: StagedFiles | None = None) -> dict[str, Path]:
    """Write the sweep report (module doc) into ``out_dir``; returns the paths written.

    ranked: the sweep table sorted best first (``backtest.sweep``: parameter columns then metrics). grid: the
    parameter column names. best: the ``backtest.run`` result of the best combination; benchmark: its
    buy-and-hold equity (same bars and costs). run: the settings recorded. stage: stage the files there
    (the caller commits them with its own, e.g. the sweep's results) instead of committing them here.
    """
    from backtest.report import _per_bar_frame, _periods_per_year, metrics_to_json, report_summary
    from backtest.report_figures import backtest_figure, html_page, plotly_js, table_html

    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise FileExistsError(17, "File exists", str(out))
    axes = _axes(ranked, grid)
    more = [g for g in grid if g not in axes and ranked[g].nunique(dropna=False) > 1]
    heading = f"{metric} by {' and '.join(axes) or 'combination'}" + (
        f" (best over {', '.join(more)})" if more else "")
    ppy = _periods_per_year(bars.index, best, None)
    frame = _per_bar_frame(best, benchmark, 126, ppy)
    summary = report_summary(best, bars=bars, run=run, periods_per_year=ppy)
    shown = ranked.head(top).reset_index(drop=True)
    shown.insert(0, "rank", shown.index + 1)
    params = ", ".join(f"{k}={ranked.iloc[0][k]}" for k in grid)
    blocks = [
        "<h2>Settings</h2>" + table_html({k: v for k, v in run.items() if k != "params"}),
        f"<p class='note'>{html.escape(str(run['note']))}</p>" if run.get("note") else "",
        f"<h2>Top {len(shown)} by {metric} ({'lowest' if ascending else 'highest'} first)</h2>" + table_html(shown),
        f"<h2>Best combination: {params}</h2>" + table_html(
            {k: v for k, v in summary.items() if k not in ("units", "run")}, units=summary.get("units")),
    ]
    figures = [_metric_figure(ranked, axes, metric, heading),
               backtest_figure(frame, title=f"Best combination ({params})", window=126)]
    page, src = html_page(title, blocks, figures, out_dir=out, inline_plotly=inline_plotly)
    paths: dict[str, Path] = {}
    with contextlib.nullcontext(stage) if stage is not None else StagedFiles() as staged:
        paths["html"] = staged.write_text(out / "report.html", page)
        paths["metrics"] = staged.write_text(out / "metrics.json", metrics_to_json(summary) + "\n")
        shown.to_csv(staged.path(out / "top.csv"), index=False)
        paths["top"] = out / "top.csv"
        frame.to_csv(staged.path(out / "best_equity.csv"), index_label="timestamp")
        paths["best_equity"] = out / "best_equity.csv"
        if src is not None:
            name, source = plotly_js()
            shared = out.resolve().parent / name
            if not shared.is_file():
                staged.write_text(shared, source)
            paths["plotly"] = shared
    return paths
