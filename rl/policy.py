"""The small interface the trainer needs from a policy, and the rollout record passed between them.

Any policy shape fits: an LLM expert samples token sequences (B*n, T), the router or a bandit samples one
action per row (B*n, 1). Layout convention: the ``n`` samples of batch item ``b`` are the contiguous rows
``b*n .. b*n + n - 1`` (``repeat_interleave`` order), so group ``g`` of the GRPO advantage is ``row // n``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import torch

__all__ = ["LogitsPolicy", "Policy", "RewardFn", "Rollouts"]


@dataclass(frozen=True)
class Rollouts:
    """Samples drawn by the behaviour policy (no grad).

    Attributes:
        tokens: (B*n, T) integer ids of the sampled tokens / actions.
        mask: (B*n, T) 1.0 for valid positions, 0.0 for padding (float).
        old_logp: (B*n, T) log-probabilities of ``tokens`` under the sampling policy.
        entropy: (B*n, T) entropy of the sampling distribution at each position.
        group_size: n, the number of samples per batch item.
        extras: anything policy-specific the reward function or ``logprobs`` needs (e.g. contexts).
    """

    tokens: torch.Tensor
    mask: torch.Tensor
    old_logp: torch.Tensor
    entropy: torch.Tensor
    group_size: int
    extras: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        shape = tuple(self.tokens.shape)
        if len(shape) != 2:
            raise ValueError(f"Rollouts.tokens must be (B*n, T), got shape {shape}; use T = 1 for one action")
        for name in ("mask", "old_logp", "entropy"):
            got = tuple(getattr(self, name).shape)
            if got != shape:
                raise ValueError(f"Rollouts.{name} has shape {got}, expected {shape} like tokens")
        if self.group_size < 1 or shape[0] % self.group_size:
            raise ValueError(f"{shape[0]} rollout rows are not a multiple of group_size={self.group_size}")

    @property
    def num_rows(self) -> int:
        """B*n."""
        return int(self.tokens.shape[0])

    def rows(self, index: torch.Tensor | slice) -> Rollouts:
        """The sub-batch of rows ``index`` (group_size becomes 1: rows no longer form whole groups)."""
        return Rollouts(
            tokens=self.tokens[index],
            mask=self.mask[index],
            old_logp=self.old_logp[index],
            entropy=self.entropy[index],
            group_size=1,
            extras={
                k: (v[index] if isinstance(v, torch.Tensor) and v.shape[:1] == self.tokens.shape[:1] else v)
                for k, v in self.extras.items()
            },
        )


@runtime_checkable
class Policy(Protocol):
    """What :class:`rl.trainer.GRPOTrainer` needs from a policy.

    ``batch`` is whatever the caller's batch function yields (prompt ids, context ids, feature rows); the
    policy and the reward function agree on it. ``sample`` may accept a keyword ``generator``
    (``torch.Generator``); when it does not, the trainer seeds torch's global generator instead.

    Optional capability (detected with ``callable(getattr(policy, "token_logits", None))``, see
    :class:`LogitsPolicy`): ``token_logits(batch, rollouts) -> (rows, T, V)``, needed only by losses that
    read the whole distribution (``lp_reg``, ``siren``).
    """

    def sample(self, batch: Any, n: int) -> Rollouts:
        """Draw n samples per batch item (no grad) -> Rollouts with B*n rows in repeat_interleave order."""
        ...

    def logprobs(self, batch: Any, rollouts: Rollouts) -> tuple[torch.Tensor, torch.Tensor]:
        """(logp, entropy) of ``rollouts.tokens`` under the current parameters, both (rows, T), with grad.

        ``rollouts`` may be a row subset (``Rollouts.rows``) during micro-batching; ``batch`` is then the
        full batch, and the policy maps rows to batch items through ``rollouts.extras``.
        """
        ...

    def parameters(self) -> Iterable[torch.nn.Parameter]:
        """The trainable parameters (a fixed order: checkpoints store them by position)."""
        ...


@runtime_checkable
class LogitsPolicy(Policy, Protocol):
    """A :class:`Policy` that can also return its logits (needed by the ``lp_reg`` and ``siren`` losses)."""

    def token_logits(self, batch: Any, rollouts: Rollouts) -> torch.Tensor:
        """(rows, T, V) logits at every position of ``rollouts`` under the current parameters, with grad.

        They must be the logits the policy samples from (temperature already applied), so that
        ``log_softmax(logits).gather(tokens)`` is ``logprobs(batch, rollouts)[0]`` and the entropy of
        ``softmax(logits)`` its entropy: when the loss needs logits the trainer makes ONE forward through
        ``token_logits`` and derives logp and entropy from it (``rl.entropy``) instead of calling ``logprobs``.
        Row subsets work as for ``logprobs``.
        """
        ...


class RewardFn(Protocol):
    """``(batch, rollouts) -> scores`` of shape (B*n,), one scalar per rollout row."""

    def __call__(self, batch: Any, rollouts: Rollouts) -> torch.Tensor: ...
