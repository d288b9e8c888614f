"""Rollout workers as Ray actors: each builds its own policy from a picklable factory, receives the trainer's
weights by name (``sync_weights``), samples its shard of every batch and can score it on the spot.

    pool = RayRolloutPool(functools.partial(MyPolicy, ...), num_workers=4, reward_fn=my_reward)
    trainer = GRPOTrainer(policy, worker_rewards, batch_fn, cfg, run_dir=..., sampler=pool)

The pool is a :class:`rl.policy.Sampler`: ``sample(batch, n, generator=g)`` splits the batch into one shard per
worker and samples shard k on worker k with the seed ``derive_seed(base, k)`` (``base`` = one draw of ``g``,
:mod:`rl.shards`), so it returns exactly what :class:`rl.shards.ShardedSampler` (``policy``, num_workers)
returns in one process with the same weights. The trainer calls ``sync_weights(trainer.policy_state_dict())``
before every rollout that follows an update; the state dict is put in Ray's object store once and every worker
loads it with ``policy.load_state_dict`` (an ``nn.Module``'s, or a wrapper's that loads into its inference
engine, e.g. vllm's ``model.load_weights``). With ``reward_fn`` the workers also score their rows and return the
scores in ``extras["reward"]``; pass :func:`worker_rewards` as the trainer's reward function to use them.

Ray is optional (``pip install -e ".[ray]"``) and imported only when a pool is built. With no running Ray the
pool starts a local one (``ray.init(address=None)``); ``address="auto"`` or ``"ray://host:10001"`` joins a
cluster. The batch and the factory must be picklable; workers need this package importable (same install, or a
``runtime_env`` in ``init_kwargs``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Self

import torch

from rl.policy import Rollouts
from rl.shards import cat_shards, derive_seed, sample_shard, shard_base_seed, split_batch

__all__ = ["RayRolloutPool", "import_ray", "worker_rewards"]

_INSTALL = 'rl.ray_rollouts needs Ray, which is not installed: pip install -e ".[ray]"'


def import_ray():
    """The ``ray`` module, or an ImportError naming the extra to install."""
    try:
        import ray
    except ImportError:
        raise ImportError(_INSTALL) from None
    return ray


def worker_rewards(batch: Any, rollouts: Rollouts) -> torch.Tensor:
    """Reward function for the trainer when the pool's workers scored the rows: ``rollouts.extras["reward"]``."""
    if "reward" not in rollouts.extras:
        raise KeyError("rollouts carry no extras['reward']: build the RayRolloutPool with reward_fn=...")
    return rollouts.extras["reward"]


class _RolloutWorker:
    """One Ray actor: a policy (and optionally a sampler around it) plus an optional reward function."""

    def __init__(self, policy_factory: Callable[[], Any], sampler_factory: Callable[[Any], Any] | None,
                 reward_fn: Callable[[Any, Rollouts], torch.Tensor] | None, num_threads: int | None) -> None:
        if num_threads:
            torch.set_num_threads(num_threads)
        self.policy = policy_factory()
        self.sampler = sampler_factory(self.policy) if sampler_factory is not None else self.policy
        self.reward_fn = reward_fn
        self.version = 0

    def sync_weights(self, state_dict: Mapping[str, torch.Tensor], version: int) -> int:
        load = getattr(self.policy, "load_state_dict", None)
        if not callable(load):
            raise TypeError(
                f"{type(self.policy).__name__} has no load_state_dict(state_dict): workers cannot take weights"
            )
        with torch.no_grad():
            load(dict(state_dict))
        self.version = version
        return version

    def sample(self, batch: Any, n: int, seed: int) -> Rollouts:
        ro = sample_shard(self.sampler.sample, batch, n, seed)
        if self.reward_fn is not None:
            scores = torch.as_tensor(self.reward_fn(batch, ro), dtype=torch.float32)
            ro.extras["reward"] = scores.reshape(ro.num_rows)
        return ro


class RayRolloutPool:
    """Sample on ``num_workers`` Ray actors (module doc).

    Args:
        policy_factory: picklable ``() -> policy`` run once on each worker.
        num_workers: actors = shards per batch (the batch size must be a multiple of it).
        reward_fn: picklable ``(batch, rollouts) -> (rows,)`` scores computed on the workers.
        sampler_factory: picklable ``policy -> sampler`` (e.g. ``functools.partial(EntropyGuidedSampler,
            global_samples=4)``); default: the policy samples itself.
        num_cpus_per_worker / num_gpus_per_worker: Ray resources of each actor.
        device: move the gathered rollouts to this device (default: leave them on the CPU).
        address: Ray address when Ray is not initialised yet (None = start a local Ray).
        init_kwargs: extra ``ray.init`` arguments (``num_cpus``, ``runtime_env``...).
    """

    def __init__(
        self,
        policy_factory: Callable[[], Any],
        *,
        num_workers: int = 2,
        reward_fn: Callable[[Any, Rollouts], torch.Tensor] | None = None,
        sampler_factory: Callable[[Any], Any] | None = None,
        num_cpus_per_worker: float = 1.0,
        num_gpus_per_worker: float = 0.0,
        device: str | torch.device | None = None,
        address: str | None = None,
        init_kwargs: Mapping[str, Any] | None = None,
    ) -> None:
        if num_workers < 1:
            raise ValueError(f"num_workers must be >= 1, got {num_workers}")
        ray = import_ray()
        if not ray.is_initialized():
            ray.init(address=address, **dict(init_kwargs or {}))
        actor = ray.remote(num_cpus=num_cpus_per_worker, num_gpus=num_gpus_per_worker)(_RolloutWorker)
        threads = max(int(num_cpus_per_worker), 1)
        self._ray = ray
        self.workers = [actor.remote(policy_factory, sampler_factory, reward_fn, threads) for _ in range(num_workers)]
        self.num_shards = num_workers
        self.device = device
        self.version = 0

    def sync_weights(self, state_dict: Mapping[str, torch.Tensor]) -> int:
        """Load ``state_dict`` (name -> CPU tensor) on every worker; returns the new weights version."""
        ref = self._ray.put({k: v.detach().cpu() for k, v in state_dict.items()})
        self.version += 1
        self._ray.get([w.sync_weights.remote(ref, self.version) for w in self.workers])
        return self.version

    def sample(self, batch: Any, n: int, *, generator: torch.Generator | None = None) -> Rollouts:
        """B*n rows: shard k of the batch sampled on worker k with seed ``derive_seed(base, k)``."""
        gen = generator if generator is not None else torch.Generator().manual_seed(0)
        base = shard_base_seed(gen)
        futures = [
            w.sample.remote(split_batch(batch, k, self.num_shards), n, derive_seed(base, k))
            for k, w in enumerate(self.workers)
        ]
        out = cat_shards(self._ray.get(futures))
        return out.to(self.device) if self.device is not None else out

    def shutdown(self) -> None:
        """Stop the workers (Ray itself keeps running)."""
        for w in self.workers:
            self._ray.kill(w)
        self.workers = []

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()
