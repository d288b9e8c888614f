"""Step statistics of the trainer: micro-batch loss weights, covariance metrics and their reduction over
data-parallel ranks."""

from __future__ import annotations

import math
from typing import Any

import torch

from rl import distributed as dd

__all__ = ["cov_stats", "cov_stats_dist", "finite_or_none", "is_count", "merge_rank_sums", "micro_weight"]


def micro_weight(agg: str, m_micro: torch.Tensor, tokens_all: float, seqs_all: float) -> float:
    """Weight making sum_j w_j * agg(L_j, m_j) == agg(L, m) for row micro-batches j (rl.trainer doc).

    token-mean: tokens_j / tokens; seq-mean-*: non-empty rows_j / non-empty rows; seq-mean-token-sum-norm:
    1 (its normaliser T does not depend on the batch). Losses that override ``agg`` internally are weighted
    by the configured mode.
    ``tokens_all`` / ``seqs_all``: valid tokens / non-empty rows of the whole minibatch (over all ranks).
    """
    if agg == "seq-mean-token-sum-norm":
        return 1.0
    if agg == "token-mean":
        return float(m_micro.sum()) / max(tokens_all, 1.0)
    return float((m_micro.sum(-1) > 0).sum()) / max(seqs_all, 1.0)


def is_count(key: str) -> bool:
    last = key.rsplit("/", 1)[-1]
    return last.startswith(("n_", "num_"))


def finite_or_none(x: Any) -> Any:
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


def merge_rank_sums(per_rank: list[tuple[dict[str, float], float, float]]) -> tuple[dict[str, float], float, float]:
    """Sum the per-rank (metric sums, entropy sum, kl sum) in rank order (metric weights are global)."""
    sums: dict[str, float] = {}
    for s, _, _ in per_rank:
        for k, v in s.items():
            sums[k] = sums.get(k, 0.0) + v
    return sums, sum(e for _, e, _ in per_rank), sum(k for _, _, k in per_rank)


def cov_stats(adv: torch.Tensor, logp: torch.Tensor, mask: torch.Tensor) -> dict[str, float]:
    """Statistics over valid tokens of cov_t = (A_t - mean A)(lp_t - mean lp) (Cui et al. 2025; the quantity
    Clip-Cov / KL-Cov select on). Inputs (rows, T); means over valid tokens."""
    valid = mask > 0
    if not bool(valid.any()):
        return {}
    a, lp = adv[valid].double(), logp[valid].double()
    cov = (a - a.mean()) * (lp - lp.mean())
    return {
        "cov/mean": float(cov.mean()),
        "cov/std": float(cov.std(correction=0)),
        "cov/max": float(cov.max()),
        "cov/min": float(cov.min()),
    }


def cov_stats_dist(adv: torch.Tensor, logp: torch.Tensor, mask: torch.Tensor, device: torch.device) -> dict[str, float]:
    """:func:`cov_stats` over the valid tokens of ALL ranks (two small all-reduces; same values up to
    float rounding)."""
    valid = mask > 0
    a, lp = adv[valid].double(), logp[valid].double()
    first = dd.all_reduce_(torch.stack([a.sum(), lp.sum(), torch.tensor(float(a.numel()), dtype=torch.float64)]))
    n = float(first[2])
    if n == 0:
        return {}
    cov = (a - first[0] / n) * (lp - first[1] / n)
    inf = torch.tensor(float("inf"), dtype=torch.float64)
    second = dd.all_reduce_(torch.stack([cov.sum(), cov.square().sum()]).to(device))
    hi = dd.all_reduce_((cov.max() if cov.numel() else -inf).reshape(1).to(device), "max")
    lo = dd.all_reduce_((cov.min() if cov.numel() else inf).reshape(1).to(device), "min")
    mean = float(second[0]) / n
    return {
        "cov/mean": mean,
        "cov/std": math.sqrt(max(float(second[1]) / n - mean * mean, 0.0)),
        "cov/max": float(hi[0]),
        "cov/min": float(lo[0]),
    }
