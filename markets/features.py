"""Causal, vectorized price features: the value at bar t uses bars 0..t only.

Every function takes a Series ``(T,)`` or a DataFrame ``(T, N)`` (one column per asset; ``high``/``low``/
``close`` arguments must share index and columns) and returns the same shape and type. Warm-up bars are NaN.
Wilder smoothing (RSI, ATR, ADX) is seeded with the simple mean of the first ``window`` values and then
follows ``s_t = s_{t-1} + (x_t - s_{t-1}) / window`` (Wilder 1978; the TA-Lib convention).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from markets.errors import DataError

__all__ = [
    "adx",
    "atr",
    "bollinger_z",
    "donchian",
    "ema",
    "realized_vol",
    "returns",
    "rolling_zscore",
    "rsi",
    "sma",
]

Frame = pd.Series | pd.DataFrame


def _window(value: int, name: str = "window") -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise DataError(f"{name} must be a positive int, got {value!r}", rule="bad-parameter")
    return int(value)


def _check(x: Frame, name: str) -> Frame:
    if not isinstance(x, pd.Series | pd.DataFrame):
        raise DataError(
            f"{name} must be a pandas Series (T,) or DataFrame (T, N), got {type(x).__name__}",
            rule="bad-parameter",
        )
    return x


def _same_shape(*xs: Frame) -> None:
    first = xs[0]
    for x in xs[1:]:
        if type(x) is not type(first) or x.shape != first.shape or not x.index.equals(first.index):
            raise DataError(
                "high, low and close must have the same type, shape and index", rule="bad-parameter"
            )


def returns(close: Frame, log: bool = False) -> Frame:
    """Simple ``c_t / c_{t-1} - 1`` (or log ``ln(c_t / c_{t-1})``) returns; the first bar is NaN."""
    _check(close, "close")
    ratio = close / close.shift(1)
    return np.log(ratio) if log else ratio - 1.0


def sma(x: Frame, window: int) -> Frame:
    """Simple moving average over the last ``window`` bars (NaN until ``window`` bars exist)."""
    return _check(x, "x").rolling(_window(window), min_periods=_window(window)).mean()


def ema(x: Frame, span: int) -> Frame:
    """Exponential moving average, ``alpha = 2 / (span + 1)``, recursive from the first value
    (``e_0 = x_0``, ``e_t = e_{t-1} + alpha (x_t - e_{t-1})``); NaN for the first ``span - 1`` bars."""
    span = _window(span, "span")
    return _check(x, "x").ewm(span=span, adjust=False, min_periods=span).mean()


def _wilder(x: Frame, window: int) -> Frame:
    """Wilder smoothing of each column, seeded at its first run of ``window`` valid values.

    Columns sharing a seed position (the usual case) are smoothed together in one ``ewm`` call.
    """
    if isinstance(x, pd.Series):
        return _wilder(x.to_frame(), window).iloc[:, 0].rename(x.name)
    values = x.to_numpy(dtype="float64")  # (T, N)
    full = x.rolling(window, min_periods=window).count().to_numpy() == window  # (T, N)
    seed_at = np.where(full.any(axis=0), full.argmax(axis=0), -1)  # (N,)
    out = np.full(values.shape, np.nan)
    for pos in np.unique(seed_at[seed_at >= 0]):
        cols = np.flatnonzero(seed_at == pos)
        sub = values[:, cols].copy()  # (T, n)
        sub[pos] = sub[pos - window + 1 : pos + 1].mean(axis=0)
        sub[:pos] = np.nan
        out[:, cols] = pd.DataFrame(sub).ewm(alpha=1.0 / window, adjust=False).mean().to_numpy()
    return pd.DataFrame(out, index=x.index, columns=x.columns)


def rsi(close: Frame, window: int = 14) -> Frame:
    """Wilder's Relative Strength Index in [0, 100]; first value at bar ``window``.

    ``100 - 100 / (1 + avg_gain / avg_loss)`` with Wilder-smoothed gains and losses of ``close.diff()``;
    100 when there are no losses, 50 when the price did not move at all.
    """
    window = _window(window)
    delta = _check(close, "close").diff()
    gain, loss = _wilder(delta.clip(lower=0.0), window), _wilder((-delta).clip(lower=0.0), window)
    total = gain + loss
    out = 100.0 * gain / total
    return out.where(total != 0, 50.0).where(gain.notna())


def _true_range(high: Frame, low: Frame, close: Frame) -> Frame:
    """``max(h - l, |h - c_{t-1}|, |l - c_{t-1}|)``; NaN at the first bar (no previous close)."""
    prev = close.shift(1)
    tr = np.maximum(np.maximum(high - low, (high - prev).abs()), (low - prev).abs())
    return tr.where(prev.notna())


def atr(high: Frame, low: Frame, close: Frame, window: int = 14) -> Frame:
    """Wilder's Average True Range; first value at bar ``window`` (mean of true ranges 1..window)."""
    _same_shape(_check(high, "high"), _check(low, "low"), _check(close, "close"))
    return _wilder(_true_range(high, low, close), _window(window))


