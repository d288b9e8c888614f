"""Shared plumbing of the rule-based strategies: field access, output shape, parameter checks, kernels.

Every strategy works on a close matrix ``(T, N)`` (one column per asset) and returns weights in the shape of
docs/ARCHITECTURE.md: a ``Series`` for a single-asset frame, a ``DataFrame (T, N)`` for a multi-asset frame.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

import markets
from backtest.decisions import Decision, trace_frame
from backtest.params import Param

__all__: list[str] = []  # private helpers of backtest.rules


# ----------------------------------------------------------------------------------------------- bars access
def _is_multi(bars: pd.DataFrame) -> bool:
    return isinstance(bars.columns, pd.MultiIndex)


def _asset_names(bars: pd.DataFrame) -> list[str]:
    return markets.assets(bars)


def _field(bars: pd.DataFrame, name: str) -> pd.DataFrame:
    """The ``name`` field of every asset as a float64 ``DataFrame (T, N)``, columns = asset names."""
    if not isinstance(bars, pd.DataFrame):
        raise TypeError(f"bars must be a pandas DataFrame of canonical bars, got {type(bars).__name__}")
    return markets.fields(bars, name).astype("float64")


def _wrap(bars: pd.DataFrame, values: np.ndarray | pd.DataFrame, name: str = "weight") -> pd.Series | pd.DataFrame:
    """``(T, N)`` values -> Series (single asset) or DataFrame with asset columns, same index as ``bars``."""
    arr = np.asarray(values, dtype="float64")
    if _is_multi(bars):
        out = pd.DataFrame(arr, index=bars.index, columns=pd.Index(_asset_names(bars), name="asset"))
        return out
    return pd.Series(arr[:, 0], index=bars.index, name=name)


# ------------------------------------------------------------------------------------------ parameters
MODE = Param("long_only", choices=("long_only", "long_short"), doc="long only, or also short")
"""The ``mode`` parameter every rule shares."""


def _decision(bars: pd.DataFrame, parts: dict[str, np.ndarray]) -> Decision:
    """Weights (``parts["weight"]``, ``(T, N)``) and the trace (every part, per bar) as one ``Decision``."""
    return Decision(_wrap(bars, parts["weight"]), trace_frame(bars, parts))


# ----------------------------------------------------------------------------------------------- kernels
def _sma_windows(x: np.ndarray, windows: Sequence[int]) -> np.ndarray:
    """Simple moving averages of ``x (T, N)`` for every window at once -> ``(W, T, N)``.

    Cumulative-sum kernel: one pass over the data whatever the number of windows. Semantics equal
    ``pandas.DataFrame.rolling(w).mean()`` (NaN until ``w`` valid values fill the window; a NaN inside the
    window gives NaN), cross-checked in tests/backtest/test_strategies.py. The cumulative sums are taken
    around the first valid value of each column so float error stays at ~1e-12 relative.
    """
    x = np.asarray(x, dtype="float64")
    T, N = x.shape
    valid = np.isfinite(x)
    first = np.where(valid.any(axis=0), valid.argmax(axis=0), 0)
    ref = x[first, np.arange(N)]  # (N,) a value close to the data's level: keeps cumsum small
    ref = np.where(np.isfinite(ref), ref, 0.0)
    centered = np.where(valid, x - ref, 0.0)
    csum = np.zeros((T + 1, N))
    csum[1:] = np.cumsum(centered, axis=0)  # (T+1, N)
    ccount = np.zeros((T + 1, N), dtype=np.int64)
    ccount[1:] = np.cumsum(valid, axis=0)
    w = np.asarray(windows, dtype=np.int64)
    out = np.full((len(w), T, N), np.nan)
    t = np.arange(T)
    for k, win in enumerate(w):  # loop over distinct windows only (tens), never over bars
        if win > T:
            continue
        hi = t[win - 1:] + 1
        lo = hi - win
        s = csum[hi] - csum[lo]  # (T-win+1, N)
        n = ccount[hi] - ccount[lo]
        out[k, win - 1:] = np.where(n == win, s / win + ref, np.nan)
    return out


def _sleeves(weights: np.ndarray) -> np.ndarray:
    """Per-asset positions ``(..., T, N)`` -> weights: each of the N assets gets a 1/N sleeve of equity.

    A single asset keeps its position as the weight; N assets never exceed the gross exposure of one.
    """
    return weights / weights.shape[-1]


def _sign_position(signal: np.ndarray, mode: str) -> np.ndarray:
    """+1 where ``signal > 0``; -1 (long_short) or 0 (long_only) where ``< 0``; 0 where 0 or NaN."""
    pos = np.sign(np.nan_to_num(signal, nan=0.0))
    if mode == "long_only":
        pos = np.maximum(pos, 0.0)
    return pos + 0.0  # no negative zeros


def _hold_state(enter_long: np.ndarray, exit_long: np.ndarray, enter_short: np.ndarray | None = None,
                exit_short: np.ndarray | None = None) -> np.ndarray:
    """Vectorized entry/exit hysteresis for ``(T, N)`` boolean event arrays -> positions in {-1, 0, +1}.

    At each bar the latest event wins: an entry sets the state, an exit returns it to flat (an exit of the
    other side leaves it alone). Events on the same bar: entries take precedence over exits of the same side.
    Implemented as a forward-fill of event codes, no loop over bars.
    """
    T, N = enter_long.shape
    # state after each event: enter_long -> +1, enter_short -> -1, exit of the held side -> 0.
    long_state = np.full((T, N), np.nan)
    long_state[exit_long] = 0.0
    long_state[enter_long] = 1.0
    long_state = pd.DataFrame(long_state).ffill().fillna(0.0).to_numpy()
    if enter_short is None:
        return long_state
    short_state = np.full((T, N), np.nan)
    short_state[exit_short] = 0.0
    short_state[enter_short] = -1.0
    short_state = pd.DataFrame(short_state).ffill().fillna(0.0).to_numpy()
    # Both sides as independent state machines; when both are "on" the more recent entry wins.
    idx = np.arange(T)[:, None]
    last_long = pd.DataFrame(np.where(enter_long, idx, np.nan)).ffill().to_numpy()
    last_short = pd.DataFrame(np.where(enter_short, idx, np.nan)).ffill().to_numpy()
    both = (long_state != 0) & (short_state != 0)
    newer_long = np.nan_to_num(last_long, nan=-1) >= np.nan_to_num(last_short, nan=-1)
    out = long_state + short_state
    out = np.where(both, np.where(newer_long, 1.0, -1.0), out)
    return out
