"""Parameter sweeps: every combination of a strategy's parameter grid backtested at once.

``sweep("trend", {"fast": [5, 10, 20], "slow": [50, 100]}, bars)`` builds the product grid (``P`` rows, in
``itertools.product`` order of the grid's keys), gets the ``(P, T, N)`` weights from the strategy's batched
function (``backtest.decisions.get(name).batched``) or, if it has none, by stacking each combination's
decisions (``backtest.decisions.build`` + ``decide``), then
simulates all P portfolios and computes every metric of ``backtest.metrics``: with ``fused=False`` by
``backtest.kernels.simulate`` + ``metrics`` (NumPy, in blocks of parameter rows sized for the CPU cache, no
loop over bars), by default with the compiled fused loop below.

Speed: NumPy's kernel makes about 100 passes over the ``(P, T)`` arrays (simulation, cost fixed point,
metrics), a few hundred ms for 1,000 x 2,520 on a small CPU. With ``fused=True`` (the default when numba is
installed; it comes with vectorbt) the sweep runs ``_fused_rows`` instead: the same model and the same metric
formulas compiled by numba into one loop per parameter row, one pass over the bars (the order-by-order
recurrence the kernel's fixed point solves), no ``(P, T)`` temporaries. Tests hold it equal to the NumPy path
and to ``backtest.run`` (1e-12). Its parameter rows are split over one thread per CPU core (``DREX_THREADS``
overrides; the kernel releases the GIL); rows are independent, so the thread count never changes a number. The first call in a fresh environment compiles it (a few seconds; cached on
disk after that).

Invalid combinations (those the batched function marks ``valid=False``, e.g. ``fast >= slow`` for ``trend``,
or those for which the per-combination function raises ``ValueError``) are DROPPED: the result has one row
per valid combination, and ``result.attrs["dropped"]`` lists the dropped combinations (dicts) with
``result.attrs["note"]`` saying how many and why. Each row equals ``backtest.run`` on that combination's
weights with the same options.
"""
from __future__ import annotations

import itertools
import os
from typing import Any

import numpy as np

from backtest import kernels
from backtest import metrics as _metrics
from backtest.engine import EXECUTIONS, _bar_prices, _check_fraction, _weights_array

__all__ = ["grid_product", "sweep"]

_BLOCK_ELEMENTS = 1 << 16  # parameter rows per block: about this many (T * N) elements, a few hundred kB
_FUSED: list = []  # the compiled fused kernel, once built
_FUSED_BLOCK = 8  # parameter rows simulated side by side: independent dependency chains keep the CPU busy


