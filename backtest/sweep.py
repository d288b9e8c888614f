"""Parameter sweeps: every combination of a strategy's parameter grid backtested at once.

``sweep("trend", {"fast": [5, 10, 20], "slow": [50, 100]}, bars)`` builds the product grid (``P`` rows, in
``itertools.product`` order of the grid's keys), gets the ``(P, T, N)`` weights from the strategy's batched
function (``backtest.decisions.get(name).batched``) or, if it has none, by stacking each combination's
decisions (``backtest.decisions.build`` + ``decide``), then simulates all P portfolios with
``backtest.accounting`` (the fill model of ``backtest.run`` and paper trading) and computes every metric of
``backtest.metrics``.

Two paths, same numbers (tests hold both equal to ``backtest.run``, 1e-12): by default (``fused=True``) the
compiled ``backtest._kernels_nb.fused_rows_nb`` simulates 8 parameter rows at a time and computes their metrics
while they are in the CPU cache, with no ``(P, T)`` temporaries; ``fused=False`` simulates blocks of rows with
``accounting.simulate`` and computes the metrics with ``backtest.metrics`` (NumPy), which is what
``backtest.run`` does. (Before issue #8 ``fused=False`` ran a NumPy fixed-point kernel without a loop over
bars; it could not express buys cut to the cash left, so it is gone.) Parameter rows are split over one thread
per CPU core (``DREX_THREADS`` overrides; the kernels release the GIL); rows are independent, so the thread
count never changes a number. The first call in a fresh environment compiles the kernels (seconds; cached on
disk after that).

Memory stays bounded whatever the grid size: the combinations are generated lazily and simulated in chunks
of ``chunk_rows(T, N)`` (``CHUNK_BYTES`` = 64 MiB of weights; ``DREX_SWEEP_CHUNK_MB`` overrides), so the peak
is one chunk's weights and its strategy's temporaries plus the result table (about 150 bytes per valid
combination); ``benchmarks/sweep_memory.py`` measures it (``benchmarks/results/sweep_memory.md``).

Invalid combinations (those the batched function marks ``valid=False``, e.g. ``fast >= slow`` for ``trend``,
or those for which the per-combination function raises ``ValueError``) are DROPPED: the result has one row
per valid combination, ``result.attrs["note"]`` says how many and why in one line, ``attrs["n_dropped"]``
counts them and ``attrs["dropped"]`` lists the first ``MAX_DROPPED_LISTED`` (dicts with a ``reason``). Each row equals ``backtest.run`` on that combination's
weights with the same options. ``rank(table, metric)`` orders a sweep table best first, NaN always last (a
combination that never trades has a NaN Sharpe and is flagged ``flat``).
"""
from __future__ import annotations

import itertools
import math
import os
from collections.abc import Callable
from typing import Any

import numpy as np

from backtest import accounting
from backtest import metrics as _metrics
from backtest.accounting import EXECUTIONS, check_fraction
from backtest.engine import _bar_prices, _weights_array

__all__ = ["CHUNK_BYTES", "MAX_DROPPED_LISTED", "chunk_rows", "grid_product", "rank", "sweep"]

_BLOCK_ELEMENTS = 1 << 16  # parameter rows per block: about this many (T * N) elements, a few hundred kB
_FUSED_BLOCK = 8  # rows the kernels simulate side by side (backtest._kernels_nb.ROWS; asserted on load)


