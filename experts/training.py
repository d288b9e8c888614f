"""Training an expert: SFT on teacher + hindsight labels, then GRPO on net-of-cost horizon rewards.

A run folder (``--out``) holds ``expert.json`` (the :class:`TrainConfig` and style), ``metrics.jsonl`` (one
JSON line per step: the dashboard's Training monitor reads it), ``checkpoints/`` (periodic, resumable),
``model/`` (the final HF model folder, what ``checkpoint=<run>`` loads) and ``summary.json`` (validation
agreement with the teacher and validation reward).

* **SFT** (:func:`train_sft`): cross-entropy on the answer tokens (+ end token) of ``prompt -> target``
  (:mod:`experts.data`), AdamW, linear warm-up then cosine decay. Batches are drawn with
  ``numpy.random.default_rng([seed, step])``, so a resumed run sees the same batches as an uninterrupted one.
  Without ``model`` a new DREX model is built: the byte-level BPE tokenizer trained on the prompt language of
  all four styles over the training data (:func:`default_tokenizer`) and a tiny Llama (:mod:`experts.lm`).
* **RL** (:func:`train_rl`): :class:`rl.trainer.GRPOTrainer` over :class:`experts.policy.LMPolicy`: G
  constrained answers per market state, reward = :func:`experts.rewards.horizon_rewards` of the answered
  exposure (start: the teacher's exposure at t-1), optionally risk-shaped (``cvar``: ``r - lam (VaR - r)^+ /
  alpha`` within each group, the Rockafellar-Uryasev tail penalty; ``riskpo``: RiskPO mixed-VaR advantages
  from ``rl.risk``); the loss by registry name; optional KL to the initial (SFT) model.
* **Validation** (:func:`evaluate`): greedy constrained answers on a fixed sample of validation bars
  (seed 0, whatever the training seed): direction agreement with the teacher (sign, flat its own class) and
  the mean horizon reward; the same numbers for the teacher itself for reference.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["DEFAULT_DATA", "TrainConfig", "default_tokenizer", "evaluate", "train_rl", "train_sft"]

DEFAULT_DATA = ("sample:SP500", "sample:NASDAQ", "sample:MSFT", "sample:SP20")
RISKS = ("none", "cvar", "riskpo")
ROLLOUTS = ("plain", "entropy-guided")


@dataclass(frozen=True)
class TrainConfig:
    """Every knob of ``drex train experts`` (one run = one style and one stage)."""

    style: str
    """trend | reversal | breakout | positioning"""
    stage: str = "sft"
    """sft | rl"""
    data: tuple[str, ...] = DEFAULT_DATA
    """data specs (their bars up to ``end`` only)"""
    end: str = "2014-12-31"
    """last training/validation date; later data stays unseen"""
    horizon: int = 5
    """H: bars of the reward / hindsight window and of the purge gap"""
    fees: float = 0.001
    slippage: float = 0.0
    val_fraction: float = 0.2
    rl_fraction: float = 0.0
    """the dates before validation held out from SFT for RL (0 = RL trains on the SFT rows); give both stages
    the same value"""
    hindsight_weight: float = 0.5
    """how much hindsight lowers the teacher's size where it was wrong (0 = teacher only)"""
    risk_budget: float = 0.15
    steps: int = 300
    batch_size: int = 64
    """SFT: examples per step; RL: market states per rollout (each answered group_size times)"""
    lr: float | None = None
    """default 3e-3 (SFT of a new model), 3e-4 (SFT of a given model), 2e-5 (RL)"""
    seed: int = 0
    model: str | None = None
    """initial model: a folder / run folder / hf:owner/name; None = new DREX model (SFT) or the shipped
    default checkpoint (RL)"""
    optimizer: str = "vanilla"
    """RL loss, a key of rl.losses.POLICY_LOSSES"""
    group_size: int = 8
    rollouts: str = "plain"
    """plain (policy.sample) | entropy-guided (rl.rollouts.EntropyGuidedSampler: part of each group branches
    from the highest-entropy answer positions of earlier samples)"""
    ppo_epochs: int = 1
    """RL passes over each rollout batch (> 1: off-policy updates, where clipping acts)"""
    num_minibatches: int = 1
    """RL optimizer steps per pass (must divide batch_size * group_size)"""
    temperature: float = 1.0
    kl_coef: float = 0.0
    risk: str = "none"
    risk_alpha: float = 0.2
    risk_lambda: float = 0.5
    save_every: int = 100
    val_size: int = 2000
    arch: dict[str, Any] = field(default_factory=dict)
    """overrides of experts.lm.DEFAULT_ARCH for a new model"""

    def __post_init__(self) -> None:
        from experts.prompts import STYLES

        if self.style not in STYLES:
            raise ValueError(f"unknown expert {self.style!r}; choose one of {', '.join(STYLES)} or all")
        if self.stage not in ("sft", "rl"):
            raise ValueError(f"stage must be sft or rl, got {self.stage!r}")
        if self.risk not in RISKS:
            raise ValueError(f"risk must be one of {', '.join(RISKS)}, got {self.risk!r}")
        if self.rollouts not in ROLLOUTS:
            raise ValueError(f"rollouts must be one of {', '.join(ROLLOUTS)}, got {self.rollouts!r}")
        for name in ("steps", "batch_size", "group_size", "horizon", "val_size", "ppo_epochs", "num_minibatches"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.stage == "rl":
            from rl.losses import POLICY_LOSSES

            if self.optimizer not in POLICY_LOSSES:
                raise KeyError(f"unknown optimizer {self.optimizer!r}; registered: {', '.join(sorted(POLICY_LOSSES))}")

    @property
    def learning_rate(self) -> float:
        if self.lr is not None:
            return float(self.lr)
        if self.stage == "rl":
            return 2e-5
        return 3e-3 if self.model is None else 3e-4

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["data"] = list(self.data)
        return d


# ----------------------------------------------------------------------------------------------- pieces
def default_tokenizer(specs=DEFAULT_DATA, *, end: str | None = "2014-12-31", every: int = 20,
                      vocab_size: int = 1024):
    """DREX's tokenizer: byte-level BPE trained on every ``every``-th prompt of the four styles over ``specs``
    up to ``end``, plus every answer string (deterministic)."""
    import markets
    from experts.answers import answer_strings
    from experts.lm import build_tokenizer
    from experts.prompts import STYLES, build_prompts

    corpus: list[str] = []
    for spec in specs:
        bars = markets.load(spec, end=end)
        for style in STYLES:
            corpus.extend(build_prompts(style, bars).text[::every].ravel().tolist())
    corpus.extend(answer_strings() * 50)
    return build_tokenizer(corpus, vocab_size=vocab_size)


def _answer_ids(constraint) -> dict[float, list[int]]:
    """Grid value -> its token ids (in context), read off the constraint's trie."""
    out: dict[float, list[int]] = {}

    def walk(node, path):
        if node.value is not None:
            out[round(node.value, 6)] = list(path)
        for tok, child in node.children.items():
            walk(child, path + [tok])

    walk(constraint.root, [])
    return out


def _val_rows(data, size: int) -> np.ndarray:
    val = np.flatnonzero(data.split == 1)
    if len(val) > size:
        val = np.sort(np.random.default_rng(0).choice(val, size, replace=False))
    return val


def evaluate(model, tokenizer, data, rows: np.ndarray, *, batch_size: int = 256) -> dict[str, float]:
    """Greedy constrained answers on ``rows`` of ``data``: direction agreement with the teacher, mean horizon
    reward (and the teacher's), share of malformed answers."""
    from experts.answers import AnswerConstraint, parse_answer
    from experts.backends import DecodeSettings
    from experts.decoding import decode
    from experts.prompts import ANSWER_CUE
    from experts.rewards import horizon_rewards

    was_training = model.training
    model.eval()
    cons = AnswerConstraint(tokenizer, cue=ANSWER_CUE)
    texts = decode(model, tokenizer, list(data.prompts[rows]), DecodeSettings(), constraint=cons,
                   batch_size=batch_size)
    model.train(was_training)
    parsed = [parse_answer(t) for t in texts]
    h = np.array([p[0] for p in parsed])
    kw = {"fees": data.fees, "slippage": data.slippage, "start_exposure": data.start[rows], "execution": data.execution}
    reward = horizon_rewards(data.exec_price, data.mark_price, data.t[rows], h, data.horizon, **kw)
    teacher = np.clip(data.teacher[rows], -1, 1)
    teacher_reward = horizon_rewards(data.exec_price, data.mark_price, data.t[rows], teacher, data.horizon, **kw)
    return {
        "val/agreement": float(np.mean(np.sign(h) == np.sign(teacher))),
        "val/reward": float(np.mean(reward)),
        "val/teacher_reward": float(np.mean(teacher_reward)),
        "val/exposure_mean": float(np.mean(h)),
        "val/malformed": float(np.mean([p[1] for p in parsed])),
    }


def _write_json(path: Path, obj: Any) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)


