"""DREX backtesting: a target-weight engine, its metrics and parameter sweeps, on one accounting.

``run(bars, weights, ...)`` -> ``BacktestResult``; ``run_strategy(bars, name, params)`` -> ``Run`` (a registered
decision-maker through the engine); ``benchmark(bars, ...)`` buy and hold with the same costs;
``sweep(strategy, grid, bars, ...)`` -> DataFrame; ``metrics.compute`` / ``metrics.infer_periods_per_year``;
``accounting``: the fill model everything trades through (``simulate``, ``fill``, ``step``,
``horizon_rewards``). Decision-makers (rule-based and learned) live in the registry of ``backtest.decisions``.
numpy only at import time: pandas and numba are imported inside the functions that need them (fast CLI
start-up).
"""
from __future__ import annotations

from backtest import accounting, metrics
from backtest.engine import BacktestResult, run
from backtest.runner import Run, benchmark, run_strategy
from backtest.sweep import sweep

__all__ = ["BacktestResult", "Run", "accounting", "benchmark", "metrics", "run", "run_strategy", "sweep"]
