"""Toy softmax policies and bandit tasks with known optima, for tests, benchmarks and docs.

* :class:`TabularSoftmaxPolicy` -- free logits per (context, position, action): one action per row
  (``seq_len=1``, the bandit/router shape) or short token sequences with an optional end token (the LLM shape,
  variable-length masks).
* :class:`LinearSoftmaxPolicy` -- logits = features @ W^T through :func:`rl.entropy.fused_linear_logprobs_entropy`
  (a one-layer "LM head" over fixed context features).
* :class:`BanditTask` -- a reward table (contexts x actions) with a few near-optimal arms; the score of a
  rollout is the mean table reward of its valid tokens, the optimum is the best arm of each context.
* :func:`make_multi_optimum` -- a task with MANY optimal arms (like an LLM prompt with many correct answers):
  the optimum reward 1 is reached by any policy on those arms, the maximum-entropy optimal policy has
  entropy log(n_optimal); :func:`multi_optimum_entropy_run` trains a policy that starts with an uneven prior
  over them and measures how much of that answer diversity each loss keeps.

A batch is always a (B,) long tensor of context ids; rollout rows carry their context id in
``extras["context"]`` so any row subset can be re-scored.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from rl.entropy import entropy_from_logits, fused_linear_logprobs_entropy, logprobs_from_logits
from rl.policy import Rollouts

_CLIP_KEYS = (  # (trainer metric, curve name) recorded by multi_optimum_entropy_run
    ("clipfrac_low", "clipfrac_low"),
    ("clipfrac_high", "clipfrac_high"),
    ("bapo/c_low", "c_low"),
    ("bapo/c_high", "c_high"),
)

__all__ = [
    "BanditTask",
    "LinearSoftmaxPolicy",
    "TabularSoftmaxPolicy",
    "bandit_entropy_run",
    "context_batches",
    "make_bandit",
    "make_multi_optimum",
    "multi_optimum_entropy_run",
    "multi_optimum_prior",
]


def _sample_rows(logits: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """(R, T, K) logits -> (R, T) sampled ids."""
    r, t, k = logits.shape
    probs = torch.softmax(logits.float(), dim=-1).reshape(r * t, k)  # (R*T, K)
    return torch.multinomial(probs, 1, generator=generator).reshape(r, t)


def _eos_mask(tokens: torch.Tensor, eos_token: int | None) -> torch.Tensor:
    """(R, T) ids -> (R, T) float mask: 1 up to and including the first ``eos_token``, 0 after."""
    if eos_token is None:
        return torch.ones_like(tokens, dtype=torch.float32)
    is_eos = (tokens == eos_token).long()
    ended_before = torch.cumsum(is_eos, dim=-1) - is_eos  # eos seen strictly before t
    return (ended_before == 0).float()


class TabularSoftmaxPolicy(nn.Module):
    """pi(a | context, position) = softmax(z[context, position]) with free logits z (C, T, K).

    Args:
        n_actions: K.
        n_contexts: C.
        seq_len: T tokens per rollout (1 = one action).
        eos_token: if set, positions after the first sampled ``eos_token`` are padding (mask 0).
        init_logits: optional (C, T, K) or (K,) starting logits (default zeros = uniform policy).
    """

    def __init__(
        self,
        n_actions: int,
        *,
        n_contexts: int = 1,
        seq_len: int = 1,
        eos_token: int | None = None,
        init_logits: torch.Tensor | None = None,
    ) -> None:
        super().__init__()
        if n_actions < 2 or n_contexts < 1 or seq_len < 1:
            raise ValueError(
                f"need n_actions >= 2, n_contexts >= 1, seq_len >= 1; got {n_actions}, {n_contexts}, {seq_len}"
            )
        z = torch.zeros(n_contexts, seq_len, n_actions)
        if init_logits is not None:
            z = z + init_logits.to(z.dtype)
        self.logits = nn.Parameter(z)  # (C, T, K)
        self.eos_token = eos_token

    @torch.no_grad()
    def sample(self, batch: torch.Tensor, n: int, *, generator: torch.Generator | None = None) -> Rollouts:
        """batch (B,) context ids -> Rollouts with B*n rows of T tokens."""
        ctx = batch.repeat_interleave(n)  # (B*n,)
        z = self.logits[ctx]  # (B*n, T, K)
        tokens = _sample_rows(z, generator)
        return Rollouts(
            tokens=tokens,
            mask=_eos_mask(tokens, self.eos_token),
            old_logp=logprobs_from_logits(z, tokens),
            entropy=entropy_from_logits(z),
            group_size=n,
            extras={"context": ctx},
        )

    @property
    def vocab_size(self) -> int:
        """K (entropy-guided rollouts normalise entropies by log K)."""
        return int(self.logits.shape[-1])

    @torch.no_grad()
    def continue_from(
        self, batch: torch.Tensor, prefix: Rollouts, lengths: torch.Tensor, *, generator: torch.Generator | None = None
    ) -> Rollouts:
        """Row r keeps ``prefix.tokens[r, :lengths[r]]`` and samples the rest for its context
        (:class:`rl.rollouts.BranchingPolicy`); (R, T) rows with old_logp/entropy at every position."""
        ctx = prefix.extras["context"]  # (R,)
        z = self.logits[ctx]  # (R, T, K)
        fresh = _sample_rows(z, generator)
        keep = torch.arange(z.shape[1], device=z.device)[None, :] < lengths.to(z.device)[:, None]  # (R, T)
        tokens = torch.where(keep, prefix.tokens, fresh)
        return Rollouts(
            tokens=tokens,
            mask=_eos_mask(tokens, self.eos_token),
            old_logp=logprobs_from_logits(z, tokens),
            entropy=entropy_from_logits(z),
            group_size=1,
            extras={"context": ctx},
        )

    def logprobs(self, batch: torch.Tensor, rollouts: Rollouts) -> tuple[torch.Tensor, torch.Tensor]:
        """(logp, entropy), both (rows, T), differentiable in ``self.logits``."""
        z = self.logits[rollouts.extras["context"]]  # (rows, T, K)
        return logprobs_from_logits(z, rollouts.tokens), entropy_from_logits(z)

    def token_logits(self, batch: torch.Tensor, rollouts: Rollouts) -> torch.Tensor:
        """(rows, T, K) logits of the rows' contexts, differentiable (rl.policy.LogitsPolicy)."""
        return self.logits[rollouts.extras["context"]]

    def probs(self) -> torch.Tensor:
        """(C, T, K) action probabilities (detached)."""
        return torch.softmax(self.logits.detach(), dim=-1)


