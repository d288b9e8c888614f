"""Expert sets: which decision-makers the router weights, and their exposures over a backtest.

An expert set is a list of registered decision-makers with parameters. Named sets:

* ``"rules"``: the rule-based teachers, set up so that each covers one market regime (docs/router.md has
  the measured regime-conditional returns): ``trend`` (5/20 SMA crossover, long/short), ``reversal``
  (Bollinger z 20, long/short), ``breakout`` (Donchian 20/10, long/short), ``positioning`` (15% volatility
  target, long).
* ``"llm"``: the four LLM experts ``expert:trend``, ``expert:reversal``, ``expert:breakout``,
  ``expert:positioning`` (registered by the ``experts`` plugin) with their default checkpoints.

Any other value is a comma-separated list of registered names, each optionally with parameters in the
query syntax of data specs: ``"trend?mode=long_short&fast=10,buy_and_hold"``.

:func:`exposures` decides every expert for rows ``start..T-1`` (each expert once, vectorized over the bars,
through ``backtest.decisions.decide``) and returns their weights ``(R, N, K)`` and answer texts.
"""
from __future__ import annotations

from typing import Any, NamedTuple
from urllib.parse import parse_qsl

import numpy as np

__all__ = ["EXPERT_SETS", "REGIME_EXPERT", "ExpertSpec", "Exposures", "exposures", "label", "parse_experts"]


class ExpertSpec(NamedTuple):
    """One expert: a registered decision-maker name and its parameters (text or typed values)."""

    name: str
    params: dict[str, Any]

    @property
    def text(self) -> str:
        """The spec as written in an expert list (``name?k=v&...``)."""
        if not self.params:
            return self.name
        return self.name + "?" + "&".join(f"{k}={v}" for k, v in self.params.items())


EXPERT_SETS: dict[str, tuple[ExpertSpec, ...]] = {
    "rules": (
        ExpertSpec("trend", {"mode": "long_short", "fast": 5, "slow": 20}),
        ExpertSpec("reversal", {"mode": "long_short", "method": "bollinger"}),
        ExpertSpec("breakout", {"mode": "long_short"}),
        ExpertSpec("positioning", {}),
    ),
    "llm": (
        ExpertSpec("expert:trend", {}),
        ExpertSpec("expert:reversal", {}),
        ExpertSpec("expert:breakout", {}),
        ExpertSpec("expert:positioning", {}),
    ),
}
"""The named expert sets."""

REGIME_EXPERT: dict[str, str] = {"up": "positioning", "down": "trend", "sideways": "reversal",
                                 "breakout": "breakout"}
"""The expert (label) that matches each regime class: the measured best of the ``rules`` set in that regime of
``synth:regimes`` (docs/router.md); the evidence counts bars whose largest routing weight is this expert."""


def label(spec: ExpertSpec | str) -> str:
    """Short label of an expert for traces and charts: the name without an ``expert:`` prefix."""
    name = spec.name if isinstance(spec, ExpertSpec) else str(spec)
    return name.split(":", 1)[1] if ":" in name else name


def parse_experts(value: str | list | tuple) -> tuple[ExpertSpec, ...]:
    """A named set (``rules``, ``llm``), a comma-separated list ``name?k=v&..,name``, or a list of specs."""
    if isinstance(value, (list, tuple)):
        out = []
        for v in value:
            out.extend(parse_experts(v) if isinstance(v, str) else [ExpertSpec(v[0], dict(v[1]))])
        specs = tuple(out)
    elif value in EXPERT_SETS:
        specs = EXPERT_SETS[value]
    else:
        specs = tuple(_one(part) for part in str(value).split(",") if part.strip())
    if not specs:
        raise ValueError(f"experts={value!r} names no expert; use 'rules', 'llm' or a comma-separated list of "
                         "registered decision-makers (drex strategies)")
    labels = [label(s) for s in specs]
    if len(set(labels)) != len(labels):
        raise ValueError(f"experts={value!r} lists the same expert twice ({', '.join(labels)}); each must differ")
    return specs


def _one(text: str) -> ExpertSpec:
    name, _, query = text.strip().partition("?")
    return ExpertSpec(name.strip(), dict(parse_qsl(query, keep_blank_values=True)) if query else {})


class Exposures(NamedTuple):
    """The experts' decisions for rows ``start..T-1``.

    weights: ``(R, N, K)`` float64 target weights (the experts' weights as the backtester takes them; NaN
        means flat and is 0 here). answers: ``(R, N, K)`` object array of answer texts, or None when no
        expert answers in text (rule-based experts).
    """

    weights: np.ndarray
    answers: np.ndarray | None


def exposures(bars: Any, specs: tuple[ExpertSpec, ...], *, start: int = 0) -> Exposures:
    """Decide every expert of ``specs`` on ``bars`` for rows ``start..T-1`` (module docstring)."""
    import pandas as pd

    from backtest.decisions import decide

    multi = isinstance(bars.columns, pd.MultiIndex)
    cols, texts = [], []
    for spec in specs:
        d = decide(spec.name, bars, spec.params, start=start)
        w = d.weights.to_numpy(dtype=np.float64)
        w = w[:, None] if w.ndim == 1 else w  # (R, N)
        cols.append(np.nan_to_num(w, nan=0.0))
        texts.append(_answers(d.trace, w.shape, multi, list(getattr(d.weights, "columns", []))))
    answers = None
    if any(t is not None for t in texts):
        answers = np.stack([t if t is not None else np.full(cols[0].shape, None, dtype=object) for t in texts],
                           axis=-1)
    return Exposures(np.stack(cols, axis=-1), answers)


def _answers(trace: Any, shape: tuple[int, int], multi: bool, assets: list) -> np.ndarray | None:
    """The ``answer`` column(s) of an expert's trace as ``(R, N)`` objects, or None."""
    if not multi:
        return trace["answer"].to_numpy(dtype=object)[:, None] if "answer" in trace.columns else None
    names = [f"{a}/answer" for a in assets]
    if not all(n in trace.columns for n in names):
        return None
    return np.stack([trace[n].to_numpy(dtype=object) for n in names], axis=-1).reshape(shape)