def _write_json_lines(path: Path, lines: list[dict[str, Any]]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text("")
    for line in lines:
        _append(tmp, line)
    os.replace(tmp, path)


def _append(path: Path, line: dict[str, Any]) -> None:
    clean = {k: (v if not isinstance(v, float) or math.isfinite(v) else None) for k, v in line.items()}
    with path.open("a") as f:
        f.write(json.dumps(clean) + "\n")


def _init_model(cfg: TrainConfig, tokenizer=None):
    """``(model, tokenizer, source)``: the given model (resolved for the style), or a new DREX model."""
    from experts.expert import resolve_checkpoint
    from experts.lm import load_model, new_model

    if cfg.model is not None:
        folder = resolve_checkpoint(cfg.model, cfg.style)
        model, tok = load_model(folder)
        return model, tok, str(folder)
    if cfg.stage == "rl":
        folder = resolve_checkpoint("default", cfg.style)
        model, tok = load_model(folder)
        return model, tok, str(folder)
    tok = tokenizer if tokenizer is not None else default_tokenizer(cfg.data, end=cfg.end)
    return new_model(tok, seed=cfg.seed, **cfg.arch), tok, "new"


def _save_optimizer(opt, path: Path) -> None:
    from safetensors.torch import save_file

    state = opt.state_dict()
    tensors, scalars = {}, {}
    for pid, st in state["state"].items():
        for name, val in st.items():
            if hasattr(val, "detach"):
                tensors[f"opt.{pid}.{name}"] = val.detach().cpu().contiguous()
            else:
                scalars.setdefault(str(pid), {})[name] = val
    save_file(tensors, str(path / "optimizer.safetensors"))
    groups = [{k: (list(v) if isinstance(v, tuple) else v) for k, v in g.items()} for g in state["param_groups"]]
    _write_json(path / "optimizer.json", {"param_groups": groups, "scalars": scalars})


def _load_optimizer(opt, path: Path) -> None:
    from safetensors.torch import load_file

    tensors = load_file(str(path / "optimizer.safetensors"))
    meta = json.loads((path / "optimizer.json").read_text())
    state: dict[int, dict[str, Any]] = {}
    for key, val in tensors.items():
        _, pid, name = key.split(".", 2)
        state.setdefault(int(pid), {})[name] = val
    for pid, sc in meta["scalars"].items():
        state.setdefault(int(pid), {}).update(sc)
    groups = [{k: (tuple(v) if k == "betas" else v) for k, v in g.items()} for g in meta["param_groups"]]
    opt.load_state_dict({"state": state, "param_groups": groups})


def _prepare_run(run_dir: Path, cfg: TrainConfig, resume: bool) -> bool:
    """Create the run folder; True when resuming from an existing checkpoint."""
    run_dir.mkdir(parents=True, exist_ok=True)
    meta = run_dir / "expert.json"
    latest = run_dir / "checkpoints" / "latest.json"
    if resume and latest.is_file():
        saved = json.loads(meta.read_text())["config"]
        mine = cfg.to_dict()
        diff = [k for k in mine if k not in ("steps", "save_every") and saved.get(k) != mine[k]]
        if diff:
            raise ValueError(f"{run_dir} was trained with a different configuration ({', '.join(diff)}); resume "
                             "with the same options or choose a new --out")
        return True
    _write_json(meta, {"style": cfg.style, "stage": cfg.stage, "config": cfg.to_dict()})
    return False


# ----------------------------------------------------------------------------------------------- SFT
def train_sft(cfg: TrainConfig, run_dir: str | os.PathLike, **kw: Any) -> dict[str, Any]:
    """Supervised fine-tuning of one expert (:func:`_train_sft`), with CPU threads from
    :func:`experts.decoding.auto_threads` (two threads on two busy cores were several times slower than one)."""
    from experts.decoding import auto_threads, cpu_threads

    with cpu_threads(auto_threads()):
        return _train_sft(cfg, run_dir, **kw)


def _train_sft(cfg: TrainConfig, run_dir: str | os.PathLike, *, resume: bool = False, progress: bool = False,
              tokenizer=None, data=None, eval_every: int | None = None, stop_at: int | None = None) -> dict[str, Any]:
    """Supervised fine-tuning of one expert; returns the final summary (also in ``summary.json``).

    ``stop_at``: stop (with a checkpoint) after that many steps of the ``cfg.steps`` schedule; resume later.
    """
    import torch

    from experts.answers import AnswerConstraint
    from experts.data import build_dataset
    from experts.policy import forward_logits
    from experts.prompts import ANSWER_CUE

    run_dir = Path(run_dir)
    resuming = _prepare_run(run_dir, cfg, resume)
    if not resuming:  # the Training monitor shows config.json (RL runs get the trainer's)
        _write_json(run_dir / "config.json", {"loss": "sft (cross-entropy)", **cfg.to_dict()})
    torch.manual_seed(cfg.seed)
    if data is None:
        data = build_dataset(cfg.style, cfg.data, end=cfg.end, horizon=cfg.horizon, fees=cfg.fees,
                             slippage=cfg.slippage, val_fraction=cfg.val_fraction,
                             hindsight_weight=cfg.hindsight_weight, risk_budget=cfg.risk_budget,
                             rl_fraction=cfg.rl_fraction)
    ckroot = run_dir / "checkpoints"
    if resuming:
        from experts.lm import load_model

        ck = ckroot / json.loads((ckroot / "latest.json").read_text())["path"]
        model, tok = load_model(ck / "model")
        source = json.loads((ck / "state.json").read_text())["source"]
    else:
        model, tok, source = _init_model(cfg, tokenizer)
    cons = AnswerConstraint(tok, cue=ANSWER_CUE)
    ans = _answer_ids(cons)
    train_rows = np.flatnonzero(data.split == 0)
    val_rows = _val_rows(data, cfg.val_size)
    prompt_ids = {}
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.learning_rate, weight_decay=0.01)
    step = 0
    metrics = run_dir / "metrics.jsonl"
    if resuming:
        _load_optimizer(opt, ck)
        step = json.loads((ck / "state.json").read_text())["step"]
        kept = [ln for ln in metrics.read_text().splitlines() if ln.strip() and json.loads(ln)["step"] <= step]
        metrics.write_text("".join(ln + "\n" for ln in kept))
    else:
        metrics.write_text("")
    warm = max(1, cfg.steps // 20)
    eval_every = eval_every or max(1, cfg.steps // 5)
    model.train()
    bar = _progress(progress, cfg.steps, step, f"sft {cfg.style}")
    stop = min(stop_at or cfg.steps, cfg.steps)
    while step < stop:
        t0 = time.perf_counter()
        rng = np.random.default_rng([cfg.seed, step])
        idx = rng.choice(train_rows, cfg.batch_size, replace=len(train_rows) < cfg.batch_size)
        seqs, n_ans = [], []
        for i in idx:
            p = data.prompts[i]
            if p not in prompt_ids:
                prompt_ids[p] = tok(p)["input_ids"]
            a = ans[round(float(data.target[i]), 6)] + [cons.eos]
            seqs.append(prompt_ids[p] + a)
            n_ans.append(len(a))
        L, K = max(map(len, seqs)), max(n_ans)
        ids = torch.full((len(seqs), L), tok.pad_token_id, dtype=torch.long)
        mask = torch.zeros((len(seqs), L), dtype=torch.long)
        labels = torch.full((len(seqs), K), -100, dtype=torch.long)
        for r, (s, k) in enumerate(zip(seqs, n_ans)):
            ids[r, L - len(s):] = torch.tensor(s)
            mask[r, L - len(s):] = 1
            labels[r, K - k:] = torch.tensor(s[-k:])
        logits = forward_logits(model, ids, mask, keep=K + 1).logits[:, :-1]  # (B, K, V) predicting the last K
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), labels.reshape(-1))
        lr = cfg.learning_rate * min(1.0, (step + 1) / warm) * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * step / cfg.steps)))
        for g in opt.param_groups:
            g["lr"] = lr
        opt.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = float(torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0))
        opt.step()
        step += 1
        dt = time.perf_counter() - t0
        line: dict[str, Any] = {"step": step, "loss": float(loss.detach()), "lr": lr, "grad_norm": grad_norm,
                                "tokens_per_s": float(mask.sum()) / max(dt, 1e-9), "time/step_s": dt}
        if step % eval_every == 0 or step == cfg.steps:
            line.update(evaluate(model, tok, data, val_rows))
            model.train()
        _append(metrics, line)
        if bar is not None:
            bar.update(bar.task_ids[0], completed=step, description=f"sft {cfg.style} loss {float(loss):.3f}")
        if (cfg.save_every and step % cfg.save_every == 0) or step == stop:
            _checkpoint(ckroot, step, model, tok, opt, source)
    if bar is not None:
        bar.stop()
    if step < cfg.steps:
        return {"style": cfg.style, "stage": cfg.stage, "step": step, "stopped": True}
    return _finish(run_dir, model, tok, data, val_rows, cfg, source)


