"""A generic GRPO-style trainer over any :class:`rl.policy.Policy` and any registered policy loss.

One rollout iteration: ``batch = batch_fn(i, gen)`` -> ``policy.sample(batch, n)`` -> ``reward_fn`` scores
(B*n,) -> group advantages (``rl.advantages``, GRPO by default) broadcast over valid tokens -> for each of
``ppo_epochs`` x ``num_minibatches`` minibatches one optimizer step, the minibatch split into micro-batches
whose gradients are accumulated with weights that make the sum equal the full-minibatch loss:

    loss = policy_loss(name, lp, old_lp, A, m, **loss_cfg)
           - entropy_coef * agg(H, m)  +  kl_coef * agg(kl_penalty(lp, ref_lp, kl_type), m)

(verl ``dp_actor.update_policy``; the two terms are ``rl.losses.terms.entropy_bonus`` and ``kl_loss``).
Every optimizer step appends one JSON line to ``<run_dir>/metrics.jsonl``; ``<run_dir>/config.json`` holds
the :class:`TrainerConfig`. Checkpoints are safetensors (parameters, optimizer tensors, RNG states) plus a
JSON state; no pickles. Determinism: same config + seed => the same metrics (bit-for-bit on CPU) apart from
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
Stateful inputs, kept in :attr:`GRPOTrainer.loss_state` and in the checkpoint JSON (an explicit value in
``loss_cfg`` always wins):
  * ``siren_anchor``: None on the first optimizer step (the loss then anchors on itself, penalty 0, and reports
    ``siren/anchor``); the trainer keeps that step's micro-batch-weighted ``siren/anchor`` and passes it on
    every later step (the reference anchors on the masked entropy of the first batch).
  * ``epo_hist_entropy``: the cumulative mean, equal weight per rollout iteration, of the rollout's token-mean
    entropy (``entropy/rollout``) over all EARLIER iterations (None on the first: no penalty, as the
    reference); ``epo_phase`` = (rollout iterations done before this one) / ``config.steps``, so the term is
    active from iteration steps * epo_phase_start on (reference: rollout step >= max_step / 2). The phase is
    derived from the counters (not stored); give ``config.steps`` the full horizon and stop early with
    ``train(steps=k)`` so a resumed run sees the same phases. Both are logged as ``epo/hist_entropy`` and
    ``epo/phase``.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import math
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from rl.entropy import entropy_from_logits, logprobs_from_logits
from rl.kl import kl_penalty
from rl.losses import POLICY_LOSSES, policy_loss
from rl.losses.terms import entropy_bonus, kl_loss
from rl.policy import Policy, RewardFn, Rollouts

__all__ = ["WALL_CLOCK_KEYS", "GRPOTrainer", "TrainerConfig", "loss_inputs", "needs_logits"]

WALL_CLOCK_KEYS = ("tokens_per_s", "time/step_s")  # the only metrics that differ between identical runs
AdvantageFn = Callable[[torch.Tensor, int], torch.Tensor]
BatchFn = Callable[[int, torch.Generator], Any]
_RESUMABLE_FIELDS = ("steps", "save_every", "progress")  # may change between a run and its resume
_CKPT_KEEP = 2


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
    """advantage estimator in rl.advantages (ignored when the trainer gets advantage_fn)"""
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
    """device of the RNG streams and of the batch; the policy must already live there"""
    seed: int = 0
    """seeds the sampling stream, the loss stream (seed + 1) and torch's global RNG"""
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
        d = dict(d)
        d["betas"] = tuple(d["betas"])
        return cls(**d)


def _micro_weight(agg: str, m_micro: torch.Tensor, m_all: torch.Tensor) -> float:
    """Weight making sum_j w_j * agg(L_j, m_j) == agg(L, m) for row micro-batches j (see module doc).

    token-mean: tokens_j / tokens; seq-mean-*: non-empty rows_j / non-empty rows; seq-mean-token-sum-norm:
    1 (its normaliser T does not depend on the batch). Losses that override ``agg`` internally are weighted
    by the configured mode.
    """
    if agg == "seq-mean-token-sum-norm":
        return 1.0
    if agg == "token-mean":
        return float(m_micro.sum()) / max(float(m_all.sum()), 1.0)
    return float((m_micro.sum(-1) > 0).sum()) / max(float((m_all.sum(-1) > 0).sum()), 1.0)


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