def _fused_rows(p, m, W, rows, fees, slip, init_cash, lev, ppy, eps, out):  # pragma: no cover - numba
    """Simulation + metrics of the parameter rows ``rows`` of ``W (P, T, N)`` into ``out (len(rows), 15)``.

    The order-by-order recurrence that ``backtest.kernels`` solves by its fixed point (cash and shares, targets
    valued at the execution price ``p (T, N)``, marks at the close ``m (T, N)``, ruin floors equity at 0, no
    trade counts from the ruin bar on) and the formulas of ``backtest.metrics`` in ``METRIC_NAMES`` order.
    Plain loops for numba, ``_FUSED_BLOCK`` rows interleaved per bar; ``lev <= 0`` means no cap.
    """
    T, N = m.shape
    B = _FUSED_BLOCK
    r = np.empty((B, T))
    eq = np.empty((B, T))
    gross = np.empty((B, T))
    turn = np.empty((B, T))
    cash = np.empty(B)
    prev = np.empty(B)
    dead = np.zeros(B, dtype=np.bool_)
    ntr = np.zeros(B, dtype=np.int64)
    shares = np.empty((B, N))
    u = np.empty(N)
    buf = np.empty(T)
    kb = (1.0 + slip) * (1.0 + fees)
    ks = (1.0 - slip) * (1.0 - fees)
    sq = np.sqrt(ppy)
    nan = np.nan
    for start in range(0, rows.size, B):
        nb = min(B, rows.size - start)
        cash[:] = init_cash
        prev[:] = init_cash
        dead[:] = False
        ntr[:] = 0
        shares[:, :] = 0.0
        for t in range(T):
            for j in range(nb):
                k = rows[start + j]
                turn_t = 0.0
                trades_t = 0
                if N == 1:  # the common single-asset case with scalars (about 2x faster)
                    E = cash[j]
                    held = 0.0
                    if not dead[j]:
                        pt = p[t, 0]
                        sh = shares[j, 0]
                        if t > 0:
                            w1 = W[k, t - 1, 0]
                            w1 = 0.0 if np.isnan(w1) else w1
                            if lev > 0.0 and abs(w1) > lev:
                                w1 = lev if w1 > 0 else -lev
                            V = E + sh * pt
                            if V <= 0.0:
                                dead[j] = True
                            else:
                                target = w1 * V / pt
                                q = target - sh
                                x = abs(q) * pt / V
                                turn_t = x
                                trades_t = x > eps
                                E -= q * pt * (kb if q > 0.0 else ks)
                                cash[j] = E
                                sh = target
                                shares[j, 0] = sh
                        v = sh * m[t, 0]
                        E += v
                        held = abs(v)
                elif t > 0 and not dead[j]:
                    g = 0.0
                    for i in range(N):
                        wi = W[k, t - 1, i]
                        u[i] = 0.0 if np.isnan(wi) else wi
                        g += abs(u[i])
                    if lev > 0.0 and g > lev:
                        if N == 1:
                            u[0] = lev if u[0] > 0 else -lev
                        else:
                            for i in range(N):
                                u[i] *= lev / g
                    V = cash[j]
                    for i in range(N):
                        V += shares[j, i] * p[t, i]
                    if V <= 0.0:
                        dead[j] = True
                    else:
                        c = cash[j]
                        inv_v = 1.0 / V
                        for i in range(N):
                            target = u[i] * V / p[t, i]
                            q = target - shares[j, i]
                            x = abs(q) * p[t, i] * inv_v
                            turn_t += x
                            trades_t += x > eps
                            c -= q * p[t, i] * (kb if q > 0.0 else ks)
                            shares[j, i] = target
                        cash[j] = c
                if N > 1:
                    E = cash[j]
                    held = 0.0
                    if not dead[j]:
                        for i in range(N):
                            v = shares[j, i] * m[t, i]
                            E += v
                            held += abs(v)
                if dead[j] or E <= 0.0:
                    dead[j] = True
                    E = 0.0
                    held = 0.0
                    turn_t = 0.0
                    trades_t = 0
                ntr[j] += trades_t
                eq[j, t] = E / init_cash
                r[j, t] = E / prev[j] - 1.0 if prev[j] > 0.0 else 0.0
                gross[j, t] = held / E if E > 0.0 else 0.0
                turn[j, t] = turn_t
                prev[j] = E
        for j in range(nb):  # metrics, as backtest.metrics._compute_arrays
            rj, ej, gj = r[j], eq[j], gross[j]
            total = ej[T - 1] - 1.0
            cagr = (1.0 + total) ** (ppy / T) - 1.0
            sr = sg = st = 0.0  # one pass for the sums and counts: independent accumulators
            n_held = n_in = wins = 0
            tj = turn[j]
            for t in range(T):
                sr += rj[t]
                sg += gj[t]
                st += tj[t]
                h = gj[t] > 0.0
                n_held += h
                if h or (t > 0 and gj[t - 1] > 0.0):
                    n_in += 1
                    wins += rj[t] > 0.0
            mean = sr / T
            vol = sharpe = sortino = cvar = nan
            if T >= 2:
                ss = 0.0
                dn = 0.0
                for t in range(T):
                    ss += (rj[t] - mean) ** 2
                    if rj[t] < 0.0:
                        dn += rj[t] * rj[t]
                std = np.sqrt(ss / (T - 1))
                down = np.sqrt(dn / T)
                vol = std * sq
                sharpe = np.inf if std == 0.0 else mean / std * sq
                sortino = np.inf if down == 0.0 else mean * ppy / (down * sq)
                # CVaR: the mq + 1 smallest returns; gather those below mean - std first (cheap), else all
                kq = 0.05 * T
                mq = int(np.floor(kq))
                n = 0
                thr = mean - std
                for t in range(T):
                    if rj[t] < thr:
                        buf[n] = rj[t]
                        n += 1
                if n <= mq:
                    buf[:T] = rj
                    n = T
                part = np.partition(buf[:n], mq)
                cvar = (part[:mq].sum() + (kq - mq) * part[mq]) / kq
            best = np.inf  # max drawdown: the first minimum of eq / max(1, running max), as np.argmin
            peak = 1.0
            trough = 0
            peak_at = 1.0
            for t in range(T):
                peak = max(peak, ej[t])
                dd = ej[t] / peak
                if dd < best:
                    best = dd
                    trough = t
                    peak_at = peak
            mdd = best - 1.0
            peak_idx = -1
            for t in range(trough + 1):
                if ej[t] >= peak_at:
                    peak_idx = t
            end = T - 1
            for t in range(trough + 1, T):
                if ej[t] >= peak_at:
                    end = t
                    break
            tmean = st / T
            o = out[start + j]
            o[0], o[1], o[2], o[3], o[4] = total, cagr, vol, sharpe, sortino
            o[5] = nan if mdd == 0.0 else cagr / abs(mdd)
            o[6], o[7] = mdd, float(end - peak_idx) if mdd < 0.0 else 0.0
            o[8], o[9], o[10] = cvar, tmean, tmean * ppy
            o[11], o[12] = n_held / T, sg / T
            o[13] = wins / n_in if n_in > 0 else nan
            o[14] = ntr[j]


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
    """``_fused_rows`` compiled by numba (cached on disk), or None when numba is not installed."""
    if not _FUSED:
        try:
            import numba
        except ImportError:  # pragma: no cover - numba ships with vectorbt
            _FUSED.append(None)
        else:
            _FUSED.append(numba.njit(cache=True, nogil=True)(_fused_rows))
    return _FUSED[0]


