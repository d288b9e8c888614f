"""DREX's shared library of entropy-balanced policy optimisers (pure torch; imports nothing of the project).

Modules: ``rl.losses`` (policy-loss registry), ``rl.advantages``, ``rl.kl``, ``rl.entropy`` (chunked and
fused log-prob/entropy kernels), ``rl.policy`` (the Policy protocol, Rollouts), ``rl.trainer``
(GRPOTrainer, TrainerConfig), ``rl.toy`` (toy policies and bandit tasks), ``rl.risk``.

Importing ``rl`` is cheap: the names below load their module (and torch) on first access.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "GRPOTrainer": "rl.trainer",
    "TrainerConfig": "rl.trainer",
    "Policy": "rl.policy",
    "Rollouts": "rl.policy",
    "entropy_from_logits": "rl.entropy",
    "logprobs_from_logits": "rl.entropy",
    "fused_linear_logprobs_entropy": "rl.entropy",
}

__all__ = [
    "GRPOTrainer",
    "Policy",
    "Rollouts",
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
