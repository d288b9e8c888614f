"""The experts' RL rollouts and rewards on Ray workers (``drex train experts --stage rl --ray-workers N``).

Each worker is a Ray actor of :class:`rl.ray_rollouts.RayRolloutPool` holding the transformers expert backend:
:class:`WorkerPolicy` (an :class:`experts.policy.LMPolicy` over the model folder the run started from). Before
every rollout that follows an update the trainer sends its weights by name
(``GRPOTrainer.policy_state_dict()``: the model's Hugging Face state dict, put in Ray's object store once);
each worker loads them in place (``model.load_state_dict``), samples its shard of the batch with the shard's
seed (:mod:`rl.shards`), and scores its rows on the spot with :class:`HorizonReward`
(``backtest.accounting.horizon_rewards``, batched over the shard's rows: the one accounting of backtests and
paper trading). The trainer receives the rows in ``extras["reward"]`` and only applies the risk shaping,
which is per group (a group never spans two workers).

So the rollouts equal, bit for bit, sampling the same shards in this process with the same weights
(``rl.shards.ShardedSampler(WorkerPolicy(...), N)`` + :func:`merge`), which the tests check.

Shard-safe rollouts. ``LMPolicy`` answers end at different lengths and carry positions into the batch
(``extras["item"]``); :class:`WorkerPolicy` pads every shard to the longest possible answer
(``answer_depth + 1`` tokens: padding is what ``LMPolicy`` itself writes after an answer ends, so the loss is
unchanged) and :func:`merge` renumbers ``item`` over the whole batch after the shards are concatenated.

Ray is optional (``pip install -e ".[ray]"``): imported only when a pool is built; without it the one-line
``backtest.distributed.RayMissing``.
"""
from __future__ import annotations

import dataclasses
import functools
from typing import Any

import numpy as np
import torch

from experts.policy import LMPolicy, answer_values
from rl.policy import Rollouts

__all__ = ["HorizonReward", "RayExpertSampler", "WorkerPolicy", "merge", "worker_policy"]


class WorkerPolicy(LMPolicy):
    """``LMPolicy`` as a rollout worker: loads weights by name, pads its rollouts to a fixed length and adds
    each row's answered exposure (``extras["exposure"]``, float64 ``(rows,)``) for the reward."""

    def load_state_dict(self, state_dict: dict[str, torch.Tensor]) -> None:
        """The trainer's weights (``GRPOTrainer.policy_state_dict()``: the model's own names) loaded in place."""
        self.model.load_state_dict(state_dict, strict=True)

    @torch.no_grad()
    def sample(self, batch: dict[str, Any], n: int, *, generator: torch.Generator | None = None) -> Rollouts:
        ro = _pad(super().sample(batch, n, generator=generator), self.constraint)
        ro.extras["exposure"] = answer_values(self.constraint, ro.tokens.cpu())
        return ro


def _pad(ro: Rollouts, constraint) -> Rollouts:
    """``ro`` padded to ``answer_depth + 1`` positions as ``LMPolicy`` pads a finished answer: the pad token,
    only the pad token allowed, mask / log-prob / entropy 0."""
    length = constraint.answer_depth + 1
    extra = length - int(ro.tokens.shape[1])
    if extra <= 0:
        return ro
    rows = ro.num_rows
    tokens = torch.cat([ro.tokens, ro.tokens.new_full((rows, extra), constraint.pad)], 1)
    allowed = ro.extras["allowed"]  # (rows, T, K)
    tail = allowed.new_full((rows, extra, allowed.shape[2]), -1)
    tail[..., 0] = constraint.pad
    zeros = ro.mask.new_zeros((rows, extra))
    extras = {**ro.extras, "allowed": torch.cat([allowed, tail], 1)}
    return Rollouts(tokens, torch.cat([ro.mask, zeros], 1), torch.cat([ro.old_logp, zeros], 1),
                    torch.cat([ro.entropy, zeros], 1), ro.group_size, extras)


def merge(ro: Rollouts) -> Rollouts:
    """Concatenated shards made whole: ``extras["item"]`` (row -> batch item, which each shard numbered from
    0) renumbered over the whole batch (``row // group_size``: the rows of item b are contiguous)."""
    item = torch.arange(ro.num_rows, device=ro.tokens.device) // ro.group_size
    return dataclasses.replace(ro, extras={**ro.extras, "item": item})


