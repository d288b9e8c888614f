"""Backtest reports: one folder with an offline HTML report, a PNG, metrics.json, trades.csv and equity.csv.

``write_report(result, out_dir)`` takes a ``backtest.run`` result (anything with ``.equity``, ``.returns``,
``.positions``, ``.turnover``, ``.trades`` and ``.metrics``) and writes:

* ``report.html``: plotly, self-contained (plotly.js inlined, no CDN: opens offline): equity vs the benchmark,
  drawdown, rolling Sharpe, exposure, and the metrics table;
* ``equity.png``: the equity curve and the benchmark (matplotlib, Agg backend);
* ``metrics.json``: ``result.metrics`` as strict JSON (``backtest.jsonable``: a metric that is not defined,
  NaN or +-inf, is ``null``);
* ``trades.csv`` (one row per order) and ``equity.csv`` (per bar: equity, returns, benchmark, drawdown,
  rolling Sharpe, gross and net exposure, turnover);
* ``trace.parquet`` when a decision trace is given: the decision-maker's per-bar record (rule quantities, an
  expert's prompt and answer, the router's weights).

The benchmark is what the caller passes (``benchmark=``, an equity or price Series): the CLI and the dashboard
pass ``backtest.benchmark`` (buy and hold through the same engine, with the same costs).
"""
from __future__ import annotations

import html
import math
from pathlib import Path
from typing import Any

import pandas as pd

from backtest.jsonable import jsonable

__all__ = ["metrics_to_json", "write_report"]

_FILES = ("html", "png", "metrics", "trades", "equity")


def metrics_to_json(metrics: dict[str, Any]) -> str:
    """``metrics`` as strict JSON text (``backtest.jsonable``: NaN/inf -> ``null``, numpy -> Python)."""
    from backtest.jsonable import dumps

    return dumps(dict(metrics))


def _as_series(x: Any, name: str) -> pd.Series:
    """A single equity/returns curve: a Series, or a one-column DataFrame squeezed."""
    if isinstance(x, pd.DataFrame):
        if x.shape[1] != 1:
            raise ValueError(f"write_report needs one {name} curve, got {x.shape[1]} columns; report one "
                             "parameter combination at a time (e.g. result.equity.iloc[:, k])")
        x = x.iloc[:, 0]
    if not isinstance(x, pd.Series):
        raise TypeError(f"result.{name} must be a pandas Series, got {type(x).__name__}")
    return x.astype("float64").rename(name)


def _periods_per_year(index: pd.Index, result: Any, periods_per_year: float | None) -> float:
    if periods_per_year:
        return float(periods_per_year)
    ppy = getattr(result, "metrics", {}).get("periods_per_year")
    if ppy:
        return float(ppy)
    try:
        from backtest.metrics import infer_periods_per_year
    except ImportError:  # engine not installed: daily equities
        return 252.0
    return float(infer_periods_per_year(index))


def _per_bar_frame(result: Any, benchmark: pd.Series | None, window: int, ppy: float) -> pd.DataFrame:
    equity = _as_series(result.equity, "equity")
    returns = _as_series(result.returns, "returns").reindex(equity.index)
    frame = pd.DataFrame({"equity": equity, "returns": returns})
    if benchmark is not None:
        bench = benchmark.astype("float64").reindex(equity.index)
        first = bench.dropna()
        # Prices or another equity curve: rescale to start where the strategy starts.
        frame["benchmark"] = bench / first.iloc[0] * float(equity.iloc[0]) if len(first) else bench
    frame["drawdown"] = equity / equity.cummax() - 1.0
    roll = returns.rolling(window, min_periods=window)
    frame["rolling_sharpe"] = roll.mean() / roll.std(ddof=1) * math.sqrt(ppy)
    positions = getattr(result, "positions", None)
    if positions is not None:
        pos = positions.to_frame() if isinstance(positions, pd.Series) else pd.DataFrame(positions)
        pos = pos.reindex(equity.index).astype("float64")
        frame["gross_exposure"] = pos.abs().sum(axis=1)
        frame["net_exposure"] = pos.sum(axis=1)
    turnover = getattr(result, "turnover", None)
    if turnover is not None:
        frame["turnover"] = _as_series(turnover, "turnover").reindex(equity.index)
    return frame


