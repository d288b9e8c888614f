"""Data selection for policy optimisation: D3S-style sample and token down-sampling with a dynamic schedule.

Source: "D3S" (dynamic dual-level down-sampling) -- no public code (the paper says it is in the supplementary);
implemented from the paper's description: per group keep the rollouts whose advantages have maximal variance,
per batch keep the tokens with the largest |A| * H, and let the kept fraction follow training progress.
Pure torch; selections are boolean masks the trainer multiplies into the loss mask.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import torch

__all__ = ["keep_fraction", "max_variance_subset", "select_samples", "select_tokens"]


def max_variance_subset(values: torch.Tensor, k: int) -> torch.Tensor:
    """Indices of the size-k subset of maximal (population) variance, independently for each row.

    Exact, O(n log n): with v sorted ascending, an optimal subset is always "i smallest + (k - i) largest" for
    some i in 0..k; all k + 1 candidates are scored with prefix sums and the best is taken (first on ties).

    Proof that a prefix + suffix is optimal. k Var(S) = sum_S x^2 - (sum_S x)^2 / k. Replace z in S by u not in
    S, d = u - z: the change is d [(u - z)(1 - 1/k) + 2 (z - mu)], mu = mean(S). If S is not a prefix + suffix of
    the sorted order, some z in S has excluded elements on both sides: u1 <= z <= u2. If z >= mu swap in u2
    (d >= 0, bracket >= 0); if z < mu swap in u1 (d <= 0, bracket <= 0). Either way Var does not decrease and
    an element moves strictly outwards in sorted position, so the process ends, at a prefix + suffix whose
    variance is >= Var(S). Hence some prefix + suffix attains the maximum.

    Args:
        values: (..., n).
        k: subset size, 1 <= k <= n.

    Returns:
        (..., k) long indices into the last axis (sorted-value order: the i lowest first, then the top).
    """
    n = values.shape[-1]
    if not 1 <= k <= n:
        raise ValueError(f"subset size k must be in [1, n={n}] (got {k})")
    v = values.detach()
    v = v.to(torch.promote_types(v.dtype, torch.float32))
    v = v - v.mean(-1, keepdim=True)  # centring: less cancellation in sum x^2 - (sum x)^2 / k
    xs, order = torch.sort(v, dim=-1)
    zero = torch.zeros_like(xs[..., :1])
    s1 = torch.cat([zero, xs.cumsum(-1)], dim=-1)  # (..., n + 1)
    s2 = torch.cat([zero, xs.square().cumsum(-1)], dim=-1)
    i = torch.arange(k + 1, device=v.device)  # number taken from the bottom
    top_start = n - k + i  # the top part is positions [n - k + i, n)
    shape = xs.shape[:-1] + (k + 1,)
    tot1 = s1[..., i] + s1[..., n : n + 1] - s1.gather(-1, top_start.expand(shape))
    tot2 = s2[..., i] + s2[..., n : n + 1] - s2.gather(-1, top_start.expand(shape))
    var = tot2 / k - (tot1 / k).square()  # (..., k + 1)
    best = var.argmax(-1, keepdim=True)  # (..., 1)
    j = torch.arange(k, device=v.device)
    pos = torch.where(j < best, j, n - k + j)  # (..., k) positions in sorted order
    return order.gather(-1, pos)


def _count(fraction_or_k: float, n: int, what: str) -> int:
    if isinstance(fraction_or_k, bool):
        raise TypeError(f"{what} must be an int count or a float fraction, not bool")
    if isinstance(fraction_or_k, int):
        if fraction_or_k < 1:
            raise ValueError(f"{what} count must be >= 1 (got {fraction_or_k})")
        return min(fraction_or_k, n)
    if not 0.0 < fraction_or_k <= 1.0:
        raise ValueError(f"{what} fraction must be in (0, 1] (got {fraction_or_k}); pass an int for a count")
    return max(1, math.ceil(round(fraction_or_k * n, 9)))


def select_samples(
    advantages: torch.Tensor, group_ids: Sequence | torch.Tensor, *, keep: float
) -> torch.Tensor:
    """D3S sample-level selection: in every group keep the k responses whose advantages have maximal variance.

    k = ``keep`` when an int (capped at the group size), else ceil(keep * n_group) for a fraction in (0, 1].
    Groups of equal size are solved together by :func:`max_variance_subset` (one batched call per size).

    Args:
        advantages: (N,) one advantage per response.
        group_ids: (N,) group (prompt) of each response.

    Returns:
        (N,) bool mask of kept responses.
    """
    if advantages.dim() != 1:
        raise ValueError(f"advantages must be (N,), one per response (got {tuple(advantages.shape)})")
    gids = group_ids.tolist() if isinstance(group_ids, torch.Tensor) else list(group_ids)
    if len(gids) != advantages.numel():
        raise ValueError(f"group_ids has {len(gids)} entries for {advantages.numel()} advantages")
    members: dict = {}
    for i, g in enumerate(gids):
        members.setdefault(g, []).append(i)
    by_size: dict[int, list[list[int]]] = {}
    for idx in members.values():
        by_size.setdefault(len(idx), []).append(idx)
    keep_mask = torch.zeros(advantages.shape, dtype=torch.bool, device=advantages.device)
    for n, groups in by_size.items():
        k = _count(keep, n, "keep")
        index = torch.tensor(groups, device=advantages.device)  # (G, n)
        chosen = max_variance_subset(advantages[index], k)  # (G, k)
        keep_mask[index.gather(-1, chosen).reshape(-1)] = True
    return keep_mask


def select_tokens(
    advantages: torch.Tensor, entropy: torch.Tensor, mask: torch.Tensor, *, fraction: float
) -> torch.Tensor:
    """D3S token-level selection: keep the top ``fraction`` of valid tokens by score |A| * H.

    k = ceil(fraction * n_valid) tokens over the whole batch (``torch.topk``; ties broken by topk's order).

    Args:
        advantages, entropy, mask: (B, T).

    Returns:
        (B, T) bool mask (a subset of the valid tokens).
    """
    if advantages.shape != entropy.shape or advantages.shape != mask.shape:
        raise ValueError(
            f"advantages {tuple(advantages.shape)}, entropy {tuple(entropy.shape)} and mask {tuple(mask.shape)} "
            "must have the same (B, T) shape"
        )
    valid = mask != 0
    n = int(valid.sum())
    out = torch.zeros_like(valid)
    if n == 0:
        return out
    k = _count(float(fraction), n, "fraction")
    score = (advantages.detach().abs() * entropy.detach()).to(torch.float64)
    score = torch.where(valid, score, torch.full_like(score, -math.inf)).reshape(-1)
    out.view(-1)[torch.topk(score, k).indices] = True
    return out


def keep_fraction(progress: float, *, start: float, end: float, schedule: str = "linear") -> float:
    """Dynamic kept fraction as a function of training progress p in [0, 1].

    f(p) = start + (end - start) s(p) with s(p) = p (``"linear"``), (1 - cos(pi p)) / 2 (``"cosine"``) or
    0 (``"constant"``: always ``start``).
    """
    if not 0.0 <= progress <= 1.0:
        raise ValueError(f"progress must be in [0, 1] (got {progress}); pass step / total_steps")
    for name, v in (("start", start), ("end", end)):
        if not 0.0 < v <= 1.0:
            raise ValueError(f"{name} fraction must be in (0, 1] (got {v})")
    if schedule == "linear":
        s = progress
    elif schedule == "cosine":
        s = (1.0 - math.cos(math.pi * progress)) / 2.0
    elif schedule == "constant":
        s = 0.0
    else:
        raise ValueError(f"unknown schedule {schedule!r}; valid: linear, cosine, constant")
    return start + (end - start) * s
