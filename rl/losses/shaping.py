"""Entropy-aware reshaping of the PPO loss: STEER (token weights), HAPO (entropy-adaptive clip and advantage),
BAPO (adaptive clip bounds balancing positive and negative contributions).

Signature and notation as in :mod:`rl.losses.ppo`; ``entropy`` is the (B, T) entropy of the current policy at
each position (no gradient is taken through it here). All three build on
:func:`rl.losses.ppo.clipped_token_loss` (PPO clip + dual clip for A < 0).
"""

from __future__ import annotations

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

__all__ = ["bapo", "bapo_bounds", "hapo", "hapo_entropy_scale", "steer", "steer_weights"]

_CLIP_OPTS = ("clip_low", "clip_high", "clip_c", "agg")


def _need_entropy(method: str, entropy: torch.Tensor | None, like: torch.Tensor) -> torch.Tensor:
    if entropy is None:
        raise ValueError(f"policy loss {method!r} needs entropy=(B, T) tensor of per-token policy entropies")
    if entropy.shape != like.shape:
        raise ValueError(
            f"entropy {tuple(entropy.shape)} must have the (B, T) shape of logp {tuple(like.shape)}"
        )
    return entropy.detach()


# ----------------------------------------------------------------------------------------------------- STEER
def steer_weights(
    logp: torch.Tensor,
    old_logp: torch.Tensor,
    advantages: torch.Tensor,
    entropy: torch.Tensor,
    mask: torch.Tensor,
    *,
    w_min: float = 0.8,
    w_max: float = 1.2,
    mode: str = "linear",
) -> torch.Tensor:
    """STEER token weights (zz-haooo/STEER@b31df716 ``core_algos.compute_token_weights``), no gradient.

    p = clamp(exp(logp), 1e-8, 1 - 1e-8); Omega = |A / clamp(exp(old_logp), 1e-8, 1) * p (1 - p) (log p + H)|
    (the first-order entropy change a token causes; non-finite values -> 0).
    ``linear``: w = clamp(w_max - (Omega - Omega_min)(w_max - w_min)/(Omega_max - Omega_min), w_min, w_max), min/max
    over valid tokens, (w_min + w_max)/2 everywhere if Omega_max == Omega_min: the larger the entropy change,
    the smaller the weight. ``exp``: k = -ln(w_min) / max(Omega_max, 0.02); w = clamp(exp(-k Omega), w_min, 1).

    Returns:
        (B, T) weights, 0 on padding.
    """
    if mode not in ("linear", "exp"):
        raise ValueError(f"steer_mode must be 'linear' or 'exp' (got {mode!r})")
    if not 0 < w_min <= w_max:
        raise ValueError(f"need 0 < steer_w_min <= steer_w_max (got {w_min}, {w_max})")
    with torch.no_grad():
        valid = mask != 0
        p = torch.exp(logp).clamp(1e-8, 1 - 1e-8)
        old_p = torch.exp(old_logp).clamp(1e-8, 1.0)
        omega = advantages / old_p * (p * (1 - p) * (torch.log(p) + entropy))
        omega = torch.where(torch.isfinite(omega), omega, torch.zeros_like(omega)).abs()
        if not bool(valid.any()):
            return torch.zeros_like(omega)
        o_min, o_max = omega[valid].min(), omega[valid].max()
        if mode == "linear":
            span = o_max - o_min
            scaled = w_max - (omega - o_min) * (w_max - w_min) / torch.where(
                span > 0, span, torch.ones_like(span)
            )
            w = torch.where(span > 0, scaled, torch.full_like(omega, (w_min + w_max) / 2)).clamp(w_min, w_max)
        else:
            k = -torch.log(omega.new_tensor(w_min)) / torch.clamp(o_max, min=0.02)
            w = torch.exp(-k * omega).clamp(w_min, 1.0)
        return torch.where(valid, w, torch.zeros_like(w))