def _checkpoint(root: Path, step: int, model, tok, opt, source: str) -> Path:
    from experts.lm import save_model

    root.mkdir(parents=True, exist_ok=True)
    path = root / f"step-{step:08d}"
    tmp = root / f".tmp-{step:08d}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    save_model(model, tok, tmp / "model")
    _save_optimizer(opt, tmp)
    _write_json(tmp / "state.json", {"step": step, "source": source})
    shutil.rmtree(path, ignore_errors=True)
    os.replace(tmp, path)
    _write_json(root / "latest.json", {"path": path.name})
    for old in sorted(root.glob("step-*"))[:-2]:
        shutil.rmtree(old, ignore_errors=True)
    return path


def _finish(run_dir: Path, model, tok, data, val_rows, cfg: TrainConfig, source: str, extra=None) -> dict:
    from experts.lm import save_model

    summary = {"style": cfg.style, "stage": cfg.stage, "source": source, "steps": cfg.steps,
               "optimizer": cfg.optimizer if cfg.stage == "rl" else "sft", "val_rows": len(val_rows),
               **evaluate(model, tok, data, val_rows), **(extra or {})}
    save_model(model, tok, run_dir / "model", extra={"drex": "expert", "style": cfg.style, "stage": cfg.stage,
                                                     "config": cfg.to_dict(), "summary": summary})
    _write_json(run_dir / "summary.json", summary)
    return summary


