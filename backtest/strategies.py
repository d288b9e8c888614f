"""The rule-based decision-makers: the baselines and the LLM experts' teachers.

Each is a pure function ``fn(bars, **params) -> Decision`` over the whole history (``backtest.decisions``
wraps it; ``decide(bars, start=k)`` slices rows ``k..``), registered with its declared parameters
(``backtest.params``). Weights are target fractions of equity decided at bar t's close (the engine executes
them at t+1). Signals are computed per asset, column-wise; with N assets each asset trades a 1/N sleeve of
equity (its per-asset position divided by N), so a portfolio's gross exposure never exceeds a single asset's
(``buy_and_hold`` with weight 1 = equal weight). ``trend`` also registers a batched grid function for fast
sweeps. The weight-only functions (``backtest.rules.trend.trend`` ...) stay importable for direct use.

Importing this module registers them; ``backtest.decisions`` imports it on first use of the registry.
"""
from __future__ import annotations

import inspect

from backtest.decisions import register
from backtest.rules import breakout, positioning, reversal, trend
from backtest.rules.trend import BatchedWeights

__all__ = ["BatchedWeights"]


def _summary(fn) -> str:
    return inspect.getdoc(fn).split("\n\n")[0].replace("\n", " ")


register("trend", params=trend.PARAMS, batched=trend.trend_batched, warmup=trend.trend_warmup,
         description=_summary(trend.trend))(trend.trend_decision)
register("reversal", params=reversal.PARAMS, warmup=reversal.reversal_warmup,
         description=_summary(reversal.reversal))(reversal.reversal_decision)
register("breakout", params=breakout.PARAMS, warmup=breakout.breakout_warmup,
         description=_summary(breakout.breakout))(breakout.breakout_decision)
register("positioning", params=positioning.PARAMS, warmup=positioning.positioning_warmup,
         description=_summary(positioning.positioning))(positioning.positioning_decision)
register("buy_and_hold", params=positioning.BUY_AND_HOLD_PARAMS,
         description=_summary(positioning.buy_and_hold))(positioning.buy_and_hold_decision)
