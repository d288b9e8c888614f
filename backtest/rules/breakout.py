"""Donchian channel breakout with an optional ATR filter."""
from __future__ import annotations

import numpy as np
import pandas as pd

from backtest.rules._common import (
    _check_float,
    _check_int,
    _check_mode,
    _explain_rows,
    _field,
    _hold_state,
    _sleeves,
    _wrap,
)
from markets import features

__all__ = ["breakout", "breakout_explain"]


def _check(entry_window, exit_window, atr_window, atr_mult, mode) -> tuple:
    return (_check_int("entry_window", entry_window), _check_int("exit_window", exit_window),
            _check_int("atr_window", atr_window), _check_float("atr_mult", atr_mult, low=0.0), _check_mode(mode))


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


def breakout(bars: pd.DataFrame, *, entry_window: int = 20, exit_window: int = 10, atr_window: int = 14,
             atr_mult: float = 0.0, mode: str = "long_only") -> pd.Series | pd.DataFrame:
    """Donchian breakout: long when the close breaks above the previous ``entry_window``-bar high.

    Exit a long when the close falls below the previous ``exit_window``-bar low. ``mode="long_short"`` also
    shorts a close below the previous ``entry_window``-bar low, covered above the previous ``exit_window``-bar
    high. Channels exclude the current bar. ATR filter: with ``atr_mult > 0`` an entry needs the close beyond
    the channel by ``atr_mult * ATR(atr_window)`` (Wilder), which skips marginal breakouts.

    bars: canonical bars, ``T`` rows. Returns weights in {-1, 0, 1} / N (1/N sleeves):
    ``(T,)`` Series or ``(T, N)`` DataFrame.
    """
    return _wrap(bars, _parts(bars, *_check(entry_window, exit_window, atr_window, atr_mult, mode))["weight"])


def breakout_explain(bars: pd.DataFrame, *, entry_window: int = 20, exit_window: int = 10, atr_window: int = 14,
                     atr_mult: float = 0.0, mode: str = "long_only") -> pd.Series:
    """Per bar: the close, the entry/exit channels, the ATR (if used) and the weight."""
    return _explain_rows(bars, _parts(bars, *_check(entry_window, exit_window, atr_window, atr_mult, mode)))
