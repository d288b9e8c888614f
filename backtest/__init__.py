"""DREX backtesting: a target-weight engine, its metrics and parameter sweeps, on one accounting.

``run(bars, weights, ...)`` -> ``BacktestResult``; ``sweep(strategy, grid, bars, ...)`` -> DataFrame;
``metrics.compute`` / ``metrics.infer_periods_per_year``; ``accounting``: the fill model everything trades
through (``simulate``, ``fill``, ``step``, ``horizon_rewards``). Strategies live in ``backtest.strategies``.
numpy only at import time: pandas and numba are imported inside the functions that need them (fast CLI
start-up).
"""
from __future__ import annotations

from backtest import accounting, metrics
from backtest.engine import BacktestResult, run
from backtest.sweep import sweep

__all__ = ["BacktestResult", "accounting", "metrics", "run", "sweep"]
