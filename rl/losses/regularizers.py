"""Regularised policy losses: Lp-Reg (low-probability tokens), SIREN (selective entropy), EPO (entropy band).

All losses share the signature of :func:`rl.losses.policy_loss` (``(B, T)`` tensors ``logp`` with grad,
``old_logp``, ``advantages``, ``mask``; keyword-only options). Notation: d = logp - old_logp,
r = exp(clamp(d, -20, 20)), A = advantage, m = mask, H = entropy, low/high = 1 - clip_low / 1 + clip_high,
agg = the ``agg`` aggregation of :func:`rl.losses.aggregate`.
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch

from rl.entropy import entropy_from_logits
from rl.kl import kl_penalty
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
from rl.losses.state import LossState

__all__ = [
    "EpoHistory",
    "SirenAnchor",
    "epo",
    "lp_reg",
    "minp_proxy_logp",
    "row_quantile",
    "siren",
    "top_p_entropy",
]

_CLIP_OPTS = ("clip_low", "clip_high", "clip_c", "agg")
_MASKED_LOGIT = -1e4  # Lp-Reg-dev's value for filtered-out vocabulary entries


# ---------------------------------------------------------------------------------------------- Lp-Reg


def minp_proxy_logp(logits: torch.Tensor, tokens: torch.Tensor, *, kappa: float = 0.02) -> torch.Tensor:
    """log pi_proxy(token): min-p filtered, renormalised distribution of ``logits`` (detached).

    keep_v = p_v >= kappa * max_v p_v; z'_v = z_v where kept else -1e4; log pi_proxy = log_softmax(z')[token].
    Source: CarlanLark/Lp-Reg-dev@33b27e27 ``DataParallelPPOActor.apply_min_p`` (regular_type "minp").

    Args:
        logits: (B, T, V) logits (already temperature-scaled).
        tokens: (B, T) sampled token ids.

    Returns:
        (B, T) log-probabilities under the proxy (a filtered-out token gets about -1e4).
    """
    if not 0.0 <= kappa <= 1.0:
        raise ValueError(f"lp_reg_kappa (min-p threshold) must be in [0, 1] (got {kappa})")
    if logits.dim() != 3 or logits.shape[:2] != tokens.shape:
        raise ValueError(f"logits {tuple(logits.shape)} must be (B, T, V) with tokens {tuple(tokens.shape)} = (B, T)")
    with torch.no_grad():
        z = logits.detach().to(torch.promote_types(logits.dtype, torch.float32))
        logp_all = torch.log_softmax(z, dim=-1)  # (B, T, V)
        log_kappa = math.log(kappa) if kappa > 0 else -math.inf
        keep = logp_all >= logp_all.amax(dim=-1, keepdim=True) + log_kappa
        z = torch.where(keep, z, torch.full((), _MASKED_LOGIT, dtype=z.dtype, device=z.device))
        out = torch.log_softmax(z, dim=-1).gather(-1, tokens.long().unsqueeze(-1)).squeeze(-1)  # (B, T)
    return out.to(logits.dtype)


def _lowest_fraction(logp: torch.Tensor, candidates: torch.Tensor, ratio: float) -> tuple[torch.Tensor, int]:
    """Boolean (B, T): the k = max(1, int(n ratio)) candidates with the lowest logp (n = #candidates)."""
    n = int(candidates.sum())
    sel = torch.zeros_like(candidates)
    if n == 0 or ratio <= 0:
        return sel, 0
    k = max(1, int(n * ratio))
    flat = torch.where(candidates, logp.detach(), torch.full_like(logp, float("inf"))).reshape(-1)
    idx = torch.topk(flat, k, largest=False).indices
    sel.view(-1)[idx] = True
    return sel, k


@register_policy_loss("lp_reg")
def lp_reg(
    logp: torch.Tensor,
    old_logp: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    *,
    logits: torch.Tensor | None = None,
    tokens: torch.Tensor | None = None,
    old_logits: torch.Tensor | None = None,
    lp_reg_proxy_logp: torch.Tensor | None = None,
    lp_reg_kappa: float = 0.02,
    lp_reg_neg_ratio: float = 0.01,
    lp_reg_pos_ratio: float = 0.0,
    lp_reg_coef: float = 1.0,
    clip_low: float = 0.2,
    clip_high: float | None = None,
    clip_c: float | None = None,
    agg: str = "token-mean",
    **extra,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Low-probability regularisation, Lp-Reg (paper: "Low-probability Tokens Sustain Exploration in RLVR"; CarlanLark/Lp-Reg-dev@33b27e27
    ``compute_policy_loss_lp_reg``, proxy from ``DataParallelPPOActor.apply_min_p``).

    Proxy: lp_proxy = :func:`minp_proxy_logp` (kappa = ``lp_reg_kappa`` 0.02) of ``old_logits`` if given, else of
    ``logits.detach()`` (the current policy: the reference's default on-policy path recomputes the forward with
    min-p filtering, detached), or ``lp_reg_proxy_logp`` (B, T) given directly. Needs ``tokens`` (B, T) ids with
    logits.

    Selection: among valid tokens with A < 0, the k = max(1, int(n_neg * lp_reg_neg_ratio)) lowest-logp ones
    (0.01: the lowest 1%), and of those only the tokens with logp < lp_proxy (the proxy puts more mass on
    them). Same on the A > 0 side with ``lp_reg_pos_ratio`` (0 = off, the reference default).

    loss_tok = max(-A r, -A clamp(r, low, high))  (no dual clip unless ``clip_c``; the reference has none)
    on regularised tokens instead: loss_tok = -A r + lp_reg_coef * k3(logp, lp_proxy), with the unclipped
    -A r as in the reference, and k3 = ``rl.kl.kl_penalty(logp, lp_proxy, "k3")``
    (x = clamp(lp_proxy - logp, +-20); clamp(e^x - x - 1, -10, 10)).

    Differences from the reference: it skips the side entirely when k = 1 (``if neg_logp_k > 1``), so batches
    with fewer than 200 negative tokens get no regularisation; here k = 1 is applied. Defaults eps 0.2/0.2
    follow verl; the Lp-Reg scripts use clip_low 1.0 / clip_high 9.0 (pass them explicitly).

    Metrics: ``lp_reg/n_candidates`` (k summed over sides), ``lp_reg/n_regularized``, ``lp_reg/kl_mean`` (mean k3
    over regularised tokens).
    """
    check_options(
        "lp_reg",
        extra,
        _CLIP_OPTS
        + ("tokens", "old_logits", "lp_reg_proxy_logp", "lp_reg_kappa", "lp_reg_neg_ratio", "lp_reg_pos_ratio",
           "lp_reg_coef"),
    )
    for name, val in (("lp_reg_neg_ratio", lp_reg_neg_ratio), ("lp_reg_pos_ratio", lp_reg_pos_ratio)):
        if not 0.0 <= val <= 1.0:
            raise ValueError(f"{name} must be a fraction in [0, 1] (got {val})")
    if lp_reg_proxy_logp is None:
        source = old_logits if old_logits is not None else logits
        if source is None or tokens is None:
            raise ValueError(
                "policy loss 'lp_reg' needs the proxy: pass logits=(B, T, V) (current policy) and tokens=(B, T) "
                "sampled ids (optionally old_logits=(B, T, V)), or lp_reg_proxy_logp=(B, T)"
            )
        lp_reg_proxy_logp = minp_proxy_logp(source, tokens, kappa=lp_reg_kappa)
    proxy = lp_reg_proxy_logp.detach().to(logp.dtype)
    if proxy.shape != logp.shape:
        raise ValueError(f"lp_reg proxy log-probs {tuple(proxy.shape)} must have the shape of logp {tuple(logp.shape)}")
    low, high = clip_bounds(clip_low, clip_high)
    valid = mask != 0
    sel_neg, k_neg = _lowest_fraction(logp, valid & (advantages < 0), lp_reg_neg_ratio)
    sel_pos, k_pos = _lowest_fraction(logp, valid & (advantages > 0), lp_reg_pos_ratio)
    reg = (sel_neg | sel_pos) & (logp.detach() < proxy)
    ratio = torch.exp(log_ratio(logp, old_logp))
    tok = clipped_token_loss(ratio, advantages, low, high, clip_c)
    kl = kl_penalty(logp, proxy, "k3")
    tok = torch.where(reg, -advantages * ratio + lp_reg_coef * kl, tok)
    stats = ratio_stats(ratio, advantages, mask, low, high, logp, old_logp)
    n_reg = reg.sum()
    stats["lp_reg/n_candidates"] = float(k_neg + k_pos)
    stats["lp_reg/n_regularized"] = n_reg
    stats["lp_reg/kl_mean"] = torch.where(reg, kl.detach(), torch.zeros_like(kl)).sum() / n_reg.clamp_min(1)
    return aggregate(tok, mask, agg), to_floats(stats)


# ---------------------------------------------------------------------------------------------- SIREN


def top_p_entropy(
    logits: torch.Tensor, *, top_p: float = 0.8, top_k: int | None = None, include_boundary: bool = True
) -> torch.Tensor:
    """Entropy of the renormalised nucleus (top-p) of ``softmax(logits)``, differentiable in the logits.

    Sort p descending, c_i = cumulative sum. Kept: i with c_i - p_i < top_p (the standard nucleus: the smallest
    prefix whose mass reaches top_p) when ``include_boundary``, else c_i < top_p (Linn3a/siren@fa59a8df
    ``efficient_top_p_sampling``: searchsorted then ``range < cutoff`` drops the token that crosses top_p);
    optionally only the ``top_k`` most probable. p~ = p / sum_kept p; H_p = -sum_kept p~ log p~ (0 when nothing
    is kept). The kept set is a non-differentiable selection; the gradient flows through the kept p~.

    Args:
        logits: (..., V).

    Returns:
        (...) entropies in the math dtype (fp32 for half inputs, float64 for float64).
    """
    if not 0.0 < top_p <= 1.0:
        raise ValueError(f"top_p must be in (0, 1] (got {top_p})")
    z = logits.to(torch.promote_types(logits.dtype, torch.float32))
    logp_all = torch.log_softmax(z, dim=-1)
    if top_k is not None:
        if top_k < 1:
            raise ValueError(f"top_k must be >= 1 (got {top_k})")
        lp_sorted = torch.topk(logp_all, min(top_k, z.shape[-1]), dim=-1).values  # (..., k) descending
    else:
        lp_sorted = torch.sort(logp_all, dim=-1, descending=True).values  # (..., V)
    p_sorted = lp_sorted.exp()
    cum = p_sorted.detach().cumsum(-1)
    before = cum - p_sorted.detach()
    keep = (before < top_p) if include_boundary else (cum < top_p)
    zero = torch.zeros((), dtype=z.dtype, device=z.device)
    mass = torch.where(keep, p_sorted, zero).sum(-1, keepdim=True)  # (..., 1)
    log_mass = torch.log(mass.clamp_min(torch.finfo(z.dtype).tiny))
    lp_tilde = lp_sorted - log_mass
    h = -torch.where(keep, lp_tilde.exp() * lp_tilde, zero).sum(-1)
    return h


def row_quantile(x: torch.Tensor, mask: torch.Tensor, q: float) -> torch.Tensor:
    """Per-row q-quantile over valid entries, linear interpolation (``torch.nanquantile(dim=-1)`` with padding as
    NaN), without nanquantile's size limit. NaN for rows without valid entries. Detached.

    Args:
        x, mask: (B, T).

    Returns:
        (B, 1).
    """
    v = torch.where(mask != 0, x.detach(), torch.full_like(x, float("inf")))
    v = torch.sort(v, dim=-1).values  # valid values first
    n = (mask != 0).sum(-1, keepdim=True)  # (B, 1)
    pos = q * (n - 1).clamp_min(0).to(x.dtype)
    lo = pos.floor().long()
    hi = torch.minimum(lo + 1, (n - 1).clamp_min(0))
    a = v.gather(-1, lo)
    b = v.gather(-1, hi)
    frac = pos - lo.to(x.dtype)
    out = a + frac * torch.where(hi > lo, b - a, torch.zeros_like(a))
    return torch.where(n > 0, out, torch.full_like(out, float("nan")))


class SirenAnchor(LossState):
    """SIREN's entropy anchor across steps (the reference anchors on the masked entropy of the first batch).

    ``siren_anchor`` is None for the first optimizer step (the loss then anchors on itself, penalty 0, and
    reports ``siren/anchor``); the step's ``siren/anchor`` (micro-batch weighted, reduced over ranks) is kept
    once that step is applied and passed to every later step. An explicit ``siren_anchor`` in ``loss_cfg``
    wins and nothing is kept.
    """

    def __init__(self, *, loss_cfg: Mapping[str, Any], steps: int) -> None:
        super().__init__(loss_cfg=loss_cfg, steps=steps)
        self.anchor: float | None = None

    def update_inputs(self) -> dict[str, Any]:
        return {"siren_anchor": self.anchor}

    def observe_update(self, metrics: Mapping[str, Any], *, applied: bool) -> None:
        fixed = "siren_anchor" in self.loss_cfg
        if applied and not fixed and self.anchor is None and "siren/anchor" in metrics:
            self.anchor = float(metrics["siren/anchor"])

    def state_dict(self) -> dict[str, Any]:
        return {"siren_anchor": self.anchor}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.anchor = state.get("siren_anchor", self.anchor)


@register_policy_loss("siren", state=SirenAnchor)
def siren(
    logp: torch.Tensor,
    old_logp: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    *,
    logits: torch.Tensor | None = None,
    siren_coef: float = 0.005,
    siren_anchor: float | torch.Tensor | None = None,
    siren_top_p: float = 0.8,
    siren_top_k: int | None = None,
    siren_peak_quantile: float = 0.8,
    siren_include_boundary: bool = True,
    clip_low: float = 0.2,
    clip_high: float | None = None,
    clip_c: float | None = 3.0,
    agg: str = "token-mean",
    **extra,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Selective entropy regularisation, SIREN (Linn3a/siren@fa59a8df
    ``verl/workers/actor/dp_actor.py`` ``update_policy``, experiment_type "siren").

    H_p = :func:`top_p_entropy` (``logits`` (B, T, V) of the current policy, top_p ``siren_top_p`` 0.8);
    peak = (H_p > q_b) & m with q_b the per-sequence ``siren_peak_quantile`` (0.8) quantile of H_p over valid
    tokens (``mask_by_quantile``: nanquantile(dim=-1), strict >): the top 20% tokens of each sequence;
    E = agg(H_p, peak) (``aggregate`` with the peak mask as mask);
    loss = agg(vanilla dual-clip loss) + siren_coef * (E - anchor)^2.

    The anchor (reference: the masked entropy of the first batch, kept by the trainer) is ``siren_anchor``; when
    None the current E (detached) is used -- the penalty and its gradient are then 0 -- and reported as
    ``siren/anchor`` so the trainer can store it and pass it from the next step on. Difference from the
    reference: the nucleus includes the token that crosses top_p (``siren_include_boundary=False`` restores the
    reference's exclusive cut); the reference's ``use_siren`` path applies the quantile mask twice, here once.
    The script uses coef 0.005, clip_high 0.28, agg seq-mean-token-sum-norm.

    Metrics: ``siren/entropy`` (E), ``siren/anchor``, ``siren/penalty`` ((E - anchor)^2), ``siren/frac_peak``.
    """
    check_options(
        "siren",
        extra,
        _CLIP_OPTS
        + ("siren_coef", "siren_anchor", "siren_top_p", "siren_top_k", "siren_peak_quantile", "siren_include_boundary"),
    )
    if logits is None or logits.dim() != 3 or logits.shape[:2] != logp.shape:
        raise ValueError(
            "policy loss 'siren' needs logits=(B, T, V) of the current policy (with grad) matching logp "
            f"{tuple(logp.shape)}; got {None if logits is None else tuple(logits.shape)}"
        )
    low, high = clip_bounds(clip_low, clip_high)
    ratio = torch.exp(log_ratio(logp, old_logp))
    pg = aggregate(clipped_token_loss(ratio, advantages, low, high, clip_c), mask, agg)
    h = top_p_entropy(logits, top_p=siren_top_p, top_k=siren_top_k, include_boundary=siren_include_boundary)
    h = h.to(logp.dtype)
    thr = row_quantile(h, mask, siren_peak_quantile)  # (B, 1)
    peak = (h.detach() > thr) & (mask != 0)
    ent = aggregate(h, peak.to(logp.dtype), agg)
    anchor = ent.detach() if siren_anchor is None else torch.as_tensor(siren_anchor, dtype=ent.dtype, device=ent.device)
    penalty = (ent - anchor).square()
    stats = ratio_stats(ratio, advantages, mask, low, high, logp, old_logp)
    stats["siren/entropy"] = ent.detach()
    stats["siren/anchor"] = anchor
    stats["siren/penalty"] = penalty.detach()
    stats["siren/frac_peak"] = masked_mean(peak.to(logp.dtype), mask)
    return pg + siren_coef * penalty, to_floats(stats)


# ---------------------------------------------------------------------------------------------- EPO


class EpoHistory(LossState):
    """EPO's historical entropy and training phase across rollout iterations.

    ``epo_hist_entropy``: the cumulative mean, equal weight per rollout iteration, of the rollout's token-mean
    entropy (``entropy/rollout``) over all EARLIER iterations (None on the first: no penalty, as the reference);
    ``epo_phase`` = (rollout iterations done before this one) / ``steps``, so the term is active from iteration
    steps * epo_phase_start on (reference: rollout step >= max_step / 2). The phase is derived from the counters
    (not stored): give the trainer the full horizon as ``config.steps`` and stop early with ``train(steps=k)`` so a
    resumed run sees the same phases. Logged as ``epo/hist_entropy`` and ``epo/phase``.
    """

    def __init__(self, *, loss_cfg: Mapping[str, Any], steps: int) -> None:
        super().__init__(loss_cfg=loss_cfg, steps=steps)
        self.hist_sum = 0.0
        self.hist_count = 0

    def rollout_inputs(self, rollout: int) -> dict[str, Any]:
        hist = self.hist_sum / self.hist_count if self.hist_count else None
        return {"epo_hist_entropy": hist, "epo_phase": rollout / max(self.steps, 1)}

    def observe_rollout(self, metrics: Mapping[str, Any]) -> None:
        self.hist_sum += float(metrics["entropy/rollout"])
        self.hist_count += 1

    def state_dict(self) -> dict[str, Any]:
        return {"epo_hist_sum": self.hist_sum, "epo_hist_count": self.hist_count}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.hist_sum = float(state.get("epo_hist_sum", self.hist_sum))
        self.hist_count = int(state.get("epo_hist_count", self.hist_count))


@register_policy_loss("epo", state=EpoHistory)
def epo(
    logp: torch.Tensor,
    old_logp: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    *,
    entropy: torch.Tensor | None = None,
    logits: torch.Tensor | None = None,
    epo_hist_entropy: float | torch.Tensor | None = None,
    epo_phase: float = 1.0,
    epo_phase_start: float = 0.5,
    epo_coef: float = 1e-3,
    epo_smooth_coef: float = 1.0,
    epo_low_ratio: float = 0.5,
    epo_high_ratio: float = 1.5,
    epo_out_penalty: float = 0.1,
    clip_low: float = 0.2,
    clip_high: float | None = None,
    clip_c: float | None = 3.0,
    agg: str = "token-mean",
    **extra,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Entropy-regularised PO with an entropy-smoothing penalty, EPO (WujiangXu/EPO@5b6fa98e
    ``dp_actor.py`` ``generate_entropy_penalty`` and its use in ``update_policy``).

    H = ``entropy`` (B, T) with grad, or entropy_from_logits(``logits``). With Hbar = ``epo_hist_entropy`` (the
    running historical mean entropy; scalar, (B,) per sample or (B, T)), lo = epo_low_ratio Hbar,
    hi = epo_high_ratio Hbar (script 0.5 / 1.5):
        penalty_tok = epo_out_penalty * (relu(lo - H) + relu(H - hi))
        w = 1 if epo_phase >= epo_phase_start else 0   (``epo_phase`` = training progress in [0, 1]; the
            reference applies the term from rollout step max_step / 2 on)
        loss = agg(vanilla dual-clip loss) - w epo_coef (agg(H) - epo_smooth_coef agg(penalty_tok))
    ``epo_hist_entropy=None`` (no history yet) means no penalty, as in the reference.

    Fix of the reference: it builds the penalty as ``where(lo < H < hi, 0, 0.1)`` from constants, so it changes the
    loss value but carries no gradient. Here the penalty is the distance of H to the band (scaled by
    epo_out_penalty), so its gradient is epo_out_penalty * (-1 below, +1 above, 0 inside) d H, non-zero exactly
    where H leaves [lo, hi], pulling it back into the band.

    Metrics: ``epo/entropy`` (agg H), ``epo/penalty`` (agg penalty), ``epo/frac_out_of_band``, ``epo/active``.
    """
    check_options(
        "epo",
        extra,
        _CLIP_OPTS
        + ("epo_hist_entropy", "epo_phase", "epo_phase_start", "epo_coef", "epo_smooth_coef", "epo_low_ratio",
           "epo_high_ratio", "epo_out_penalty"),
    )
    if not 0.0 <= epo_low_ratio <= epo_high_ratio:
        raise ValueError(f"need 0 <= epo_low_ratio <= epo_high_ratio (got {epo_low_ratio}, {epo_high_ratio})")
    if entropy is None:
        if logits is None:
            raise ValueError("policy loss 'epo' needs entropy=(B, T) with grad, or logits=(B, T, V) of the current policy")
        entropy = entropy_from_logits(logits)
    if entropy.shape != logp.shape:
        raise ValueError(f"entropy {tuple(entropy.shape)} must have the shape of logp {tuple(logp.shape)}")
    h = entropy.to(logp.dtype)
    low, high = clip_bounds(clip_low, clip_high)
    ratio = torch.exp(log_ratio(logp, old_logp))
    pg = aggregate(clipped_token_loss(ratio, advantages, low, high, clip_c), mask, agg)
    if epo_hist_entropy is None:
        penalty = torch.zeros_like(h)
        outside = torch.zeros_like(h, dtype=torch.bool)
    else:
        hbar = torch.as_tensor(epo_hist_entropy, dtype=h.dtype, device=h.device)
        if hbar.dim() == 1:
            hbar = hbar.unsqueeze(-1)  # (B,) -> (B, 1)
        lo, hi = epo_low_ratio * hbar, epo_high_ratio * hbar
        penalty = epo_out_penalty * (torch.relu(lo - h) + torch.relu(h - hi))
        outside = (h.detach() < lo) | (h.detach() > hi)
    active = 1.0 if epo_phase >= epo_phase_start else 0.0
    ent_agg = aggregate(h, mask, agg)
    pen_agg = aggregate(penalty, mask, agg)
    loss = pg - active * epo_coef * (ent_agg - epo_smooth_coef * pen_agg)
    stats = ratio_stats(ratio, advantages, mask, low, high, logp, old_logp)
    stats["epo/entropy"] = ent_agg.detach()
    stats["epo/penalty"] = pen_agg.detach()
    stats["epo/frac_out_of_band"] = masked_mean(outside.to(h.dtype), mask)
    stats["epo/active"] = active
    return loss, to_floats(stats)
