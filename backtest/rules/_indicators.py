"""Causal indicators used by the rules, on ``(T, N)`` frames (one column per asset).

Thin pandas expressions; each value at bar t uses bars up to t only. Wilder smoothing (RSI, ATR) is
seeded with the simple mean of the first ``window`` values, then ``a_t = a_{t-1} + (x_t - a_{t-1}) / window``
(the textbook recursion, checked against a loop in tests/backtest/test_strategies.py).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

__all__: list[str] = []  # private to backtest.rules


def _wilder(x: pd.DataFrame, window: int) -> pd.DataFrame:
    """Wilder's smoothing of ``x (T, N)``: SMA seed over the first ``window`` valid values, then recursive."""
    out = pd.DataFrame(np.nan, index=x.index, columns=x.columns)
    for col in x.columns:  # a handful of assets; the recursion itself runs in pandas' ewm kernel
        s = x[col]
        first = s.first_valid_index()
        if first is None:
            continue
        start = s.index.get_loc(first)
        vals = s.iloc[start:]
        if len(vals) < window:
            continue
        seed = vals.iloc[:window].mean()
        rest = vals.iloc[window - 1:].copy()
        rest.iloc[0] = seed
        out.loc[rest.index, col] = rest.ewm(alpha=1.0 / window, adjust=False).mean().to_numpy()
    return out


def _rsi(close: pd.DataFrame, window: int) -> pd.DataFrame:
    """Wilder RSI in [0, 100] of ``close (T, N)``; first value at bar ``window``; 100 when no losses."""
    delta = close.diff()
    gain = _wilder(delta.clip(lower=0.0), window)
    loss = _wilder((-delta).clip(lower=0.0), window)
    with np.errstate(divide="ignore", invalid="ignore"):
        rsi = 100.0 - 100.0 / (1.0 + gain / loss)
    return rsi.where(~((loss == 0) & gain.notna()), 100.0).where(gain.notna())


def _bollinger_z(close: pd.DataFrame, window: int) -> pd.DataFrame:
    """``(close - SMA) / std`` over ``window`` bars (population std, ddof=0 as Bollinger); NaN if std is 0."""
    roll = close.rolling(window)
    std = roll.std(ddof=0)
    return (close - roll.mean()) / std.where(std > 0)


def _atr(high: pd.DataFrame, low: pd.DataFrame, close: pd.DataFrame, window: int) -> pd.DataFrame:
    """Wilder average true range; the first true range is ``high - low`` (no previous close)."""
    prev = close.shift(1)
    tr = np.maximum(high - low, np.maximum((high - prev).abs(), (low - prev).abs()))
    tr = tr.where(prev.notna(), high - low)
    return _wilder(tr, window)


def _realized_vol(close: pd.DataFrame, window: int, periods_per_year: float) -> pd.DataFrame:
    """Annualized std (ddof=1) of log returns over ``window`` bars."""
    logret = np.log(close / close.shift(1))
    return logret.rolling(window).std(ddof=1) * np.sqrt(periods_per_year)