def bollinger_z(close: Frame, window: int = 20) -> Frame:
    """Position inside the Bollinger band: ``(c - sma) / std``, population std (ddof=0) as Bollinger."""
    window = _window(window)
    roll = _check(close, "close").rolling(window, min_periods=window)
    return ((close - roll.mean()) / roll.std(ddof=0)).replace([np.inf, -np.inf], np.nan)


def donchian(high: Frame, low: Frame, window: int = 20) -> tuple[Frame, Frame, Frame]:
    """Donchian channel over the last ``window`` bars INCLUDING bar t: ``(upper, lower, mid)``.

    A breakout rule should compare ``close_t`` with ``upper.shift(1)`` (the channel before bar t).
    """
    window = _window(window)
    _same_shape(_check(high, "high"), _check(low, "low"))
    upper = high.rolling(window, min_periods=window).max()
    lower = low.rolling(window, min_periods=window).min()
    return upper, lower, (upper + lower) / 2.0


def adx(high: Frame, low: Frame, close: Frame, window: int = 14) -> Frame:
    """Wilder's Average Directional Index in [0, 100]; first value at bar ``2 * window - 1``.

    +DM = up-move if it exceeds the down-move and is positive, else 0 (and symmetrically -DM); +DI/-DI are
    Wilder-smoothed DM over Wilder-smoothed true range; DX = 100 |+DI - -DI| / (+DI + -DI); ADX = Wilder
    smoothing of DX seeded with the mean of the first ``window`` DX values.
    """
    window = _window(window)
    _same_shape(_check(high, "high"), _check(low, "low"), _check(close, "close"))
    up, down = high.diff(), -low.diff()
    plus_dm = up.where((up > down) & (up > 0), 0.0).where(up.notna())
    minus_dm = down.where((down > up) & (down > 0), 0.0).where(down.notna())
    tr = _wilder(_true_range(high, low, close), window)
    plus_di, minus_di = 100.0 * _wilder(plus_dm, window) / tr, 100.0 * _wilder(minus_dm, window) / tr
    di_sum = plus_di + minus_di
    dx = (100.0 * (plus_di - minus_di).abs() / di_sum).where(di_sum != 0, 0.0).where(di_sum.notna())
    return _wilder(dx, window)


def realized_vol(close: Frame, window: int = 20, periods_per_year: float | None = None) -> Frame:
    """Rolling sample std (ddof=1) of log returns over ``window`` bars, times ``sqrt(periods_per_year)``
    when given (e.g. 252 for daily equities, 365 for daily crypto)."""
    window = _window(window)
    vol = returns(close, log=True).rolling(window, min_periods=window).std(ddof=1)
    if periods_per_year is not None:
        if periods_per_year <= 0:
            raise DataError(f"periods_per_year must be > 0, got {periods_per_year!r}", rule="bad-parameter")
        vol = vol * np.sqrt(periods_per_year)
    return vol


def rolling_zscore(x: Frame, window: int) -> Frame:
    """``(x - rolling mean) / rolling sample std (ddof=1)`` over the last ``window`` bars; NaN when flat."""
    window = _window(window)
    roll = _check(x, "x").rolling(window, min_periods=window)
    return ((x - roll.mean()) / roll.std(ddof=1)).replace([np.inf, -np.inf], np.nan)
