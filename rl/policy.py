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

__all__ = ["LogitsPolicy", "Policy", "RewardFn", "Rollouts", "Sampler"]


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

    def pad_to(self, length: int) -> Rollouts:
        """The same rows padded on the right to ``length`` positions (tokens 0, mask/old_logp/entropy 0).

        Extras that are (rows, T) tensors are padded with zeros too.
        """
        t = int(self.tokens.shape[1])
        if length == t:
            return self
        if length < t:
            raise ValueError(f"cannot pad rollouts of {t} positions to {length}")

        def pad(x: torch.Tensor) -> torch.Tensor:
            return torch.nn.functional.pad(x, (0, length - t))

        rows = self.num_rows
        extras = {
            k: (pad(v) if isinstance(v, torch.Tensor) and v.dim() == 2 and tuple(v.shape) == (rows, t) else v)
            for k, v in self.extras.items()
        }
        return Rollouts(pad(self.tokens), pad(self.mask), pad(self.old_logp), pad(self.entropy),
                        self.group_size, extras)

    def to(self, device: torch.device | str) -> Rollouts:
        """The same rollouts with every tensor (per-row extras included) on ``device``."""
        extras = {k: (v.to(device) if isinstance(v, torch.Tensor) else v) for k, v in self.extras.items()}
        return Rollouts(self.tokens.to(device), self.mask.to(device), self.old_logp.to(device),
                        self.entropy.to(device), self.group_size, extras)

    @staticmethod
    def cat(parts: list[Rollouts], *, group_size: int | None = None) -> Rollouts:
        """Rows of ``parts`` one after the other, right-padded to the longest T (:meth:`pad_to`).

        Extras that are per-row tensors (leading dim = that part's rows) are concatenated; any other extra is
        taken from the first part. ``group_size`` defaults to the parts' common group size.
        """
        if not parts:
            raise ValueError("Rollouts.cat needs at least one part")
        t = max(int(p.tokens.shape[1]) for p in parts)
        parts = [p.pad_to(t) for p in parts]
        if group_size is None:
            sizes = {p.group_size for p in parts}
            if len(sizes) != 1:
                raise ValueError(f"parts have different group sizes {sorted(sizes)}; pass group_size=")
            group_size = sizes.pop()
        extras: dict[str, Any] = {}
        for key, first in parts[0].extras.items():
            per_row = all(
                isinstance(p.extras.get(key), torch.Tensor) and p.extras[key].shape[:1] == p.tokens.shape[:1]
                for p in parts
            )
            extras[key] = torch.cat([p.extras[key] for p in parts]) if per_row else first
        return Rollouts(
            tokens=torch.cat([p.tokens for p in parts]),
            mask=torch.cat([p.mask for p in parts]),
            old_logp=torch.cat([p.old_logp for p in parts]),
            entropy=torch.cat([p.entropy for p in parts]),
            group_size=group_size,
            extras=extras,
        )

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

    Optional capabilities (each detected with ``callable(getattr(policy, name, None))``):

    * ``token_logits(batch, rollouts) -> (rows, T, V)`` (:class:`LogitsPolicy`), needed only by losses that
      read the whole distribution (``lp_reg``, ``siren``);
    * ``named_parameters()`` (every ``torch.nn.Module`` has it): checkpoints store the trainable parameters
      under these names; without it they are stored by position (``param.<i>``);
    * ``state_dict()`` / ``load_state_dict(sd)``: the named weights an inference engine or a rollout worker
      needs (:meth:`rl.trainer.GRPOTrainer.policy_state_dict`). A policy that wraps a model should return the
      MODEL's state dict (its own keys, e.g. ``model.layers.0...``) so the names match the engine's.
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
        """The trainable parameters (a fixed order; checkpoints use ``named_parameters`` when present)."""
        ...


@runtime_checkable
class Sampler(Protocol):
    """Anything that draws rollouts for the trainer in place of ``policy.sample`` (the trainer's ``sampler``
    argument): an entropy-guided brancher (:mod:`rl.rollouts`), a Ray pool (:mod:`rl.ray_rollouts`).

    Contract: ``sample(batch, n, generator=...)`` returns B*n rows in the :mod:`rl.policy` layout (the n rows of
    batch item b contiguous), with ``old_logp``/``entropy`` of the policy that drew them, and must be a
    deterministic function of the generator state. A sampler that samples with its own copy of the weights
    also has ``sync_weights(state_dict)``, which the trainer calls with
    :meth:`rl.trainer.GRPOTrainer.policy_state_dict` before every rollout that follows an update.
    """

    def sample(self, batch: Any, n: int, *, generator: torch.Generator | None = None) -> Rollouts: ...


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