@register_policy_loss("steer")
def steer(
    logp: torch.Tensor,
    old_logp: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    *,
    entropy: torch.Tensor | None = None,
    clip_low: float = 0.2,
    clip_high: float | None = None,
    clip_c: float | None = 3.0,
    agg: str = "token-mean",
    steer_mode: str = "linear",
    steer_w_min: float = 0.8,
    steer_w_max: float = 1.2,
    **extra,
) -> tuple[torch.Tensor, dict[str, float]]:
    """STEER (zz-haooo/STEER@b31df716 ``compute_policy_loss_with_entropy``, "entropy_control").

    loss_tok = :func:`steer_weights` * :func:`clipped_token_loss` (r, A, 1 - clip_low, 1 + clip_high, clip_c).
    Needs ``entropy`` (B, T). Defaults follow the reference function (eps 0.2/0.2, c = 3, w in [0.8, 1.2],
    linear); the STEER scripts run clip_high=0.28, clip_c=10. ``steer_mode="exp"`` uses w in [steer_w_min, 1].
    Metrics: ``steer/w_mean``, ``steer/w_min``, ``steer/w_max`` over valid tokens.
    """
    check_options("steer", extra, _CLIP_OPTS + ("steer_mode", "steer_w_min", "steer_w_max"))
    entropy = _need_entropy("steer", entropy, logp)
    low, high = clip_bounds(clip_low, clip_high)
    ratio = torch.exp(log_ratio(logp, old_logp))
    w = steer_weights(
        logp, old_logp, advantages, entropy, mask, w_min=steer_w_min, w_max=steer_w_max, mode=steer_mode
    )
    tok = clipped_token_loss(ratio, advantages, low, high, clip_c) * w
    stats = ratio_stats(ratio, advantages, mask, low, high, logp, old_logp)
    stats["steer/w_mean"] = masked_mean(w, mask)
    stats["steer/w_min"] = torch.where(
        mask != 0, w, torch.full_like(w, steer_w_max)
    ).min()  # w = 0 on padding
    stats["steer/w_max"] = w.max()
    return aggregate(tok, mask, agg), to_floats(stats)


# ------------------------------------------------------------------------------------------------------ HAPO
def hapo_entropy_scale(
    entropy: torch.Tensor, mask: torch.Tensor, *, pivot: float = 0.8, eps: float = 1e-8
) -> torch.Tensor:
    """HAPO's normalised log-entropy h_hat in [-1, 1] (starriver030515/HAPO ``compute_entropy_h``), no gradient.

    l = log(clamp(H, eps)); med = the ``pivot`` quantile of l over valid tokens with 'nearest' interpolation
    (sorted valid values at index round(pivot (n - 1)), Python rounding as in the reference);
    h = (l - med) / sqrt(max(mean_valid((l - med)^2), eps));
    h_hat = h / max(max_valid h, eps) where h > 0, h / |min(min_valid h, -eps)| where h <= 0.
    Difference from the stored reference snapshot (32164f02): it divides h <= 0 by the (negative) minimum
    itself, which makes low-entropy tokens positive so the h_hat <= 0 branches of ada_clip/ada_advantage
    never see a negative value; we divide by its absolute value, giving the documented range [-1, 1].

    Returns:
        (B, T) h_hat (values on padding are meaningless).
    """
    if not 0.0 <= pivot <= 1.0:
        raise ValueError(f"hapo_pivot must be in [0, 1] (got {pivot})")
    with torch.no_grad():
        valid = mask != 0
        ell = torch.log(entropy.clamp_min(eps))
        vals = ell[valid]
        if vals.numel() == 0:
            return torch.zeros_like(ell)
        idx = round(pivot * (vals.numel() - 1))
        med = torch.kthvalue(vals, idx + 1).values
        h = ell - med
        var = (torch.where(valid, h.square(), torch.zeros_like(h)).sum() / valid.sum()).clamp_min(eps)
        h = h / var.sqrt()
        zero = torch.zeros_like(h)
        pos_max = torch.where(valid & (h > 0), h, zero).max().clamp_min(eps)
        neg_min = torch.where(valid & (h < 0), h, zero).min().clamp_max(-eps)
        return torch.where(h > 0, h / pos_max, h / neg_min.abs())