class LinearSoftmaxPolicy(nn.Module):
    """pi(a | context) = softmax(x_c @ W^T / temperature), one action per row, via the fused kernel.

    Args:
        features: (C, D) fixed context features (a buffer).
        n_actions: K (rows of W, initialised to zeros = uniform policy).
        temperature: sampling temperature.
        chunk_size: token chunk of the fused kernel.
    """

    def __init__(
        self, features: torch.Tensor, n_actions: int, *, temperature: float = 1.0, chunk_size: int = 512
    ):
        super().__init__()
        self.register_buffer("features", features.clone())  # (C, D)
        self.weight = nn.Parameter(torch.zeros(n_actions, features.shape[1], dtype=features.dtype))  # (K, D)
        self.temperature = float(temperature)
        self.chunk_size = chunk_size

    @torch.no_grad()
    def sample(self, batch: torch.Tensor, n: int, *, generator: torch.Generator | None = None) -> Rollouts:
        """batch (B,) context ids -> Rollouts with B*n rows of one action."""
        ctx = batch.repeat_interleave(n)  # (B*n,)
        z = (self.features[ctx] @ self.weight.T / self.temperature)[:, None, :]  # (B*n, 1, K)
        tokens = _sample_rows(z, generator)
        return Rollouts(
            tokens=tokens,
            mask=torch.ones_like(tokens, dtype=torch.float32),
            old_logp=logprobs_from_logits(z, tokens).float(),
            entropy=entropy_from_logits(z).float(),
            group_size=n,
            extras={"context": ctx},
        )

    def logprobs(self, batch: torch.Tensor, rollouts: Rollouts) -> tuple[torch.Tensor, torch.Tensor]:
        """(logp, entropy), both (rows, 1), differentiable in ``self.weight``."""
        hidden = self.features[rollouts.extras["context"]]  # (rows, D)
        lp, ent = fused_linear_logprobs_entropy(
            hidden, self.weight, rollouts.tokens[:, 0], self.temperature, self.chunk_size
        )
        return lp[:, None], ent[:, None]

    def token_logits(self, batch: torch.Tensor, rollouts: Rollouts) -> torch.Tensor:
        """(rows, 1, K) logits x_c W^T / temperature, materialised (rl.policy.LogitsPolicy)."""
        hidden = self.features[rollouts.extras["context"]]  # (rows, D)
        return (hidden @ self.weight.T / self.temperature)[:, None, :]


