"""Sampling a batch in shards, each with its own derived seed, so that any split of the work (data-parallel
ranks, Ray rollout workers, one process) draws exactly the same global rollouts.

Shard k of S is the contiguous chunk ``k*B/S .. (k+1)*B/S - 1`` of the batch (:func:`split_batch`), sampled with
a generator seeded by ``derive_seed(base, k)`` where ``base`` is ONE draw from the caller's generator
(:func:`shard_base_seed`). Concatenating the shards in order gives B*n rows in the :mod:`rl.policy` layout.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from typing import Any

import torch

from rl.policy import Rollouts

__all__ = ["ShardedSampler", "derive_seed", "sample_shard", "shard_base_seed", "split_batch"]


def derive_seed(*keys: int) -> int:
    """A 63-bit seed from integer keys (blake2b; independent of Python's hash randomisation)."""
    data = b"".join(int(k).to_bytes(16, "little", signed=True) for k in keys)
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "little") >> 1


def shard_base_seed(generator: torch.Generator) -> int:
    """One draw from ``generator`` (advancing it): the base of this batch's shard seeds."""
    return int(torch.randint(0, 2**62, (1,), generator=generator, device=generator.device).item())


def _batch_len(batch: Any) -> int | None:
    if isinstance(batch, torch.Tensor):
        return int(batch.shape[0]) if batch.dim() else None
    if isinstance(batch, list):
        return len(batch)
    if hasattr(batch, "shape") and len(getattr(batch, "shape", ())) > 0:  # numpy arrays
        return int(batch.shape[0])
    if isinstance(batch, tuple | dict):
        values = batch.values() if isinstance(batch, dict) else batch
        sizes = {s for s in (_batch_len(v) for v in values) if s is not None}
        if len(sizes) > 1:
            raise ValueError(f"batch parts have different leading sizes {sorted(sizes)}; cannot shard it")
        return sizes.pop() if sizes else None
    return None


def _slice(batch: Any, lo: int, hi: int) -> Any:
    if isinstance(batch, torch.Tensor) or (hasattr(batch, "shape") and len(getattr(batch, "shape", ())) > 0):
        return batch[lo:hi]
    if isinstance(batch, list):
        return batch[lo:hi]
    if isinstance(batch, tuple):
        return type(batch)(*(_slice(v, lo, hi) for v in batch)) if hasattr(batch, "_fields") else tuple(
            _slice(v, lo, hi) for v in batch
        )
    if isinstance(batch, dict):
        return {k: _slice(v, lo, hi) for k, v in batch.items()}
    return batch  # scalars, None, shared objects: every shard sees them


def split_batch(batch: Any, index: int, count: int) -> Any:
    """Shard ``index`` of ``count`` of a batch of B items: rows ``index*B/count .. (index+1)*B/count - 1``.

    A batch object with a method ``shard(index, count)`` decides itself; otherwise tensors / arrays / lists are
    sliced on their first axis and tuples (incl. NamedTuples) / dicts part by part (other values are shared).
    B must be a multiple of ``count``.
    """
    if not 0 <= index < count:
        raise ValueError(f"shard index {index} out of range for {count} shards")
    if count == 1:
        return batch
    if callable(getattr(batch, "shard", None)):
        return batch.shard(index, count)
    size = _batch_len(batch)
    if size is None:
        raise ValueError(
            f"cannot shard a batch of type {type(batch).__name__}: give it a shard(index, count) method or use "
            f"tensors / lists / tuples / dicts with a leading batch axis"
        )
    if size % count:
        raise ValueError(f"batch of {size} items does not split into {count} equal shards; use a multiple of {count}")
    per = size // count
    return _slice(batch, index * per, (index + 1) * per)


SampleFn = Callable[..., Rollouts]


def sample_shard(sample: SampleFn, batch: Any, n: int, seed: int, *, device: torch.device | str = "cpu",
                 takes_generator: bool = True) -> Rollouts:
    """``sample(batch, n, generator=Generator(device).manual_seed(seed))``; for a sampler without a
    ``generator`` keyword, torch's global RNG is seeded with ``seed`` inside a forked RNG state instead."""
    if takes_generator:
        return sample(batch, n, generator=torch.Generator(device=device).manual_seed(seed))
    devices = [torch.device(device)] if torch.device(device).type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        return sample(batch, n)


class ShardedSampler:
    """Sample a batch in ``num_shards`` seeded shards in this process (the reference that a Ray pool or a
    data-parallel run with the same number of shards reproduces exactly).

    Args:
        source: a policy or sampler with ``sample(batch, n, *, generator)``.
        num_shards: S; the batch size must be a multiple of it.
    """

    def __init__(self, source: Any, num_shards: int) -> None:
        if num_shards < 1:
            raise ValueError(f"num_shards must be >= 1, got {num_shards}")
        self.source, self.num_shards = source, int(num_shards)

    def sample(self, batch: Any, n: int, *, generator: torch.Generator | None = None) -> Rollouts:
        gen = generator if generator is not None else torch.Generator().manual_seed(0)
        base = shard_base_seed(gen)
        parts = [
            sample_shard(self.source.sample, split_batch(batch, k, self.num_shards), n, derive_seed(base, k),
                         device=gen.device)
            for k in range(self.num_shards)
        ]
        return cat_shards(parts)


def cat_shards(parts: Sequence[Rollouts]) -> Rollouts:
    """Concatenate shard rollouts (same group size); per-shard ``rollout_metrics`` extras are averaged."""
    out = Rollouts.cat(list(parts))
    metrics = [p.extras["rollout_metrics"] for p in parts if isinstance(p.extras.get("rollout_metrics"), dict)]
    if metrics:
        keys = metrics[0].keys()
        out.extras["rollout_metrics"] = {k: sum(float(m[k]) for m in metrics) / len(metrics) for k in keys}
    return out
