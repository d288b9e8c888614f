"""Mean reversion: buy oversold / sell overbought (RSI or Bollinger z-score), exit at the mean."""
from __future__ import annotations

import numpy as np
import pandas as pd

from backtest.rules._common import (
    _check_choice,
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

__all__ = ["reversal", "reversal_explain"]


def _check(method, rsi_window, lower, upper, bb_window, entry_z, exit_z, mode) -> tuple:
    method = _check_choice("method", method, ("rsi", "bollinger"))
    rsi_window = _check_int("rsi_window", rsi_window, minimum=2)
    lower = _check_float("lower", lower, low=0.0, low_open=True)
    upper = _check_float("upper", upper, high=100.0)
    if not lower < 50.0 < upper:
        raise ValueError(f"RSI thresholds need lower < 50 < upper (exit is at 50), got lower={lower}, "
                         f"upper={upper}; e.g. lower=30, upper=70")
    bb_window = _check_int("bb_window", bb_window, minimum=2)
    entry_z = _check_float("entry_z", entry_z, low=0.0, low_open=True)
    exit_z = _check_float("exit_z", exit_z, low=0.0)
    if exit_z >= entry_z:
        raise ValueError(f"parameter exit_z ({exit_z}) must be smaller than entry_z ({entry_z}); e.g. entry_z=2, "
                         "exit_z=0 (exit at the mean)")
    return method, rsi_window, lower, upper, bb_window, entry_z, exit_z, _check_mode(mode)


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


def reversal(bars: pd.DataFrame, *, method: str = "rsi", rsi_window: int = 14, lower: float = 30.0,
             upper: float = 70.0, bb_window: int = 20, entry_z: float = 2.0, exit_z: float = 0.0,
             mode: str = "long_only") -> pd.Series | pd.DataFrame:
    """Mean reversion: enter when the close is stretched from its mean, exit when it comes back.

    ``method="rsi"``: Wilder RSI over ``rsi_window`` bars; long below ``lower``, held until RSI >= 50;
    short (``mode="long_short"``) above ``upper``, held until RSI <= 50.
    ``method="bollinger"``: z = (close - SMA) / std over ``bb_window`` bars; long below ``-entry_z``, held
    until z >= ``-exit_z``; short above ``entry_z``, held until z <= ``exit_z`` (``exit_z=0``: at the mean).
    The position persists between entry and exit (a forward-fill of events, vectorized).

    bars: canonical bars, ``T`` rows. Returns weights in {-1, 0, 1} / N (1/N sleeves):
    ``(T,)`` Series or ``(T, N)`` DataFrame.
    """
    args = _check(method, rsi_window, lower, upper, bb_window, entry_z, exit_z, mode)
    return _wrap(bars, _parts(bars, *args)["weight"])


def reversal_explain(bars: pd.DataFrame, *, method: str = "rsi", rsi_window: int = 14, lower: float = 30.0,
                     upper: float = 70.0, bb_window: int = 20, entry_z: float = 2.0, exit_z: float = 0.0,
                     mode: str = "long_only") -> pd.Series:
    """Per bar: the oscillator (``rsi`` or ``zscore``), the entry/exit levels and the weight."""
    args = _check(method, rsi_window, lower, upper, bb_window, entry_z, exit_z, mode)
    return _explain_rows(bars, _parts(bars, *args))
