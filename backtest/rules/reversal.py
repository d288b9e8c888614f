"""Mean reversion: buy oversold / sell overbought (RSI or Bollinger z-score), exit at the mean."""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from backtest.decisions import Decision
from backtest.params import Param, ParamSpace
from backtest.rules._common import MODE, _decision, _field, _hold_state, _sleeves
from markets import features

__all__ = ["PARAMS", "reversal", "reversal_decision", "reversal_warmup"]


def _rules(p: dict[str, Any]) -> None:
    if not p["lower"] < 50.0 < p["upper"]:
        raise ValueError(f"RSI thresholds need lower < 50 < upper (exit is at 50), got lower={p['lower']}, "
                         f"upper={p['upper']}; e.g. lower=30, upper=70")
    if p["exit_z"] >= p["entry_z"]:
        raise ValueError(f"parameter exit_z ({p['exit_z']}) must be smaller than entry_z ({p['entry_z']}); e.g. "
                         "entry_z=2, exit_z=0 (exit at the mean)")


PARAMS = ParamSpace({
    "method": Param("rsi", choices=("rsi", "bollinger"), doc="RSI or Bollinger z-score"),
    "rsi_window": Param(14, low=2, doc="RSI window (bars)"),
    "lower": Param(30.0, low=0.0, low_open=True, high=100.0, doc="RSI level below which to buy"),
    "upper": Param(70.0, low=0.0, high=100.0, doc="RSI level above which to short (long_short)"),
    "bb_window": Param(20, low=2, doc="Bollinger window (bars)"),
    "entry_z": Param(2.0, low=0.0, low_open=True, doc="Bollinger |z| that enters"),
    "exit_z": Param(0.0, low=0.0, doc="Bollinger |z| that exits (0: at the mean)"),
    "mode": MODE,
}, check=_rules, owner="reversal")
"""The declared parameters of ``reversal``."""


def reversal_warmup(p: dict[str, Any]) -> int:
    """Bars of history the oscillator needs (RSI: a few windows to settle Wilder's smoothing)."""
    return int(3 * p["rsi_window"] if p["method"] == "rsi" else p["bb_window"])


def _parts(bars: pd.DataFrame, method, rsi_window, lower, upper, bb_window, entry_z, exit_z,
           mode) -> dict[str, np.ndarray]:
    close = _field(bars, "close")
    if method == "rsi":
        x = features.rsi(close, rsi_window).to_numpy()  # (T, N)
        lo_in, lo_out, hi_in, hi_out, name = lower, 50.0, upper, 50.0, "rsi"
    else:
        x = features.bollinger_z(close, bb_window).to_numpy()
        lo_in, lo_out, hi_in, hi_out, name = -entry_z, -exit_z, entry_z, exit_z, "zscore"
    enter_long, exit_long = x < lo_in, x >= lo_out  # NaN compares False: no event in warm-up
    if mode == "long_short":
        weight = _hold_state(enter_long, exit_long, x > hi_in, x <= hi_out)
    else:
        weight = _hold_state(enter_long, exit_long)
    weight = _sleeves(weight)  # (T, N): 1/N of equity per asset
    return {name: x, "long_entry": np.full_like(x, lo_in), "long_exit": np.full_like(x, lo_out),
            "short_entry": np.full_like(x, hi_in if mode == "long_short" else np.nan), "weight": weight}


def reversal(bars: pd.DataFrame, **params: Any) -> pd.Series | pd.DataFrame:
    """Mean reversion: enter when the close is stretched from its mean, exit when it comes back.

    ``method="rsi"``: Wilder RSI over ``rsi_window`` bars; long below ``lower``, held until RSI >= 50;
    short (``mode="long_short"``) above ``upper``, held until RSI <= 50.
    ``method="bollinger"``: z = (close - SMA) / std over ``bb_window`` bars; long below ``-entry_z``, held
    until z >= ``-exit_z``; short above ``entry_z``, held until z <= ``exit_z`` (``exit_z=0``: at the mean).
    The position persists between entry and exit (a forward-fill of events, vectorized). Parameters:
    ``PARAMS``.

    bars: canonical bars, ``T`` rows. Returns weights in {-1, 0, 1} / N (1/N sleeves):
    ``(T,)`` Series or ``(T, N)`` DataFrame.
    """
    return reversal_decision(bars, **params).weights


def reversal_decision(bars: pd.DataFrame, **params: Any) -> Decision:
    """``reversal``'s weights and trace: the oscillator (``rsi`` or ``zscore``), entry/exit levels, weight."""
    p = PARAMS.bind(params)
    return _decision(bars, _parts(bars, **p))
