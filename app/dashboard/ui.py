"""Streamlit glue shared by the pages: cached loaders, the error boundary and the input widgets.

Heavy work is cached: bars and backtest/sweep results with ``st.cache_data`` (keyed by the plain inputs),
training metrics by (path, mtime, size) so a run being written is re-read when it grows, and ledger
connections with ``st.cache_resource``.
"""
from __future__ import annotations

import contextlib
import datetime as dt
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import streamlit as st

from app.dashboard import params as P
from app.dashboard import services, training_runs

__all__ = [
    "cached_backtest",
    "cached_bars",
    "cached_ledger",
    "cached_run_metrics",
    "cached_sweep",
    "cost_inputs",
    "data_inputs",
    "error_boundary",
    "param_inputs",
    "strategy_input",
]

log = logging.getLogger(__name__)

def _one_line(exc: BaseException) -> str:
    from app.errors import one_line

    msg = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
    return one_line(msg) or type(exc).__name__


@contextlib.contextmanager
def error_boundary(what: str = "") -> Iterator[None]:
    """Show any exception raised inside as one ``st.error`` line (never a traceback) and stop the page.

    User and environment errors (``app.errors.describe``, the CLI's mapping: a bad spec or file
    (``markets.DataError``), bad values, missing or unwritable files, a corrupt ledger...) show their one-line
    message; anything else is prefixed with its type and logged with its traceback to the server log.
    Streamlit's own control flow (``st.stop``/``st.rerun``) derives from ``BaseException`` and passes through.
    """
    from app.errors import describe

    try:
        yield
    except Exception as exc:
        message = describe(exc)
        if message is None:
            log.exception("dashboard page failed")
            message = f"{type(exc).__name__}: {_one_line(exc)}"
        st.error(f"{what}{': ' if what else ''}{message}", icon=":material/error:")
        st.stop()


# --------------------------------------------------------------------------------------------- caching
@st.cache_data(show_spinner="Loading bars...", max_entries=16)
def cached_bars(spec: str, start: str | None, end: str | None) -> tuple[Any, list[str]]:
    return services.load_bars(spec, start, end)


@st.cache_data(show_spinner="Running backtest...", max_entries=32)
def cached_backtest(spec: str, start: str | None, end: str | None, strategy: str,
                    params: tuple[tuple[str, Any], ...], fees: float, slippage: float,
                    execution: str) -> services.BacktestView:
    bars, _ = cached_bars(spec, start, end)
    return services.run_backtest(bars, strategy, dict(params), fees=fees, slippage=slippage, execution=execution)


@st.cache_data(show_spinner="Running sweep...", max_entries=16)
def cached_sweep(spec: str, start: str | None, end: str | None, strategy: str,
                 grid: tuple[tuple[str, tuple[Any, ...]], ...], fees: float, slippage: float,
                 execution: str) -> Any:
    bars, _ = cached_bars(spec, start, end)
    return services.run_sweep(bars, strategy, {k: list(v) for k, v in grid}, fees=fees, slippage=slippage,
                              execution=execution)


@st.cache_data(show_spinner=False, max_entries=64)
def _run_metrics(path: str, _mtime_ns: int, _size: int) -> training_runs.RunMetrics:
    return training_runs.read_metrics(path)


def cached_run_metrics(run_dir: Path) -> training_runs.RunMetrics:
    """``read_metrics`` cached until ``metrics.jsonl`` changes (size or mtime)."""
    stat = (run_dir / training_runs.METRICS_FILE).stat()
    return _run_metrics(str(run_dir), stat.st_mtime_ns, stat.st_size)


@st.cache_resource(show_spinner=False, max_entries=8)
def cached_ledger(url: str) -> Any:
    """One open paper ledger per URL (SQLAlchemy engine inside), shared across sessions and reruns."""
    from app.paper.ledger import open_ledger

    return open_ledger(url, readonly=True)