@dataclass(frozen=True)
class BanditTask:
    """A (C, K) table of deterministic arm rewards.

    The score of a rollout row is the mean of ``table[context, token]`` over its valid tokens; the best
    achievable expected score is ``optimum`` (best arm per context, averaged over uniformly drawn contexts).
    """

    table: torch.Tensor  # (C, K)

    def __call__(self, batch: torch.Tensor, rollouts: Rollouts) -> torch.Tensor:
        """Scores (B*n,) of the rollouts."""
        ctx = rollouts.extras["context"]  # (rows,)
        r = self.table.to(rollouts.mask.device)[ctx[:, None], rollouts.tokens]  # (rows, T)
        m = rollouts.mask
        return (r * m).sum(-1) / m.sum(-1).clamp_min(1.0)

    @property
    def optimum(self) -> float:
        return float(self.table.max(dim=-1).values.mean())

    def expected_reward(self, probs: torch.Tensor) -> float:
        """Exact expected one-action reward of a policy with (C, K) probabilities, contexts uniform."""
        return float((probs.to(self.table.dtype) * self.table).sum(-1).mean())


def make_bandit(
    n_actions: int = 32, *, n_contexts: int = 1, n_good: int = 3, gap: float = 0.05, seed: int = 0
) -> BanditTask:
    """A bandit with ``n_good`` near-optimal arms per context (rewards 1, 1-gap, 1-2*gap, ...) at random
    positions, the others uniform in [0, 0.5). Seeded: same arguments => same table."""
    if not 1 <= n_good < n_actions:
        raise ValueError(f"n_good must be in [1, n_actions); got n_good={n_good}, n_actions={n_actions}")
    g = torch.Generator().manual_seed(seed)
    table = torch.rand(n_contexts, n_actions, generator=g) * 0.5
    for c in range(n_contexts):
        arms = torch.randperm(n_actions, generator=g)[:n_good]
        table[c, arms] = 1.0 - gap * torch.arange(n_good, dtype=table.dtype)
    return BanditTask(table=table)


def context_batches(n_contexts: int, batch_size: int) -> Callable[[int, torch.Generator], torch.Tensor]:
    """A batch function for the trainer: ``(step, generator) -> (batch_size,)`` uniform context ids."""

    def batch_fn(step: int, generator: torch.Generator) -> torch.Tensor:
        return torch.randint(0, n_contexts, (batch_size,), generator=generator, device=generator.device)

    return batch_fn