@register_policy_loss("hapo")
def hapo(
    logp: torch.Tensor,
    old_logp: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    *,
    entropy: torch.Tensor | None = None,
    clip_low: float = 0.2,
    clip_high: float | None = None,
    clip_c: float | None = 3.0,
    agg: str = "token-mean",
    hapo_pivot: float = 0.8,
    hapo_alpha: float = 1.0,
    hapo_beta: float = 1.0,
    hapo_adaptive_clip: bool = True,
    hapo_adaptive_adv: bool = True,
    **extra,
) -> tuple[torch.Tensor, dict[str, float]]:
    """HAPO (starriver030515/HAPO@7671dde3 ``compute_policy_loss`` with ``ada_clip`` and ``ada_advantage``).

    h = :func:`hapo_entropy_scale` (entropy, pivot). Adaptive clip (``hapo_adaptive_clip``):
    eps_low' = clip_low (1 - alpha h) where h <= 0 (else clip_low); eps_high' = clip_high (1 + alpha h) where
    h > 0 (else clip_high). Adaptive advantage (``hapo_adaptive_adv``): A_e = A (1 + beta h); inside the
    neutral band 1 - eps_low'/2 < r < 1 + eps_high'/2 a token uses A_e if h <= 0 and A if h > 0; outside the
    band it uses A if h <= 0 and A_e if h > 0. The advantages and bounds carry no gradient.
    loss_tok = :func:`clipped_token_loss` (r, A', 1 - eps_low', 1 + eps_high', clip_c). Needs ``entropy``.
    Defaults: the reference function's (eps 0.2/0.2, c = 3); the HAPO 7B script runs clip_c=10, pivot 0.8,
    alpha = beta = 1. Metrics: ``hapo/h_pos_frac`` (fraction of valid tokens with h > 0),
    ``hapo/eps_low_mean``, ``hapo/eps_high_mean``, ``hapo/adv_scale_mean`` (masked mean A'/A where A != 0).
    """
    check_options(
        "hapo",
        extra,
        _CLIP_OPTS + ("hapo_pivot", "hapo_alpha", "hapo_beta", "hapo_adaptive_clip", "hapo_adaptive_adv"),
    )
    entropy = _need_entropy("hapo", entropy, logp)
    clip_bounds(clip_low, clip_high)
    clip_high = clip_low if clip_high is None else clip_high
    ratio = torch.exp(log_ratio(logp, old_logp))
    with torch.no_grad():
        h = hapo_entropy_scale(entropy, mask, pivot=hapo_pivot)
        eps_low = torch.full_like(h, clip_low)
        eps_high = torch.full_like(h, clip_high)
        if hapo_adaptive_clip:
            eps_low = torch.where(h <= 0, clip_low * (1 - hapo_alpha * h), eps_low)
            eps_high = torch.where(h > 0, clip_high * (1 + hapo_alpha * h), eps_high)
        adv = advantages
        if hapo_adaptive_adv:
            adv_e = advantages * (1 + hapo_beta * h)
            in_band = (ratio > 1 - eps_low / 2) & (ratio < 1 + eps_high / 2)
            adv = torch.where(
                h > 0, torch.where(in_band, advantages, adv_e), torch.where(in_band, adv_e, advantages)
            )
    low, high = 1 - eps_low, 1 + eps_high
    tok = clipped_token_loss(ratio, adv, low, high, clip_c)
    stats = ratio_stats(ratio, adv, mask, low, high, logp, old_logp)
    with torch.no_grad():
        nonzero = mask.to(torch.bool) & (advantages != 0)
        safe_a = torch.where(advantages != 0, advantages, torch.ones_like(advantages))
        stats["hapo/h_pos_frac"] = masked_mean((h > 0).to(ratio.dtype), mask)
        stats["hapo/eps_low_mean"] = masked_mean(eps_low, mask)
        stats["hapo/eps_high_mean"] = masked_mean(eps_high, mask)
        stats["hapo/adv_scale_mean"] = masked_mean(adv / safe_a, nonzero)
    return aggregate(tok, mask, agg), to_floats(stats)


