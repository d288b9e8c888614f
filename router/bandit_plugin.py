"""Registration of the ``bandit`` router (``router.bandit``). Importing this module registers it; the
``drex.plugins`` entry point ``bandit = "router.bandit_plugin"`` names it (so ``backtest`` never imports
``router``). Cheap: numpy/pandas only; rl.bandits' numpy policies load on the first decide."""
from __future__ import annotations

from router import bandit

__all__ = ["bandit"]
