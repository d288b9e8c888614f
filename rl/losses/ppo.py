"""The PPO family: vanilla (dual clip; DAPO clip-higher via clip_high > clip_low), GSPO, GMPO, CISPO, SAPO,
REINFORCE.

All functions share the signature of :func:`rl.losses.policy_loss`: ``(B, T)`` tensors ``logp`` (with grad),
``old_logp``, ``advantages`` (broadcast over tokens), ``mask``; keyword-only options. Notation:
d = logp - old_logp, r = exp(clamp(d, -20, 20)), sg = stop-gradient, A = advantage, m = mask.
Sources: volcengine/verl@b178a3cd ``verl/trainer/ppo/core_algos.py`` (function named in each docstring).
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

__all__ = ["cispo", "clipped_token_loss", "geo_mean", "gspo", "reinforce", "sapo", "vanilla"]

_CLIP_OPTS = ("clip_low", "clip_high", "clip_c", "agg")


def clipped_token_loss(
    ratio: torch.Tensor,
    advantages: torch.Tensor,
    low: torch.Tensor | float,
    high: torch.Tensor | float,
    clip_c: float | None,
) -> torch.Tensor:
    """Per-token PPO loss max(-A r, -A clamp(r, low, high)), dual-clipped at -A c for A < 0.

    loss = where(A < 0, min(-A c, Lc), Lc) with Lc = max(-A r, -A clamp(r, low, high)).
    ``low``/``high`` are absolute ratio bounds (1 - eps_low, 1 + eps_high), scalars or (B, T) tensors;
    ``clip_c=None`` disables the dual clip. Source: verl ``compute_policy_loss_vanilla``.

    Returns:
        (B, T) per-token loss.
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
    logp: torch.Tensor,
    old_logp: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    *,
    clip_low: float = 0.2,
    clip_high: float | None = None,
    clip_c: float | None = 3.0,
    agg: str = "token-mean",
    **extra,
) -> tuple[torch.Tensor, dict[str, float]]:
    """PPO clip with dual clip (verl ``compute_policy_loss_vanilla``, defaults eps 0.2/0.2, c = 3).

    loss_tok = :func:`clipped_token_loss` (r, A, 1 - clip_low, 1 + clip_high, clip_c), aggregated by ``agg``.
    ``clip_high`` defaults to ``clip_low``; DAPO clip-higher uses e.g. 0.2/0.28.
    Extra metric ``clipfrac_dual``: fraction of valid tokens with A < 0 and r > c (dual clip active).
    """
    check_options("vanilla", extra, _CLIP_OPTS)
    low, high = clip_bounds(clip_low, clip_high)
    ratio = torch.exp(log_ratio(logp, old_logp))
    tok = clipped_token_loss(ratio, advantages, low, high, clip_c)
    stats = ratio_stats(ratio, advantages, mask, low, high, logp, old_logp)
    if clip_c is not None:
        stats["clipfrac_dual"] = masked_mean(((advantages < 0) & (ratio > clip_c)).to(ratio.dtype), mask)
    return aggregate(tok, mask, agg), to_floats(stats)