# ------------------------------------------------------------------------------------------------------ BAPO
def _bound_path(start: float, stop: float, step: float) -> list[float]:
    """The values the reference loop visits: start, then min(c + step, stop) until stop (same float sums)."""
    path = [start]
    while step > 0 and path[-1] < stop:
        path.append(min(path[-1] + step, stop))
    return path


def bapo_bounds(
    ratio: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    *,
    low_start: float = 0.6,
    low_max: float = 0.9,
    high_start: float = 1.2,
    high_max: float = 3.0,
    step_low: float = 0.05,
    step_high: float = 0.05,
    target: float = 0.5,
    count: str = "live",
    clip_c: float | None = 3.0,
) -> tuple[float, float, float]:
    """BAPO's adaptive bound search, all candidate bounds evaluated at once (no gradient).

    The reference loop (WooooDyy/BAPO@72870444 ``compute_policy_loss_bapo``) raises c_low by ``step_low`` up to
    ``low_max`` while the positive share rho < target, then c_high by ``step_high`` up to ``high_max``, stopping
    as soon as rho >= target. Here every (c_low, c_high) the loop can visit is scored in one pass and the first
    that meets the target (else the last) is returned: identical to the loop, which the tests check.

    rho is the positive share P / (P + N) with target 0.5 (the paper's and README's rho_0 = 0.5); the
    reference code compares P / N with target 1.0, the same condition (P >= N), while its run script passes
    0.5 to P / N, which is the inconsistency we do not copy. P and N:

    * ``count="live"`` (default, the paper's intent): only tokens whose gradient is live under the bounds:
      P = sum r A over A > 0, r <= c_high; N = sum r |A| over A < 0, c_low <= r (and r <= clip_c if set).
      Raising c_low removes negative tokens and raising c_high admits positive ones, so rho rises along the path.
    * ``count="clamped"`` (the reference code): every token counts with its clamped ratio:
      P = sum min(r, c_high) A over A >= 0; N = sum max(r, c_low) |A| over A < 0. Note that raising c_low then
      *increases* N, so the c_low phase can never help; kept to reproduce the reference.

    P and N are split: P depends only on c_high and N only on c_low, so the cost is (#lows + #highs) x tokens.

    Args:
        ratio, advantages, mask: (B, T).

    Returns:
        (c_low, c_high, rho) as floats.
    """
    if count not in ("live", "clamped"):
        raise ValueError(f"bapo_count must be 'live' or 'clamped' (got {count!r})")
    if not 0.0 < target < 1.0:
        raise ValueError(f"bapo_target is a positive share P/(P+N) in (0, 1) (got {target})")
    lows = _bound_path(low_start, low_max, step_low)
    highs = _bound_path(high_start, high_max, step_high)
    with torch.no_grad():
        valid = mask != 0
        r = ratio.detach()[valid]  # (n,)
        a = advantages.detach()[valid].to(r.dtype)
        lo = r.new_tensor(lows)[:, None]  # (K_low, 1)
        hi = r.new_tensor(highs)[:, None]  # (K_high, 1)
        pos, neg = a > 0, a < 0
        if count == "live":
            p_h = torch.where(pos & (r <= hi), r * a, r.new_zeros(())).sum(-1)  # (K_high,)
            live_neg = neg & (r >= lo) & ((r <= clip_c) if clip_c is not None else True)
            n_l = torch.where(live_neg, r * -a, r.new_zeros(())).sum(-1)  # (K_low,)
        else:
            p_h = torch.where(pos, torch.minimum(r, hi) * a, r.new_zeros(())).sum(-1)
            n_l = torch.where(neg, torch.maximum(r, lo) * -a, r.new_zeros(())).sum(-1)
        # the loop's path: (lows[i], highs[0]) for every i, then (lows[-1], highs[j]) for j >= 1
        k_low, k_high = len(lows), len(highs)
        idx_l = torch.cat([torch.arange(k_low), torch.full((k_high - 1,), k_low - 1)])
        idx_h = torch.cat([torch.zeros(k_low, dtype=torch.long), torch.arange(1, k_high)])
        p, n = p_h[idx_h.to(p_h.device)], n_l[idx_l.to(n_l.device)]  # (K,)
        met = p * (1 - target) >= target * n  # P / (P + N) >= target, also when P + N = 0
        share = torch.where(
            p + n > 0, p / torch.where(p + n > 0, p + n, torch.ones_like(p)), torch.ones_like(p)
        )
        first = torch.where(met, torch.arange(met.numel(), device=met.device), met.numel()).min()
        pick = torch.clamp(first, max=met.numel() - 1)
        i, rho = int(pick), float(share[pick])  # one host sync for the choice
    return lows[int(idx_l[i])], highs[int(idx_h[i])], rho


