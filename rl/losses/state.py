"""State a policy loss keeps across optimizer steps, behind one small interface the trainer calls generically.

A loss that needs inputs carried from earlier steps (SIREN's entropy anchor, EPO's entropy history and
training phase) registers a :class:`LossState` subclass with ``@register_policy_loss(name, state=Cls)``.
The trainer then, without knowing the loss:

* builds one instance per run: ``Cls(loss_cfg=config.loss_cfg, steps=config.steps)``;
* per rollout iteration: ``rollout_inputs(rollout)`` (``rollout`` = iterations done before this one) BEFORE
  the rollout's statistics enter the state, then ``observe_rollout(metrics)`` with the rollout's metric line
  (``reward/mean``, ``entropy/rollout``, ...);
* per optimizer step: ``update_inputs()`` before it, ``observe_update(metrics, applied=...)`` after it with
  the step's loss metrics (micro-batch weighted averages, reduced over data-parallel ranks);
* saves ``state_dict()`` (plain JSON values) in every checkpoint and restores it with ``load_state_dict``.

Inputs are keyword arguments of the loss; an input the user fixed in ``loss_cfg`` always wins (the trainer
drops it from what the state supplies). Rollout inputs are also logged, each under its name with the method
prefix turned into a namespace (``epo_hist_entropy`` -> ``epo/hist_entropy``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["LossState", "metric_name"]


class LossState:
    """Base class: no inputs, nothing kept. Override the hooks a loss needs; keep the state JSON-able."""

    def __init__(self, *, loss_cfg: Mapping[str, Any], steps: int) -> None:
        self.loss_cfg = dict(loss_cfg)
        self.steps = int(steps)

    def rollout_inputs(self, rollout: int) -> dict[str, Any]:
        """Loss inputs for every optimizer step of rollout iteration ``rollout`` (0-based)."""
        return {}

    def observe_rollout(self, metrics: Mapping[str, Any]) -> None:
        """Called once per rollout iteration after :meth:`rollout_inputs`, with its rollout metrics."""

    def update_inputs(self) -> dict[str, Any]:
        """Loss inputs for the next optimizer step (called before every step)."""
        return {}

    def observe_update(self, metrics: Mapping[str, Any], *, applied: bool) -> None:
        """Called after every optimizer step with its metrics; ``applied`` is False for a skipped step
        (non-finite loss or gradient)."""

    def state_dict(self) -> dict[str, Any]:
        """JSON-able state, saved in the checkpoint."""
        return {}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore :meth:`state_dict` output (ignores keys that belong to other states)."""


def metric_name(input_name: str) -> str:
    """``epo_hist_entropy`` -> ``epo/hist_entropy``: how the trainer logs a rollout input."""
    head, _, tail = input_name.partition("_")
    return f"{head}/{tail}" if tail else head