def _figure(frame: pd.DataFrame, title: str, window: int):
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=4, cols=1, shared_xaxes=True, vertical_spacing=0.04, row_heights=[0.4, 0.2, 0.2, 0.2],
                        subplot_titles=("Equity", "Drawdown", f"Rolling Sharpe ({window} bars)", "Exposure"))
    x = frame.index
    fig.add_trace(go.Scatter(x=x, y=frame["equity"], name="strategy"), row=1, col=1)
    if "benchmark" in frame:
        fig.add_trace(go.Scatter(x=x, y=frame["benchmark"], name="buy & hold", line={"dash": "dot"}), row=1, col=1)
    fig.add_trace(go.Scatter(x=x, y=frame["drawdown"], name="drawdown", fill="tozeroy"), row=2, col=1)
    fig.add_trace(go.Scatter(x=x, y=frame["rolling_sharpe"], name="rolling Sharpe"), row=3, col=1)
    if "gross_exposure" in frame:
        fig.add_trace(go.Scatter(x=x, y=frame["gross_exposure"], name="gross exposure"), row=4, col=1)
        fig.add_trace(go.Scatter(x=x, y=frame["net_exposure"], name="net exposure"), row=4, col=1)
    fig.update_layout(title=title, height=1000, template="plotly_white", hovermode="x unified")
    fig.update_yaxes(tickformat=".0%", row=2, col=1)
    return fig


def _metrics_table(metrics: dict[str, Any]) -> str:
    rows = []
    for key, value in metrics.items():
        v = jsonable(value)
        text = f"{v:.6g}" if isinstance(v, float) else ("n/a" if v is None else str(v))
        rows.append(f"<tr><th>{html.escape(str(key))}</th><td>{html.escape(text)}</td></tr>")
    return "<table class='metrics'>" + "".join(rows) + "</table>"


def _write_html(path: Path, fig, title: str, metrics: dict[str, Any]) -> None:
    body = fig.to_html(full_html=False, include_plotlyjs=True)  # plotly.js inlined: works offline
    page = (
        "<!DOCTYPE html><html><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title>"
        "<style>body{font-family:sans-serif;margin:1.5em}table.metrics{border-collapse:collapse}"
        "table.metrics th,table.metrics td{border:1px solid #ccc;padding:2px 8px;text-align:left}</style>"
        f"</head><body><h1>{html.escape(title)}</h1>{_metrics_table(metrics)}{body}</body></html>"
    )
    path.write_text(page, encoding="utf-8")


def _write_png(path: Path, frame: pd.DataFrame, title: str) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 6), dpi=100)  # Agg canvas, no pyplot: no global state, no GUI backend
    FigureCanvasAgg(fig)
    ax, ax_dd = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    ax.plot(frame.index, frame["equity"], label="strategy", lw=1.2)
    if "benchmark" in frame:
        ax.plot(frame.index, frame["benchmark"], label="buy & hold", lw=1.0, ls="--")
    ax.set_title(title)
    ax.set_ylabel("equity")
    ax.legend(loc="upper left")
    ax.grid(alpha=0.3)
    ax_dd.fill_between(frame.index, frame["drawdown"], 0.0, color="tab:red", alpha=0.4)
    ax_dd.set_ylabel("drawdown")
    ax_dd.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)


def write_report(result: Any, out_dir: str | Path, *, bars: pd.DataFrame | None = None,
                 benchmark: pd.Series | None = None, title: str = "DREX backtest", rolling_window: int = 126,
                 periods_per_year: float | None = None, trace: pd.DataFrame | None = None) -> dict[str, Path]:
    """Write the report files of one backtest into ``out_dir`` (created) and return their paths.

    result: a ``backtest.run`` result; ``.equity``/``.returns`` (T,) Series (or one-column frames),
    ``.positions`` (T, N), ``.turnover`` (T,), ``.trades`` DataFrame, ``.metrics`` dict.
    bars: the bars backtested. benchmark: an equity or price Series (rescaled to the strategy's first equity
    value), e.g. ``backtest.benchmark(bars, **same_costs).equity``. rolling_window: bars of the rolling
    Sharpe. periods_per_year: annualization of the rolling Sharpe (default: ``result.metrics`` or inferred from
    the index). trace: the decision trace (``Decision.trace``), written as ``trace.parquet``.

    Returns ``{"html", "png", "metrics", "trades", "equity"}`` (+ ``"trace"``) -> paths.
    """
    if int(rolling_window) < 2:
        raise ValueError(f"rolling_window must be >= 2 bars, got {rolling_window}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    equity = _as_series(result.equity, "equity")
    ppy = _periods_per_year(equity.index, result, periods_per_year)
    frame = _per_bar_frame(result, benchmark, int(rolling_window), ppy)
    metrics = dict(getattr(result, "metrics", {}) or {})
    paths = {key: out / name for key, name in zip(
        _FILES, ("report.html", "equity.png", "metrics.json", "trades.csv", "equity.csv"))}

    paths["metrics"].write_text(metrics_to_json(metrics) + "\n", encoding="utf-8")
    frame.to_csv(paths["equity"], index_label="timestamp")
    trades = getattr(result, "trades", None)
    trades = trades if isinstance(trades, pd.DataFrame) else pd.DataFrame()
    trades.to_csv(paths["trades"], index=not isinstance(trades.index, pd.RangeIndex))
    _write_html(paths["html"], _figure(frame, title, int(rolling_window)), title, metrics)
    _write_png(paths["png"], frame, title)
    if trace is not None:
        paths["trace"] = out / "trace.parquet"
        trace.to_parquet(paths["trace"])
    return paths