@register_policy_loss("bapo")
def bapo(
    logp: torch.Tensor,
    old_logp: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    *,
    clip_c: float | None = 3.0,
    agg: str = "token-mean",
    bapo_low_start: float = 0.6,
    bapo_low_max: float = 0.9,
    bapo_high_start: float = 1.2,
    bapo_high_max: float = 3.0,
    bapo_step_low: float = 0.05,
    bapo_step_high: float = 0.05,
    bapo_target: float = 0.5,
    bapo_count: str = "live",
    **extra,
) -> tuple[torch.Tensor, dict[str, float]]:
    """BAPO (WooooDyy/BAPO@72870444 ``recipe/bapo/policy_loss.py`` ``compute_policy_loss_bapo``).

    (c_low, c_high) = :func:`bapo_bounds` (absolute ratio bounds, README ranges 0.6 -> 0.9 and 1.2 -> 3.0,
    steps 0.05, positive-share target 0.5); loss_tok = :func:`clipped_token_loss` (r, A, c_low, c_high, clip_c).
    ``clip_low``/``clip_high`` do not apply (the bounds are searched). Metrics: ``bapo/c_low``,
    ``bapo/c_high``, ``bapo/pos_ratio`` (P / (P + N) at the chosen bounds, 1 when both are 0).
    """
    for key in ("clip_low", "clip_high"):
        extra.pop(key, None)
    check_options(
        "bapo",
        extra,
        (
            "clip_c",
            "agg",
            "bapo_low_start",
            "bapo_low_max",
            "bapo_high_start",
            "bapo_high_max",
            "bapo_step_low",
            "bapo_step_high",
            "bapo_target",
            "bapo_count",
        ),
    )
    if not 0 < bapo_low_start <= bapo_low_max < 1 < bapo_high_start <= bapo_high_max:
        raise ValueError(
            "BAPO bounds must satisfy 0 < bapo_low_start <= bapo_low_max < 1 < bapo_high_start <= bapo_high_max "
            f"(got {bapo_low_start}, {bapo_low_max}, {bapo_high_start}, {bapo_high_max})"
        )
    ratio = torch.exp(log_ratio(logp, old_logp))
    c_low, c_high, rho = bapo_bounds(
        ratio,
        advantages,
        mask,
        low_start=bapo_low_start,
        low_max=bapo_low_max,
        high_start=bapo_high_start,
        high_max=bapo_high_max,
        step_low=bapo_step_low,
        step_high=bapo_step_high,
        target=bapo_target,
        count=bapo_count,
        clip_c=clip_c,
    )
    tok = clipped_token_loss(ratio, advantages, c_low, c_high, clip_c)
    stats = ratio_stats(ratio, advantages, mask, c_low, c_high, logp, old_logp)
    stats.update({"bapo/c_low": c_low, "bapo/c_high": c_high, "bapo/pos_ratio": rho})
    return aggregate(tok, mask, agg), to_floats(stats)
