"""DREX backtesting: a vectorized target-weight engine, its metrics and parameter sweeps.

``run(bars, weights, ...)`` -> ``BacktestResult``; ``sweep(strategy, grid, bars, ...)`` -> DataFrame;
``metrics.compute`` / ``metrics.infer_periods_per_year``. Strategies live in ``backtest.strategies``.
numpy only at import time: pandas is imported inside the functions that need it (fast CLI start-up).
"""
from __future__ import annotations

from backtest import kernels, metrics
from backtest.engine import BacktestResult, run
from backtest.sweep import sweep

__all__ = ["BacktestResult", "kernels", "metrics", "run", "sweep"]
