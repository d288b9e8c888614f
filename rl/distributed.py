"""The few torch.distributed collectives the data-parallel trainer needs (no-ops in a single process).

The trainer runs under ``torchrun`` / ``accelerate launch`` once the caller has initialised the default process
group (:func:`init_from_env`: gloo on CPU, nccl on CUDA). Every rank holds a full replica of the policy; the
trainer sums gradients explicitly with :func:`all_reduce_grads` (not DDP, whose averaging and forward hooks do
not fit policies whose ``logprobs`` is not ``forward``), so the update equals a 1-process run's to float
rounding. See docs/rl-distributed.md.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import torch

__all__ = [
    "all_gather_objects",
    "all_gather_rows",
    "all_reduce_",
    "all_reduce_grads",
    "barrier",
    "broadcast_params",
    "dist_info",
    "init_from_env",
]


def _dist():
    import torch.distributed as dist

    return dist if dist.is_available() and dist.is_initialized() else None


def dist_info() -> tuple[int, int]:
    """(rank, world size); (0, 1) without an initialised process group."""
    dist = _dist()
    return (dist.get_rank(), dist.get_world_size()) if dist is not None else (0, 1)


def init_from_env(backend: str | None = None) -> tuple[int, int]:
    """Initialise the default process group from torchrun's environment (RANK, WORLD_SIZE, MASTER_ADDR...) when
    WORLD_SIZE is set and no group exists yet; backend nccl when CUDA is available, else gloo. For CUDA it also
    selects device LOCAL_RANK. Returns (rank, world)."""
    import torch.distributed as dist

    if not dist.is_initialized() and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        backend = backend or ("nccl" if torch.cuda.is_available() else "gloo")
        if backend == "nccl":
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group(backend)
    return dist_info()


def barrier() -> None:
    dist = _dist()
    if dist is not None:
        dist.barrier()


def all_reduce_(t: torch.Tensor, op: str = "sum") -> torch.Tensor:
    """In-place all-reduce (``sum`` | ``max`` | ``min``) of ``t``; returns it."""
    dist = _dist()
    if dist is not None:
        dist.all_reduce(t, op={"sum": dist.ReduceOp.SUM, "max": dist.ReduceOp.MAX, "min": dist.ReduceOp.MIN}[op])
    return t


def all_gather_rows(t: torch.Tensor) -> torch.Tensor:
    """Concatenate every rank's ``t`` along dim 0 in rank order (all ranks must pass the same shape)."""
    dist = _dist()
    if dist is None:
        return t
    parts = [torch.empty_like(t) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, t.contiguous())
    return torch.cat(parts)


def all_gather_objects(obj: Any) -> list[Any]:
    """Every rank's picklable ``obj`` in rank order (small metadata only)."""
    dist = _dist()
    if dist is None:
        return [obj]
    out: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


def all_reduce_grads(params: Sequence[torch.nn.Parameter]) -> None:
    """Sum the gradients of ``params`` over ranks, one flat buffer per dtype (a missing grad counts as 0 and
    is materialised, so every rank ends with identical ``.grad`` tensors)."""
    dist = _dist()
    if dist is None:
        return
    for p in params:
        if p.grad is None:
            p.grad = torch.zeros_like(p)
    by_dtype: dict[torch.dtype, list[torch.nn.Parameter]] = {}
    for p in params:
        by_dtype.setdefault(p.grad.dtype, []).append(p)
    for group in by_dtype.values():
        flat = torch.cat([p.grad.reshape(-1) for p in group])  # (sum numel,)
        dist.all_reduce(flat)
        offset = 0
        for p in group:
            k = p.grad.numel()
            p.grad.copy_(flat[offset : offset + k].view_as(p.grad))
            offset += k


def broadcast_params(params: Sequence[torch.Tensor], src: int = 0) -> None:
    """Copy rank ``src``'s parameter values to every rank (replicas start identical)."""
    dist = _dist()
    if dist is None:
        return
    with torch.no_grad():
        for p in params:
            dist.broadcast(p.data, src=src)