def bandit_entropy_run(
    loss: str,
    *,
    seed: int,
    run_dir: str,
    loss_cfg: dict | None = None,
    steps: int = 100,
    n_actions: int = 32,
    n_good: int = 3,
    gap: float = 0.05,
    batch_size: int = 8,
    group_size: int = 8,
    num_minibatches: int = 4,
    lr: float = 0.05,
    optimizer: str = "adam",
    decoy_logit: float = 0.0,
    decoy_reward: float = 0.75,
    advantage_fn: Callable[[torch.Tensor, int], torch.Tensor] | None = None,
) -> dict[str, list[float]]:
    """Train a uniform :class:`TabularSoftmaxPolicy` on ``make_bandit(n_actions, n_good, gap, seed)`` with
    :class:`rl.trainer.GRPOTrainer` (``optimizer``, no weight decay, ``num_minibatches`` off-policy updates per rollout)
    and return the exact curves per rollout step: ``entropy`` H(pi) in nats, ``reward`` E_pi[r], ``regret``
    optimum - E_pi[r], and ``p_good`` (probability on the ``n_good`` near-optimal arms). With
    ``decoy_logit`` > 0 the start is not uniform: one mediocre arm (reward ``decoy_reward``) gets that logit,
    like a pretrained prior that favours a good-enough answer, so collapsing early costs reward.

    The entropy-collapse experiment of ``benchmarks/rl_entropy_toy.py`` (and its fast test) runs this for
    each loss with the same seeds, lr and steps.
    """
    from rl.trainer import GRPOTrainer, TrainerConfig  # the trainer imports this package's siblings

    task = make_bandit(n_actions, n_good=n_good, gap=gap, seed=seed)
    good = task.table[0] >= 1.0 - gap * (n_good - 1) - 1e-9
    init = torch.zeros(n_actions)
    if decoy_logit:
        decoy = int(torch.nonzero(~good)[0, 0])  # a mediocre arm the initial policy prefers (a "prior")
        task.table[0, decoy] = decoy_reward
        init[decoy] = decoy_logit
    policy = TabularSoftmaxPolicy(n_actions, init_logits=init)
    cfg = TrainerConfig(
        steps=steps,
        batch_size=batch_size,
        group_size=group_size,
        num_minibatches=num_minibatches,
        loss=loss,
        loss_cfg=dict(loss_cfg or {}),
        optimizer=optimizer,
        lr=lr,
        weight_decay=0.0,
        seed=seed,
    )
    trainer = GRPOTrainer(
        policy, task, context_batches(1, batch_size), cfg, run_dir=run_dir, advantage_fn=advantage_fn
    )
    curves: dict[str, list[float]] = {"entropy": [], "reward": [], "regret": [], "p_good": []}

    def record() -> None:
        p = policy.probs()[0, 0]  # (K,)
        curves["entropy"].append(float(-(p * torch.log(p.clamp_min(1e-30))).sum()))
        curves["reward"].append(task.expected_reward(p[None]))
        curves["regret"].append(task.optimum - curves["reward"][-1])
        curves["p_good"].append(float(p[good].sum()))

    record()
    for _ in range(steps):
        trainer.step()
        record()
    return curves


def make_multi_optimum(n_actions: int = 32, *, n_optimal: int = 8, seed: int = 0) -> BanditTask:
    """A one-context task whose ``n_optimal`` arms (random positions) all pay 1.0, the others uniform in
    [0, 0.5). Optimum 1.0; the maximum-entropy optimal policy is uniform on the optimal arms, entropy
    log(n_optimal). Seeded: same arguments => same table."""
    if not 2 <= n_optimal < n_actions:
        raise ValueError(
            f"n_optimal must be in [2, n_actions); got n_optimal={n_optimal}, n_actions={n_actions}"
        )
    g = torch.Generator().manual_seed(seed)
    table = torch.rand(1, n_actions, generator=g) * 0.5
    table[0, torch.randperm(n_actions, generator=g)[:n_optimal]] = 1.0
    return BanditTask(table=table)


def multi_optimum_prior(task: BanditTask, *, prior_top: float = 3.0) -> torch.Tensor:
    """(K,) starting logits of an uneven "pretrained" prior: the optimal arms of ``task`` (reward 1, in table
    order) get logits evenly spaced from ``prior_top`` down to 0, every other arm 0."""
    opt = torch.nonzero(task.table[0] >= 1.0).flatten()
    init = torch.zeros(task.table.shape[1])
    init[opt] = torch.linspace(prior_top, 0.0, opt.numel())
    return init


