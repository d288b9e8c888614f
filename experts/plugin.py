"""Registration of the four LLM experts as decision-makers (``expert:trend``, ...).

Importing this module registers them; the ``drex.plugins`` entry point names it (``experts = "experts.plugin"``)
so ``backtest`` never imports ``experts``. Cheap to import: no torch, no transformers (the model loads on the
first cache miss of ``decide``).

TEMPORARY bridge: until the decision-maker contract (``backtest.decisions``) is on main, the experts are
registered as plain strategies in ``backtest.strategies`` (function ``(bars, **params) -> weights`` with an
``explain`` giving the per-bar trace), which is enough for ``drex backtest SPEC -s expert:trend``.
"""
from __future__ import annotations

from typing import Any

from experts.expert import EXPERTS

__all__ = ["register_all"]


def _as_strategy(cls):
    defaults = {k: p.default for k, p in cls.params.items()}

    def fn(bars, **params: Any):
        return cls(**{**defaults, **params}).decide(bars).weights

    def explain(bars, **params: Any):
        import pandas as pd

        trace = cls(**{**defaults, **params}).decide(bars).trace
        return pd.Series(trace.to_dict("records"), index=trace.index, name="explanation", dtype=object)

    fn.__signature__ = _signature(defaults)  # the registry reads parameter defaults from the signature
    fn.__doc__ = cls.__doc__
    return fn, explain


def _signature(defaults: dict[str, Any]):
    import inspect

    params = [inspect.Parameter("bars", inspect.Parameter.POSITIONAL_OR_KEYWORD)]
    params += [inspect.Parameter(k, inspect.Parameter.KEYWORD_ONLY, default=v) for k, v in defaults.items()]
    return inspect.Signature(params)


def register_all() -> None:
    """Register ``expert:<style>`` for the four styles (idempotent)."""
    try:
        from backtest.decisions import register  # type: ignore[import-not-found]
    except ImportError:
        from backtest.strategies import SPECS, register_strategy

        for style, cls in EXPERTS.items():
            name = f"expert:{style}"
            if name not in SPECS:
                fn, explain = _as_strategy(cls)
                register_strategy(name, explain=explain)(fn)
        return
    for style, cls in EXPERTS.items():  # pragma: no cover - once the contract lands
        register(f"expert:{style}")(cls)


register_all()
