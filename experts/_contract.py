"""The decision-maker contract's types (``backtest.decisions``), with a stand-in until it lands on main.

TEMPORARY: once ``backtest.decisions`` exists this module only re-exports it; the fallback below mirrors
CONTRACT.md (Decision, DecisionMaker, Param) so the experts can be written against the final interface now.
"""
from __future__ import annotations

try:  # the real contract
    from backtest.decisions import Decision, DecisionMaker, Param  # type: ignore[import-not-found]
except ImportError:  # pragma: no cover - removed when the contract is merged
    from dataclasses import dataclass
    from typing import Any, ClassVar, NamedTuple

    class Decision(NamedTuple):  # type: ignore[no-redef]
        weights: Any
        trace: Any

    @dataclass(frozen=True)
    class Param:  # type: ignore[no-redef]
        default: Any
        low: float | None = None
        high: float | None = None
        choices: tuple | None = None
        doc: str = ""

    class DecisionMaker:  # type: ignore[no-redef]
        name: ClassVar[str] = ""
        params: ClassVar[dict[str, Param]] = {}
        example_spec: ClassVar[str] = "sample:SP500"
        warmup: int = 0

        def __init__(self, **params: Any) -> None:
            self.params_bound = {k: params.get(k, p.default) for k, p in self.params.items()}

__all__ = ["Decision", "DecisionMaker", "Param"]
