"""Trading environments: the backtester stepped one bar at a time, with its one accounting.

* ``TradingEnv`` / ``BatchedTradingEnv``: one asset; discrete short/flat/long or a continuous exposure.
* ``PairsTradingEnv`` / ``BatchedPairsEnv``: the spread of a cointegrated pair (rolling hedge ratio, z-score,
  holding time, stop-loss and timeout).

Each ``*Env`` is a ``gymnasium.Env`` (gymnasium's and SB3's ``check_env`` pass); each ``Batched*Env`` steps
B episodes at once in numpy with one ``backtest.accounting.step`` call over (B, N) per bar. Episodes start
at random rows of a training window ``(lo, hi)`` and never read a bar at or after ``hi``. Rewards are the net
return per bar after costs, as ``backtest.run`` computes it for the same weights (tested to 1e-9).

This package imports gymnasium; nothing in ``backtest``'s core imports it (the CLI stays fast): import
``backtest.envs`` only where an environment is needed.
"""
from __future__ import annotations

from backtest.envs.features import PairFeatures, pair_features, price_features, windows
from backtest.envs.pairs import BatchedPairsEnv, PairsCore, PairsTradingEnv, pair_names, spread_weights
from backtest.envs.trading import ACTIONS, BatchedTradingEnv, TradingEnv

__all__ = ["ACTIONS", "BatchedPairsEnv", "BatchedTradingEnv", "PairFeatures", "PairsCore", "PairsTradingEnv",
           "TradingEnv", "pair_features", "pair_names", "price_features", "spread_weights", "windows"]
