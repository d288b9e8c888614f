"""Registers the routed strategy ``drex`` (:class:`router.strategy.RoutedStrategy`) with the decision-maker
registry. The ``drex.plugins`` entry point names this module (``router = "router.plugin"``), so ``backtest``
never imports ``router``. Cheap to import: no torch (the router loads when a ``drex`` instance is built).
"""
from __future__ import annotations

from backtest.decisions import register
from router.strategy import RoutedStrategy

__all__ = ["RoutedStrategy"]

register("drex")(RoutedStrategy)