def worker_policy(folder: str, *, temperature: float = 1.0, dtype: str = "float32") -> WorkerPolicy:
    """The policy a worker builds: the model and tokenizer of ``folder`` and the experts' answer rule."""
    from experts.answers import AnswerConstraint
    from experts.lm import load_model
    from experts.prompts import ANSWER_CUE

    model, tok = load_model(folder, dtype=dtype)
    return WorkerPolicy(model, tok, AnswerConstraint(tok, cue=ANSWER_CUE), temperature=temperature)


@dataclasses.dataclass(frozen=True)
class HorizonReward:
    """The experts' reward of each row, on the worker: the net return of holding the row's answered exposure
    for ``horizon`` bars from its example's bar ``t`` (``backtest.accounting.horizon_rewards``), start
    exposure ``start``; one batched call per shard. Arrays: prices ``(L,)`` (all assets concatenated),
    ``t`` / ``start`` ``(M,)`` per example (:class:`experts.data.ExpertData`); the batch's ``rows`` index them.
    """

    exec_price: np.ndarray
    mark_price: np.ndarray
    t: np.ndarray
    start: np.ndarray
    horizon: int
    fees: float
    slippage: float
    execution: str

    @classmethod
    def from_data(cls, data) -> HorizonReward:
        return cls(data.exec_price, data.mark_price, data.t, data.start, int(data.horizon), float(data.fees),
                   float(data.slippage), data.execution)

    def __call__(self, batch: dict[str, Any], ro: Rollouts) -> torch.Tensor:
        from experts.rewards import horizon_rewards

        rows = np.repeat(np.asarray(batch["rows"]), ro.group_size)
        h = np.asarray(ro.extras["exposure"], dtype=np.float64)
        r = horizon_rewards(self.exec_price, self.mark_price, self.t[rows], h, self.horizon, fees=self.fees,
                            slippage=self.slippage, start_exposure=self.start[rows], execution=self.execution)
        return torch.as_tensor(r, dtype=torch.float32)


def _cpu(batch: dict[str, Any]) -> dict[str, Any]:
    return {k: (v.cpu() if isinstance(v, torch.Tensor) else v) for k, v in batch.items()}


class RayExpertSampler:
    """The trainer's sampler (``GRPOTrainer(..., sampler=...)``): ``num_workers`` Ray actors, each a
    :class:`WorkerPolicy` over ``folder`` scoring its rows with ``reward`` (module doc).

    Args:
        folder: the model folder the run started from (architecture and tokenizer; the weights come from the
            trainer before the first rollout).
        num_workers: actors = shards per batch (the batch size must be a multiple of it).
        reward: the workers' reward (:class:`HorizonReward`); rows land in ``extras["reward"]``.
        temperature: sampling temperature (the trained policy's).
        address: Ray address (None: the running Ray, else a new local one; ``auto`` / ``HOST:PORT``: a cluster).
        num_cpus_per_worker / num_gpus_per_worker: each actor's Ray resources (CPU threads for torch).
        device: where the merged rollouts go (the trainer's device).
    """

    def __init__(self, folder: str, *, num_workers: int, reward: HorizonReward, temperature: float = 1.0,
                 address: str | None = None, num_cpus_per_worker: float = 1.0, num_gpus_per_worker: float = 0.0,
                 device: str | torch.device = "cpu") -> None:
        from backtest.distributed import connect
        from rl.ray_rollouts import RayRolloutPool

        if int(num_workers) < 1:
            raise ValueError(f"--ray-workers must be >= 1 (or 0 to sample in this process), got {num_workers}")
        connect(address)  # one-line errors without Ray or without the cluster
        factory = functools.partial(worker_policy, str(folder), temperature=float(temperature))
        self.pool = RayRolloutPool(factory, num_workers=int(num_workers), reward_fn=reward,
                                   num_cpus_per_worker=num_cpus_per_worker, num_gpus_per_worker=num_gpus_per_worker)
        self.device = torch.device(device)

    @property
    def version(self) -> int:
        """How many times the trainer's weights were sent to the workers."""
        return self.pool.version

    def sync_weights(self, state_dict: dict[str, torch.Tensor]) -> int:
        return self.pool.sync_weights(state_dict)

    def sample(self, batch: dict[str, Any], n: int, *, generator: torch.Generator | None = None) -> Rollouts:
        return merge(self.pool.sample(_cpu(batch), n, generator=generator)).to(self.device)

    def close(self) -> None:
        """Stop the actors (Ray keeps running)."""
        self.pool.shutdown()