# ---------------------------------------------------------------------------------------------- inputs
def data_inputs(key: str, *, default_start: dt.date = dt.date(2010, 1, 1),
                default_end: dt.date = dt.date(2017, 12, 31)) -> tuple[str, str | None, str | None]:
    """Data spec (bundled sample or any typed spec) and an optional date range -> (spec, start, end).

    The sample's default date range applies to the bundled samples only: a typed spec starts with its whole
    history ("Limit dates" off) and the chosen range is shown, so a typed file is never silently clipped to
    the sample's years.
    """
    samples = services.sample_specs()
    c1, c2 = st.columns([1, 1])
    default = samples.index("sample:SP500") if "sample:SP500" in samples else 0
    chosen = c1.selectbox("Bundled sample", samples, index=default, key=f"{key}_sample")
    typed = c2.text_input("...or any data spec", "", key=f"{key}_spec",
                          placeholder="yf:SPY  |  ccxt:binance:BTC/USDT:1d  |  file:prices.csv  |  synth:regimes")
    spec = typed.strip() or chosen
    own = "typed" if typed.strip() else "sample"  # separate widget state: switching resets the range
    c3, c4, c5 = st.columns([1, 1, 1])
    use_range = c5.checkbox("Limit dates", value=own == "sample", key=f"{key}_limit_{own}",
                            help="off: the whole history of the data")
    lo, hi = dt.date(1970, 1, 1), dt.date.today()
    start = c3.date_input("Start", default_start, min_value=lo, max_value=hi, key=f"{key}_start_{own}",
                          disabled=not use_range)
    end = c4.date_input("End", default_end, min_value=lo, max_value=hi, key=f"{key}_end_{own}",
                        disabled=not use_range)
    if not use_range:
        st.caption(f"{spec}: the whole history (tick 'Limit dates' to choose a range)")
        return spec, None, None
    if start and end and start > end:
        raise ValueError(f"start {start} is after end {end}; pick an earlier start date")
    st.caption(f"{spec}: {start} to {end}")
    return spec, (start.isoformat() if start else None), (end.isoformat() if end else None)


def strategy_input(key: str, *, only: list[str] | None = None) -> str:
    """A selectbox over the decision-maker registry (``trend`` first when present), with its description."""
    from backtest.decisions import get, names

    choices = sorted(only if only is not None else names())
    if not choices:
        raise ValueError("no decision-makers are registered; check that backtest.strategies imports cleanly")
    default = choices.index("trend") if "trend" in choices else 0
    name = st.selectbox("Strategy", choices, index=default, key=f"{key}_strategy")
    if get(name).description:
        st.caption(get(name).description)
    return name


def param_inputs(strategy: str, *, key: str, skip: tuple[str, ...] = (), columns: int = 4) -> dict[str, Any]:
    """One widget per declared parameter of ``strategy`` (``params.widget_kind``) -> the bound, checked
    parameters (``ParamSpace.bind``: the same checks as the CLI's ``-p``); with ``skip`` (the sweep's axes)
    each value is checked alone and the sweep checks the combinations."""
    from backtest.decisions import get

    space = get(strategy).space
    out: dict[str, Any] = {}
    names = [n for n in space.params if n not in skip]
    cols = st.columns(columns) if names else []
    for i, name in enumerate(names):
        param = space.params[name]
        kind, default = P.widget_kind(param), param.default
        wkey = f"{key}_p_{strategy}_{name}"
        with cols[i % columns]:
            if kind == "choice":
                options = list(param.choices or ())
                value: Any = st.selectbox(name, options, index=options.index(default) if default in options
                                          else 0, key=wkey, help=param.doc or None)
            elif kind == "bool":
                value = st.checkbox(name, value=bool(default), key=wkey, help=param.doc or None)
            elif kind == "int" and default is not None:
                value = st.number_input(name, value=int(default), step=1, key=wkey, help=param.doc or None)
            elif kind == "float" and default is not None:
                value = st.number_input(name, value=float(default), format="%g", key=wkey, help=param.doc or None)
            else:
                value = st.text_input(name, value="" if default is None else str(default), key=wkey,
                                      help=param.doc or None)
        out[name] = param.parse(name, value)
    return out if skip else space.bind(out)  # with axes skipped, the sweep checks each combination


def cost_inputs(key: str) -> tuple[float, float, str]:
    """Fees and slippage in basis points (returned as fractions) and the execution price."""
    c1, c2, c3 = st.columns(3)
    fees = c1.number_input("Fees (bps)", min_value=0.0, max_value=1000.0, value=10.0, step=1.0, key=f"{key}_fees")
    slip = c2.number_input("Slippage (bps)", min_value=0.0, max_value=1000.0, value=0.0, step=1.0,
                           key=f"{key}_slip")
    execution = c3.selectbox("Execution", ["next_open", "next_close"], key=f"{key}_exec",
                             help="a decision at bar t's close trades at bar t+1's open or close")
    return float(fees) / 1e4, float(slip) / 1e4, str(execution)
