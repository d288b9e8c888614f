"""Entropy-selective policy losses: forking tokens (80/20), AEPO, EMPG.

All losses share the signature of :func:`rl.losses.policy_loss`: ``(B, T)`` tensors ``logp`` (with grad),
``old_logp``, ``advantages`` (broadcast over tokens), ``mask``; keyword-only options; each needs
``entropy`` (B, T), the per-token entropy of the current policy (treated as a constant here: it only selects
or weights tokens). Notation: d = logp - old_logp, r = exp(clamp(d, -20, 20)), sg = stop-gradient,
A = advantage, m = mask, H = entropy, ``low = 1 - clip_low``, ``high = 1 + clip_high``.
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
from rl.losses.ppo import clipped_token_loss

__all__ = ["aepo", "empg", "empg_advantages", "forking_tokens", "masked_quantile"]

_CLIP_OPTS = ("clip_low", "clip_high", "clip_c", "agg")


def masked_quantile(values: torch.Tensor, mask: torch.Tensor, q: float) -> torch.Tensor:
    """The q-quantile of ``values`` over valid entries, linear interpolation (``torch.quantile``'s default).

    With v the n valid values sorted ascending and p = q (n - 1): v[floor p] + (p - floor p)(v[ceil p] - v[floor p]).
    Uses two ``kthvalue`` selections (O(n)) instead of ``torch.quantile``, which sorts and refuses inputs of more
    than 2**24 elements (a 64 x 262k token batch). Detached. NaN when there is no valid entry.

    Args:
        values: (...) tensor.
        mask: same shape, nonzero = valid.
        q: quantile level in [0, 1].

    Returns:
        0-dim tensor.
    """
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"quantile level must be in [0, 1] (got {q})")
    v = values.detach()[mask != 0]
    n = v.numel()
    if n == 0:
        return torch.full((), math.nan, dtype=values.dtype, device=values.device)
    pos = q * (n - 1)
    lo = min(math.floor(pos), n - 1)
    hi = min(lo + 1, n - 1)
    a = torch.kthvalue(v, lo + 1).values
    if hi == lo or pos == lo:
        return a
    b = torch.kthvalue(v, hi + 1).values
    return a + (pos - lo) * (b - a)


def _need_entropy(method: str, entropy: torch.Tensor | None, logp: torch.Tensor) -> torch.Tensor:
    if entropy is None:
        raise ValueError(
            f"policy loss {method!r} needs entropy=(B, T) per-token entropies of the current policy "
            "(e.g. rl.entropy.entropy_from_logits(logits)); none was passed"
        )
    if entropy.shape != logp.shape:
        raise ValueError(f"entropy {tuple(entropy.shape)} must have the shape of logp {tuple(logp.shape)}")
    return entropy.detach()


@register_policy_loss("forking_tokens")
def forking_tokens(
    logp: torch.Tensor,
    old_logp: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    *,
    entropy: torch.Tensor | None = None,
    forking_ratio: float = 0.2,
    clip_low: float = 0.2,
    clip_high: float | None = None,
    clip_c: float | None = 3.0,
    agg: str = "token-mean",
    **extra,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Policy gradient on the high-entropy "forking" tokens only ("Beyond the 80/20 rule", arXiv 2506.01939).

    thr = quantile of H over the valid tokens of the batch at level 1 - forking_ratio (linear interpolation,
    as ``torch.quantile``); keep = (H >= thr) & m;
    loss_tok = keep * :func:`~rl.losses.ppo.clipped_token_loss` (r, A, low, high, clip_c), aggregated over the
    ORIGINAL mask (dropped tokens count in the denominator, as TRL multiplies the per-token loss by the entropy
    mask before its usual aggregation).

    Source: official code not found; selection semantics of huggingface/trl@f2cd5771
    ``GRPOTrainer.get_high_entropy_mask`` (threshold = torch.quantile(valid H, 1 - rho), mask = H >= thr & m),
    loss = the vanilla dual-clip loss of this library. ``forking_ratio = 1`` keeps every token (= ``vanilla``).

    Metrics: ``forking_tokens/frac_kept`` (kept / valid), ``forking_tokens/threshold``.
    """
    check_options("forking_tokens", extra, _CLIP_OPTS + ("forking_ratio",))
    if not 0.0 < forking_ratio <= 1.0:
        raise ValueError(f"forking_ratio must be in (0, 1] (got {forking_ratio}); it is the fraction of tokens kept")
    h = _need_entropy("forking_tokens", entropy, logp)
    low, high = clip_bounds(clip_low, clip_high)
    thr = masked_quantile(h, mask, 1.0 - forking_ratio)
    keep = (h >= thr) & (mask != 0)  # NaN threshold (no valid token) keeps nothing
    ratio = torch.exp(log_ratio(logp, old_logp))
    tok = clipped_token_loss(ratio, advantages, low, high, clip_c) * keep.to(logp.dtype)
    stats = ratio_stats(ratio, advantages, mask, low, high, logp, old_logp)
    stats["forking_tokens/frac_kept"] = masked_mean(keep.to(logp.dtype), mask)
    stats["forking_tokens/threshold"] = thr
    return aggregate(tok, mask, agg), to_floats(stats)


def _entropy_advantage_factor(
    h: torch.Tensor, mask: torch.Tensor, alpha: float, root_entropy: torch.Tensor | float | None
) -> torch.Tensor:
    """AEPO's entropy-aware advantage factor max(0, 1 + alpha z), z = standardised (H - H_root) over valid tokens."""
    dh = h
    if root_entropy is not None:
        root = torch.as_tensor(root_entropy, dtype=h.dtype, device=h.device)
        if root.dim() == 1:
            root = root.unsqueeze(-1)  # (B,) -> (B, 1)
        dh = h - root
    mean = masked_mean(dh, mask)
    std = masked_mean((dh - mean).square(), mask).sqrt()
    z = (dh - mean) / (std + 1e-6)
    return torch.clamp(1.0 + alpha * z, min=0.0)


@register_policy_loss("aepo")
def aepo(
    logp: torch.Tensor,
    old_logp: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    *,
    entropy: torch.Tensor | None = None,
    aepo_entropy_quantile: float = 0.8,
    aepo_entropy_threshold: float | None = None,
    aepo_adv_alpha: float = 0.3,
    aepo_root_entropy: torch.Tensor | float | None = None,
    aepo_both_sides: bool = False,
    clip_low: float = 0.2,
    clip_high: float | None = None,
    clip_c: float | None = 3.0,
    agg: str = "token-mean",
    **extra,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Agentic Entropy-Balanced Policy Optimization, policy-update part (arXiv 2510.14545, Dong et al. 2025).

    No reference code exists (the official pointer RUC-NLPIR/ARPO holds none); implemented from the paper's
    description: (1) a stop-gradient inserted into the clipping term of high-entropy tokens, so a clipped
    high-entropy token keeps a gradient rescaled to the clip bound; (2) entropy-aware advantages.

    High-entropy tokens: ``hi = (H >= thr) & m`` with thr = ``aepo_entropy_threshold`` if given, else the
    ``aepo_entropy_quantile`` quantile (linear interpolation) of H over valid tokens (default 0.8: the top 20%,
    the 80/20 convention). ``aepo_entropy_quantile = 0`` makes every token "high-entropy", i.e. the paper's
    formula read literally for all clipped tokens.

    Entropy-aware advantage (our concrete form of the paper's description; ``aepo_adv_alpha = 0`` disables):
        dH = H - H_root (``aepo_root_entropy``: scalar or (B,), default 0),
        z = (dH - mean_m dH) / (std_m dH + 1e-6)   (population std over valid tokens),
        A' = A * max(0, 1 + alpha z)               (the clamp keeps the sign of A).

    Per-token loss with A':
        base = clipped_token_loss(r, A', low, high, clip_c)        (vanilla dual clip)
        where hi & A' > 0 & r > high:  loss_tok = -A' high r / sg(r)
        where hi & A' < 0 & r < low and ``aepo_both_sides``:  loss_tok = -A' low r / sg(r)
    The value equals the clipped value; the gradient is d loss_tok / d logp = -A' high (resp. -A' low)
    instead of 0, while an unclipped token has -A' r. Then aggregated by ``agg``.

    Metrics: ``aepo/threshold``, ``aepo/frac_high_entropy`` (hi / valid), ``aepo/n_rescaled`` (clipped
    high-entropy tokens that kept a gradient), ``aepo/adv_scale_mean`` (masked mean of the factor).
    """
    check_options(
        "aepo",
        extra,
        _CLIP_OPTS
        + ("aepo_entropy_quantile", "aepo_entropy_threshold", "aepo_adv_alpha", "aepo_root_entropy", "aepo_both_sides"),
    )
    if aepo_adv_alpha < 0:
        raise ValueError(f"aepo_adv_alpha must be >= 0 (got {aepo_adv_alpha})")
    h = _need_entropy("aepo", entropy, logp)
    low, high = clip_bounds(clip_low, clip_high)
    valid = mask != 0
    if aepo_entropy_threshold is not None:
        thr = torch.full((), float(aepo_entropy_threshold), dtype=h.dtype, device=h.device)
    else:
        thr = masked_quantile(h, mask, aepo_entropy_quantile)
    hi = (h >= thr) & valid
    factor = _entropy_advantage_factor(h, mask, aepo_adv_alpha, aepo_root_entropy) if aepo_adv_alpha else None
    adv = advantages * factor if factor is not None else advantages
    ratio = torch.exp(log_ratio(logp, old_logp))
    tok = clipped_token_loss(ratio, adv, low, high, clip_c)
    grad_keeper = ratio / ratio.detach()  # value 1, gradient d logp
    rescale_hi = hi & (adv > 0) & (ratio > high)
    tok = torch.where(rescale_hi, -adv * high * grad_keeper, tok)
    rescaled = rescale_hi
    if aepo_both_sides:
        rescale_lo = hi & (adv < 0) & (ratio < low)
        tok = torch.where(rescale_lo, -adv * low * grad_keeper, tok)
        rescaled = rescaled | rescale_lo
    stats = ratio_stats(ratio, adv, mask, low, high, logp, old_logp)
    stats["aepo/threshold"] = thr
    stats["aepo/frac_high_entropy"] = masked_mean(hi.to(logp.dtype), mask)
    stats["aepo/n_rescaled"] = (rescaled & valid).sum()
    stats["aepo/adv_scale_mean"] = masked_mean(factor, mask) if factor is not None else 1.0
    return aggregate(tok, mask, agg), to_floats(stats)


def _minmax(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(x - min_m x) / (max_m x - min_m x + 1e-8) over valid entries (0 everywhere if none are valid)."""
    valid = mask != 0
    if not bool(valid.any()):
        return torch.zeros_like(x)
    lo = x[valid].min()
    hi = x[valid].max()
    return (x - lo) / (hi - lo + 1e-8)


def empg_advantages(
    advantages: torch.Tensor,
    entropy: torch.Tensor,
    mask: torch.Tensor,
    *,
    k: float = 1.0,
    k_future: float = 1.0,
    zeta: float = 0.0,
    next_entropy: torch.Tensor | None = None,
    normalize: bool = True,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """EMPG's entropy-modulated advantages (arXiv 2509.09265, "Harnessing Uncertainty: Entropy-Modulated Policy
    Gradients for Long-Horizon LLM Agents"; no reference code, formula from the paper).

        Hn = (H - min_m H) / (max_m H - min_m H + 1e-8)              (batch min-max over valid steps)
        g  = exp(-k Hn) / mean_m exp(-k Hn)                           (self-calibrating scale, batch mean 1)
        f  = zeta exp(-k_future Hn_next)   (future-clarity bonus; Hn_next = normalised entropy of the next step,
             ``next_entropy`` or H shifted by one position; 0 at the last valid position)
        A_mod = g A + f
        A_out = (A_mod - mean_m A_mod) / (std_m A_mod + 1e-8)  if ``normalize`` (population std), else A_mod

    g > 1 on confident (low-entropy) steps: a correct confident step (A > 0) is amplified, a wrong confident
    step (A < 0) is penalised harder; g < 1 attenuates uncertain steps. A "step" is a token unless the caller
    passes a step-level entropy broadcast over the step's tokens. ``zeta = 0`` disables the bonus.

    Args:
        advantages, entropy, mask: (B, T).
        next_entropy: optional (B, T) entropy of the following step.

    Returns:
        (B, T) modulated advantages (detached from ``entropy``) and 0-dim diagnostics ``scale_mean``,
        ``bonus_mean``.
    """
    h = entropy.detach()
    valid = mask != 0
    hn = _minmax(h, mask)
    w = torch.exp(-k * hn)
    g = w / masked_mean(w, mask).clamp_min(1e-12)
    a_mod = g * advantages
    bonus = torch.zeros_like(h)
    if zeta:
        if next_entropy is None:
            nxt = torch.roll(h, shifts=-1, dims=-1)
            has_next = torch.roll(valid, shifts=-1, dims=-1)
            has_next[..., -1] = False
            has_next = has_next & valid
        else:
            if next_entropy.shape != h.shape:
                raise ValueError(f"next_entropy {tuple(next_entropy.shape)} must have the shape {tuple(h.shape)}")
            nxt = next_entropy.detach()
            has_next = valid
        # normalise the next-step entropy with the same batch min/max as H
        lo = h[valid].min() if bool(valid.any()) else h.new_zeros(())
        hi_ = h[valid].max() if bool(valid.any()) else h.new_zeros(())
        hn_next = (nxt - lo) / (hi_ - lo + 1e-8)
        bonus = torch.where(has_next, zeta * torch.exp(-k_future * hn_next), torch.zeros_like(h))
        a_mod = a_mod + bonus
    if normalize:
        mean = masked_mean(a_mod, mask)
        std = masked_mean((a_mod - mean).square(), mask).sqrt()
        a_mod = (a_mod - mean) / (std + 1e-8)
    a_mod = torch.where(valid, a_mod, torch.zeros_like(a_mod))
    return a_mod, {"scale_mean": masked_mean(g, mask), "bonus_mean": masked_mean(bonus, mask)}


@register_policy_loss("empg")
def empg(
    logp: torch.Tensor,
    old_logp: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    *,
    entropy: torch.Tensor | None = None,
    empg_k: float = 1.0,
    empg_k_future: float = 1.0,
    empg_zeta: float = 0.0,
    empg_next_entropy: torch.Tensor | None = None,
    empg_normalize: bool = True,
    clip_low: float = 0.2,
    clip_high: float | None = None,
    clip_c: float | None = 3.0,
    agg: str = "token-mean",
    **extra,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Entropy-Modulated Policy Gradients: the vanilla dual-clip loss on :func:`empg_advantages`.

    loss_tok = clipped_token_loss(r, A_out, low, high, clip_c) with A_out from :func:`empg_advantages`
    (k = ``empg_k``, k_future = ``empg_k_future``, zeta = ``empg_zeta``, ``empg_next_entropy``,
    ``empg_normalize``). No reference code exists (project page only); defaults k = k_future = 1, zeta = 0 (the
    future-clarity bonus is an option) are ours. Metrics ``empg/scale_mean`` (mean g, 1 by construction),
    ``empg/bonus_mean``, ``empg/adv_abs_mean``.
    """
    check_options(
        "empg", extra, _CLIP_OPTS + ("empg_k", "empg_k_future", "empg_zeta", "empg_next_entropy", "empg_normalize")
    )
    h = _need_entropy("empg", entropy, logp)
    low, high = clip_bounds(clip_low, clip_high)
    adv, diag = empg_advantages(
        advantages, h, mask, k=empg_k, k_future=empg_k_future, zeta=empg_zeta,
        next_entropy=empg_next_entropy, normalize=empg_normalize,
    )
    ratio = torch.exp(log_ratio(logp, old_logp))
    tok = clipped_token_loss(ratio, adv, low, high, clip_c)
    stats = ratio_stats(ratio, adv, mask, low, high, logp, old_logp)
    stats["empg/scale_mean"] = diag["scale_mean"]
    stats["empg/bonus_mean"] = diag["bonus_mean"]
    stats["empg/adv_abs_mean"] = masked_mean(adv.abs(), mask)
    return aggregate(tok, mask, agg), to_floats(stats)
