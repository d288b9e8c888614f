"""Position sizing: volatility targeting (optionally under a trend filter) and buy and hold."""
from __future__ import annotations

import numpy as np
import pandas as pd

from backtest.rules._common import (
    _check_float,
    _check_int,
    _check_mode,
    _explain_rows,
    _field,
    _sleeves,
    _sma_windows,
    _wrap,
)
from markets import features

__all__ = ["buy_and_hold", "buy_and_hold_explain", "positioning", "positioning_explain"]


def _check(target_vol, vol_window, max_leverage, trend_window, mode, periods_per_year) -> tuple:
    return (_check_float("target_vol", target_vol, low=0.0, low_open=True),
            _check_int("vol_window", vol_window, minimum=2),
            _check_float("max_leverage", max_leverage, low=0.0, low_open=True),
            _check_int("trend_window", trend_window, minimum=0), _check_mode(mode),
            _check_float("periods_per_year", periods_per_year, low=0.0))


def _ppy(bars: pd.DataFrame, periods_per_year: float) -> float:
    if periods_per_year > 0:
        return periods_per_year
    from backtest.metrics import infer_periods_per_year

    return float(infer_periods_per_year(bars.index))


def _parts(bars, target_vol, vol_window, max_leverage, trend_window, mode, periods_per_year) -> dict:
    close = _field(bars, "close")
    ppy = _ppy(bars, periods_per_year)
    vol = features.realized_vol(close, vol_window, ppy).to_numpy()  # (T, N) annualized
    with np.errstate(divide="ignore", invalid="ignore"):
        size = np.minimum(target_vol / vol, max_leverage)  # vol 0 -> inf -> capped; NaN (warm-up) stays NaN
    c = close.to_numpy()
    if trend_window > 0:
        trend_ma = _sma_windows(c, [trend_window])[0]
        direction = np.sign(c - trend_ma)  # NaN in the filter's warm-up -> flat
        if mode == "long_only":
            direction = np.maximum(direction, 0.0)
    else:
        trend_ma = np.full_like(c, np.nan)
        direction = np.ones_like(c)  # no filter: always long, whatever the mode
    weight = _sleeves(np.nan_to_num(size * direction, nan=0.0) + 0.0)  # (T, N): 1/N of equity per asset
    return {"realized_vol": vol, "target_vol": np.full_like(c, target_vol), "trend_ma": trend_ma,
            "size": size, "weight": weight}


def positioning(bars: pd.DataFrame, *, target_vol: float = 0.15, vol_window: int = 20, max_leverage: float = 1.0,
                trend_window: int = 0, mode: str = "long_only",
                periods_per_year: float = 0.0) -> pd.Series | pd.DataFrame:
    """Volatility targeting: exposure = ``min(target_vol / realized_vol, max_leverage)`` per asset.

    ``realized_vol``: annualized std (ddof=1) of log returns over ``vol_window`` bars
    (``periods_per_year``; 0 infers it from the index: 252 for weekday daily bars, 365 for 24/7 ...).
    Trend filter: with ``trend_window > 0`` the exposure is taken only when the close is above its
    ``trend_window``-bar SMA (``mode="long_short"``: negative below it); 0 disables the filter (always long).

    bars: canonical bars, ``T`` rows. Returns weights in [-max_leverage, max_leverage] / N (1/N sleeves): ``(T,)`` Series or
    ``(T, N)`` DataFrame (each asset sized on its own volatility).
    """
    args = _check(target_vol, vol_window, max_leverage, trend_window, mode, periods_per_year)
    return _wrap(bars, _parts(bars, *args)["weight"])


def positioning_explain(bars: pd.DataFrame, *, target_vol: float = 0.15, vol_window: int = 20,
                        max_leverage: float = 1.0, trend_window: int = 0, mode: str = "long_only",
                        periods_per_year: float = 0.0) -> pd.Series:
    """Per bar: realized and target volatility, the trend filter's SMA, the size before the filter, the weight."""
    args = _check(target_vol, vol_window, max_leverage, trend_window, mode, periods_per_year)
    return _explain_rows(bars, _parts(bars, *args))


def _bh_weights(bars: pd.DataFrame, weight: float) -> np.ndarray:
    close = _field(bars, "close")
    return _sleeves(np.full(close.shape, weight))


def buy_and_hold(bars: pd.DataFrame, *, weight: float = 1.0) -> pd.Series | pd.DataFrame:
    """Buy and hold: a constant total exposure ``weight`` from the first bar, split equally across assets.

    bars: canonical bars, ``T`` rows, ``N`` assets. Returns ``weight / N`` everywhere: ``(T,)`` Series or
    ``(T, N)`` DataFrame (executed at the second bar, like every decision).
    """
    weight = _check_float("weight", weight)
    return _wrap(bars, _bh_weights(bars, weight))


def buy_and_hold_explain(bars: pd.DataFrame, *, weight: float = 1.0) -> pd.Series:
    """Per bar: the weight."""
    weight = _check_float("weight", weight)
    return _explain_rows(bars, {"weight": _bh_weights(bars, weight)})
