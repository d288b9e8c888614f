"""The PPO-clip family: vanilla (with dual clip; DAPO clip-higher via clip_high > clip_low)."""
from __future__ import annotations

import torch

from rl.losses import register_policy_loss
from rl.losses.common import aggregate, log_ratio, ratio_metrics


def clipped_token_loss(
    ratio: torch.Tensor,
    advantages: torch.Tensor,
    low: torch.Tensor | float,
    high: torch.Tensor | float,
    clip_c: float | None,
) -> torch.Tensor:
    """Per-token PPO loss max(-A r, -A clamp(r, low, high)), dual-clipped at -A c for A < 0.

    ``low``/``high`` are absolute ratio bounds (1 - eps_low, 1 + eps_high), scalars or (B, T) tensors.
    """
    l1 = -advantages * ratio
    l2 = -advantages * torch.clamp(ratio, low, high)
    lc = torch.maximum(l1, l2)
    if clip_c is None:
        return lc
    if clip_c <= 1.0:
        raise ValueError(f"clip_c must be > 1 (got {clip_c}); pass clip_c=None to disable the dual clip")
    l3 = -advantages * clip_c
    return torch.where(advantages < 0, torch.minimum(l3, lc), lc)


@register_policy_loss("vanilla")
def vanilla(
    logp, old_logp, advantages, mask, *, clip_low=0.2, clip_high=None, clip_c=3.0, agg="token-mean", **_
):
    """PPO clip with dual clip (verl ``compute_policy_loss_vanilla``). ``clip_high`` defaults to ``clip_low``."""
    clip_high = clip_low if clip_high is None else clip_high
    ratio = torch.exp(log_ratio(logp, old_logp))
    tok = clipped_token_loss(ratio, advantages, 1 - clip_low, 1 + clip_high, clip_c)
    metrics = ratio_metrics(ratio, advantages, mask, 1 - clip_low, 1 + clip_high, logp, old_logp)
    return aggregate(tok, mask, agg), metrics
