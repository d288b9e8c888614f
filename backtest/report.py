"""Backtest reports: one folder with an offline HTML report, a PNG, metrics.json and the per-bar and per-trade
tables.

``write_report(result, out_dir)`` takes a ``backtest.run`` result (anything with ``.equity``, ``.returns``,
``.positions``, ``.turnover``, ``.trades`` and ``.metrics``) and writes, all or nothing
(``backtest.atomic.StagedFiles``: temp files renamed into place at the end):

* ``report.html``: the run's settings (``run=``: parameters, fees, slippage, execution, date range), the
  metrics with units and the Sharpe ratio's 95% confidence interval, per-trade statistics, and plotly charts
  (price with entry/exit markers for one asset, equity vs the benchmark, drawdown, rolling Sharpe,
  exposure), every series thinned to at most ``report_figures.MAX_BUCKETS`` buckets keeping extremes, so the
  page stays well under 10 MB whatever the number of bars. plotly.js is not embedded: the page loads ONE
  shared ``plotly-<version>.min.js`` written next to the report folder (once per reports folder; offline, no
  CDN); ``inline_plotly=True`` embeds it instead (one self-contained file);
* ``equity.png``: the equity curve and the benchmark over the drawdown (matplotlib, Agg backend);
* ``metrics.json``: ``report_summary``: the metrics (strict JSON, ``backtest.jsonable``: NaN/inf -> null), the
  Sharpe interval, the per-trade statistics, ``max_drawdown_days``, ``units`` and ``run`` (the settings);
* ``trades`` (one row per order), ``round_trips`` (``backtest.trades``) and ``equity`` (per bar: equity,
  returns, benchmark, drawdown, rolling Sharpe, gross and net exposure, turnover): CSV files, or parquet
  above ``CSV_MAX_ROWS`` rows (a CSV of millions of rows takes minutes to write and no spreadsheet opens it);
* ``trace.parquet`` when a decision trace is given: the decision-maker's per-bar record (rule quantities, an
  expert's prompt and answer, the router's weights).

The benchmark is what the caller passes (``benchmark=``, an equity or price Series): the CLI and the dashboard
pass ``backtest.benchmark`` (buy and hold through the same engine, with the same costs).
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from backtest.atomic import StagedFiles

__all__ = ["CSV_MAX_ROWS", "UNITS", "metrics_to_json", "report_summary", "write_report"]

CSV_MAX_ROWS = 100_000
"""Tables longer than this are written as parquet instead of CSV."""
UNITS = {"max_drawdown_duration": "bars", "max_drawdown_days": "days", "avg_holding_bars": "bars",
         "avg_holding_days": "days", "avg_win": "cash", "avg_loss": "cash", "expectancy": "cash",
         "open_trip_pnl": "cash", "periods_per_year": "bars per year"}
"""Units of the summary's quantities that are not plain fractions or ratios."""


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


def _drawdown_days(equity: pd.Series) -> float:
    """Calendar days of the longest-underwater drawdown as ``backtest.metrics`` defines
    ``max_drawdown_duration`` (bars from the peak before the deepest trough to the recovery or the end)."""
    e = equity.to_numpy(dtype=np.float64)
    if e.size < 2 or not np.isfinite(e).all() or e[0] <= 0:
        return math.nan
    e = e / e[0]
    peak = np.maximum.accumulate(np.maximum(e, 1.0))
    trough = int(np.argmin(e / peak))
    if e[trough] >= peak[trough]:
        return 0.0
    level = peak[trough]
    before = np.flatnonzero(e[: trough + 1] >= level)
    start = int(before[-1]) if before.size else 0
    after = np.flatnonzero(e[trough + 1:] >= level)
    end = trough + 1 + int(after[0]) if after.size else e.size - 1
    return float((equity.index[end] - equity.index[start]) / pd.Timedelta(days=1))


