"""Position sizing: volatility targeting (optionally under a trend filter) and buy and hold."""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from backtest.decisions import Decision
from backtest.params import Param, ParamSpace
from backtest.rules._common import MODE, _decision, _field, _sleeves, _sma_windows
from markets import features

__all__ = ["BUY_AND_HOLD_PARAMS", "PARAMS", "buy_and_hold", "buy_and_hold_decision", "positioning",
           "positioning_decision", "positioning_warmup"]

PARAMS = ParamSpace({
    "target_vol": Param(0.15, low=0.0, low_open=True, doc="annualized volatility to target (0.15 = 15%)"),
    "vol_window": Param(20, low=2, doc="realized-volatility window (bars)"),
    "max_leverage": Param(1.0, low=0.0, low_open=True, doc="cap on each asset's exposure"),
    "trend_window": Param(0, low=0, doc="SMA trend filter window (bars; 0: no filter)"),
    "mode": MODE,
    "periods_per_year": Param(0.0, low=0.0, doc="annualization of the volatility (0: inferred from the index)"),
}, owner="positioning")
"""The declared parameters of ``positioning``."""

BUY_AND_HOLD_PARAMS = ParamSpace({
    "weight": Param(1.0, low=-10.0, high=10.0, doc="total exposure, split equally across assets"),
}, owner="buy_and_hold")
"""The declared parameters of ``buy_and_hold``."""


def positioning_warmup(p: dict[str, Any]) -> int:
    """Bars of history the volatility estimate (and the trend filter) need."""
    return int(max(p["vol_window"] + 1, p["trend_window"]))


def _ppy(bars: pd.DataFrame, periods_per_year: float) -> float | np.ndarray:
    """The annualization: the parameter, or (0) inferred causally per bar (``(T, 1)``: never from later bars)."""
    if periods_per_year > 0:
        return periods_per_year
    from backtest.metrics import periods_per_year_series

    return periods_per_year_series(bars.index)[:, None]


def _parts(bars, target_vol, vol_window, max_leverage, trend_window, mode, periods_per_year) -> dict:
    close = _field(bars, "close")
    ppy = _ppy(bars, periods_per_year)
    vol = features.realized_vol(close, vol_window).to_numpy() * np.sqrt(ppy)  # (T, N) annualized
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


def positioning(bars: pd.DataFrame, **params: Any) -> pd.Series | pd.DataFrame:
    """Volatility targeting: exposure = ``min(target_vol / realized_vol, max_leverage)`` per asset.

    ``realized_vol``: annualized std (ddof=1) of log returns over ``vol_window`` bars
    (``periods_per_year``; 0 infers it from the index: 252 for weekday daily bars, 365 for 24/7 ...).
    Trend filter: with ``trend_window > 0`` the exposure is taken only when the close is above its
    ``trend_window``-bar SMA (``mode="long_short"``: negative below it); 0 disables the filter (always long).
    Parameters: ``PARAMS``.

    bars: canonical bars, ``T`` rows. Returns weights in [-max_leverage, max_leverage] / N (1/N sleeves): ``(T,)`` Series or
    ``(T, N)`` DataFrame (each asset sized on its own volatility).
    """
    return positioning_decision(bars, **params).weights


def positioning_decision(bars: pd.DataFrame, **params: Any) -> Decision:
    """``positioning``'s weights and trace: realized and target volatility, the trend filter's SMA, the size
    before the filter, the weight."""
    p = PARAMS.bind(params)
    return _decision(bars, _parts(bars, **p))


def buy_and_hold(bars: pd.DataFrame, **params: Any) -> pd.Series | pd.DataFrame:
    """Buy and hold: a constant total exposure ``weight`` from the first bar, split equally across assets.

    bars: canonical bars, ``T`` rows, ``N`` assets. Returns ``weight / N`` everywhere: ``(T,)`` Series or
    ``(T, N)`` DataFrame (executed at the second bar, like every decision).
    """
    return buy_and_hold_decision(bars, **params).weights


def buy_and_hold_decision(bars: pd.DataFrame, **params: Any) -> Decision:
    """``buy_and_hold``'s weights and trace (the weight)."""
    p = BUY_AND_HOLD_PARAMS.bind(params)
    return _decision(bars, {"weight": _sleeves(np.full(_field(bars, "close").shape, p["weight"]))})
