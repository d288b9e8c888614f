"""Run a registered decision-maker through the engine: the one path the CLI, the dashboard and evaluations use.

``run_strategy(bars, "trend", {"fast": 10}, start=k, fees=0.001)`` builds the decision-maker (parameters bound
and checked once, instance cached per process), decides rows ``k..T-1`` with ``bars[:k]`` as warm-up history,
and backtests those rows (``backtest.run`` on ``bars.iloc[k:]``). ``benchmark(bars, ...)`` is THE
buy-and-hold benchmark: the registered ``buy_and_hold`` decision-maker through the same engine, with the same
costs and execution as the strategy it is compared with.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

__all__ = ["Run", "benchmark", "run_strategy"]


class Run(NamedTuple):
    """A backtest of a decision-maker: the engine's result, the decision (weights + trace) and the instance."""

    result: Any
    decision: Any
    decision_maker: Any


def run_strategy(bars: Any, name: str, params: Mapping[str, Any] | None = None, *, start: int = 0,
                 **engine_kw: Any) -> Run:
    """Decide rows ``start..T-1`` of ``bars`` with the registered ``name`` and backtest them.

    bars: canonical bars, ``T`` rows (rows before ``start`` are history only). params: text or typed values
    over the declared defaults. engine_kw: ``backtest.run`` options (fees, slippage, execution, ...).
    """
    from backtest.decisions import build, decide
    from backtest.engine import run

    dm = build(name, params)
    decision = decide(dm, bars, start=start)
    result = run(bars.iloc[start:] if start else bars, decision.weights, **engine_kw)
    return Run(result, decision, dm)


def benchmark(bars: Any, *, start: int = 0, **engine_kw: Any) -> Any:
    """Buy and hold (total weight 1, equal across assets) of ``bars.iloc[start:]`` with the same engine options:
    the benchmark every report, dashboard page and evaluation shows."""
    return run_strategy(bars, "buy_and_hold", start=start, **engine_kw).result
