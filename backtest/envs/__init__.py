"""Trading environments: the backtester stepped one bar at a time, with its one accounting.

* ``TradingEnv`` / ``BatchedTradingEnv``: one asset; discrete short/flat/long or a continuous exposure.
* ``PairsTradingEnv`` / ``BatchedPairsEnv``: the spread of a cointegrated pair (rolling hedge ratio, z-score,
  holding time, stop-loss and timeout).

Each ``*Env`` is a ``gymnasium.Env`` (gymnasium's and SB3's ``check_env`` pass); each ``Batched*Env`` steps
B episodes at once in numpy with one ``backtest.accounting.step`` call over (B, N) per bar. Episodes start
at random rows of a training window ``(lo, hi)`` and never read a bar at or after ``hi``. Rewards are the net
return per bar after costs, as ``backtest.run`` computes it for the same weights (tested to 1e-9).

Names load lazily: ``backtest.envs.features`` (numpy only, used by the pairs decision-makers) never imports
gymnasium; the environments do, when first used. Nothing in ``backtest``'s core imports this package.
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from backtest.envs.features import (
        PairFeatures,
        pair_features,
        pair_names,
        price_features,
        spread_weights,
        windows,
    )
    from backtest.envs.pairs import BatchedPairsEnv, PairsCore, PairsTradingEnv
    from backtest.envs.trading import ACTIONS, BatchedTradingEnv, TradingEnv

_WHERE = {
    "PairFeatures": "features", "pair_features": "features", "pair_names": "features",
    "price_features": "features", "spread_weights": "features", "windows": "features",
    "BatchedPairsEnv": "pairs", "PairsCore": "pairs", "PairsTradingEnv": "pairs",
    "ACTIONS": "trading", "BatchedTradingEnv": "trading", "TradingEnv": "trading",
}
__all__ = ["ACTIONS", "BatchedPairsEnv", "BatchedTradingEnv", "PairFeatures", "PairsCore", "PairsTradingEnv",
           "TradingEnv", "pair_features", "pair_names", "price_features", "spread_weights", "windows"]


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'backtest.envs' has no attribute {name!r}")
    return getattr(importlib.import_module(f"backtest.envs.{_WHERE[name]}"), name)


def __dir__() -> list[str]:
    return __all__
