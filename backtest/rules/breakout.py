"""Donchian channel breakout with an optional ATR filter."""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from backtest.decisions import Decision
from backtest.params import Param, ParamSpace
from backtest.rules._common import MODE, _decision, _field, _hold_state, _sleeves
from markets import features

__all__ = ["PARAMS", "breakout", "breakout_decision", "breakout_warmup"]

PARAMS = ParamSpace({
    "entry_window": Param(20, low=1, doc="Donchian channel that enters (bars)"),
    "exit_window": Param(10, low=1, doc="Donchian channel that exits (bars)"),
    "atr_window": Param(14, low=1, doc="ATR window of the entry filter (bars)"),
    "atr_mult": Param(0.0, low=0.0, doc="entry needs the close beyond the channel by this many ATRs (0: off)"),
    "mode": MODE,
}, owner="breakout")
"""The declared parameters of ``breakout``."""


def breakout_warmup(p: dict[str, Any]) -> int:
    """Bars of history the channels (and the ATR filter) need."""
    return int(max(p["entry_window"], p["exit_window"], 3 * p["atr_window"] if p["atr_mult"] > 0 else 0) + 1)


def _parts(bars: pd.DataFrame, entry_window, exit_window, atr_window, atr_mult, mode) -> dict[str, np.ndarray]:
    high, low, close = (_field(bars, f) for f in ("high", "low", "close"))
    # Channels of the PREVIOUS bars: the bar itself is excluded (shift 1), so a close can break above it.
    upper, lower, _ = (ch.shift(1).to_numpy() for ch in features.donchian(high, low, entry_window))  # (T, N)
    exit_upper, exit_lower, _ = (ch.shift(1).to_numpy() for ch in features.donchian(high, low, exit_window))
    c = close.to_numpy()
    if atr_mult > 0:
        atr = features.atr(high, low, close, atr_window).to_numpy()
    else:
        atr = np.zeros_like(c)
    margin = atr_mult * atr  # NaN during the ATR warm-up: no entry then
    enter_long, exit_long = c > upper + margin, c < exit_lower
    if mode == "long_short":
        weight = _hold_state(enter_long, exit_long, c < lower - margin, c > exit_upper)
    else:
        weight = _hold_state(enter_long, exit_long)
    weight = _sleeves(weight)  # (T, N): 1/N of equity per asset
    return {"close": c, "upper": upper, "lower": lower, "exit_lower": exit_lower, "exit_upper": exit_upper,
            "atr": atr if atr_mult > 0 else np.full_like(c, np.nan), "weight": weight}


def breakout(bars: pd.DataFrame, **params: Any) -> pd.Series | pd.DataFrame:
    """Donchian breakout: long when the close breaks above the previous ``entry_window``-bar high.

    Exit a long when the close falls below the previous ``exit_window``-bar low. ``mode="long_short"`` also
    shorts a close below the previous ``entry_window``-bar low, covered above the previous ``exit_window``-bar
    high. Channels exclude the current bar. ATR filter: with ``atr_mult > 0`` an entry needs the close beyond
    the channel by ``atr_mult * ATR(atr_window)`` (Wilder), which skips marginal breakouts. Parameters:
    ``PARAMS``.

    bars: canonical bars, ``T`` rows. Returns weights in {-1, 0, 1} / N (1/N sleeves):
    ``(T,)`` Series or ``(T, N)`` DataFrame.
    """
    return breakout_decision(bars, **params).weights


def breakout_decision(bars: pd.DataFrame, **params: Any) -> Decision:
    """``breakout``'s weights and trace: the close, the entry/exit channels, the ATR (if used), the weight."""
    p = PARAMS.bind(params)
    return _decision(bars, _parts(bars, **p))