def _is_count(key: str) -> bool:
    last = key.rsplit("/", 1)[-1]
    return last.startswith(("n_", "num_"))


def _finite_or_none(x: Any) -> Any:
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


def _resolve_advantage(name: str, cfg: dict[str, Any]) -> AdvantageFn:
    """``rl.advantages.<name>(scores (B*n,), group_size, **cfg) -> (B*n,)``."""
    from rl import advantages as adv_mod  # imported lazily: a sibling module

    registry = getattr(adv_mod, "ADVANTAGES", None)
    fn = registry.get(name) if isinstance(registry, dict) else getattr(adv_mod, name, None)
    if fn is None:
        valid = (
            sorted(registry) if isinstance(registry, dict) else [n for n in getattr(adv_mod, "__all__", [])]
        )
        raise KeyError(f"unknown advantage estimator {name!r}; available: {', '.join(valid)}")
    return lambda scores, n: fn(scores, n, **cfg)


class GRPOTrainer:
    """Group-relative policy optimisation over any :class:`Policy` and loss in ``POLICY_LOSSES``.

    Args:
        policy: the trained policy (already on ``config.device``).
        reward_fn: ``(batch, rollouts) -> scores (B*n,)``.
        batch_fn: ``(rollout_index, generator) -> batch`` (deterministic given the generator state).
        config: a :class:`TrainerConfig`.
        run_dir: folder for ``config.json``, ``metrics.jsonl`` and ``checkpoints/`` (created).
        ref_policy: frozen reference policy for the KL term / ``kl`` metric (needed when kl_coef > 0).
        advantage_fn: ``(scores (B*n,), n) -> (B*n,)`` overriding ``config.advantage``.
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
        resume: bool = False,
    ) -> None:
        if config.loss not in POLICY_LOSSES:
            raise KeyError(
                f"unknown policy loss {config.loss!r}; registered: {', '.join(sorted(POLICY_LOSSES))}"
            )
        if config.kl_coef > 0 and ref_policy is None:
            raise ValueError("kl_coef > 0 needs a ref_policy (pass ref_policy=..., or set kl_coef=0)")
        self._inputs = loss_inputs(config.loss)
        self._use_logits = needs_logits(config.loss)
        if self._use_logits and not callable(getattr(policy, "token_logits", None)):
            raise TypeError(
                f"policy loss {config.loss!r} needs the current policy's logits (rows, T, V), but "
                f"{type(policy).__name__} has no method token_logits(batch, rollouts): add one (see "
                f"rl.policy.LogitsPolicy) or choose a loss that needs no logits"
            )
        self.policy, self.reward_fn, self.batch_fn, self.config = policy, reward_fn, batch_fn, config
        self.ref_policy = ref_policy
        self.advantage_fn = advantage_fn or _resolve_advantage(config.advantage, config.advantage_cfg)
        self.run_dir = Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.device = torch.device(config.device)
        self.params = [p for p in policy.parameters() if p.requires_grad]
        if not self.params:
            raise ValueError("the policy has no trainable parameters (policy.parameters() yielded none)")
        self.optimizer = self._make_optimizer()
        torch.manual_seed(config.seed)
        self.gen = torch.Generator(device=self.device).manual_seed(config.seed)
        self.loss_gen = torch.Generator(device=self.device).manual_seed(config.seed + 1)
        self._sample_takes_generator = "generator" in inspect.signature(policy.sample).parameters
        self.agg = str(config.loss_cfg.get("agg", "token-mean"))
        self.rollout_step = 0
        self.opt_step = 0
        self.skipped_steps = 0
        self.prev_entropy: float | None = None
        self.loss_state: dict[str, Any] = {"siren_anchor": None, "epo_hist_sum": 0.0, "epo_hist_count": 0}
        """JSON state of the stateful loss inputs (see the module doc); saved in every checkpoint"""
        self.metrics_path = self.run_dir / "metrics.jsonl"
        if resume and (self.run_dir / "checkpoints" / "latest.json").exists():
            self.load_checkpoint()
        else:
            self.metrics_path.write_text("")
            (self.run_dir / "config.json").write_text(json.dumps(config.to_dict(), indent=2) + "\n")

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
        progress = _progress(self.config.progress, target, self.rollout_step)
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
        self.save_checkpoint()
        return lines

    def step(self) -> list[dict[str, Any]]:
        """One rollout iteration; returns (and appends to metrics.jsonl) one line per optimizer step."""
        c = self.config
        t0 = time.perf_counter()
        batch = self.batch_fn(self.rollout_step, self.gen)
        with torch.no_grad():
            kw = {"generator": self.gen} if self._sample_takes_generator else {}
            ro = self.policy.sample(batch, c.group_size, **kw)
            scores = torch.as_tensor(self.reward_fn(batch, ro), dtype=torch.float32, device=ro.mask.device)
            if scores.shape != (ro.num_rows,):
                raise ValueError(
                    f"reward_fn returned shape {tuple(scores.shape)}, expected ({ro.num_rows},) = (B*n,)"
                )
            adv_seq = self.advantage_fn(scores, c.group_size).to(torch.float32)  # (B*n,)
            mask = ro.mask.to(torch.float32)
            adv = adv_seq[:, None] * mask  # (B*n, T)
            ref_logp = None
            if self.ref_policy is not None:
                ref_logp = self.ref_policy.logprobs(batch, ro)[0].detach().float()
        ro = dataclasses.replace(ro, mask=mask, old_logp=ro.old_logp.float(), entropy=ro.entropy.float())
        self.rollout_step += 1
        base = {
            "rollout": self.rollout_step,
            "reward/mean": float(scores.mean()),
            "reward/std": float(scores.std(correction=0)),
            "reward/max": float(scores.max()),
            "reward/min": float(scores.min()),
            "entropy/rollout": float((ro.entropy * mask).sum() / mask.sum().clamp_min(1.0)),
            "response_length/mean": float(mask.sum(-1).mean()),
        }
        state_in = self._stateful_inputs()
        for key, metric in (("epo_hist_entropy", "epo/hist_entropy"), ("epo_phase", "epo/phase")):
            if key in state_in:
                base[metric] = state_in[key]
        if "epo_hist_entropy" in self._inputs:
            self.loss_state["epo_hist_sum"] += base["entropy/rollout"]
            self.loss_state["epo_hist_count"] += 1
        sample_s = time.perf_counter() - t0
        n_updates = c.ppo_epochs * c.num_minibatches
        mb_rows = ro.num_rows // c.num_minibatches
        lines = []
        for epoch in range(c.ppo_epochs):
            perm = (
                torch.randperm(ro.num_rows, generator=self.gen, device=self.device).to(mask.device)
                if c.num_minibatches > 1
                else torch.arange(ro.num_rows, device=mask.device)
            )
            for mb in range(c.num_minibatches):
                t1 = time.perf_counter()
                idx = perm[mb * mb_rows : (mb + 1) * mb_rows]
                line = {"step": self.opt_step + 1, **base, "epoch": epoch, "minibatch": mb}
                line.update(self._update(batch, ro, adv, ref_logp, idx, state_in))
                elapsed = time.perf_counter() - t1 + sample_s / n_updates
                line["time/step_s"] = elapsed
                line["tokens_per_s"] = line["tokens"] / max(elapsed, 1e-9)
                self._write(line)
                lines.append(line)
        return lines

    def _stateful_inputs(self) -> dict[str, Any]:
        """Per-rollout scalar inputs the trainer keeps for the loss (EPO history and phase); call before the
        current rollout's entropy enters the history. ``siren_anchor`` is added per update in ``_update``."""
        out: dict[str, Any] = {}
        cfg, st = self.config.loss_cfg, self.loss_state
        if "epo_hist_entropy" in self._inputs and "epo_hist_entropy" not in cfg:
            n = st["epo_hist_count"]
            out["epo_hist_entropy"] = st["epo_hist_sum"] / n if n else None
        if "epo_phase" in self._inputs and "epo_phase" not in cfg:
            out["epo_phase"] = (self.rollout_step - 1) / max(self.config.steps, 1)  # rollout_step already +1
        return out

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

    def _update(self, batch, ro: Rollouts, adv, ref_logp, idx: torch.Tensor, state_in) -> dict[str, Any]:
        c = self.config
        state_in = dict(state_in)
        anchor_kept = "siren_anchor" in self._inputs and "siren_anchor" not in c.loss_cfg
        if anchor_kept:
            state_in["siren_anchor"] = self.loss_state["siren_anchor"]
        self.optimizer.zero_grad(set_to_none=True)
        m_all = ro.mask[idx]
        micro = c.micro_batch_size or len(idx)
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
            w = _micro_weight(self.agg, m, m_all)
            # metrics are averages: weight them like the loss, except where the loss weights sum to more
            # than 1 (seq-mean-token-sum-norm adds micro-batch losses): there by token share
            wm = w if self.agg != "seq-mean-token-sum-norm" else _micro_weight("token-mean", m, m_all)
            if not torch.isfinite(loss):
                finite = False
                break
            (loss * w).backward()
            for k, v in (("loss", float(loss.detach())), ("pg_loss", float(pg.detach()))):
                sums[k] = sums.get(k, 0.0) + w * v
            for k, v in pm.items():
                sums[k] = sums.get(k, 0.0) + (float(v) if _is_count(k) else wm * float(v))
            ent_sum += float((ent.detach() * m).sum())
            lp_parts.append(logp.detach())
        grad_norm = torch.nn.utils.clip_grad_norm_(self.params, c.max_grad_norm or float("inf"))
        grad_norm = float(grad_norm)
        if finite and math.isfinite(grad_norm):
            self.optimizer.step()
            if anchor_kept and self.loss_state["siren_anchor"] is None and "siren/anchor" in sums:
                self.loss_state["siren_anchor"] = sums["siren/anchor"]
        else:
            self.optimizer.zero_grad(set_to_none=True)
            self.skipped_steps += 1
        self.opt_step += 1
        n_tok = float(m_all.sum())
        out: dict[str, Any] = dict(sums)
        if finite:
            entropy = ent_sum / max(n_tok, 1.0)
            out.update(_cov_stats(adv[idx], torch.cat(lp_parts), m_all))
            if ref_logp is not None:
                out["kl"] = kl_sum / max(n_tok, 1.0)
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
                "tokens": n_tok,
                "skipped_steps": self.skipped_steps,
            }
        )
        return out

    def _write(self, line: dict[str, Any]) -> None:
        clean = {k: _finite_or_none(v) for k, v in line.items()}
        with self.metrics_path.open("a") as f:
            f.write(json.dumps(clean, allow_nan=False) + "\n")

    # ------------------------------------------------------------------ checkpoints
    def save_checkpoint(self) -> Path:
        """Write ``checkpoints/step-<rollout>/`` (safetensors + state.json) and point ``latest.json`` at it."""
        from safetensors.torch import save_file

        root = self.run_dir / "checkpoints"
        path = root / f"step-{self.rollout_step:08d}"
        tmp = root / f".tmp-{self.rollout_step:08d}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        tensors = {f"param.{i}": p.detach().cpu().contiguous() for i, p in enumerate(self.params)}
        tensors["rng.sample"] = self.gen.get_state()
        tensors["rng.loss"] = self.loss_gen.get_state()
        tensors["rng.global"] = torch.get_rng_state()
        if self.device.type == "cuda":
            tensors["rng.cuda"] = torch.cuda.get_rng_state(self.device)
        opt = self.optimizer.state_dict()
        scalars: dict[str, dict[str, Any]] = {}
        for pid, st in opt["state"].items():
            for name, val in st.items():
                if isinstance(val, torch.Tensor):
                    tensors[f"opt.{pid}.{name}"] = val.detach().cpu().contiguous()
                else:
                    scalars.setdefault(str(pid), {})[name] = val
        save_file(tensors, str(tmp / "tensors.safetensors"))
        groups = [
            {k: (list(v) if isinstance(v, tuple) else v) for k, v in g.items()} for g in opt["param_groups"]
        ]
        state = {
            "format": 1,
            "rollout_step": self.rollout_step,
            "opt_step": self.opt_step,
            "skipped_steps": self.skipped_steps,
            "prev_entropy": self.prev_entropy,
            "loss_state": self.loss_state,
            "optimizer_param_groups": groups,
            "optimizer_scalars": scalars,
            "config": self.config.to_dict(),
        }
        (tmp / "state.json").write_text(json.dumps(state, indent=2) + "\n")
        shutil.rmtree(path, ignore_errors=True)
        os.replace(tmp, path)
        pointer = root / ".latest.tmp"
        pointer.write_text(json.dumps({"path": path.name}) + "\n")
        os.replace(pointer, root / "latest.json")
        for old in sorted(root.glob("step-*"))[:-_CKPT_KEEP]:
            shutil.rmtree(old, ignore_errors=True)
        return path

    def load_checkpoint(self, path: str | os.PathLike | None = None) -> None:
        """Restore parameters, optimizer, RNG streams and counters; truncate metrics.jsonl to match."""
        from safetensors.torch import load_file

        root = self.run_dir / "checkpoints"
        if path is None:
            path = root / json.loads((root / "latest.json").read_text())["path"]
        path = Path(path)
        state = json.loads((path / "state.json").read_text())
        saved = TrainerConfig.from_dict(state["config"])
        diff = [
            f.name
            for f in dataclasses.fields(TrainerConfig)
            if f.name not in _RESUMABLE_FIELDS and getattr(saved, f.name) != getattr(self.config, f.name)
        ]
        if diff:
            raise ValueError(
                f"checkpoint {path} was written with a different config ({', '.join(diff)}); resume with the "
                f"saved config.json or start a new run_dir"
            )
        tensors = load_file(str(path / "tensors.safetensors"))
        if sum(k.startswith("param.") for k in tensors) != len(self.params):
            raise ValueError(f"checkpoint {path} holds a different number of parameters than this policy")
        with torch.no_grad():
            for i, p in enumerate(self.params):
                p.copy_(tensors[f"param.{i}"].to(p.device))
        opt_state: dict[int, dict[str, Any]] = {}
        for key, val in tensors.items():
            if key.startswith("opt."):
                _, pid, name = key.split(".", 2)
                opt_state.setdefault(int(pid), {})[name] = val
        for pid, sc in state["optimizer_scalars"].items():
            opt_state.setdefault(int(pid), {}).update(sc)
        groups = [
            {k: (tuple(v) if k == "betas" else v) for k, v in g.items()}
            for g in state["optimizer_param_groups"]
        ]
        self.optimizer.load_state_dict({"state": opt_state, "param_groups": groups})
        self.gen.set_state(tensors["rng.sample"])
        self.loss_gen.set_state(tensors["rng.loss"])
        torch.set_rng_state(tensors["rng.global"])
        if "rng.cuda" in tensors and self.device.type == "cuda":
            torch.cuda.set_rng_state(tensors["rng.cuda"], self.device)
        self.rollout_step, self.opt_step = state["rollout_step"], state["opt_step"]
        self.skipped_steps, self.prev_entropy = state["skipped_steps"], state["prev_entropy"]
        self.loss_state.update(state.get("loss_state", {}))
        kept = []
        if self.metrics_path.exists():
            kept = [
                ln
                for ln in self.metrics_path.read_text().splitlines()
                if ln.strip() and json.loads(ln)["step"] <= self.opt_step
            ]
        self.metrics_path.write_text("".join(ln + "\n" for ln in kept))


def _cov_stats(adv: torch.Tensor, logp: torch.Tensor, mask: torch.Tensor) -> dict[str, float]:
    """Statistics over valid tokens of cov_t = (A_t - mean A)(lp_t - mean lp) (Cui et al. 2025; the quantity
    Clip-Cov / KL-Cov select on). Inputs (rows, T); means over valid tokens."""
    valid = mask > 0
    if not bool(valid.any()):
        return {}
    a, lp = adv[valid].double(), logp[valid].double()
    cov = (a - a.mean()) * (lp - lp.mean())
    return {
        "cov/mean": float(cov.mean()),
        "cov/std": float(cov.std(correction=0)),
        "cov/max": float(cov.max()),
        "cov/min": float(cov.min()),
    }


def _progress(enabled: bool, total: int, done: int):
    if not enabled:
        return None
    from rich.progress import Progress

    bar = Progress()
    bar.add_task("train", total=total, completed=done)
    bar.start()
    return bar
