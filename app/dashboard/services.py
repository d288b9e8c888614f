"""What the Backtest and Sweep pages compute, as plain functions (no Streamlit; cached by ``ui``).

Data come from ``markets.load``, decision-makers from the registry (``backtest.decisions``), results from
``backtest.run_strategy`` / ``backtest.sweep``. The benchmark is ``backtest.benchmark``: buy and hold of the
same asset(s) (equal weight across assets) through the same engine with the same costs and execution.
"""
from __future__ import annotations

import tempfile
import warnings
from pathlib import Path
from typing import Any, NamedTuple

import pandas as pd

__all__ = [
    "FALLBACK_SAMPLES",
    "BacktestView",
    "equity_of",
    "load_bars",
    "metrics_json",
    "metrics_table",
    "report_html",
    "run_backtest",
    "run_sweep",
    "sample_specs",
]

FALLBACK_SAMPLES = ["sample:SP500", "sample:NASDAQ", "sample:MSFT", "sample:SP20"]


class BacktestView(NamedTuple):
    """A decision-maker's ``BacktestResult``, its buy-and-hold benchmark's (same bars and costs) and its
    decision (weights and per-bar trace)."""

    result: Any
    benchmark: Any
    decision: Any = None


def sample_specs() -> list[str]:
    """Specs of the bundled datasets (``sample:NAME``) for the data picker, from ``markets.samples()``."""
    try:
        import markets

        samples = markets.samples()
    except (ImportError, AttributeError):  # markets not installed in a trimmed environment
        return list(FALLBACK_SAMPLES)
    names: list[str] = []
    if isinstance(samples, pd.DataFrame):
        for col in ("spec", "name", "sample"):
            if col in samples.columns:
                names = [str(v) for v in samples[col]]
                break
        else:
            names = [str(v) for v in samples.index]
    else:
        for item in samples:
            names.append(str(item.get("spec") or item.get("name")) if isinstance(item, dict) else str(item))
    specs = [n if ":" in n else f"sample:{n}" for n in names]
    return list(dict.fromkeys(specs)) or list(FALLBACK_SAMPLES)


def load_bars(spec: str, start: str | None = None, end: str | None = None) -> tuple[pd.DataFrame, list[str]]:
    """``markets.load(spec, start, end)`` plus the one-line messages of any warnings it raised (e.g. an
    ``OfflineFallback`` to cached data). ``DataError`` propagates (the page shows it)."""
    import markets

    spec = (spec or "").strip()
    if not spec:
        raise ValueError("no data spec: pick a bundled sample or type one, e.g. sample:SP500 or yf:SPY")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        bars = markets.load(spec, start or None, end or None)
    notes = [str(w.message).splitlines()[0] for w in caught if issubclass(w.category, UserWarning)]
    return bars, list(dict.fromkeys(notes))


def run_backtest(bars: pd.DataFrame, strategy: str, params: dict[str, Any], *, fees: float = 0.0,
                 slippage: float = 0.0, execution: str = "next_open") -> BacktestView:
    """The registered ``strategy`` with ``params`` (bound and checked by its declaration) through
    ``backtest.run_strategy``, and ``backtest.benchmark`` with the same costs. Unknown names or bad values
    raise ``KeyError``/``ValueError`` listing the valid ones."""
    import backtest

    costs = {"fees": fees, "slippage": slippage, "execution": execution}
    run = backtest.run_strategy(bars, strategy, params, **costs)
    return BacktestView(run.result, backtest.benchmark(bars, **costs), run.decision)


def run_sweep(bars: pd.DataFrame, strategy: str, grid: dict[str, list[Any]], *, fees: float = 0.0,
              slippage: float = 0.0, execution: str = "next_open") -> pd.DataFrame:
    """``backtest.sweep`` over the product of ``grid`` (one row per valid combination: parameters + metrics;
    ``attrs["note"]`` says how many were dropped and why)."""
    import backtest

    return backtest.sweep(strategy, grid, bars, fees=fees, slippage=slippage, execution=execution)


def equity_of(result: Any) -> pd.Series:
    """The portfolio equity curve (T,) of a ``BacktestResult`` (a one-column frame is squeezed)."""
    eq = result.equity
    if isinstance(eq, pd.DataFrame):
        if eq.shape[1] != 1:
            raise ValueError(f"expected one portfolio equity curve, got {eq.shape[1]} columns")
        eq = eq.iloc[:, 0]
    return eq


def metrics_json(metrics: dict[str, Any], **extra: Any) -> str:
    """Metrics as strict JSON (NaN/inf -> null), with ``extra`` context keys (spec, strategy, params...)."""
    from backtest.jsonable import dumps

    return dumps({**extra, "metrics": metrics})


def metrics_table(result_metrics: dict[str, Any], benchmark_metrics: dict[str, Any] | None = None) -> pd.DataFrame:
    """One row per metric: ``strategy`` and (when given) ``buy & hold`` columns, float values."""
    from backtest.jsonable import jsonable

    data = {"strategy": jsonable(result_metrics)}
    if benchmark_metrics is not None:
        data["buy & hold"] = jsonable(benchmark_metrics)
    table = pd.DataFrame(data)
    table.index.name = "metric"
    return table.apply(pd.to_numeric, errors="coerce")


def report_html(result: Any, bars: pd.DataFrame, *, title: str, benchmark: pd.Series | None = None) -> bytes:
    """The HTML report of ``backtest.report.write_report`` as bytes (written to a temporary folder)."""
    from backtest.report import write_report

    with tempfile.TemporaryDirectory(prefix="drex-report-") as tmp:
        paths = write_report(result, Path(tmp) / "report", bars=bars, title=title, benchmark=benchmark,
                             inline_plotly=True)  # one self-contained file to download
        html = [Path(p) for p in paths.values() if str(p).endswith(".html")]
        if not html:
            raise ValueError(f"write_report produced no HTML file (got {', '.join(map(str, paths.values()))})")
        return html[0].read_bytes()