def _threads(n_rows: int) -> int:
    """Worker threads for ``n_rows`` parameter rows: one per CPU core (``DREX_THREADS`` overrides), at most
    one per 64 rows. Rows are independent, so the numbers do not depend on the thread count."""
    wanted = int(os.environ.get("DREX_THREADS") or os.cpu_count() or 1)
    return max(1, min(wanted, n_rows // 64))


def _parallel(fn, starts) -> None:
    """Run ``fn(start)`` for every start, in threads: the fused kernel is compiled ``nogil``, so the row
    blocks run on all cores."""
    starts = list(starts)
    n = _threads(sum(1 for _ in starts) * 64) if len(starts) > 1 else 1
    if n <= 1:
        for start in starts:
            fn(start)
        return
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=n) as pool:
        list(pool.map(fn, starts))  # list(): re-raise the first worker error here


def _fused_kernel():
    """The compiled fused kernel (``backtest._kernels_nb``; numba compiles or loads it on first use)."""
    from backtest import _kernels_nb

    assert _kernels_nb.ROWS == _FUSED_BLOCK and _kernels_nb.COLUMNS == _metrics.METRIC_NAMES
    return _kernels_nb.fused_rows_nb


def grid_product(grid: dict[str, Any]) -> list[dict[str, Any]]:
    """All combinations of ``grid`` (name -> list of values, or a scalar), in ``itertools.product`` order."""
    names, values = _axes(grid)
    return [dict(zip(names, combo)) for combo in itertools.product(*values)]


def _reason(entry, combo: dict[str, Any]) -> str:
    """Why ``combo`` is invalid for ``entry``, in the words of its parameter checks."""
    try:
        entry.space.bind(combo)
    except ValueError as err:
        return str(err)
    return f"rejected by {entry.name}"


def _grid_weights(entry, bars, combos: list[dict[str, Any]], assets: list[str]) -> tuple[np.ndarray, np.ndarray, list]:
    """Weights ``(P, T, N)``, a validity mask ``(P,)`` and the per-row reasons for invalid rows.

    With a batched function: one call for the whole grid (invalid rows flagged by it). Otherwise each valid
    combination's decision-maker is built (``backtest.decisions.build``: parameters bound and checked once)
    and decides the whole history.
    """
    from backtest.decisions import build, decide

    P = len(combos)
    if entry.batched is not None:
        arrays = {k: np.asarray([c[k] for c in combos]) for k in combos[0]}
        out = entry.batched(bars, **arrays)
        weights, valid = (out.weights, out.valid) if hasattr(out, "valid") else (out, np.ones(P, dtype=bool))
        weights = np.asarray(weights, dtype=np.float64)
        if weights.ndim == 2:  # (P, T) for one asset
            weights = weights[..., None]
        if weights.shape != (P, len(bars.index), len(assets)):
            raise ValueError(f"{entry.name}'s batched function returned weights of shape {weights.shape}; "
                             f"expected (P, T, N) = {(P, len(bars.index), len(assets))}")
        valid = np.asarray(valid, dtype=bool)
        reasons = ["" if v else _reason(entry, c) for v, c in zip(valid, combos)]
        return weights, valid, reasons
    rows, valid, reasons = [], np.ones(P, dtype=bool), [""] * P
    for p, combo in enumerate(combos):
        try:
            params = entry.space.bind(combo)
        except ValueError as err:
            valid[p], reasons[p] = False, str(err)
            rows.append(np.zeros((len(bars.index), len(assets))))
            continue
        w, _ = _weights_array(decide(build(entry.name, params), bars).weights, bars.index, assets)
        rows.append(w[0])
    return np.stack(rows), valid, reasons  # (P, T, N)


CHUNK_BYTES = 64 << 20
"""Weights per chunk of combinations (64 MiB of ``(C, T, N)`` float64; ``DREX_SWEEP_CHUNK_MB`` overrides):
a sweep holds one chunk's weights and its strategy's temporaries at a time, whatever the grid size."""
MAX_DROPPED_LISTED = 1000
"""Dropped combinations listed in ``attrs["dropped"]`` (``attrs["n_dropped"]`` counts them all)."""


def chunk_rows(T: int, N: int, chunk_bytes: int | None = None) -> int:
    """Combinations per chunk: ``chunk_bytes`` (default ``CHUNK_BYTES``) of ``(C, T, N)`` float64 weights,
    at least one interleaved block of rows."""
    if chunk_bytes is None:
        mb = os.environ.get("DREX_SWEEP_CHUNK_MB")
        chunk_bytes = int(float(mb) * (1 << 20)) if mb else CHUNK_BYTES
    return max(_FUSED_BLOCK, int(chunk_bytes) // max(1, T * N * 8))


def sweep(strategy: str, grid: dict[str, Any], bars, *, fees: float = 0.0, slippage: float = 0.0,
          execution: str = "next_open", init_cash: float = 1.0, periods_per_year: float | None = None,
          leverage: float | None = None, band: float = accounting.DEFAULT_BAND, borrow: float = 0.0,
          fused: bool = True, chunk_bytes: int | None = None,
          progress: Callable[[int, int], None] | None = None):
    """Backtest every combination of ``grid`` for the registered ``strategy``.

    strategy: a registered decision-maker (``backtest.decisions.names()``). grid: parameter name -> list of
    values (scalars are held fixed); parameters not in the grid keep their defaults. bars: canonical bars,
    ``T`` rows. Options as in ``backtest.run``. fused: metrics in the compiled loop (default) or with
    ``backtest.metrics`` (``False``); both give the same numbers (module docstring).

    Memory is bounded whatever the grid size: the combinations are generated lazily and run in chunks of
    ``chunk_rows(T, N, chunk_bytes)`` (``CHUNK_BYTES`` of weights each), so the peak is one chunk's weights
    and temporaries plus the result table (about 150 bytes per valid combination);
    ``benchmarks/sweep_memory.py`` measures it. progress: ``progress(done, total)`` after each chunk.

    Returns a DataFrame, one row per valid combination in grid order: the parameter columns then the metric
    columns of ``backtest.metrics.METRIC_NAMES``; ``attrs["note"]`` says how many invalid combinations were
    dropped and why, ``attrs["n_dropped"]`` counts them and ``attrs["dropped"]`` lists the first
    ``MAX_DROPPED_LISTED`` (dicts with a ``reason``). Order it with ``rank``.
    """
    import pandas as pd

    from backtest.decisions import get

    entry = get(strategy)
    entry.space.check_grid(grid)
    if execution not in EXECUTIONS:
        raise ValueError(f"execution must be one of {EXECUTIONS}, got {execution!r}")
    fees, slippage = check_fraction("fees", fees), check_fraction("slippage", slippage)
    band, borrow = accounting.check_options(band=band, borrow=borrow)
    if leverage is not None and not leverage > 0:
        raise ValueError(f"leverage must be > 0 (a cap on sum |w| per bar, e.g. 1.0), got {leverage}")
    assets, opens, closes = _bar_prices(bars)
    ppy = float(periods_per_year) if periods_per_year is not None else _metrics.infer_periods_per_year(bars.index)
    names, values = _axes(grid)
    total = math.prod(len(v) for v in values)
    exec_price = np.ascontiguousarray(opens if execution == "next_open" else closes)
    closes = np.ascontiguousarray(closes)
    size = chunk_rows(*closes.shape, chunk_bytes)
    options = {"fees": fees, "slippage": slippage, "init_cash": float(init_cash), "leverage": leverage,
               "band": band, "borrow": borrow, "ppy": ppy, "fused": fused}
    combos_iter = itertools.product(*values)
    frames, dropped, n_dropped, done = [], [], 0, 0
    while chunk := [dict(zip(names, c)) for c in itertools.islice(combos_iter, size)]:
        part, bad = _sweep_chunk(entry, bars, assets, chunk, exec_price, closes, names, **options)
        frames.append(part)
        n_dropped += len(bad)
        dropped.extend(bad[: max(0, MAX_DROPPED_LISTED - len(dropped))])
        done += len(chunk)
        if progress is not None:
            progress(done, total)
    frame = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    frame.attrs = {"dropped": dropped, "n_dropped": n_dropped, "periods_per_year": ppy,
                   "note": _dropped_note(dropped, n_dropped, total, strategy)}
    return frame


def _axes(grid: dict[str, Any]) -> tuple[list[str], list[list[Any]]]:
    names = list(grid)
    values = [list(v) if isinstance(v, (list, tuple, np.ndarray, range)) else [v] for v in grid.values()]
    for name, vals in zip(names, values):
        if not vals:
            raise ValueError(f"grid parameter {name!r} has no values; give at least one")
    return names, values


def _sweep_chunk(entry, bars, assets, combos, exec_price, closes, names, *, fees, slippage, init_cash, leverage,
                 band, borrow, ppy, fused):
    """One chunk of combinations -> (its result rows, its dropped combinations)."""
    weights, valid, reasons = _grid_weights(entry, bars, combos, assets)
    keep = np.flatnonzero(valid).astype(np.int64)
    T, N = closes.shape
    weights = accounting._as_weights(weights)
    f, s = np.full(N, fees), np.full(N, slippage)
    if fused and keep.size:
        kernel = _fused_kernel()
        table = np.empty((keep.size, len(_metrics.METRIC_NAMES)))
        args = (accounting._ro(exec_price), accounting._ro(closes), accounting._ro(weights))
        keep_ro, f_ro, s_ro = accounting._ro(keep, np.int64), accounting._ro(f), accounting._ro(s)
        per = -(-keep.size // _threads(keep.size))
        per = -(-per // _FUSED_BLOCK) * _FUSED_BLOCK  # whole blocks per thread
        _parallel(lambda a: kernel(*args, keep_ro[a:a + per], f_ro, s_ro, float(init_cash), float(leverage or 0.0), band,
                                   borrow, ppy, table[a:a + per]),
                  range(0, keep.size, per))
        results = dict(zip(_metrics.METRIC_NAMES, table.T, strict=True))
        return _frame(combos, keep, valid, reasons, names, results)
    results = {k: np.empty(keep.size) for k in _metrics.METRIC_NAMES}
    block = max(1, _BLOCK_ELEMENTS // (T * N))
    starts = range(0, keep.size, block)

    def one_block(start: int) -> None:
        rows = keep[start:start + block]
        sim = accounting._simulate_checked(exec_price, closes, weights, rows, f, s, init_cash=float(init_cash),
                                           leverage=float(leverage or 0.0), band=band, borrow=borrow, keep=False)
        m = _metrics._compute_arrays(sim.returns, ppy, gross=sim.gross, turnover=sim.turnover,
                                     n_trades=sim.n_trades, equity=sim.equity / init_cash)
        for k, v in m.items():
            results[k][start:start + rows.size] = v

    _parallel(one_block, starts)
    return _frame(combos, keep, valid, reasons, names, results)


def rank(table, metric: str, *, ascending: bool = False):
    """``table`` (a ``sweep`` result) sorted by ``metric``, best first (highest, or lowest with ``ascending``),
    ties in grid order; NaN always last, so a combination whose Sharpe is undefined (``flat``: it never
    traded) never ranks first. An unknown metric raises a ``KeyError`` listing the metric columns."""
    if metric not in _metrics.METRIC_NAMES or metric not in table.columns:
        cols = [c for c in table.columns if c in _metrics.METRIC_NAMES]
        raise KeyError(f"unknown metric {metric!r}; available: {', '.join(cols)}")
    return table.sort_values(metric, ascending=ascending, na_position="last", kind="stable")


def _frame(combos, keep, valid, reasons, names, results):
    """A chunk's result rows (parameter columns, metric columns) and its dropped combinations."""
    import pandas as pd

    columns = {name: [combos[p][name] for p in keep] for name in names}
    columns.update(results)
    dropped = [dict(combos[p], reason=reasons[p]) for p in np.flatnonzero(~valid)]
    return pd.DataFrame(columns), dropped


def _dropped_note(dropped: list[dict[str, Any]], n_dropped: int, total: int, strategy: str) -> str:
    """One line for users: how many combinations were dropped, and why (the first reason as an example)."""
    if not n_dropped:
        return ""
    kinds = len({d["reason"] for d in dropped})
    eg = "e.g. " if kinds > 1 or n_dropped > len(dropped) else ""
    return f"{n_dropped} of {total} combinations dropped as invalid for {strategy!r} ({eg}{dropped[0]['reason']})"
