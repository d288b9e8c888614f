"""Risk objectives on samples of returns/scores: empirical CVaR and VaR, and RiskPO's mixed-VaR advantages.

Conventions: ``x`` are rewards (higher is better); CVaR_alpha is the mean of the worst alpha-fraction of the
outcomes, in the units and sign of ``x`` (a risk-averse objective to maximise); VaR_alpha is the empirical
lower alpha-quantile of ``x`` (not a loss, not sign-flipped). Pure torch.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import torch

__all__ = ["RiskPOResult", "RiskPOState", "cvar", "riskpo", "riskpo_advantage", "var"]


def _check_alpha(alpha: float, name: str = "alpha") -> None:
    if not 0.0 < alpha <= 1.0:
        raise ValueError(f"{name} must be in (0, 1] (got {alpha}); it is the tail fraction, e.g. 0.05 for 5%")


def _tail_count(alpha: float, n: int) -> float:
    """alpha * n, with floating noise (0.3 * 10 = 3.0000000000000004) rounded away."""
    return round(alpha * n, 9)


def cvar(x: torch.Tensor, alpha: float, dim: int = -1) -> torch.Tensor:
    """Empirical CVaR_alpha (expected shortfall) of the samples along ``dim``, differentiable.

    With x_(1) <= ... <= x_(n) sorted ascending and a = alpha n:
        CVaR = (1 / a) sum_i w_i x_(i),   w_i = clamp(a - (i - 1), 0, 1)
    i.e. the floor(a) worst samples with weight 1 and the boundary sample with the fractional weight a - floor(a)
    (n = 10, alpha = 0.25: two full samples and half of the third). This equals the Rockafellar-Uryasev form
    max_c { c - (1 / a) sum_i (c - x_i)^+ }, attained at c = :func:`var`. The gradient flows to the selected
    samples with weights w_i / a (through ``torch.sort``'s values).

    Args:
        x: (..., n, ...) samples along ``dim``.
        alpha: tail fraction in (0, 1]; alpha = 1 gives the mean.

    Returns:
        ``x`` reduced over ``dim``.
    """
    _check_alpha(alpha)
    n = x.shape[dim]
    if n == 0:
        raise ValueError("cvar needs at least one sample along dim")
    a = _tail_count(alpha, n)
    xs = torch.sort(x, dim=dim).values
    shape = [1] * x.dim()
    shape[dim] = n
    i = torch.arange(n, dtype=x.dtype, device=x.device).reshape(shape)
    w = torch.clamp(a - i, 0.0, 1.0)
    return (xs * w).sum(dim) / a


def var(x: torch.Tensor, alpha: float, dim: int = -1) -> torch.Tensor:
    """Empirical VaR_alpha: the lower alpha-quantile x_(k), k = ceil(alpha n) (inf{x: F_n(x) >= alpha}).

    It maximises the Rockafellar-Uryasev objective of :func:`cvar`. Same sign as ``x`` (a return level, not a
    loss). Differentiable (the gradient goes to the selected sample).

    Args:
        x: (..., n, ...) samples along ``dim``.
    """
    _check_alpha(alpha)
    n = x.shape[dim]
    if n == 0:
        raise ValueError("var needs at least one sample along dim")
    k = max(1, math.ceil(_tail_count(alpha, n)))
    return torch.sort(x, dim=dim).values.narrow(dim, k - 1, 1).squeeze(dim)


class RiskPOState(NamedTuple):
    """Tracked quantiles of the paper scores, passed from one step to the next (``mode`` "track"/"mix")."""

    q_low: float
    q_high: float


class RiskPOResult(NamedTuple):
    """``advantages`` (N,) one per response (0 for responses left out of every paper); ``state`` the updated
    tracked quantiles; ``paper_scores`` (P,) the paper scores of all bundles, concatenated."""

    advantages: torch.Tensor
    state: RiskPOState
    paper_scores: torch.Tensor


def _bundles(question_ids: list, bundle_size: int, bundle_ids: Sequence | None) -> list:
    """Bundle id of every response: consecutive groups of ``bundle_size`` distinct questions (first-appearance
    order) unless ``bundle_ids`` is given."""
    if bundle_ids is not None:
        if len(bundle_ids) != len(question_ids):
            raise ValueError(f"bundle_ids has {len(bundle_ids)} entries for {len(question_ids)} responses")
        return [_key(b) for b in bundle_ids]
    order: dict = {}
    for q in question_ids:
        order.setdefault(q, len(order))
    return [order[q] // bundle_size for q in question_ids]


def _key(v):
    return v.item() if isinstance(v, torch.Tensor) else v


def _std_or_one(x: torch.Tensor, floor: float = 0.0) -> float:
    """Unbiased std; 1.0 for a single value or a std <= floor (the reference's guards)."""
    if x.numel() < 2:
        return 1.0
    s = float(x.std())
    return s if s > floor else 1.0


def riskpo_advantage(scores: torch.Tensor, question_ids: Sequence | torch.Tensor, **kwargs) -> torch.Tensor:
    """RiskPO mixed-VaR advantages, one per response ``(N,)``: ``riskpo(scores, question_ids, **kwargs)
    .advantages`` (defaults alpha 0.2, beta 0.9, w 1.5, bundle_size 5; see :func:`riskpo` for every option).

    Like the other advantage estimators this returns the tensor only; call :func:`riskpo` to also get the
    tracked-quantile state to pass to the next step.
    """
    return riskpo(scores, question_ids, **kwargs).advantages


def riskpo(
    scores: torch.Tensor,
    question_ids: Sequence | torch.Tensor,
    *,
    alpha: float = 0.2,
    beta: float = 0.9,
    w: float = 1.5,
    bundle_size: int = 5,
    bundle_ids: Sequence | torch.Tensor | None = None,
    mode: str = "track",
    state: RiskPOState | None = None,
    lr: float = 0.1,
    mix: bool = True,
    norm_by_bundle_std: bool = True,
    credit: str = "std",
    eps: float = 1e-6,
) -> RiskPOResult:
    """RiskPO mixed-VaR advantages (RTkenny/RiskPO@65ec40c9, ``verl/trainer/ppo/core_algos.py``
    ``compute_grpo_bundle_rvar_outcome_advantage_quantile_tracking``).

    Bundles: ``bundle_size`` questions; inside a bundle, "paper" j takes the j-th response of every question
    (P = min responses per question; extra responses belong to no paper and get advantage 0);
    S_j = sum of its scores. Quantiles q_a, q_b (levels alpha, beta) of the bundle's S (``torch.quantile``,
    linear; one paper: q = S, std 1):
      ``mode="batch"``: per-bundle batch quantiles; ``"track"``: ``state`` (q_low, q_high) for every bundle
      (batch quantiles while ``state`` is None); ``"mix"``: the average of both.
        A_RVaR = [(S - q_a)^+ - (S - q_b)^+ + q_a - q_b] / (beta - alpha + eps)
        A_CVaR = -(q_a - S)^+ / (alpha + eps)
        A = (w A_CVaR + A_RVaR) / (w + 1)   (``mix``; else A = A_RVaR)
        A /= (sigma_bundle + eps)           (``norm_by_bundle_std``; unbiased std of the bundle's S)
    Credit to each response i of the paper: ``"uniform"``: A; ``"std"``: A / (sigma_q(i) + eps), sigma_q the
    unbiased std of question q's scores (1.0 when <= 1e-3 or a single response).

    Tracking (returned ``state``): the reference updates its tracked quantiles in its trainer (not read); here
    the standard stochastic-approximation (pinball-loss SGD) step over all papers of the batch,
    q <- q + lr (tau - mean_j 1[S_j <= q]) for tau = alpha, beta (lr 0.1 as in the reference script), starting
    from the batch quantiles of all papers when ``state`` is None.

    Args:
        scores: (N,) one scalar score per response (detached).
        question_ids: (N,) question id of each response (hashable values or an integer tensor).
        bundle_ids: optional (N,) explicit bundle of each response.

    Returns:
        :class:`RiskPOResult`.
    """
    if not 0.0 <= alpha < beta <= 1.0:
        raise ValueError(f"need 0 <= alpha < beta <= 1 (got alpha={alpha}, beta={beta})")
    if mode not in ("batch", "track", "mix"):
        raise ValueError(f"mode must be 'batch', 'track' or 'mix' (got {mode!r})")
    if credit not in ("uniform", "std"):
        raise ValueError(f"credit must be 'uniform' or 'std' (got {credit!r})")
    if bundle_size < 1:
        raise ValueError(f"bundle_size must be >= 1 (got {bundle_size})")
    scores = scores.detach()
    if scores.dim() != 1:
        raise ValueError(f"scores must be (N,), one score per response (got {tuple(scores.shape)})")
    qids = [_key(q) for q in question_ids]
    if len(qids) != scores.numel():
        raise ValueError(f"question_ids has {len(qids)} entries for {scores.numel()} scores")
    bids = _bundles(qids, bundle_size, bundle_ids)

    members: dict = {}  # bundle -> question -> [response indices in order]
    for i, (b, q) in enumerate(zip(bids, qids)):
        members.setdefault(b, {}).setdefault(q, []).append(i)

    adv = torch.zeros_like(scores)
    all_papers = []
    for questions in members.values():
        lists = list(questions.values())
        n_papers = min(len(r) for r in lists)
        idx = torch.tensor([[r[j] for r in lists] for j in range(n_papers)], device=scores.device)  # (P, Q)
        s = scores[idx].sum(-1)  # (P,)
        all_papers.append(s)
        if n_papers == 1:
            qa_b, qb_b, sd = s[0], s[0], 1.0
        else:
            qa_b, qb_b, sd = torch.quantile(s, alpha), torch.quantile(s, beta), float(s.std())
        if mode == "batch" or state is None:
            qa, qb = qa_b, qb_b
        elif mode == "track":
            qa, qb = state.q_low, state.q_high
        else:
            qa, qb = (state.q_low + qa_b) / 2, (state.q_high + qb_b) / 2
        qa = torch.as_tensor(qa, dtype=s.dtype, device=s.device)
        qb = torch.as_tensor(qb, dtype=s.dtype, device=s.device)
        a = (torch.relu(s - qa) - torch.relu(s - qb) + qa - qb) / (beta - alpha + eps)
        if mix:
            a_cvar = -torch.relu(qa - s) / (alpha + eps)
            a = (w * a_cvar + a) / (w + 1)
        if norm_by_bundle_std:
            a = a / (sd + eps)
        per_resp = a.unsqueeze(-1).expand_as(idx).clone()  # (P, Q)
        if credit == "std":
            sig = torch.tensor([_std_or_one(scores[torch.tensor(r)], 1e-3) for r in lists], dtype=s.dtype,
                               device=s.device)  # (Q,)
            per_resp = per_resp / (sig + eps)
        adv[idx.reshape(-1)] = per_resp.reshape(-1)

    papers = torch.cat(all_papers) if all_papers else scores.new_zeros(0)
    if state is None:
        if papers.numel() == 0:
            new_state = RiskPOState(0.0, 0.0)
        else:
            new_state = RiskPOState(float(torch.quantile(papers, alpha)), float(torch.quantile(papers, beta)))
    else:
        below_a = float((papers <= state.q_low).to(torch.float64).mean()) if papers.numel() else alpha
        below_b = float((papers <= state.q_high).to(torch.float64).mean()) if papers.numel() else beta
        new_state = RiskPOState(state.q_low + lr * (alpha - below_a), state.q_high + lr * (beta - below_b))
    return RiskPOResult(adv, new_state, papers)