def report_summary(result: Any, *, bars: pd.DataFrame | None = None, run: dict[str, Any] | None = None,
                   periods_per_year: float | None = None, trips: pd.DataFrame | None = None) -> dict[str, Any]:
    """What ``metrics.json`` holds (and ``drex backtest --json`` prints): ``result.metrics``, the Sharpe
    ratio's 95% confidence interval (``backtest.stats.sharpe_ci``, HAC standard error: ``sharpe_ci_low``,
    ``sharpe_ci_high``), the per-trade statistics of ``backtest.trades`` (when ``bars`` or ``trips`` are
    given), ``max_drawdown_days``, ``units`` and ``run`` (the settings, when given)."""
    from backtest.stats import sharpe_ci

    equity = _as_series(result.equity, "equity")
    ppy = _periods_per_year(equity.index, result, periods_per_year)
    out: dict[str, Any] = dict(getattr(result, "metrics", {}) or {})
    returns = _as_series(result.returns, "returns").to_numpy(dtype=np.float64)
    ci = sharpe_ci(returns, periods_per_year=ppy) if returns.size >= 3 and np.isfinite(returns).all() else None
    out["sharpe_ci_low"] = ci.low if ci is not None else math.nan
    out["sharpe_ci_high"] = ci.high if ci is not None else math.nan
    out["sharpe_ci_level"] = 0.95
    out["max_drawdown_days"] = _drawdown_days(equity)
    if trips is None and bars is not None:
        trips = _round_trips(result, bars)
    if trips is not None:
        from backtest.trades import trade_stats

        out.update(trade_stats(trips))
    out["units"] = {k: v for k, v in UNITS.items() if k in out}
    if run is not None:
        out["run"] = dict(run)
    return out


def _round_trips(result: Any, bars: pd.DataFrame) -> pd.DataFrame | None:
    from backtest.trades import round_trips
    from markets.frames import fields

    trades = getattr(result, "trades", None)
    if not isinstance(trades, pd.DataFrame) or not {"timestamp", "asset", "side", "quantity", "price",
                                                     "fee"} <= set(trades.columns):
        return None
    close = fields(bars, "close")
    if isinstance(close, pd.DataFrame) and close.shape[1] == 1 and len(trades):
        close.columns = [trades["asset"].iloc[0]] if trades["asset"].nunique() == 1 else close.columns
    last = close.iloc[-1]
    return round_trips(trades, pd.DatetimeIndex(bars.index), last)


def _table(stage: StagedFiles, out: Path, stem: str, frame: pd.DataFrame, *, index: bool) -> Path:
    """``frame`` staged as ``stem.csv``, or ``stem.parquet`` above ``CSV_MAX_ROWS`` rows."""
    if len(frame) > CSV_MAX_ROWS:
        path = out / f"{stem}.parquet"
        frame.to_parquet(stage.path(path), index=index)
    else:
        path = out / f"{stem}.csv"
        frame.to_csv(stage.path(path), index=index, index_label="timestamp" if index else None)
    return path


def _settings_block(run: dict[str, Any] | None, frame: pd.DataFrame) -> str:
    from backtest.report_figures import table_html

    info = dict(run or {})
    info.setdefault("first bar", str(frame.index[0]))
    info.setdefault("last bar", str(frame.index[-1]))
    info.setdefault("bars", len(frame))
    shown = {k: (", ".join(f"{a}={b}" for a, b in v.items()) if isinstance(v, dict) else v) for k, v in info.items()}
    return "<h2>Settings</h2>" + table_html(shown)


def _summary_blocks(summary: dict[str, Any]) -> str:
    from backtest.report_figures import table_html
    from backtest.trades import TRADE_STATS

    units = summary.get("units", {})
    scalars = {k: v for k, v in summary.items() if k not in ("units", "run")}
    ci = (f"<p>Sharpe ratio {_num(scalars.get('sharpe'))}, 95% confidence interval "
          f"[{_num(scalars.get('sharpe_ci_low'))}, {_num(scalars.get('sharpe_ci_high'))}] (Lo 2002, HAC standard "
          "error)</p>")
    metrics = {k: v for k, v in scalars.items() if k not in TRADE_STATS and not k.startswith("sharpe_ci")}
    trades = {k: v for k, v in scalars.items() if k in TRADE_STATS}
    out = f"<div class='cols'><div><h2>Metrics</h2>{ci}{table_html(metrics, units=units)}</div>"
    if trades:
        out += f"<div><h2>Round trips (closed)</h2>{table_html(trades, units=units)}</div>"
    return out + "</div>"


