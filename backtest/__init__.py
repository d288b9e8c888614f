"""DREX backtesting: a vectorized target-weight engine, its metrics and parameter sweeps.

``run(bars, weights, ...)`` -> ``BacktestResult``; ``run_strategy(bars, name, params)`` -> ``Run`` (a registered
decision-maker through the engine); ``benchmark(bars, ...)`` buy and hold with the same costs;
``sweep(strategy, grid, bars, ...)`` -> DataFrame; ``metrics.compute`` / ``metrics.infer_periods_per_year``.
Decision-makers (rule-based and learned) live in the registry of ``backtest.decisions``.
numpy only at import time: pandas is imported inside the functions that need it (fast CLI start-up).
"""
from __future__ import annotations

from backtest import kernels, metrics
from backtest.engine import BacktestResult, run
from backtest.runner import Run, benchmark, run_strategy
from backtest.sweep import sweep

__all__ = ["BacktestResult", "Run", "benchmark", "kernels", "metrics", "run", "run_strategy", "sweep"]
