"""A generic GRPO-style trainer over any :class:`rl.policy.Policy` and any registered policy loss.

One rollout iteration: ``batch = batch_fn(i, gen)`` -> ``policy.sample(batch, n)`` -> ``reward_fn`` scores
(B*n,) -> group advantages (``rl.advantages``, GRPO by default) broadcast over valid tokens -> for each of
``ppo_epochs`` x ``num_minibatches`` minibatches one optimizer step, the minibatch split into micro-batches
whose gradients are accumulated with weights that make the sum equal the full-minibatch loss:

    loss = policy_loss(name, lp, old_lp, A, m, **loss_cfg)
           - entropy_coef * agg(H, m)  +  kl_coef * agg(kl_penalty(lp, ref_lp, kl_type), m)

(verl ``dp_actor.update_policy``; the two terms are ``rl.losses.terms.entropy_bonus`` and ``kl_loss``).
Every optimizer step appends one JSON line to ``<run_dir>/metrics.jsonl``; ``<run_dir>/config.json`` holds
the :class:`TrainerConfig`. Checkpoints are safetensors (parameters and optimizer tensors by parameter name,
RNG states) plus a JSON state; no pickles. Determinism: same config + seed => the same metrics (bit-for-bit on CPU) apart from
the wall-clock keys ``tokens_per_s`` and ``time/step_s``; resume-then-continue equals an uninterrupted run.

Loss inputs. Every loss gets ``entropy`` (rows, T) of the current policy WITH grad (losses that only select or
reweight on it detach it themselves: aepo, steer, hapo, forking_tokens, empg; epo differentiates it) and the
seeded ``generator`` (the loss stream, for clip_cov's random choice). The other inputs are found by
introspecting the loss's keyword-only parameters (:func:`loss_inputs`), so a new loss is served without a table:
  * ``logits`` (rows, T, V): when the loss takes ``logits`` but not ``entropy`` (lp_reg, siren; epo takes
    entropy and uses logits only as a fallback). They come from the optional ``policy.token_logits``
    (:class:`rl.policy.LogitsPolicy`): one forward, logp and entropy derived from it with ``rl.entropy``. A
    policy without it fails at construction with an error naming the fix.
  * ``tokens`` (rows, T): when the loss takes ``tokens`` (lp_reg). lp_reg gets no ``old_logits``: its min-p
    proxy is built from the current logits, detached (the reference's default on-policy path; it also avoids
    keeping a (B*n, T, V) tensor per rollout).
Stateful inputs (SIREN's anchor, EPO's entropy history and phase) come from the loss's registered
:class:`rl.losses.state.LossState` (``@register_policy_loss(name, state=...)``): the trainer calls its hooks
around every rollout and optimizer step and saves its JSON state in the checkpoint, without naming any loss.
An explicit value in ``loss_cfg`` always wins. ``GRPOTrainer.loss_state`` is that JSON state.

Sampling. ``sampler`` (default: the policy) draws the rollouts: e.g. :class:`rl.rollouts.EntropyGuidedSampler`
(entropy-guided branching) or :class:`rl.ray_rollouts.RayRolloutPool` (Ray actors; the trainer syncs the
weights into it by name before each rollout that follows an update). With ``config.rollout_shards = S > 1``
the batch is sampled in S contiguous shards, each with a seed derived from one draw of the sampling stream
(:mod:`rl.shards`), so the global rollouts do not depend on how the shards are spread over processes.

Data parallel (torch.distributed initialised, W ranks; docs/rl-distributed.md): every rank holds the whole
policy and builds the same global batch; rank r samples shards r*S/W .. (r+1)*S/W - 1 (S a multiple of W),
scores and advantages are gathered so group statistics are global, each rank back-propagates the rows of
each minibatch it holds with the global micro-batch weights, and gradients are summed over ranks before the
(identical) optimizer step: after N steps the parameters equal a 1-process run with the same S to float
rounding (for losses without batch-level statistics; those -- clip_cov/kl_cov selection, bapo's bounds,
quantile thresholds -- are computed per micro-batch, as they already are under micro-batching). Metrics are
reduced over ranks; metrics.jsonl, config.json and checkpoints are written by rank 0 only.

Outputs are crash-safe (:mod:`rl.checkpoint`): checkpoints are written to a new directory and the pointer
``latest.json`` is replaced atomically only then; metric lines are appended whole and fsynced.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import math
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from rl import checkpoint as ckpt
from rl import distributed as dd
from rl.entropy import entropy_from_logits, logprobs_from_logits
from rl.kl import kl_penalty
from rl.losses import LOSS_STATES, POLICY_LOSSES, policy_loss
from rl.losses.state import metric_name
from rl.losses.terms import entropy_bonus, kl_loss
from rl.policy import Policy, RewardFn, Rollouts, Sampler
from rl.shards import cat_shards, derive_seed, sample_shard, shard_base_seed, split_batch
from rl.train_stats import cov_stats, cov_stats_dist, finite_or_none, is_count, merge_rank_sums, micro_weight
from rl.trainer_config import RESUMABLE_FIELDS, TrainerConfig

__all__ = ["WALL_CLOCK_KEYS", "GRPOTrainer", "TrainerConfig", "loss_inputs", "needs_logits"]

_cov_stats = cov_stats  # the name tests and notebooks used before the split

WALL_CLOCK_KEYS = ("tokens_per_s", "time/step_s")  # the only metrics that differ between identical runs
AdvantageFn = Callable[[torch.Tensor, int], torch.Tensor]
BatchFn = Callable[[int, torch.Generator], Any]


def loss_inputs(name: str) -> frozenset[str]:
    """The keyword-only parameter names of the registered loss ``name`` (its options and extra inputs)."""
    fn = POLICY_LOSSES[name]
    params = inspect.signature(fn).parameters.values()
    return frozenset(p.name for p in params if p.kind is inspect.Parameter.KEYWORD_ONLY)


def needs_logits(name: str) -> bool:
    """Whether the trainer must pass ``logits`` to loss ``name``: it takes ``logits`` and no ``entropy``
    (a loss taking both, like epo, uses the (rows, T) entropy and logits only as a fallback)."""
    accepted = loss_inputs(name)
    return "logits" in accepted and "entropy" not in accepted


def _resolve_advantage(name: str, cfg: dict[str, Any]) -> AdvantageFn:
    """``(scores (B*n,), n, lengths (B*n,) = None) -> (B*n,)`` through ``rl.advantages.ADVANTAGES``."""
    from rl import advantages as adv_mod  # imported lazily: a sibling module

    if name not in adv_mod.ADVANTAGES:
        raise KeyError(
            f"unknown advantage estimator {name!r}; registered: {', '.join(sorted(adv_mod.ADVANTAGES))}"
        )

    def fn(scores: torch.Tensor, n: int, lengths: torch.Tensor | None = None) -> torch.Tensor:
        return adv_mod.advantage(name, scores, n, lengths_or_mask=lengths, **cfg)

    return fn


def _trainable(policy: Policy) -> list[tuple[str, torch.nn.Parameter]]:
    """(name, parameter) of the trainable parameters: ``named_parameters()`` names when the policy has them,
    positions ``"0", "1", ...`` otherwise (checkpoint keys ``param.<name>``)."""
    named = getattr(policy, "named_parameters", None)
    pairs = list(named()) if callable(named) else [(str(i), p) for i, p in enumerate(policy.parameters())]
    return [(n, p) for n, p in pairs if p.requires_grad]


def _resolve_device(name: str, world: int) -> torch.device:
    device = torch.device(name)
    if device.type == "cuda" and device.index is None and world > 1:
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return device


class GRPOTrainer:
    """Group-relative policy optimisation over any :class:`Policy` and loss in ``POLICY_LOSSES``.

    Args:
        policy: the trained policy (already on ``config.device``).
        reward_fn: ``(batch, rollouts) -> scores (B*n,)``; row-wise (a row's score depends on that row and its
            batch item only), so sharded and whole-batch scoring agree.
        batch_fn: ``(rollout_index, generator) -> batch`` (deterministic given the generator state).
        config: a :class:`TrainerConfig`.
        run_dir: folder for ``config.json``, ``metrics.jsonl`` and ``checkpoints/`` (created).
        ref_policy: frozen reference policy for the KL term / ``kl`` metric (needed when kl_coef > 0).
        advantage_fn: ``(scores (B*n,), n) -> (B*n,)`` overriding ``config.advantage``.
        sampler: draws the rollouts instead of ``policy.sample`` (:class:`rl.policy.Sampler`).
        resume: continue from the latest checkpoint in ``run_dir`` when there is one.
    """

    def __init__(
        self,
        policy: Policy,
        reward_fn: RewardFn,
        batch_fn: BatchFn,
        config: TrainerConfig,
        *,
        run_dir: str | os.PathLike,
        ref_policy: Policy | None = None,
        advantage_fn: AdvantageFn | None = None,
        sampler: Sampler | None = None,
        resume: bool = False,
    ) -> None:
        if config.loss not in POLICY_LOSSES:
            raise KeyError(
                f"unknown policy loss {config.loss!r}; registered: {', '.join(sorted(POLICY_LOSSES))}"
            )
        if config.kl_coef > 0 and ref_policy is None:
            raise ValueError("kl_coef > 0 needs a ref_policy (pass ref_policy=..., or set kl_coef=0)")
        self.rank, self.world = dd.dist_info()
        if self.world > 1 and config.rollout_shards % self.world:
            raise ValueError(
                f"TrainerConfig.rollout_shards={config.rollout_shards} must be a multiple of the world size "
                f"{self.world} (e.g. {self.world}); a 1-process run with the same value draws the same rollouts"
            )
        self._inputs = loss_inputs(config.loss)
        self._use_logits = needs_logits(config.loss)
        if self._use_logits and not callable(getattr(policy, "token_logits", None)):
            raise TypeError(
                f"policy loss {config.loss!r} needs the current policy's logits (rows, T, V), but "
                f"{type(policy).__name__} has no method token_logits(batch, rollouts): add one (see "
                f"rl.policy.LogitsPolicy) or choose a loss that needs no logits"
            )
        self.policy, self.reward_fn, self.batch_fn, self.config = policy, reward_fn, batch_fn, config
        self.ref_policy, self.sampler = ref_policy, sampler
        self._adv_lengths = False
        if advantage_fn is None:
            advantage_fn = _resolve_advantage(config.advantage, config.advantage_cfg)
            from rl.advantages import takes_lengths

            self._adv_lengths = takes_lengths(config.advantage)
        self.advantage_fn = advantage_fn
        self.run_dir = Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.device = _resolve_device(config.device, self.world)
        self.named_params = _trainable(policy)
        self.params = [p for _, p in self.named_params]
        if not self.params:
            raise ValueError("the policy has no trainable parameters (policy.parameters() yielded none)")
        dd.broadcast_params(self.params)  # replicas start identical
        self.optimizer = self._make_optimizer()
        torch.manual_seed(config.seed)
        self.gen = torch.Generator(device=self.device).manual_seed(config.seed)
        self.loss_gen = torch.Generator(device=self.device).manual_seed(config.seed + 1)
        source = sampler if sampler is not None else policy
        self._sample_takes_generator = "generator" in inspect.signature(source.sample).parameters
        self.agg = str(config.loss_cfg.get("agg", "token-mean"))
        self.rollout_step = 0
        self.opt_step = 0
        self.skipped_steps = 0
        self.prev_entropy: float | None = None
        state_cls = LOSS_STATES.get(config.loss)
        self._loss_state = state_cls(loss_cfg=config.loss_cfg, steps=config.steps) if state_cls else None
        self._synced_at: int | None = None  # opt_step of the weights last synced into the sampler
        self._saved_at: int | None = None  # rollout_step of the last checkpoint written or loaded
        self.metrics_path = self.run_dir / "metrics.jsonl"
        if resume and ckpt.latest_checkpoint(self.run_dir / "checkpoints") is not None:
            self.load_checkpoint()
        else:
            if self.rank == 0:
                ckpt.atomic_write_text(self.metrics_path, "")
                ckpt.atomic_write_text(self.run_dir / "config.json", json.dumps(config.to_dict(), indent=2) + "\n")
            dd.barrier()

    @property
    def loss_state(self) -> dict[str, Any]:
        """JSON state of the loss's :class:`rl.losses.state.LossState` ({} for a stateless loss)."""
        return self._loss_state.state_dict() if self._loss_state is not None else {}

    # ------------------------------------------------------------------ setup
    def _make_optimizer(self) -> torch.optim.Optimizer:
        c = self.config
        if c.optimizer == "sgd":
            return torch.optim.SGD(self.params, lr=c.lr, weight_decay=c.weight_decay)
        cls = torch.optim.AdamW if c.optimizer == "adamw" else torch.optim.Adam
        return cls(self.params, lr=c.lr, betas=c.betas, weight_decay=c.weight_decay, foreach=False)

    # ------------------------------------------------------------------ training
    def train(self, steps: int | None = None) -> list[dict[str, Any]]:
        """Run rollout iterations until ``steps`` (default ``config.steps``) are done in total; checkpoint
        every ``save_every`` iterations and at the end. Returns the metric lines written by this call."""
        target = self.config.steps if steps is None else steps
        lines: list[dict[str, Any]] = []
        progress = _progress(self.config.progress and self.rank == 0, target, self.rollout_step)
        while self.rollout_step < target:
            lines.extend(self.step())
            if progress is not None:
                progress.update(
                    progress.task_ids[0],
                    completed=self.rollout_step,
                    description=f"reward {lines[-1]['reward/mean']:.3f} H {lines[-1]['entropy']:.3f}",
                )
            if self.config.save_every and self.rollout_step % self.config.save_every == 0:
                self.save_checkpoint()
        if progress is not None:
            progress.stop()
        if self._saved_at != self.rollout_step:
            self.save_checkpoint()
        return lines

    def _sample(self, batch: Any) -> tuple[Rollouts, Any]:
        """(this rank's rollouts, this rank's part of the batch)."""
        c, src = self.config, (self.sampler if self.sampler is not None else self.policy)
        if c.rollout_shards == 1:
            kw = {"generator": self.gen} if self._sample_takes_generator else {}
            return src.sample(batch, c.group_size, **kw), batch
        base = shard_base_seed(self.gen)
        per_rank = c.rollout_shards // self.world
        local = split_batch(batch, self.rank, self.world)
        parts = [
            sample_shard(
                src.sample,
                split_batch(local, j, per_rank),
                c.group_size,
                derive_seed(base, self.rank * per_rank + j),
                device=self.device,
                takes_generator=self._sample_takes_generator,
            )
            for j in range(per_rank)
        ]
        return cat_shards(parts), local

    def _sync_sampler(self) -> None:
        sync = getattr(self.sampler, "sync_weights", None)
        if callable(sync) and self._synced_at != self.opt_step:
            sync(self.policy_state_dict())
            self._synced_at = self.opt_step

    def step(self) -> list[dict[str, Any]]:
        """One rollout iteration; returns (and appends to metrics.jsonl) one line per optimizer step."""
        c = self.config
        t0 = time.perf_counter()
        batch = self.batch_fn(self.rollout_step, self.gen)
        self._sync_sampler()
        with torch.no_grad():
            ro, local_batch = self._sample(batch)
            if self.world > 1:  # the same T on every rank (agg modes normalise by it)
                t_max = int(dd.all_reduce_(torch.tensor([ro.tokens.shape[1]], device=self.device), "max").item())
                ro = ro.pad_to(t_max)
            scores = torch.as_tensor(self.reward_fn(local_batch, ro), dtype=torch.float32, device=ro.mask.device)
            if scores.shape != (ro.num_rows,):
                raise ValueError(
                    f"reward_fn returned shape {tuple(scores.shape)}, expected ({ro.num_rows},) = (B*n,)"
                )
            mask = ro.mask.to(torch.float32)
            lengths = dd.all_gather_rows(mask.sum(-1))  # (global rows,)
            all_scores = dd.all_gather_rows(scores)
            if self._adv_lengths:
                adv_all = self.advantage_fn(all_scores, c.group_size, lengths)  # type: ignore[call-arg]
            else:
                adv_all = self.advantage_fn(all_scores, c.group_size)
            lo = self.rank * ro.num_rows
            adv_seq = adv_all.to(torch.float32)[lo : lo + ro.num_rows]  # (B*n,) this rank's rows
            adv = adv_seq[:, None] * mask  # (B*n, T)
            ref_logp = None
            if self.ref_policy is not None:
                ref_logp = self.ref_policy.logprobs(local_batch, ro)[0].detach().float()
        ro = dataclasses.replace(ro, mask=mask, old_logp=ro.old_logp.float(), entropy=ro.entropy.float())
        self.rollout_step += 1
        base = {"rollout": self.rollout_step, **self._rollout_metrics(all_scores, lengths, ro)}
        state_in = self._rollout_inputs()
        base.update({metric_name(k): v for k, v in state_in.items()})
        if self._loss_state is not None:
            self._loss_state.observe_rollout(base)
        sample_s = time.perf_counter() - t0
        n_updates = c.ppo_epochs * c.num_minibatches
        rows_all = int(lengths.numel())
        mb_rows = rows_all // c.num_minibatches
        lines = []
        for epoch in range(c.ppo_epochs):
            perm = (
                torch.randperm(rows_all, generator=self.gen, device=self.device).to(mask.device)
                if c.num_minibatches > 1
                else torch.arange(rows_all, device=mask.device)
            )
            for mb in range(c.num_minibatches):
                t1 = time.perf_counter()
                idx = perm[mb * mb_rows : (mb + 1) * mb_rows]  # global rows of this minibatch
                lens = lengths[idx]
                totals = (float(lens.sum()), float((lens > 0).sum()))
                if self.world > 1:
                    idx = idx[(idx >= lo) & (idx < lo + ro.num_rows)] - lo  # the rows this rank holds
                line = {"step": self.opt_step + 1, **base, "epoch": epoch, "minibatch": mb}
                line.update(self._update(local_batch, ro, adv, ref_logp, idx, state_in, totals))
                elapsed = time.perf_counter() - t1 + sample_s / n_updates
                line["time/step_s"] = elapsed
                line["tokens_per_s"] = line["tokens"] / max(elapsed, 1e-9)
                self._write(line)
                lines.append(line)
        return lines

    def _rollout_metrics(self, scores: torch.Tensor, lengths: torch.Tensor, ro: Rollouts) -> dict[str, Any]:
        """Rollout statistics over the GLOBAL batch (scores and lengths are gathered over ranks)."""
        ent = (ro.entropy * ro.mask).sum()
        if self.world > 1:
            ent = dd.all_reduce_(ent.reshape(1).clone())[0]
        out = {
            "reward/mean": float(scores.mean()),
            "reward/std": float(scores.std(correction=0)),
            "reward/max": float(scores.max()),
            "reward/min": float(scores.min()),
            "entropy/rollout": float(ent / lengths.sum().clamp_min(1.0)),
            "response_length/mean": float(lengths.mean()),
        }
        extra = ro.extras.get("rollout_metrics")
        if isinstance(extra, dict):
            per_rank = [m for m in dd.all_gather_objects(extra) if m]
            for k in per_rank[0]:
                out[f"rollout/{k}"] = sum(float(m[k]) for m in per_rank) / len(per_rank)
        return out

    def _rollout_inputs(self) -> dict[str, Any]:
        """The loss state's inputs for this rollout (call before its statistics enter the state), minus those
        fixed in ``loss_cfg``."""
        if self._loss_state is None:
            return {}
        given = self._loss_state.rollout_inputs(self.rollout_step - 1)  # rollout_step already +1
        return {k: v for k, v in given.items() if k in self._inputs and k not in self.config.loss_cfg}

    def _forward(self, batch, sub: Rollouts) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """(logp, entropy, logits or None) of the rows ``sub`` with grad; one policy forward."""
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.config.bf16):
            if not self._use_logits:
                logp, ent = self.policy.logprobs(batch, sub)
                return logp.float(), ent.float(), None
            z = self.policy.token_logits(batch, sub)  # type: ignore[attr-defined]
        want = tuple(sub.tokens.shape)
        if z.dim() != 3 or tuple(z.shape[:2]) != want:
            raise ValueError(
                f"{type(self.policy).__name__}.token_logits returned shape {tuple(z.shape)}, expected "
                f"(rows, T, V) with (rows, T) = {want}"
            )
        z = z.float()
        return logprobs_from_logits(z, sub.tokens), entropy_from_logits(z), z

    def _update(self, batch, ro: Rollouts, adv, ref_logp, idx: torch.Tensor, state_in, totals) -> dict[str, Any]:
        """One optimizer step over the minibatch rows ``idx`` (this rank's share); ``totals`` = (valid tokens,
        non-empty rows) of the whole minibatch over all ranks."""
        c = self.config
        state_in = dict(state_in)
        if self._loss_state is not None:
            given = self._loss_state.update_inputs()
            state_in.update({k: v for k, v in given.items() if k in self._inputs and k not in c.loss_cfg})
        self.optimizer.zero_grad(set_to_none=True)
        tokens_all, seqs_all = totals
        micro = c.micro_batch_size or max(len(idx), 1)
        sums: dict[str, float] = {}
        lp_parts, finite = [], True
        ent_sum = kl_sum = 0.0
        for j in range(0, len(idx), micro):
            mi = idx[j : j + micro]
            sub = ro.rows(mi)
            logp, ent, logits = self._forward(batch, sub)
            m, a = sub.mask, adv[mi]
            extra: dict[str, Any] = {"entropy": ent, "generator": self.loss_gen, **state_in}
            if logits is not None:
                extra["logits"] = logits
            if "tokens" in self._inputs:
                extra["tokens"] = sub.tokens
            if ref_logp is not None:
                extra["ref_logp"] = ref_logp[mi]
            pg, pm = policy_loss(c.loss, logp, sub.old_logp, a, m, **extra, **c.loss_cfg)
            loss = pg
            if c.entropy_coef:
                loss = loss + entropy_bonus(ent, m, coef=c.entropy_coef, agg=self.agg)
            if ref_logp is not None:
                with torch.no_grad():
                    kl_sum += float((kl_penalty(logp, ref_logp[mi], c.kl_type) * m).sum())
                if c.kl_coef:
                    loss = loss + kl_loss(logp, ref_logp[mi], m, kind=c.kl_type, coef=c.kl_coef, agg=self.agg)
            w = micro_weight(self.agg, m, tokens_all, seqs_all)
            # metrics are averages: weight them like the loss, except where the loss weights sum to more
            # than 1 (seq-mean-token-sum-norm adds micro-batch losses): there by token share
            wm = w if self.agg != "seq-mean-token-sum-norm" else micro_weight("token-mean", m, tokens_all, 0.0)
            if not torch.isfinite(loss):
                finite = False
                break
            (loss * w).backward()
            for k, v in (("loss", float(loss.detach())), ("pg_loss", float(pg.detach()))):
                sums[k] = sums.get(k, 0.0) + w * v
            for k, v in pm.items():
                sums[k] = sums.get(k, 0.0) + (float(v) if is_count(k) else wm * float(v))
            ent_sum += float((ent.detach() * m).sum())
            lp_parts.append(logp.detach())
        if self.world > 1:
            finite = bool(dd.all_reduce_(torch.tensor([float(finite)], device=self.device), "min").item())
            dd.all_reduce_grads(self.params)
            sums, ent_sum, kl_sum = merge_rank_sums(dd.all_gather_objects((sums, ent_sum, kl_sum)))
        grad_norm = torch.nn.utils.clip_grad_norm_(self.params, c.max_grad_norm or float("inf"))
        grad_norm = float(grad_norm)
        applied = finite and math.isfinite(grad_norm)
        if applied:
            self.optimizer.step()
        else:
            self.optimizer.zero_grad(set_to_none=True)
            self.skipped_steps += 1
        if self._loss_state is not None:
            self._loss_state.observe_update(sums, applied=applied)
        self.opt_step += 1
        out: dict[str, Any] = dict(sums)
        if finite:
            entropy = ent_sum / max(tokens_all, 1.0)
            lp = torch.cat(lp_parts) if lp_parts else adv[idx]
            if self.world > 1:
                out.update(cov_stats_dist(adv[idx], lp, ro.mask[idx], self.device))
            else:
                out.update(cov_stats(adv[idx], lp, ro.mask[idx]))
            if ref_logp is not None:
                out["kl"] = kl_sum / max(tokens_all, 1.0)
        else:
            entropy = float("nan")
        out["entropy"] = entropy
        out["entropy/change"] = None if self.prev_entropy is None else entropy - self.prev_entropy
        if finite:
            self.prev_entropy = entropy
        out.update(
            {
                "grad_norm": grad_norm,
                "lr": self.optimizer.param_groups[0]["lr"],
                "tokens": tokens_all,
                "skipped_steps": self.skipped_steps,
            }
        )
        return out

    def _write(self, line: dict[str, Any]) -> None:
        if self.rank == 0:
            clean = {k: finite_or_none(v) for k, v in line.items()}
            ckpt.append_line(self.metrics_path, json.dumps(clean, allow_nan=False))

    # ------------------------------------------------------------------ weights
    def policy_state_dict(self) -> dict[str, torch.Tensor]:
        """The current policy weights by name as CPU tensors (copies), for an inference engine or a rollout
        worker: ``policy.state_dict()`` when the policy has one (an ``nn.Module``'s own keys, buffers included;
        a wrapper should return its model's), else the trainable parameters by name."""
        sd_fn = getattr(self.policy, "state_dict", None)
        items = sd_fn().items() if callable(sd_fn) else self.named_params
        return {k: v.detach().to("cpu", copy=True) for k, v in items if isinstance(v, torch.Tensor)}

    def export_policy(self, path: str | os.PathLike) -> Path:
        """Write :meth:`policy_state_dict` to ``<path>/model.safetensors`` plus ``<path>/policy.json``
        (atomic; rank 0 only under torch.distributed). Load with :func:`rl.checkpoint.load_exported_policy`."""
        path = Path(path)
        if self.rank == 0:
            meta = {"rollout_step": self.rollout_step, "opt_step": self.opt_step, "loss": self.config.loss,
                    "writer": "rl.trainer.GRPOTrainer"}
            ckpt.export_policy(path, self.policy_state_dict(), meta)
        dd.barrier()
        return path

    # ------------------------------------------------------------------ checkpoints
    def save_checkpoint(self) -> Path:
        """Write ``checkpoints/step-<rollout>-<unique>/`` (safetensors + state.json) crash-safely and point
        ``latest.json`` at it (rank 0 writes; every rank returns its path)."""
        root = self.run_dir / "checkpoints"
        if self.rank == 0:
            names = [n for n, _ in self.named_params]
            tensors = {f"param.{n}": p.detach().cpu().contiguous() for n, p in self.named_params}
            tensors["rng.sample"] = self.gen.get_state()
            tensors["rng.loss"] = self.loss_gen.get_state()
            tensors["rng.global"] = torch.get_rng_state()
            if self.device.type == "cuda":
                tensors["rng.cuda"] = torch.cuda.get_rng_state(self.device)
            opt_tensors, scalars, groups = ckpt.pack_optimizer(self.optimizer, names)
            tensors.update(opt_tensors)
            state = {
                "format": ckpt.FORMAT,
                "param_names": names,
                "rollout_step": self.rollout_step,
                "opt_step": self.opt_step,
                "skipped_steps": self.skipped_steps,
                "prev_entropy": self.prev_entropy,
                "loss_state": self.loss_state,
                "optimizer_param_groups": groups,
                "optimizer_scalars": scalars,
                "config": self.config.to_dict(),
            }
            ckpt.write_checkpoint(root, f"step-{self.rollout_step:08d}", tensors, state)
        dd.barrier()
        self._saved_at = self.rollout_step
        path = ckpt.latest_checkpoint(root)
        assert path is not None
        return path

    def load_checkpoint(self, path: str | os.PathLike | None = None) -> None:
        """Restore parameters, optimizer, RNG streams, counters and the loss state (format 2 by parameter name,
        format 1 by position); truncate metrics.jsonl to match."""
        root = self.run_dir / "checkpoints"
        path = Path(path) if path is not None else ckpt.latest_checkpoint(root)
        if path is None:
            raise FileNotFoundError(f"no checkpoint in {root} (no latest.json); train first or start fresh")
        tensors, state = ckpt.read_checkpoint(path)
        saved = TrainerConfig.from_dict(state["config"])
        diff = [
            f.name
            for f in dataclasses.fields(TrainerConfig)
            if f.name not in RESUMABLE_FIELDS and getattr(saved, f.name) != getattr(self.config, f.name)
        ]
        if diff:
            raise ValueError(
                f"checkpoint {path} was written with a different config ({', '.join(diff)}); resume with the "
                f"saved config.json or start a new run_dir"
            )
        names = [n for n, _ in self.named_params]
        if state.get("format", 1) >= 2:
            ckpt.check_param_names(path, state["param_names"], names)
            keys = [f"param.{n}" for n in names]
        else:  # format 1: by position
            if sum(k.startswith("param.") for k in tensors) != len(self.params):
                raise ValueError(f"checkpoint {path} holds a different number of parameters than this policy")
            keys = [f"param.{i}" for i in range(len(self.params))]
        with torch.no_grad():
            for key, p in zip(keys, self.params, strict=True):
                if tuple(tensors[key].shape) != tuple(p.shape):
                    raise ValueError(
                        f"checkpoint {path}: {key} has shape {tuple(tensors[key].shape)}, the policy's is "
                        f"{tuple(p.shape)}"
                    )
                p.copy_(tensors[key].to(p.device))
        ckpt.unpack_optimizer(self.optimizer, tensors, state, names)
        self.gen.set_state(tensors["rng.sample"])
        self.loss_gen.set_state(tensors["rng.loss"])
        torch.set_rng_state(tensors["rng.global"])
        if "rng.cuda" in tensors and self.device.type == "cuda":
            torch.cuda.set_rng_state(tensors["rng.cuda"], self.device)
        self.rollout_step, self.opt_step = state["rollout_step"], state["opt_step"]
        self.skipped_steps, self.prev_entropy = state["skipped_steps"], state["prev_entropy"]
        if self._loss_state is not None:
            self._loss_state.load_state_dict(state.get("loss_state", {}))
        self._synced_at = None
        self._saved_at = self.rollout_step
        if self.rank == 0:
            ckpt.truncate_metrics(self.metrics_path, self.opt_step)
        dd.barrier()


def _progress(enabled: bool, total: int, done: int):
    if not enabled:
        return None
    from rich.progress import Progress

    bar = Progress()
    bar.add_task("train", total=total, completed=done)
    bar.start()
    return bar
