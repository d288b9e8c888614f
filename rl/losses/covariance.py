"""Covariance-based entropy control: Clip-Cov and KL-Cov.

"The Entropy Mechanism of Reinforcement Learning for Reasoning Language Models" (Cui et al., 2025,
arXiv 2505.22617): entropy collapses through tokens whose log-probability and advantage covary strongly;
these losses restrain exactly those tokens. Sources: volcengine/verl@b178a3cd ``core_algos.py``
``compute_policy_loss_clip_cov`` / ``compute_policy_loss_kl_cov`` (adapted from PRIME-RL/Entropy-Mechanism-of-RL).
Notation as in :mod:`rl.losses.ppo`.
"""

from __future__ import annotations

import math

import torch

from rl.losses import register_policy_loss
from rl.losses.common import (
    aggregate,
    check_options,
    clip_bounds,
    log_ratio,
    masked_mean,
    ratio_stats,
    to_floats,
)

__all__ = ["clip_cov", "kl_cov", "token_covariance"]


def token_covariance(advantages: torch.Tensor, logp: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Centered per-token covariance term (no gradient).

    cov = (A - mean_m(A)) * (logp - mean_m(logp)), the means over valid tokens.

    Args:
        advantages, logp, mask: (B, T).

    Returns:
        (B, T) detached tensor; values on padded tokens are meaningless (callers mask them).
    """
    with torch.no_grad():
        return (advantages - masked_mean(advantages, mask)) * (logp - masked_mean(logp, mask))


def _cov_stats(cov: torch.Tensor, valid: torch.Tensor, n_valid: int, prefix: str) -> dict[str, torch.Tensor]:
    if n_valid == 0:
        zero = cov.new_zeros(())
        return {f"{prefix}/cov_mean": zero, f"{prefix}/cov_max": zero}
    return {f"{prefix}/cov_mean": cov[valid].mean(), f"{prefix}/cov_max": cov[valid].max()}


@register_policy_loss("clip_cov")
def clip_cov(
    logp: torch.Tensor,
    old_logp: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    *,
    clip_low: float = 0.2,
    clip_high: float | None = None,
    agg: str = "token-mean",
    clip_cov_ratio: float = 2e-4,
    clip_cov_lb: float = 1.0,
    clip_cov_ub: float = 5.0,
    generator: torch.Generator | None = None,
    **extra,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Clip-Cov (verl ``compute_policy_loss_clip_cov``; defaults ratio 2e-4, bounds (1, 5), eps 0.2/0.2).

    L_tok = max(-A r, -A clamp(r, 1 - clip_low, 1 + clip_high)) (no dual clip), cov = :func:`token_covariance`.
    Candidates: valid tokens not already clipped (-A clamp(r) > -A r) with clip_cov_lb < cov < clip_cov_ub.
    n = max(1, floor(clip_cov_ratio * #valid)) of them, drawn uniformly without replacement
    (``torch.randperm`` with ``generator``; the global torch RNG when None), get their loss multiplied by 0
    (value and gradient, as in the reference); they still count in the aggregation denominator.
    Difference from the reference: d is clamped to [-20, 20] before exp, as in every DREX loss.
    The paper's runs use clip_low = clip_high = 1 (no PPO clip at all; clip_low=1.0 is accepted).
    Metrics: ``clip_cov/n_detached``, ``clip_cov/n_candidates``, ``clip_cov/cov_mean``, ``clip_cov/cov_max``
    (covariance over valid tokens).
    """
    extra.pop("clip_c", None)
    check_options(
        "clip_cov", extra, ("clip_low", "clip_high", "agg", "clip_cov_ratio", "clip_cov_lb", "clip_cov_ub")
    )
    if clip_cov_ratio <= 0:
        raise ValueError(f"clip_cov_ratio must be > 0 (got {clip_cov_ratio}); the paper uses 2e-4")
    if clip_cov_lb >= clip_cov_ub:
        raise ValueError(f"clip_cov_lb ({clip_cov_lb}) must be below clip_cov_ub ({clip_cov_ub})")
    low, high = clip_bounds(clip_low, clip_high)
    ratio = torch.exp(log_ratio(logp, old_logp))
    l1 = -advantages * ratio
    l2 = -advantages * torch.clamp(ratio, low, high)
    valid = mask != 0
    cov = token_covariance(advantages, logp, mask)
    with torch.no_grad():
        clipped = (l2 > l1) & valid
        candidates = valid & ~clipped & (cov > clip_cov_lb) & (cov < clip_cov_ub)
        cand_idx = torch.nonzero(candidates.reshape(-1), as_tuple=True)[0]  # flat indices, host sync
        n_valid = int(valid.sum())
        n_pick = min(max(1, int(clip_cov_ratio * n_valid)), cand_idx.numel())
        keep = torch.ones(ratio.numel(), dtype=ratio.dtype, device=ratio.device)
        if n_pick > 0:
            perm_device = generator.device if generator is not None else torch.device("cpu")
            perm = torch.randperm(cand_idx.numel(), generator=generator, device=perm_device)[:n_pick]
            keep[cand_idx[perm.to(cand_idx.device)]] = 0.0
        keep = keep.reshape(ratio.shape)
    tok = torch.maximum(l1, l2) * keep
    stats = ratio_stats(ratio, advantages, mask, low, high, logp, old_logp)
    stats["clip_cov/n_detached"] = n_pick
    stats["clip_cov/n_candidates"] = cand_idx.numel()
    stats.update(_cov_stats(cov, valid, n_valid, "clip_cov"))
    return aggregate(tok, mask, agg), to_floats(stats)


@register_policy_loss("kl_cov")
def kl_cov(
    logp: torch.Tensor,
    old_logp: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    *,
    agg: str = "token-mean",
    kl_cov_ratio: float = 2e-3,
    kl_cov_coef: float = 1.0,
    **extra,
) -> tuple[torch.Tensor, dict[str, float]]:
    """KL-Cov (verl ``compute_policy_loss_kl_cov``, PRIME-RL@88505792).

    L_tok = -A r on every token (no clipping at all, as in the reference), plus kl_cov_coef * |logp - old_logp|
    on the k = max(1, floor(kl_cov_ratio * #valid)) valid tokens of largest :func:`token_covariance`.
    Defaults: kl_cov_coef 1 (verl code fallback, PRIME-RL); kl_cov_ratio 2e-3 = PRIME-RL's k_percent 0.2 for
    7B models (verl's yaml says 2e-4; the 32B runs use 2e-4). The top-k runs on the device (no CPU copy).
    Metrics: ``kl_cov/k``, ``kl_cov/cov_mean``, ``kl_cov/cov_max``, ``kl_cov/abs_kl`` (masked mean |d|).
    """
    for key in ("clip_low", "clip_high", "clip_c"):
        extra.pop(key, None)
    check_options("kl_cov", extra, ("agg", "kl_cov_ratio", "kl_cov_coef"))
    if kl_cov_ratio <= 0:
        raise ValueError(
            f"kl_cov_ratio must be > 0 (got {kl_cov_ratio}); the paper uses 2e-3 (7B) or 2e-4 (32B)"
        )
    d = log_ratio(logp, old_logp)
    ratio = torch.exp(d)
    valid = mask != 0
    cov = token_covariance(advantages, logp, mask)
    n_valid = int(valid.sum())
    k = min(max(1, int(kl_cov_ratio * n_valid)), n_valid)
    top = torch.zeros(ratio.numel(), dtype=torch.bool, device=ratio.device)
    if k > 0:
        ranked = torch.where(valid, cov, torch.full_like(cov, -math.inf)).reshape(-1)
        top[torch.topk(ranked, k).indices] = True
    top = top.reshape(ratio.shape)
    tok = -advantages * ratio + torch.where(top, kl_cov_coef * d.abs(), torch.zeros_like(d))
    stats = ratio_stats(ratio, advantages, mask, 0.0, math.inf, logp, old_logp)
    stats["kl_cov/k"] = k
    stats.update(_cov_stats(cov, valid, n_valid, "kl_cov"))
    stats["kl_cov/abs_kl"] = masked_mean(d.detach().abs(), mask)
    return aggregate(tok, mask, agg), to_floats(stats)
