"""Test helpers over the decision-maker registry: weights and per-bar trace records of a registered name."""
from __future__ import annotations

import pandas as pd

from backtest.decisions import decide, trace_record


def weights(name: str, bars: pd.DataFrame, **params):
    """``decide(name, bars, params).weights`` (the whole history)."""
    return decide(name, bars, params).weights


def explain(name: str, bars: pd.DataFrame, **params) -> pd.Series:
    """The trace as a Series of JSON-able per-bar records (``trace_record``), indexed like ``bars``."""
    trace = decide(name, bars, params).trace
    return pd.Series([trace_record(trace, i) for i in range(len(trace))], index=trace.index, dtype=object)
