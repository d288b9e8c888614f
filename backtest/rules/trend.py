"""Trend following: moving-average crossover or time-series momentum, plus a batched grid for sweeps."""
from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from backtest.decisions import Decision
from backtest.params import Param, ParamSpace
from backtest.rules._common import (
    MODE,
    _decision,
    _field,
    _sign_position,
    _sleeves,
    _sma_windows,
)
from markets import features

__all__ = ["PARAMS", "BatchedWeights", "trend", "trend_batched", "trend_decision", "trend_warmup"]


class BatchedWeights(NamedTuple):
    """Weights of P parameter combinations at once.

    ``weights``: float64 ``(P, T, N)`` (0 = flat; invalid combinations are all 0);
    ``valid``: bool ``(P,)``, False where the combination is invalid (e.g. ``fast >= slow``).
    """

    weights: np.ndarray
    valid: np.ndarray


def _fast_below_slow(p: dict[str, Any]) -> None:
    if p["fast"] >= p["slow"]:
        raise ValueError(f"parameter fast ({p['fast']}) must be smaller than slow ({p['slow']}); e.g. fast=20, "
                         "slow=100")


PARAMS = ParamSpace({
    "fast": Param(20, low=1, doc="fast moving-average window (bars)"),
    "slow": Param(100, low=1, doc="slow moving-average window (bars); must exceed fast"),
    "ma": Param("sma", choices=("sma", "ema"), doc="moving-average kind"),
    "mode": MODE,
    "signal": Param("crossover", choices=("crossover", "momentum"), doc="MA crossover or time-series momentum"),
    "lookback": Param(252, low=1, doc="momentum lookback (bars), signal=momentum only"),
}, check=_fast_below_slow, owner="trend")
"""The declared parameters of ``trend`` (the one place they are validated)."""


def trend_warmup(p: dict[str, Any]) -> int:
    """Bars of history before the first signal: the slow window, or the momentum lookback."""
    return int(p["lookback"] if p["signal"] == "momentum" else p["slow"])


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


def trend(bars: pd.DataFrame, **params: Any) -> pd.Series | pd.DataFrame:
    """Trend following: long (or short) when the fast moving average is above (below) the slow one.

    ``signal="crossover"``: +1 when ``MA(fast) > MA(slow)`` of the close, -1 (``mode="long_short"``) or 0
    (``"long_only"``) when below, 0 when equal or during warm-up (the first ``slow - 1`` bars).
    ``ma="sma"`` simple, ``"ema"`` exponential (``alpha = 2/(span+1)``, warm-up ``span - 1`` bars).
    ``signal="momentum"``: time-series momentum, the sign of ``close_t / close_{t-lookback} - 1``
    (``fast``/``slow`` unused). Computed per asset, column-wise. Parameters: ``PARAMS``.

    bars: canonical bars (single asset or ``(asset, field)`` MultiIndex), ``T`` rows.
    Returns weights in {-1, 0, 1} / N (1/N sleeves): ``(T,)`` Series or ``(T, N)`` DataFrame, same index as
    ``bars``.
    """
    return trend_decision(bars, **params).weights


def trend_decision(bars: pd.DataFrame, **params: Any) -> Decision:
    """``trend``'s weights and its per-bar trace (the moving averages or momentum, the signal, the weight)."""
    p = PARAMS.bind(params)
    parts = _trend_parts(bars, p["fast"], p["slow"], p["ma"], p["signal"], p["lookback"])
    parts["weight"] = _sleeves(_sign_position(parts["signal"], p["mode"]))
    return _decision(bars, parts)


def _as_param_array(name: str, value: Any, P: int | None) -> np.ndarray:
    arr = np.atleast_1d(np.asarray(value))
    if arr.ndim != 1:
        raise ValueError(f"batched parameter {name} must be a scalar or a 1-D array, got shape {arr.shape}")
    if P is not None and arr.size not in (1, P):
        raise ValueError(f"batched parameter {name} has {arr.size} values but other parameters have {P}")
    return arr


def _checked(values: np.ndarray, name: str) -> np.ndarray:
    """Validate each distinct value once against ``PARAMS``; the checked values, same length as ``values``."""
    uniq, inverse = np.unique(values, return_inverse=True)
    param = PARAMS.params[name]
    return np.asarray([param.parse(name, v.item() if isinstance(v, np.generic) else v) for v in uniq])[inverse]


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


def trend_batched(bars: pd.DataFrame, **params: Any) -> BatchedWeights:
    """Weights of P combinations at once (the sweep's fast path).

    Every parameter is a scalar or a 1-D array of length P (arrays are paired element-wise: pass the
    expanded product grid). Each distinct moving-average window is computed once, vectorized over assets,
    then the P comparisons are one gather + compare. Combinations with ``fast >= slow`` (crossover) are marked
    invalid (``valid=False``, weights 0) instead of raising; other bad values raise as in ``trend``.
    Equal to stacking ``trend(bars, **combo)`` for every valid combination.

    Returns ``BatchedWeights(weights (P, T, N) float64, valid (P,) bool)``.
    """
    unknown = sorted(set(params) - set(PARAMS.params))
    if unknown:
        raise ValueError(f"trend has no parameter(s) {unknown}; valid: {', '.join(PARAMS.params)}")
    raw = {**PARAMS.defaults, **params}
    sizes = {np.atleast_1d(np.asarray(v)).size for v in raw.values()} - {1}
    if len(sizes) > 1:
        raise ValueError(f"batched parameters must share one length P (or be scalars); got lengths {sorted(sizes)}")
    P = sizes.pop() if sizes else 1
    arrs = {k: np.broadcast_to(_as_param_array(k, v, P), (P,)) for k, v in raw.items()}
    fasts, slows, lookbacks, mas, modes, signals = (
        _checked(arrs[k], k) for k in ("fast", "slow", "lookback", "ma", "mode", "signal"))
    fasts, slows, lookbacks = fasts.astype(np.int64), slows.astype(np.int64), lookbacks.astype(np.int64)
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
