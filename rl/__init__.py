"""DREX's shared library of entropy-balanced policy optimisers (pure torch; imports nothing of the project).

Modules: ``rl.losses`` (policy-loss registry, ``rl.losses.state`` for losses that keep state),
``rl.advantages`` (advantage registry), ``rl.kl``, ``rl.entropy`` (chunked and fused log-prob/entropy kernels),
``rl.policy`` (the Policy and Sampler protocols, Rollouts), ``rl.trainer`` (GRPOTrainer, TrainerConfig),
``rl.checkpoint`` (crash-safe checkpoints, exported weights), ``rl.rollouts`` (entropy-guided branching),
``rl.shards`` (seeded sharded sampling), ``rl.distributed`` (data-parallel collectives), ``rl.ray_rollouts``
(Ray rollout workers; needs the ``ray`` extra), ``rl.toy`` (toy policies and bandit tasks), ``rl.risk``.

Importing ``rl`` is cheap: the names below load their module (and torch) on first access.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "EntropyGuidedSampler": "rl.rollouts",
    "RayRolloutPool": "rl.ray_rollouts",
    "ShardedSampler": "rl.shards",
    "GRPOTrainer": "rl.trainer",
    "TrainerConfig": "rl.trainer",
    "Policy": "rl.policy",
    "Rollouts": "rl.policy",
    "entropy_from_logits": "rl.entropy",
    "logprobs_from_logits": "rl.entropy",
    "fused_linear_logprobs_entropy": "rl.entropy",
}

__all__ = [
    "EntropyGuidedSampler",
    "GRPOTrainer",
    "Policy",
    "RayRolloutPool",
    "Rollouts",
    "ShardedSampler",
    "TrainerConfig",
    "entropy_from_logits",
    "fused_linear_logprobs_entropy",
    "logprobs_from_logits",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'rl' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
