"""Policy-gradient losses: one registry, one signature.

Every loss is ``fn(logp, old_logp, advantages, mask, **cfg) -> (loss, metrics)`` where ``logp``,
``old_logp``, ``advantages`` and ``mask`` are ``(B, T)`` tensors (advantages already broadcast over
tokens; an action-level policy uses T = 1), ``loss`` is a scalar tensor and ``metrics`` a dict of floats.
Register with ``@register_policy_loss("name")``; call through :func:`policy_loss`. A loss that keeps state
across optimizer steps registers it too: ``@register_policy_loss("siren", state=SirenAnchor)`` with a
:class:`rl.losses.state.LossState` subclass (see that module); :data:`LOSS_STATES` maps names to them.
"""
from __future__ import annotations

from collections.abc import Callable

import torch

from rl.losses.common import AGG_MODES, aggregate
from rl.losses.state import LossState

PolicyLossFn = Callable[..., tuple[torch.Tensor, dict[str, float]]]
POLICY_LOSSES: dict[str, PolicyLossFn] = {}
LOSS_STATES: dict[str, type[LossState]] = {}


def register_policy_loss(name: str, *, state: type[LossState] | None = None):
    """Decorator adding a loss to :data:`POLICY_LOSSES` (and its ``state`` class, if it keeps one, to
    :data:`LOSS_STATES`); duplicate names raise."""
    if state is not None and not (isinstance(state, type) and issubclass(state, LossState)):
        raise TypeError(f"state of policy loss {name!r} must be a subclass of rl.losses.state.LossState")

    def deco(fn: PolicyLossFn) -> PolicyLossFn:
        if name in POLICY_LOSSES:
            raise ValueError(f"policy loss {name!r} is already registered")
        POLICY_LOSSES[name] = fn
        if state is not None:
            LOSS_STATES[name] = state
        return fn

    return deco


def policy_loss(
    name: str,
    logp: torch.Tensor,
    old_logp: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    **cfg,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Compute the registered loss ``name``; unknown names list the valid ones.

    Args:
        logp: (B, T) log-probabilities of the sampled tokens under the current policy (with grad).
        old_logp: (B, T) log-probabilities under the behaviour (rollout) policy.
        advantages: (B, T) advantages, already broadcast over tokens.
        mask: (B, T) 1 for valid tokens, 0 for padding.
        **cfg: ``clip_low``, ``clip_high``, ``clip_c``, ``agg`` and method-prefixed options; extra inputs
            (``entropy``, ``ref_logp``, ``logits``, ``generator``) where a method needs them.
    """
    try:
        fn = POLICY_LOSSES[name]
    except KeyError:
        raise KeyError(f"unknown policy loss {name!r}; registered: {', '.join(sorted(POLICY_LOSSES))}") from None
    if logp.shape != old_logp.shape or logp.shape != advantages.shape or logp.shape != mask.shape:
        raise ValueError(
            f"logp {tuple(logp.shape)}, old_logp {tuple(old_logp.shape)}, advantages "
            f"{tuple(advantages.shape)} and mask {tuple(mask.shape)} must all have the same (B, T) shape"
        )
    return fn(logp, old_logp, advantages, mask, **cfg)


# Importing the modules registers their losses.
from rl.losses import covariance, entropy_select, ppo, regularizers, shaping  # noqa: F401

__all__ = [
    "AGG_MODES",
    "LOSS_STATES",
    "POLICY_LOSSES",
    "LossState",
    "aggregate",
    "policy_loss",
    "register_policy_loss",
]