def _num(v: Any) -> str:
    from backtest.jsonable import jsonable

    v = jsonable(v)
    return "n/a" if v is None else f"{v:.3g}"


def write_report(result: Any, out_dir: str | Path, *, bars: pd.DataFrame | None = None,
                 benchmark: pd.Series | None = None, title: str = "DREX backtest", rolling_window: int = 126,
                 periods_per_year: float | None = None, trace: pd.DataFrame | None = None,
                 run: dict[str, Any] | None = None, inline_plotly: bool = False) -> dict[str, Path]:
    """Write the report files of one backtest into ``out_dir`` (created) and return their paths (module doc).

    result: a ``backtest.run`` result; ``.equity``/``.returns`` (T,) Series (or one-column frames),
    ``.positions`` (T, N), ``.turnover`` (T,), ``.trades`` DataFrame, ``.metrics`` dict.
    bars: the bars backtested (price chart, round trips). benchmark: an equity or price Series (rescaled to
    the strategy's first equity value), e.g. ``backtest.benchmark(bars, **same_costs).equity``.
    rolling_window: bars of the rolling Sharpe. periods_per_year: annualization (default: ``result.metrics``
    or inferred from the index). trace: the decision trace (``Decision.trace``), written as
    ``trace.parquet``. run: the settings to record (strategy, parameters, fees, slippage, execution, dates).
    inline_plotly: embed plotly.js in ``report.html`` instead of the shared file next to ``out_dir``.

    Returns ``{"html", "png", "metrics", "trades", "equity"}`` (+ ``"round_trips"``, ``"trace"``,
    ``"plotly"``) -> paths.
    """
    from backtest.report_figures import backtest_figure, html_page, plotly_js, write_png

    if int(rolling_window) < 2:
        raise ValueError(f"rolling_window must be >= 2 bars, got {rolling_window}")
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise FileExistsError(17, "File exists", str(out))
    equity = _as_series(result.equity, "equity")
    ppy = _periods_per_year(equity.index, result, periods_per_year)
    frame = _per_bar_frame(result, benchmark, int(rolling_window), ppy)
    trips = _round_trips(result, bars) if bars is not None else None
    summary = report_summary(result, run=run, periods_per_year=ppy, trips=trips)
    price = None
    if bars is not None and not isinstance(bars.columns, pd.MultiIndex) and "close" in bars:
        price = bars["close"].reindex(equity.index)
    fig = backtest_figure(frame, title=title, window=int(rolling_window), price=price, trips=trips)
    blocks = [_settings_block(run, frame), _summary_blocks(summary)]
    page, src = html_page(title, blocks, [fig], out_dir=out, inline_plotly=inline_plotly)
    paths: dict[str, Path] = {}
    with StagedFiles() as stage:
        paths["html"] = stage.write_text(out / "report.html", page)
        paths["metrics"] = stage.write_text(out / "metrics.json", metrics_to_json(summary) + "\n")
        trades = getattr(result, "trades", None)
        trades = trades if isinstance(trades, pd.DataFrame) else pd.DataFrame()
        paths["trades"] = _table(stage, out, "trades", trades, index=not isinstance(trades.index, pd.RangeIndex))
        paths["equity"] = _table(stage, out, "equity", frame, index=True)
        if trips is not None:
            paths["round_trips"] = _table(stage, out, "round_trips", trips, index=False)
        write_png(stage.path(out / "equity.png"), frame, title)
        paths["png"] = out / "equity.png"
        if trace is not None:
            paths["trace"] = out / "trace.parquet"
            trace.to_parquet(stage.path(paths["trace"]))
        if src is not None:
            name, source = plotly_js()
            shared = out.resolve().parent / name
            if not shared.is_file():
                stage.write_text(shared, source)
            paths["plotly"] = shared
    return paths