@register_policy_loss("gspo")
def gspo(
    logp: torch.Tensor,
    old_logp: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    *,
    clip_low: float = 0.2,
    clip_high: float | None = None,
    **extra,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Group Sequence Policy Optimization (verl ``compute_policy_loss_gspo``; arXiv 2507.18071).

    s_i = sum_t d m / max(sum_t m, 1); log r_tok = min(logp - sg(logp) + sg(s_i), 10); r_tok = exp(log r_tok)
    (its value is the sequence ratio exp(s_i), its gradient that of logp);
    loss_tok = max(-A r_tok, -A clamp(r_tok, 1 - clip_low, 1 + clip_high)) (no dual clip), always aggregated
    ``seq-mean-token-mean`` (an ``agg`` option is ignored, as in verl). Defaults eps 0.2/0.2 come from verl's
    config; the paper uses 3e-4 / 4e-4, pass them explicitly. ``ratio_mean`` and the clip fractions are
    over the sequence ratio (broadcast to tokens).
    """
    extra.pop("agg", None)
    extra.pop("clip_c", None)
    check_options("gspo", extra, ("clip_low", "clip_high"))
    low, high = clip_bounds(clip_low, clip_high)
    m = mask.to(logp.dtype)
    d = logp - old_logp
    seq_kl = (torch.where(m != 0, d * m, torch.zeros_like(d))).sum(-1) / m.sum(-1).clamp_min(1.0)  # (B,)
    log_r = torch.clamp(logp - logp.detach() + seq_kl.detach().unsqueeze(-1), max=10.0)  # (B, T)
    ratio = torch.exp(log_r)
    tok = clipped_token_loss(ratio, advantages, low, high, None)
    stats = ratio_stats(ratio, advantages, mask, low, high, logp, old_logp)
    return aggregate(tok, mask, "seq-mean-token-mean"), to_floats(stats)


@register_policy_loss("geo_mean")
def geo_mean(
    logp: torch.Tensor,
    old_logp: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    *,
    clip_low: float = 0.2,
    clip_high: float | None = None,
    **extra,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Geometric-Mean Policy Optimization, GMPO (verl ``compute_policy_loss_geo_mean``; arXiv 2507.20673).

    Clipping in log space: s = sign(A); d' = s * min(s d, s clamp(d, -clip_low, clip_high));
    r_seq = exp(sum_t d' m / (sum_t m + 1e-8)); A_seq = sum_t A m / (sum_t m + 1e-8);
    loss = mean over non-empty sequences of -A_seq r_seq (``agg`` is ignored: the ratio is per sequence).
    Difference from verl: verl takes the mean over all B rows, so an all-padding row changes the loss; here it
    is excluded, so padding never changes it. verl's defaults eps 0.2/0.2; the paper uses 0.4/0.4.
    Clip fractions count tokens where the clamp is selected (A > 0 and d > clip_high; A < 0 and d < -clip_low).
    """
    extra.pop("agg", None)
    extra.pop("clip_c", None)
    check_options("geo_mean", extra, ("clip_low", "clip_high"))
    clip_bounds(clip_low, clip_high)
    clip_high = clip_low if clip_high is None else clip_high
    m = mask.to(logp.dtype)
    d = logp - old_logp
    sgn = torch.sign(advantages)
    d_min = sgn * torch.minimum(sgn * d, sgn * torch.clamp(d, -clip_low, clip_high))
    n_tok = m.sum(-1)  # (B,)
    zero = torch.zeros_like(d)
    ratio_seq = torch.exp(torch.where(m != 0, d_min * m, zero).sum(-1) / (n_tok + 1e-8))  # (B,)
    adv_seq = torch.where(m != 0, advantages * m, zero).sum(-1) / (n_tok + 1e-8)  # (B,)
    nonempty = (n_tok > 0).to(logp.dtype)
    loss = (-adv_seq * ratio_seq * nonempty).sum() / nonempty.sum().clamp_min(1.0)
    ratio_tok = torch.exp(log_ratio(logp, old_logp))
    stats = ratio_stats(ratio_tok, advantages, mask, math.exp(-clip_low), math.exp(clip_high), logp, old_logp)
    stats["geo_mean/ratio_seq_mean"] = (ratio_seq.detach() * nonempty).sum() / nonempty.sum().clamp_min(1.0)
    return loss, to_floats(stats)


@register_policy_loss("cispo")
def cispo(
    logp: torch.Tensor,
    old_logp: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    *,
    clip_low: float = 0.2,
    clip_high: float | None = None,
    agg: str = "token-mean",
    **extra,
) -> tuple[torch.Tensor, dict[str, float]]:
    """CISPO (MiniMax-M1; verl ``compute_policy_loss_cispo``): clipped importance weight, never a clipped token.

    loss_tok = -sg(clamp(r, 1 - clip_low, 1 + clip_high)) * A * logp: every token keeps a gradient
    -w A grad(logp); the weight is clipped instead of the objective. Defaults eps 0.2/0.2 (verl config).
    """
    extra.pop("clip_c", None)
    check_options("cispo", extra, ("clip_low", "clip_high", "agg"))
    low, high = clip_bounds(clip_low, clip_high)
    ratio = torch.exp(log_ratio(logp, old_logp))
    weight = torch.clamp(ratio, low, high).detach()
    tok = -weight * advantages * logp
    stats = ratio_stats(ratio, advantages, mask, low, high, logp, old_logp)
    return aggregate(tok, mask, agg), to_floats(stats)


@register_policy_loss("sapo")
def sapo(
    logp: torch.Tensor,
    old_logp: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    *,
    sapo_tau_pos: float = 1.0,
    sapo_tau_neg: float = 1.05,
    agg: str = "seq-mean-token-mean",
    **extra,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Soft Adaptive Policy Optimization (verl ``compute_policy_loss_sapo``; arXiv 2511.20347).

    tau = sapo_tau_pos where A > 0 else sapo_tau_neg; loss_tok = -A sigmoid(tau (r - 1)) 4 / tau (a soft gate in
    place of the hard clip; at r = 1 the gradient equals the vanilla one). Default aggregation
    ``seq-mean-token-mean`` as in verl. No hard clip: ``clipfrac_*`` are 0; ``sapo/gate_mean`` is the masked
    mean of sigmoid(tau (r - 1)) 4 / tau.
    """
    for key in ("clip_low", "clip_high", "clip_c"):
        extra.pop(key, None)
    check_options("sapo", extra, ("sapo_tau_pos", "sapo_tau_neg", "agg"))
    if sapo_tau_pos <= 0 or sapo_tau_neg <= 0:
        raise ValueError(f"sapo_tau_pos and sapo_tau_neg must be > 0 (got {sapo_tau_pos}, {sapo_tau_neg})")
    ratio = torch.exp(log_ratio(logp, old_logp))
    tau = torch.where(advantages > 0, ratio.new_tensor(sapo_tau_pos), ratio.new_tensor(sapo_tau_neg))
    gate = torch.sigmoid(tau * (ratio - 1.0)) * (4.0 / tau)
    tok = -advantages * gate
    stats = ratio_stats(ratio, advantages, mask, 0.0, math.inf, logp, old_logp)
    stats["sapo/gate_mean"] = masked_mean(gate.detach(), mask)
    return aggregate(tok, mask, agg), to_floats(stats)


@register_policy_loss("reinforce")
def reinforce(
    logp: torch.Tensor,
    old_logp: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    *,
    agg: str = "token-mean",
    **extra,
) -> tuple[torch.Tensor, dict[str, float]]:
    """REINFORCE / GPG: loss_tok = -A logp (verl ``compute_policy_loss_gpg``), no ratio, no clip.

    On-policy estimator; ``old_logp`` is used only for the ``approx_kl``/``ratio_mean`` metrics.
    """
    for key in ("clip_low", "clip_high", "clip_c"):
        extra.pop(key, None)
    check_options("reinforce", extra, ("agg",))
    ratio = torch.exp(log_ratio(logp, old_logp))
    stats = ratio_stats(ratio, advantages, mask, 0.0, math.inf, logp, old_logp)
    return aggregate(-advantages * logp, mask, agg), to_floats(stats)