def _progress(enabled: bool, total: int, done: int, label: str):
    if not enabled:
        return None
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    bar.add_task(label, total=total, completed=done)
    bar.start()
    return bar


# ----------------------------------------------------------------------------------------------- RL
def _shaped(scores, n: int, risk: str, alpha: float, lam: float):
    """``cvar`` shaping within each group of n: ``r - lam * (VaR_alpha - r)^+ / alpha`` (rl.risk.var)."""
    import torch

    from rl.risk import var

    if risk != "cvar":
        return scores
    groups = scores.reshape(-1, n)
    v = var(groups, alpha, dim=-1)[:, None]
    return (groups - lam * torch.relu(v - groups) / alpha).reshape(-1)


def train_rl(cfg: TrainConfig, run_dir: str | os.PathLike, **kw: Any) -> dict[str, Any]:
    """GRPO fine-tuning of one expert (:func:`_train_rl`); CPU threads as :func:`train_sft`."""
    from experts.decoding import auto_threads, cpu_threads

    if str(kw.get("device", "cpu")).startswith("cpu"):
        with cpu_threads(auto_threads()):
            return _train_rl(cfg, run_dir, **kw)
    return _train_rl(cfg, run_dir, **kw)


def _train_rl(cfg: TrainConfig, run_dir: str | os.PathLike, *, resume: bool = False, progress: bool = False,
             data=None, device: str = "cpu", stop_at: int | None = None,
             eval_every: int | None = None, rollout_backend: str = "transformers", ray_workers: int = 0,
             ray_address: str | None = None) -> dict[str, Any]:
    """GRPO fine-tuning of one expert from its SFT model; returns the summary (also in ``summary.json``).

    ``stop_at``: stop (with a checkpoint) after that many rollout iterations; resume later. ``eval_every``:
    validate every that many iterations into ``validation.jsonl`` (step 0 = the initial model; the final
    validation is in ``summary.json``). ``rollout_backend``: ``transformers`` (the policy samples) or ``vllm`` (a
    vllm engine samples, the trainer's weights synced into it after every update: :mod:`experts.vllm_rollouts`;
    per-rollout engine figures in ``<run>/rollouts_vllm.jsonl``).
    ``ray_workers``: sample and score the rollouts on that many Ray actors running the transformers backend
    (:mod:`experts.ray_rollouts`; the batch size must be a multiple), synced with the trainer's weights after
    every update; ``ray_address``: the cluster (None: a local Ray).
    """
    if rollout_backend not in ("transformers", "vllm"):
        raise ValueError(f"rollout_backend must be transformers or vllm, got {rollout_backend!r}")
    if ray_workers and rollout_backend != "transformers":
        raise ValueError("--ray-workers runs the transformers backend on Ray actors; use it without "
                         "--rollout-backend vllm")
    if ray_workers and cfg.rollouts == "entropy-guided":
        raise ValueError("--rollouts entropy-guided branches on the trainer's model; use it without --ray-workers")
    if rollout_backend == "vllm":
        if cfg.rollouts == "entropy-guided":
            raise ValueError("--rollouts entropy-guided samples with the trained model; use it without "
                             "--rollout-backend vllm")
        from experts.vllm_backend import import_vllm

        import_vllm()  # fail before the data and the model load when vllm is missing
    if ray_workers:  # the user's arguments first, then the environment
        if cfg.batch_size % ray_workers:
            raise ValueError(f"--batch-size {cfg.batch_size} must be a multiple of --ray-workers {ray_workers} "
                             "(each worker samples an equal shard)")
        from backtest.distributed import import_ray

        import_ray()  # fail before the data and the model load when Ray is missing
    import copy

    import torch

    from experts.answers import AnswerConstraint
    from experts.data import SPLITS, build_dataset
    from experts.policy import LMPolicy, answer_values, encode_prompts
    from experts.prompts import ANSWER_CUE
    from experts.rewards import horizon_rewards
    from rl.risk import riskpo_advantage
    from rl.rollouts import EntropyGuidedSampler
    from rl.trainer import GRPOTrainer, TrainerConfig

    run_dir = Path(run_dir)
    resuming = _prepare_run(run_dir, cfg, resume)
    if data is None:
        data = build_dataset(cfg.style, cfg.data, end=cfg.end, horizon=cfg.horizon, fees=cfg.fees,
                             slippage=cfg.slippage, val_fraction=cfg.val_fraction,
                             hindsight_weight=cfg.hindsight_weight, risk_budget=cfg.risk_budget,
                             rl_fraction=cfg.rl_fraction)
    model, tok, source = _init_model(cfg)
    model.to(device)
    cons = AnswerConstraint(tok, cue=ANSWER_CUE)
    policy = LMPolicy(model, tok, cons, temperature=cfg.temperature)
    ref = None
    if cfg.kl_coef > 0:
        ref_model = copy.deepcopy(model).eval()
        for p in ref_model.parameters():
            p.requires_grad_(False)
        ref = LMPolicy(ref_model, tok, cons, temperature=cfg.temperature)
    train_rows = np.flatnonzero(data.split == (SPLITS["rl"] if cfg.rl_fraction > 0 else SPLITS["sft"]))
    if not len(train_rows):
        raise ValueError("no RL training rows: the data is too short for the split (lower --rl-fraction or "
                         "--val-fraction, or give more data)")
    val_rows = _val_rows(data, cfg.val_size)
    before = evaluate(model, tok, data, val_rows)

    def batch_fn(i: int, gen: torch.Generator) -> dict[str, Any]:
        pick = torch.randint(len(train_rows), (cfg.batch_size,), generator=gen, device=gen.device).cpu().numpy()
        rows = train_rows[pick]
        enc = encode_prompts(tok, list(data.prompts[rows]), device)
        return {**enc, "rows": rows}

    def reward_fn(batch: dict[str, Any], ro) -> torch.Tensor:
        rows = batch["rows"][ro.extras["item"].cpu().numpy()]
        h = answer_values(cons, ro.tokens.cpu()).numpy()
        r = horizon_rewards(data.exec_price, data.mark_price, data.t[rows], h, data.horizon, fees=data.fees,
                            slippage=data.slippage, start_exposure=data.start[rows], execution=data.execution)
        scores = torch.as_tensor(r, dtype=torch.float32, device=ro.tokens.device)
        return _shaped(scores, ro.group_size, cfg.risk, cfg.risk_alpha, cfg.risk_lambda)

    adv = None
    if cfg.risk == "riskpo":
        def adv(scores, n):
            qid = torch.arange(scores.numel(), device=scores.device) // n
            return riskpo_advantage(scores, qid, alpha=cfg.risk_alpha)

    tcfg = TrainerConfig(steps=cfg.steps, batch_size=cfg.batch_size, group_size=cfg.group_size,
                         ppo_epochs=cfg.ppo_epochs, num_minibatches=cfg.num_minibatches,
                         loss=cfg.optimizer, lr=cfg.learning_rate, kl_coef=cfg.kl_coef, seed=cfg.seed,
                         save_every=cfg.save_every, progress=progress, device=device, weight_decay=0.0)
    if rollout_backend == "vllm":
        from experts.vllm_rollouts import vllm_sampler

        sampler = vllm_sampler(policy, source, device=device, rows=cfg.batch_size * cfg.group_size,
                               log_path=run_dir / "rollouts_vllm.jsonl", fresh=not resuming)
    else:
        sampler = EntropyGuidedSampler(policy) if cfg.rollouts == "entropy-guided" else None
    if ray_workers:  # rollouts sampled and scored on Ray workers; only the risk shaping stays here
        from experts.ray_rollouts import HorizonReward, RayExpertSampler

        sampler = RayExpertSampler(source, num_workers=ray_workers, reward=HorizonReward.from_data(data),
                                   temperature=cfg.temperature, address=ray_address, device=device)

        def reward_fn(batch: dict[str, Any], ro) -> torch.Tensor:  # replaces the local one: workers scored
            scores = ro.extras["reward"].to(ro.tokens.device)
            return _shaped(scores, ro.group_size, cfg.risk, cfg.risk_alpha, cfg.risk_lambda)

    trainer = GRPOTrainer(policy, reward_fn, batch_fn, tcfg, run_dir=run_dir, ref_policy=ref, advantage_fn=adv,
                          sampler=sampler, resume=resuming)
    target = min(stop_at or cfg.steps, cfg.steps)
    val_log = run_dir / "validation.jsonl"
    if not resuming:
        _write_json_lines(val_log, [{"step": 0, **before}])
    try:
        while trainer.rollout_step < target:  # validation every eval_every rollout iterations
            nxt = target if not eval_every else min(target, (trainer.rollout_step // eval_every + 1) * eval_every)
            trainer.train(steps=nxt)
            if eval_every and trainer.rollout_step % eval_every == 0 and trainer.rollout_step < cfg.steps:
                _append(val_log, {"step": trainer.rollout_step, **evaluate(model, tok, data, val_rows)})
    finally:
        if hasattr(sampler, "close"):
            sampler.close()
    if trainer.rollout_step < cfg.steps:
        return {"style": cfg.style, "stage": cfg.stage, "step": trainer.rollout_step, "stopped": True}
    extra = {f"before/{k}": v for k, v in before.items()}
    extra["rollout_backend"] = rollout_backend
    return _finish(run_dir, model, tok, data, val_rows, cfg, source, extra)
