"""The one frozen, documented config of :class:`rl.trainer.GRPOTrainer` (saved as ``config.json``)."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any

__all__ = ["RESUMABLE_FIELDS", "TrainerConfig"]

RESUMABLE_FIELDS = ("steps", "save_every", "progress")  # may change between a run and its resume


@dataclass(frozen=True)
class TrainerConfig:
    """Every knob of :class:`GRPOTrainer` (defaults follow verl's actor config where it has one)."""

    steps: int = 100
    """rollout iterations (sample -> score -> update); optimizer steps = steps * ppo_epochs * num_minibatches"""
    batch_size: int = 8
    """batch items (prompts / contexts) per rollout iteration, B"""
    group_size: int = 8
    """samples per batch item, n (the GRPO group)"""
    ppo_epochs: int = 1
    """passes over each rollout batch (verl ppo_epochs 1); >1 makes updates off-policy so clipping acts"""
    num_minibatches: int = 1
    """optimizer steps per epoch; must divide B*n"""
    micro_batch_size: int | None = None
    """rows per forward/backward (gradient accumulation); None = the whole minibatch"""
    loss: str = "vanilla"
    """a key of rl.losses.POLICY_LOSSES"""
    loss_cfg: dict[str, Any] = field(default_factory=dict)
    """keyword config of the loss (clip_low, clip_high, clip_c, agg, method-prefixed keys); JSON values"""
    advantage: str = "grpo"
    """a key of rl.advantages.ADVANTAGES (ignored when the trainer gets advantage_fn)"""
    advantage_cfg: dict[str, Any] = field(default_factory=dict)
    """keyword config of the advantage estimator"""
    optimizer: str = "adamw"
    """adamw | adam | sgd"""
    lr: float = 1e-6
    """learning rate (verl actor optim.lr 1e-6)"""
    weight_decay: float = 0.01
    """(verl actor optim.weight_decay 0.01)"""
    betas: tuple[float, float] = (0.9, 0.999)
    """Adam betas"""
    max_grad_norm: float | None = 1.0
    """global gradient-norm clip (verl actor grad_clip 1.0); None = no clipping (norm still reported)"""
    entropy_coef: float = 0.0
    """entropy bonus coefficient (verl entropy_coeff 0)"""
    kl_coef: float = 0.0
    """KL-to-reference loss coefficient (verl kl_loss_coef 0.001 when use_kl_loss); needs ref_policy"""
    kl_type: str = "low_var_kl"
    """estimator passed to rl.kl.kl_penalty (verl kl_loss_type low_var_kl)"""
    bf16: bool = False
    """run policy.logprobs under torch.autocast(bfloat16) (CPU and CUDA support it); losses stay fp32"""
    device: str = "cpu"
    """device of the RNG streams and of the batch; the policy must already live there ("cuda" under
    torch.distributed means cuda:LOCAL_RANK)"""
    seed: int = 0
    """seeds the sampling stream, the loss stream (seed + 1) and torch's global RNG"""
    rollout_shards: int = 1
    """sample the batch in this many seeded shards (rl.shards); data-parallel runs need a multiple of the world
    size, and a 1-process run with the same value draws the same global rollouts"""
    save_every: int = 0
    """checkpoint every this many rollout iterations (0 = only at the end of train())"""
    progress: bool = False
    """show a rich progress bar"""

    def __post_init__(self) -> None:
        rows = self.batch_size * self.group_size
        for name in ("steps", "batch_size", "group_size", "ppo_epochs", "num_minibatches"):
            if int(getattr(self, name)) < 1 and not (name == "steps" and self.steps == 0):
                raise ValueError(f"TrainerConfig.{name} must be >= 1, got {getattr(self, name)}")
        if rows % self.num_minibatches:
            raise ValueError(
                f"num_minibatches={self.num_minibatches} must divide batch_size*group_size={rows}"
            )
        if self.rollout_shards < 1 or self.batch_size % self.rollout_shards:
            raise ValueError(
                f"rollout_shards={self.rollout_shards} must be >= 1 and divide batch_size={self.batch_size}"
            )
        if self.micro_batch_size is not None and self.micro_batch_size < 1:
            raise ValueError(f"micro_batch_size must be >= 1 or None, got {self.micro_batch_size}")
        if self.optimizer not in ("adamw", "adam", "sgd"):
            raise ValueError(f"optimizer must be adamw, adam or sgd; got {self.optimizer!r}")
        if self.max_grad_norm is not None and not self.max_grad_norm > 0:
            raise ValueError(f"max_grad_norm must be > 0 or None, got {self.max_grad_norm}")
        try:
            json.dumps(self.to_dict(), allow_nan=False)
        except (TypeError, ValueError) as err:
            raise ValueError(f"loss_cfg / advantage_cfg must hold plain JSON values: {err}") from None

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["betas"] = list(self.betas)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainerConfig:
        """Inverse of :meth:`to_dict`; fields added since the dict was written take their defaults."""
        d = dict(d)
        d["betas"] = tuple(d["betas"])
        return cls(**d)
