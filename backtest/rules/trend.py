"""Trend following: moving-average crossover or time-series momentum, plus a batched grid for sweeps."""
from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from backtest.rules._common import (
    _check_choice,
    _check_int,
    _check_mode,
    _explain_rows,
    _field,
    _sign_position,
    _sleeves,
    _sma_windows,
    _wrap,
)
from markets import features

__all__ = ["BatchedWeights", "trend", "trend_batched", "trend_explain"]


class BatchedWeights(NamedTuple):
    """Weights of P parameter combinations at once.

    ``weights``: float64 ``(P, T, N)`` (0 = flat; invalid combinations are all 0);
    ``valid``: bool ``(P,)``, False where the combination is invalid (e.g. ``fast >= slow``).
    """

    weights: np.ndarray
    valid: np.ndarray


def _check_trend(fast: Any, slow: Any, ma: Any, mode: Any, signal: Any, lookback: Any) -> tuple:
    fast = _check_int("fast", fast)
    slow = _check_int("slow", slow)
    if fast >= slow:
        raise ValueError(f"parameter fast ({fast}) must be smaller than slow ({slow}); e.g. fast=20, slow=100")
    return (fast, slow, _check_choice("ma", ma, ("sma", "ema")), _check_mode(mode),
            _check_choice("signal", signal, ("crossover", "momentum")), _check_int("lookback", lookback))


def _moving_averages(close: pd.DataFrame, windows: np.ndarray, ma: str) -> np.ndarray:
    """``(W, T, N)`` moving averages of ``close (T, N)``, one per distinct window."""
    if ma == "sma":
        return _sma_windows(close.to_numpy(), windows)
    return np.stack([features.ema(close, int(w)).to_numpy() for w in windows])


def _trend_parts(bars: pd.DataFrame, fast: int, slow: int, ma: str, signal: str,
                 lookback: int) -> dict[str, np.ndarray]:
    close = _field(bars, "close")
    if signal == "momentum":
        mom = (close / close.shift(lookback) - 1.0).to_numpy()
        return {"close": close.to_numpy(), "momentum": mom, "signal": np.sign(mom)}
    fast_ma, slow_ma = _moving_averages(close, np.array([fast, slow]), ma)
    return {"fast_ma": fast_ma, "slow_ma": slow_ma, "signal": np.sign(fast_ma - slow_ma)}


def trend(bars: pd.DataFrame, *, fast: int = 20, slow: int = 100, ma: str = "sma", mode: str = "long_only",
          signal: str = "crossover", lookback: int = 252) -> pd.Series | pd.DataFrame:
    """Trend following: long (or short) when the fast moving average is above (below) the slow one.

    ``signal="crossover"``: +1 when ``MA(fast) > MA(slow)`` of the close, -1 (``mode="long_short"``) or 0
    (``"long_only"``) when below, 0 when equal or during warm-up (the first ``slow - 1`` bars).
    ``ma="sma"`` simple, ``"ema"`` exponential (``alpha = 2/(span+1)``, warm-up ``span - 1`` bars).
    ``signal="momentum"``: time-series momentum, the sign of ``close_t / close_{t-lookback} - 1``
    (``fast``/``slow`` unused). Computed per asset, column-wise.

    bars: canonical bars (single asset or ``(asset, field)`` MultiIndex), ``T`` rows.
    Returns weights in {-1, 0, 1} / N (1/N sleeves): ``(T,)`` Series or ``(T, N)`` DataFrame, same index as
    ``bars``.
    """
    fast, slow, ma, mode, signal, lookback = _check_trend(fast, slow, ma, mode, signal, lookback)
    parts = _trend_parts(bars, fast, slow, ma, signal, lookback)
    return _wrap(bars, _sleeves(_sign_position(parts["signal"], mode)))


def trend_explain(bars: pd.DataFrame, *, fast: int = 20, slow: int = 100, ma: str = "sma",
                  mode: str = "long_only", signal: str = "crossover", lookback: int = 252) -> pd.Series:
    """Per bar: the moving averages (or momentum), the signal sign and the resulting weight."""
    fast, slow, ma, mode, signal, lookback = _check_trend(fast, slow, ma, mode, signal, lookback)
    parts = _trend_parts(bars, fast, slow, ma, signal, lookback)
    parts["weight"] = _sleeves(_sign_position(parts["signal"], mode))
    return _explain_rows(bars, parts)


def _as_param_array(name: str, value: Any, P: int | None) -> np.ndarray:
    arr = np.atleast_1d(np.asarray(value))
    if arr.ndim != 1:
        raise ValueError(f"batched parameter {name} must be a scalar or a 1-D array, got shape {arr.shape}")
    if P is not None and arr.size not in (1, P):
        raise ValueError(f"batched parameter {name} has {arr.size} values but other parameters have {P}")
    return arr


