"""Additive loss terms the trainer puts next to the policy loss: entropy bonus and KL-to-reference loss.

Source: volcengine/verl@b178a3cd ``verl/workers/actor/dp_actor.py`` ``update_policy``:
loss = pg_loss - entropy_coeff * agg_loss(H) + kl_loss_coef * agg_loss(kl_penalty(logp, ref_logp, kl_loss_type)),
defaults entropy_coeff 0, kl_loss_coef 0.001, kl_loss_type low_var_kl (k3).
"""

from __future__ import annotations

import torch

from rl.kl import kl_penalty
from rl.losses.common import aggregate

__all__ = ["entropy_bonus", "kl_loss"]


def entropy_bonus(
    entropy: torch.Tensor, mask: torch.Tensor, *, coef: float, agg: str = "token-mean"
) -> torch.Tensor:
    """-coef * aggregate(H, mask, agg): add it to the loss to reward entropy (coef > 0).

    Args:
        entropy: (B, T) per-token policy entropy (keep its graph to get the entropy gradient).
        mask: (B, T) valid-token mask.
        coef: entropy coefficient (verl default 0: no bonus).
        agg: aggregation mode of :func:`rl.losses.aggregate`.

    Returns:
        Scalar tensor.
    """
    if entropy.shape != mask.shape:
        raise ValueError(
            f"entropy {tuple(entropy.shape)} and mask {tuple(mask.shape)} must have the same (B, T) shape"
        )
    return -coef * aggregate(entropy, mask, agg)


def kl_loss(
    logp: torch.Tensor,
    ref_logp: torch.Tensor,
    mask: torch.Tensor,
    *,
    kind: str = "k3",
    coef: float = 0.001,
    agg: str = "token-mean",
) -> torch.Tensor:
    """coef * aggregate(kl_penalty(logp, ref_logp, kind), mask, agg): the KL-to-reference loss term.

    Args:
        logp: (B, T) current log-probabilities (with grad).
        ref_logp: (B, T) reference-policy log-probabilities.
        mask: (B, T) valid-token mask.
        kind: a :data:`rl.kl.KL_KINDS` estimator (verl default ``low_var_kl`` = k3).
        coef: weight (verl default 0.001).
        agg: aggregation mode of :func:`rl.losses.aggregate`.

    Returns:
        Scalar tensor.
    """
    if logp.shape != mask.shape:
        raise ValueError(
            f"logp {tuple(logp.shape)} and mask {tuple(mask.shape)} must have the same (B, T) shape"
        )
    return coef * aggregate(kl_penalty(logp, ref_logp, kind), mask, agg)
