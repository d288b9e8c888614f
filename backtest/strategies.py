"""Rule-based strategies: the baselines and the LLM experts' teachers.

Every strategy is a pure function ``(bars, **params) -> weights`` registered by name in ``STRATEGIES``.
Weights are target fractions of equity decided at bar t's close (the engine executes them at t+1), a
``Series`` for a single-asset frame or a ``DataFrame (T, N)`` for a multi-asset frame, same index as ``bars``. Signals are computed per asset,
column-wise; with N assets each asset trades a 1/N sleeve of equity (its per-asset position divided by N), so
a portfolio's gross exposure never exceeds a single asset's (``buy_and_hold`` with weight 1 = equal weight).

``SPECS[name]`` keeps what the registry knows besides the function: the parameter defaults (read from the
signature), an optional ``batched`` function that computes many parameter combinations at once for sweeps,
and an optional ``explain`` function that returns a per-bar, JSON-able explanation of the decision (the paper
ledger stores it; later the router stores its routing trace the same way).
"""
from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

StrategyFn = Callable[..., Any]


@dataclass(frozen=True)
class StrategySpec:
    """What the registry knows about one strategy.

    ``fn(bars, **params) -> weights``; ``defaults``: every parameter's default (from the signature);
    ``batched(bars, **params) -> BatchedWeights(weights (P, T, N), valid (P,))`` where each parameter is a
    scalar or a 1-D array of length P (the expanded product grid, paired element-wise) and ``valid`` marks
    combinations the strategy rejects (e.g. ``fast >= slow``); ``explain(bars, **params) -> Series`` of
    per-bar JSON-able dicts (single asset: ``{quantity: value}``; several assets: ``{asset: {...}}``; NaN as
    None); ``description``: the docstring's first paragraph.
    """

    name: str
    fn: StrategyFn
    defaults: dict[str, Any] = field(default_factory=dict)
    batched: Callable[..., Any] | None = None
    explain: Callable[..., Any] | None = None
    description: str = ""


STRATEGIES: dict[str, StrategyFn] = {}
SPECS: dict[str, StrategySpec] = {}


def register_strategy(name: str, *, batched=None, explain=None):
    """Register ``fn`` under ``name``; duplicate names raise."""

    def deco(fn: StrategyFn) -> StrategyFn:
        if name in STRATEGIES:
            raise ValueError(f"strategy {name!r} is already registered")
        sig = inspect.signature(fn)
        defaults = {
            k: p.default
            for k, p in sig.parameters.items()
            if p.default is not inspect.Parameter.empty and k != "bars"
        }
        doc = (inspect.getdoc(fn) or "").split("\n\n")[0]
        STRATEGIES[name] = fn
        SPECS[name] = StrategySpec(name, fn, defaults, batched, explain, doc)
        return fn

    return deco


def get_strategy(name: str) -> StrategySpec:
    """The spec registered under ``name``; an unknown name lists the valid ones."""
    try:
        return SPECS[name]
    except KeyError:
        raise KeyError(f"unknown strategy {name!r}; registered: {', '.join(sorted(SPECS))}") from None


# ------------------------------------------------------------------------------------------- registrations
from backtest.rules.breakout import breakout, breakout_explain
from backtest.rules.positioning import (
    buy_and_hold,
    buy_and_hold_explain,
    positioning,
    positioning_explain,
)
from backtest.rules.reversal import reversal, reversal_explain
from backtest.rules.trend import BatchedWeights, trend, trend_batched, trend_explain

register_strategy("trend", batched=trend_batched, explain=trend_explain)(trend)
register_strategy("reversal", explain=reversal_explain)(reversal)
register_strategy("breakout", explain=breakout_explain)(breakout)
register_strategy("positioning", explain=positioning_explain)(positioning)
register_strategy("buy_and_hold", explain=buy_and_hold_explain)(buy_and_hold)

__all__ = ["SPECS", "STRATEGIES", "BatchedWeights", "StrategySpec", "get_strategy", "register_strategy"]