def multi_optimum_entropy_run(
    loss: str,
    *,
    seed: int,
    run_dir: str,
    loss_cfg: dict | None = None,
    steps: int = 100,
    n_actions: int = 32,
    n_optimal: int = 8,
    prior_top: float = 3.0,
    seq_len: int = 1,
    batch_size: int = 8,
    group_size: int = 8,
    num_minibatches: int = 2,
    ppo_epochs: int = 1,
    lr: float = 0.5,
    optimizer: str = "sgd",
    max_grad_norm: float | None = None,
) -> dict[str, list[float]]:
    """Train a :class:`TabularSoftmaxPolicy` (``seq_len`` independent positions, each starting from
    :func:`multi_optimum_prior`) on :func:`make_multi_optimum` with :class:`rl.trainer.GRPOTrainer` (GRPO
    advantages of the sequence score = mean arm reward of its ``seq_len`` tokens, broadcast over tokens;
    ``ppo_epochs`` x ``num_minibatches`` updates per rollout, all but the first off-policy; no weight decay).

    Returns the exact curves per rollout step (``steps + 1`` values, the first before training), each averaged
    over the positions: ``entropy`` H(pi_t) in nats, ``reward`` E_pi[r] (= the expected sequence score),
    ``p_opt`` (probability on the optimal arms) and ``opt_entropy`` (entropy of pi_t restricted to the optimal
    arms and renormalised; log(n_optimal) is the most diverse optimal policy). Plus the loss's clip metrics per
    rollout step (``steps`` values, mean over its updates): ``clipfrac_low`` / ``clipfrac_high`` (share of
    tokens whose ratio is clipped, :func:`rl.losses.common.ratio_stats`) and, when the loss reports them
    (BAPO), its chosen bounds ``c_low`` / ``c_high``.
    """
    from rl.trainer import GRPOTrainer, TrainerConfig  # the trainer imports this package's siblings

    task = make_multi_optimum(n_actions, n_optimal=n_optimal, seed=seed)
    opt = task.table[0] >= 1.0
    policy = TabularSoftmaxPolicy(
        n_actions, seq_len=seq_len, init_logits=multi_optimum_prior(task, prior_top=prior_top)
    )
    cfg = TrainerConfig(
        steps=steps,
        batch_size=batch_size,
        group_size=group_size,
        num_minibatches=num_minibatches,
        ppo_epochs=ppo_epochs,
        loss=loss,
        loss_cfg=dict(loss_cfg or {}),
        optimizer=optimizer,
        lr=lr,
        weight_decay=0.0,
        max_grad_norm=max_grad_norm,
        seed=seed,
    )
    trainer = GRPOTrainer(policy, task, context_batches(1, batch_size), cfg, run_dir=run_dir)
    curves: dict[str, list[float]] = {"entropy": [], "reward": [], "p_opt": [], "opt_entropy": []}

    def record() -> None:
        p = policy.probs()[0].double()  # (T, K)
        curves["entropy"].append(float(-(p * torch.log(p.clamp_min(1e-300))).sum(-1).mean()))
        curves["reward"].append(float((p * task.table[0].double()).sum(-1).mean()))
        p_opt = p[:, opt].sum(-1)  # (T,)
        q = p[:, opt] / p_opt[:, None]  # (T, n_optimal)
        curves["p_opt"].append(float(p_opt.mean()))
        curves["opt_entropy"].append(float(-(q * torch.log(q.clamp_min(1e-300))).sum(-1).mean()))

    record()
    for _ in range(steps):
        lines = trainer.step()
        record()
        for key, name in _CLIP_KEYS:
            vals = [ln[key] for ln in lines if ln.get(key) is not None]
            if vals:
                curves.setdefault(name, []).append(sum(vals) / len(vals))
    return curves