def grid_product(grid: dict[str, Any]) -> list[dict[str, Any]]:
    """All combinations of ``grid`` (name -> list of values, or a scalar), in ``itertools.product`` order."""
    names = list(grid)
    values = [list(v) if isinstance(v, (list, tuple, np.ndarray, range)) else [v] for v in grid.values()]
    for name, vals in zip(names, values):
        if not vals:
            raise ValueError(f"grid parameter {name!r} has no values; give at least one")
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


def sweep(strategy: str, grid: dict[str, Any], bars, *, fees: float = 0.0, slippage: float = 0.0,
          execution: str = "next_open", init_cash: float = 1.0, periods_per_year: float | None = None,
          leverage: float | None = None, fused: bool | None = None):
    """Backtest every combination of ``grid`` for the registered ``strategy`` at once.

    strategy: a registered decision-maker (``backtest.decisions.names()``). grid: parameter name -> list of
    values (scalars are held fixed); parameters not in the grid keep their defaults. bars: canonical bars,
    ``T`` rows.
    Options as in ``backtest.run``. fused: run the numba-compiled fused loop (module docstring; default: when
    numba is installed) or the NumPy kernel (``False``); both give the same numbers.
    Returns a DataFrame, one row per valid combination: the parameter columns then the metric columns of ``backtest.metrics.METRIC_NAMES``; ``attrs["dropped"]`` / ``attrs["note"]``
    describe dropped invalid combinations.
    """
    from backtest.decisions import get

    entry = get(strategy)
    entry.space.check_grid(grid)
    if execution not in EXECUTIONS:
        raise ValueError(f"execution must be one of {EXECUTIONS}, got {execution!r}")
    fees, slippage = _check_fraction("fees", fees), _check_fraction("slippage", slippage)
    assets, opens, closes = _bar_prices(bars)
    ppy = float(periods_per_year) if periods_per_year is not None else _metrics.infer_periods_per_year(bars.index)
    combos = grid_product(grid)
    weights, valid, reasons = _grid_weights(entry, bars, combos, assets)
    keep = np.flatnonzero(valid)
    exec_price = opens if execution == "next_open" else closes
    T, N = closes.shape
    if leverage is not None and not leverage > 0:
        raise ValueError(f"leverage must be > 0 (a cap on sum |w| per bar, e.g. 1.0), got {leverage}")
    kernel = _fused_kernel() if fused is not False else None
    if fused and kernel is None:
        raise ValueError("fused=True needs numba (pip install numba); use fused=False for the NumPy kernel")
    if kernel is not None and keep.size:
        table = np.empty((keep.size, len(_metrics.METRIC_NAMES)))
        args = (np.ascontiguousarray(exec_price), np.ascontiguousarray(closes), np.ascontiguousarray(weights))
        rows_ = keep.astype(np.int64)
        per = -(-keep.size // _threads(keep.size)) if keep.size else 1
        per = -(-per // _FUSED_BLOCK) * _FUSED_BLOCK  # whole interleaved blocks per thread
        _parallel(lambda a: kernel(*args, rows_[a:a + per], fees, slippage, float(init_cash),
                                   float(leverage or 0.0), ppy, kernels.TRADE_EPS, table[a:a + per]),
                  range(0, keep.size, per))
        results = dict(zip(_metrics.METRIC_NAMES, table.T, strict=True))
        return _frame(combos, keep, valid, reasons, grid, strategy, ppy, results)
    results = {k: np.empty(keep.size) for k in _metrics.METRIC_NAMES}
    block = max(1, _BLOCK_ELEMENTS // (T * N))
    for start in range(0, keep.size, block):  # serial: threads do not pay off for these small NumPy blocks
        rows = keep[start:start + block]
        sim = kernels.simulate(exec_price, closes, weights[rows], fees=fees, slippage=slippage,
                               init_cash=float(init_cash), leverage=leverage, keep_positions=False)
        m = _metrics._compute_arrays(sim.returns, ppy, gross=sim.gross, turnover=sim.turnover,
                                     n_trades=sim.n_trades, equity=sim.equity / init_cash)
        for k, v in m.items():
            results[k][start:start + rows.size] = v
    return _frame(combos, keep, valid, reasons, grid, strategy, ppy, results)


def _frame(combos, keep, valid, reasons, grid, strategy, ppy, results):
    """The result table: parameter columns, metric columns, and the dropped combinations in ``attrs``."""
    import pandas as pd

    columns = {name: [combos[p][name] for p in keep] for name in grid}
    columns.update(results)
    frame = pd.DataFrame(columns)
    dropped = [dict(combos[p], reason=reasons[p]) for p in np.flatnonzero(~valid)]
    frame.attrs["dropped"] = dropped
    frame.attrs["note"] = _dropped_note(dropped, len(combos), strategy)
    frame.attrs["periods_per_year"] = ppy
    return frame


def _dropped_note(dropped: list[dict[str, Any]], total: int, strategy: str) -> str:
    """One line for users: how many combinations were dropped, and why (the first reason as an example)."""
    if not dropped:
        return ""
    kinds = len({d["reason"] for d in dropped})
    eg = "e.g. " if kinds > 1 else ""
    return f"{len(dropped)} of {total} combinations dropped as invalid for {strategy!r} ({eg}{dropped[0]['reason']})"
