"""Registration of the four LLM experts as decision-makers (``expert:trend``, ``expert:reversal``,
``expert:breakout``, ``expert:positioning``).

Importing this module registers them; the ``drex.plugins`` entry point names it (``experts = "experts.plugin"``)
so ``backtest`` never imports ``experts``. Cheap to import: no torch, no transformers (the model loads on the
first cache miss of ``decide``).
"""
from __future__ import annotations

from backtest.decisions import names, register
from experts.expert import EXPERTS

__all__ = ["register_all"]


def register_all() -> None:
    """Register ``expert:<style>`` for the four styles (idempotent)."""
    from backtest import decisions

    for style, cls in EXPERTS.items():
        if f"expert:{style}" not in decisions._REGISTRY:
            register(f"expert:{style}")(cls)


register_all()
assert names  # the registry module is the one the rest of DREX reads

from experts import pairs_plugin  # noqa: F401 - registers pairs_zscore and dqn_pairs