def _checked(values: np.ndarray, check: Any) -> np.ndarray:
    """Validate each distinct value once; returns the checked values, same length as ``values``."""
    uniq, inverse = np.unique(values, return_inverse=True)
    return np.asarray([check(v.item() if isinstance(v, np.generic) else v) for v in uniq])[inverse]


def _fill_signs(out: np.ndarray, rows: np.ndarray, a_idx: np.ndarray, b_idx: np.ndarray, a: np.ndarray,
                b: np.ndarray, short: np.ndarray) -> None:
    """``out[rows] = 1[a[a_idx] > b[b_idx]] - short * 1[a[a_idx] < b[b_idx]]`` per row.

    ``a (A, T, N)``, ``b (B, T, N)``: distinct series; rows are grouped by ``b_idx`` so only ``a`` is gathered
    (half the memory traffic of gathering both). NaN compares False, so warm-up bars are 0.
    """
    for k in np.unique(b_idx):  # distinct slow windows (tens), never bars
        sel = np.flatnonzero(b_idx == k)
        fa = a[a_idx[sel]]  # (R_k, T, N)
        res = np.greater(fa, b[k]).astype(np.float64)
        sh = short[sel]
        if sh.any():
            res[sh] -= np.less(fa[sh], b[k])
        out[rows[sel]] = res


def trend_batched(bars: pd.DataFrame, *, fast: Any = 20, slow: Any = 100, ma: Any = "sma",
                  mode: Any = "long_only", signal: Any = "crossover", lookback: Any = 252) -> BatchedWeights:
    """Weights of P combinations at once (the sweep's fast path).

    Every parameter is a scalar or a 1-D array of length P (arrays are paired element-wise: pass the
    expanded product grid). Each distinct moving-average window is computed once, vectorized over assets,
    then the P comparisons are one gather + compare. Combinations with ``fast >= slow`` (crossover) are marked
    invalid (``valid=False``, weights 0) instead of raising; other bad values raise as in ``trend``.
    Equal to stacking ``trend(bars, **combo)`` for every valid combination.

    Returns ``BatchedWeights(weights (P, T, N) float64, valid (P,) bool)``.
    """
    raw = {"fast": fast, "slow": slow, "ma": ma, "mode": mode, "signal": signal, "lookback": lookback}
    sizes = {np.atleast_1d(np.asarray(v)).size for v in raw.values()} - {1}
    if len(sizes) > 1:
        raise ValueError(f"batched parameters must share one length P (or be scalars); got lengths {sorted(sizes)}")
    P = sizes.pop() if sizes else 1
    arrs = {k: np.broadcast_to(_as_param_array(k, v, P), (P,)) for k, v in raw.items()}
    fasts = _checked(arrs["fast"], lambda v: _check_int("fast", v)).astype(np.int64)
    slows = _checked(arrs["slow"], lambda v: _check_int("slow", v)).astype(np.int64)
    lookbacks = _checked(arrs["lookback"], lambda v: _check_int("lookback", v)).astype(np.int64)
    mas = _checked(arrs["ma"], lambda v: _check_choice("ma", v, ("sma", "ema")))
    modes = _checked(arrs["mode"], _check_mode)
    signals = _checked(arrs["signal"], lambda v: _check_choice("signal", v, ("crossover", "momentum")))
    valid = fasts < slows  # momentum also requires it: the same rule as trend()

    close = _field(bars, "close")
    T, N = close.shape
    long_short = modes == "long_short"
    weights = np.zeros((P, T, N))
    for kind in ("sma", "ema"):  # crossover rows, one gather per MA kind
        rows = np.flatnonzero((signals == "crossover") & (mas == kind) & valid)
        if rows.size == 0:
            continue
        windows, inverse = np.unique(np.concatenate([fasts[rows], slows[rows]]), return_inverse=True)
        mavals = _moving_averages(close, windows, kind)  # (W, T, N)
        fi, si = inverse[: rows.size], inverse[rows.size:]  # per row: fast / slow window index
        _fill_signs(weights, rows, fi, si, mavals, mavals, long_short[rows])
    rows = np.flatnonzero((signals == "momentum") & valid)
    if rows.size:
        lbs, inverse = np.unique(lookbacks[rows], return_inverse=True)
        moms = np.stack([(close / close.shift(int(lb)) - 1.0).to_numpy() for lb in lbs])  # (L, T, N)
        zero = np.zeros((1, T, N))
        _fill_signs(weights, rows, inverse, np.zeros(rows.size, dtype=np.int64), moms, zero, long_short[rows])
    if N > 1:
        weights /= N  # 1/N sleeves, as trend()
    return BatchedWeights(weights, valid)
