"""Training the router: the SFT-RL hybrid of MM-DREX (``drex train router``).

* **Stage 1, supervised** (``stage="sft"``): minibatches of bars from every training series; loss =
  ``route_weight * CE(q, softmax(logits)) + regime_weight * CE(regime, regime_logits)`` where ``q`` are the
  soft "which expert did best over the next H bars after costs" targets and the regime labels are exact on
  ``synth:regimes`` and hindsight-derived on real data (:mod:`router.data`). AdamW.
* **Stage 2, RL** (``stage="rl"``): the router as a categorical policy over the experts
  (:mod:`router.policy`) trained by ``rl.trainer.GRPOTrainer`` with any registered loss (``vanilla``,
  ``clip_cov``, ``kl_cov``, ...); reward = the net return over the next H bars of the chosen expert's exposure
  from the position the starting router held the bar before (``backtest.accounting.horizon_rewards``, the
  backtester's fills); ``risk="riskpo"`` shapes the advantages with ``rl.risk`` (RiskPO's mixed VaR);
  ``entropy_coef`` and the covariance losses keep the policy from collapsing onto one expert.

Data: ``data`` specs; ``end`` clips the real ones (later data stays unseen); every series is split in time,
the last ``val_frac`` validating, purged by H (``router.data.time_split``). A run folder holds
``train.json`` (this config), ``metrics.jsonl`` (one line per step; the dashboard's Training monitor reads
it), ``val.jsonl`` (validation every ``eval_every`` steps), ``checkpoints/`` (resumable), ``model/`` (the
router, loadable with ``drex backtest ... -s drex -p checkpoint=RUN``) and ``summary.json``.
"""
from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["DEFAULT_DATA", "TrainConfig", "evaluate", "load_pool", "train_rl", "train_sft"]

DEFAULT_DATA: tuple[str, ...] = (
    *(f"synth:regimes?seed={s}&n=2520" for s in range(1, 33)),
    "sample:SP500", "sample:NASDAQ", "sample:MSFT",
)
"""Default training data: 32 synthetic regime series (seeds 1-32; seeds 101+ stay unseen for the evidence) and
three bundled real series (up to ``end``)."""


@dataclass(frozen=True)
class TrainConfig:
    """Every knob of ``drex train router`` (saved as ``train.json``)."""

    stage: str = "sft"
    """sft | rl"""
    data: tuple[str, ...] = DEFAULT_DATA
    experts: str = "rules"
    """expert set (router.experts.parse_experts): rules | llm | a comma-separated list"""
    end: str | None = "2014-12-31"
    """last date of the real (non-synthetic) data; later bars stay unseen"""
    horizon: int = 20
    """H: reward and soft-target horizon in bars"""
    label_horizon: int = 20
    """hindsight regime-label horizon on real data"""
    fees: float = 0.001
    slippage: float = 0.0
    route_loss: str = "mse"
    """sft routing loss: mse (regress each expert's normalized H-bar reward; weights = softmax(scores /
    route_tau)) or ce (cross-entropy with the soft targets softmax(z / tau))"""
    tau: float = 0.5
    """ce soft-target temperature in units of sigma_t sqrt(H)"""
    val_frac: float = 0.2
    steps: int = 1500
    """SFT optimizer steps / RL rollout iterations"""
    batch_size: int = 128
    """SFT examples / RL bars per step"""
    lr: float | None = None
    """default 1e-3 (sft) / 5e-5 (rl)"""
    weight_decay: float = 0.05
    route_weight: float = 1.0
    regime_weight: float = 1.0
    loss: str = "vanilla"
    """RL: a key of rl.losses.POLICY_LOSSES"""
    loss_cfg: dict[str, Any] = field(default_factory=dict)
    group_size: int = 8
    """RL: experts sampled per bar (the GRPO group)"""
    ppo_epochs: int = 2
    entropy_coef: float = 0.0
    kl_coef: float = 0.0
    risk: str = "none"
    """RL reward shaping: none | riskpo"""
    model: str | None = None
    """initial router: a run folder or router folder (rl default: the shipped router)"""
    arch: dict[str, Any] = field(default_factory=dict)
    """RouterConfig overrides for a new model (d_model, heads, ..., backbone, backbone_tune)"""
    seed: int = 0
    device: str = "cpu"
    """torch device of the network (cpu, cuda); data stays on the CPU"""
    eval_every: int = 250
    save_every: int = 250
    ema: float = 0.995
    """SFT: evaluate and keep an exponential moving average of the weights with this decay (0: off); the
    routing scores of near-tied experts otherwise flip with the SGD noise of the last steps"""
    keep_best: str | None = "sharpe/router"
    """validation metric (higher is better) whose best evaluation is kept as model/; None keeps the last"""

    def __post_init__(self) -> None:
        if self.stage not in ("sft", "rl"):
            raise ValueError(f"stage must be sft or rl, got {self.stage!r}")
        if self.route_loss not in ("mse", "ce"):
            raise ValueError(f"route_loss must be mse or ce, got {self.route_loss!r}")
        if self.risk not in ("none", "riskpo"):
            raise ValueError(f"risk must be none or riskpo, got {self.risk!r}")
        for name in ("horizon", "label_horizon", "steps", "batch_size", "group_size", "ppo_epochs"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not self.data:
            raise ValueError("data must name at least one spec (e.g. synth:regimes?seed=1&n=2520)")

    @property
    def learning_rate(self) -> float:
        return self.lr if self.lr is not None else (1e-3 if self.stage == "sft" else 5e-5)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["data"] = list(self.data)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        kw = {k: v for k, v in d.items() if k in known}
        if "data" in kw:
            kw["data"] = tuple(kw["data"])
        return cls(**kw)


# ------------------------------------------------------------------------------------------------ data
def load_pool(cfg: TrainConfig, net_config):
    """``(pool, train_rows, val_rows)`` over ``cfg.data`` for a network of ``net_config``."""
    from router.data import build_series, time_split
    from router.experts import parse_experts
    from router.features import TemporalSpec
    from router.pool import Pool

    specs = parse_experts(list(net_config.experts))
    temporal = TemporalSpec(net_config.chunks, net_config.chunk, net_config.baseline)
    series = []
    for spec in cfg.data:
        end = None if spec.startswith("synth:") else cfg.end
        series += build_series(spec, specs, regimes=net_config.regimes, horizon=cfg.horizon,
                               label_horizon=cfg.label_horizon, fees=cfg.fees, slippage=cfg.slippage, end=end,
                               temporal=temporal)
    pool = Pool(series, window=net_config.window, height=net_config.height, volume_rows=net_config.volume_rows)
    train, val = [], []
    for i, s in enumerate(series):
        tr, va = time_split(s.n_bars, cfg.horizon, cfg.val_frac)
        ok = s.trainable(cfg.horizon)
        train.append(pool.rows_of(i, tr[ok[tr]]))
        val.append(pool.rows_of(i, va[ok[va]]))
    return pool, np.concatenate(train), np.concatenate(val)


def _new_net(cfg: TrainConfig, pool_builder=None):
    from router.experts import parse_experts
    from router.model import RouterConfig, RouterNet, init_weights

    texts = tuple(s.text for s in parse_experts(cfg.experts))
    net_cfg = RouterConfig(experts=texts, **{k: (tuple(v) if isinstance(v, list) else v)
                                             for k, v in cfg.arch.items()})
    net = RouterNet(net_cfg)
    init_weights(net, cfg.seed)
    return net


def _initial_net(cfg: TrainConfig):
    from router.strategy import resolve_router

    if cfg.model is None and cfg.stage == "sft":
        return _new_net(cfg)
    from router.model import load_router

    return load_router(resolve_router(cfg.model or "default"))


# ------------------------------------------------------------------------------------------ evaluation
def evaluate(net, pool, rows: np.ndarray, cfg: TrainConfig, *, batch: int = 256) -> dict[str, Any]:
    """Validation metrics of ``net`` on pool ``rows`` (per-series contiguous blocks).

    regime/acc (all labelled rows), regime/acc_synth (exact labels), route/match_synth (largest weight on the
    regime's expert, ``router.experts.REGIME_EXPERT``), route/entropy (mean entropy of the weights),
    sharpe/router and sharpe/equal (mean over series of the backtested validation Sharpe, net of costs).
    """
    from router.experts import REGIME_EXPERT, label, parse_experts
    from router.model import route

    charts, chunks, now = pool.inputs(rows)
    device = next(net.parameters()).device
    w, p = route(net, charts, chunks, now, batch=batch, device=device)
    out: dict[str, Any] = {}
    reg = pool.regime[rows]
    synth = np.array([pool.series[i].synthetic for i in pool.series_id[rows]])
    pred = p.argmax(1)
    lab = reg >= 0
    out["regime/acc"] = float((pred[lab] == reg[lab]).mean()) if lab.any() else None
    ls = lab & synth
    out["regime/acc_synth"] = float((pred[ls] == reg[ls]).mean()) if ls.any() else None
    labels = [label(s) for s in parse_experts(list(net.config.experts))]
    want = np.array([labels.index(REGIME_EXPERT[r]) if REGIME_EXPERT.get(r) in labels else -1
                     for r in net.config.regimes])
    if ls.any() and (want >= 0).all():
        out["route/match_synth"] = float((w[ls].argmax(1) == want[reg[ls]]).mean())
    out["route/entropy"] = float(-(w * np.log(np.maximum(w, 1e-12))).sum(1).mean())
    out["route/weights_mean"] = {lb: float(v) for lb, v in zip(labels, w.mean(0))}
    sharpe_r, sharpe_e = [], []
    for i in np.unique(pool.series_id[rows]):
        sel = pool.series_id[rows] == i
        sharpe_r.append(_slice_sharpe(pool, i, pool.t[rows[sel]], (w[sel] * pool.h[rows[sel]]).sum(1), cfg))
        sharpe_e.append(_slice_sharpe(pool, i, pool.t[rows[sel]], pool.h[rows[sel]].mean(1), cfg))
    out["sharpe/router"] = float(np.nanmean(sharpe_r))
    out["sharpe/equal"] = float(np.nanmean(sharpe_e))
    out["sharpe/router_by_series"] = {pool.series[i].name: s for i, s in
                                      zip(np.unique(pool.series_id[rows]), sharpe_r)}
    return out


def _slice_sharpe(pool, i: int, t: np.ndarray, position: np.ndarray, cfg: TrainConfig) -> float:
    """Sharpe of backtesting ``position`` on series ``i``'s bars ``t`` (consecutive) with the config's costs."""
    import pandas as pd

    from backtest.engine import run

    s = pool.series[i]
    bars = pd.DataFrame(s.ohlcv[t], index=s.index[t], columns=["open", "high", "low", "close", "volume"])
    res = run(bars, pd.Series(position, index=bars.index), fees=cfg.fees, slippage=cfg.slippage)
    return float(res.metrics["sharpe"])


# ------------------------------------------------------------------------------------------------- SFT
def _soft_ce(logits, target):
    """Cross-entropy of soft ``target (B, K)`` against ``softmax(logits (B, K))``."""
    import torch

    return -(target * torch.log_softmax(logits, -1)).sum(-1).mean()


def train_sft(cfg: TrainConfig, run_dir: str | Path, *, resume: bool = False, progress: bool = True,
              pool_data=None) -> dict[str, Any]:
    """Stage 1 (module docstring). Returns the summary (also written to ``summary.json``)."""
    import torch

    from rl import checkpoint as ckpt
    from router.data import normalized_rewards, soft_targets
    from router.model import save_router

    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(cfg.seed)
    net = _initial_net(cfg)
    pool, train_rows, val_rows = pool_data or load_pool(cfg, net.config)
    if cfg.model is None and not resume:
        net.set_normalization(pool.chunks[train_rows], pool.now[train_rows])
    net.to(cfg.device)
    named = [(n, p) for n, p in net.named_parameters() if p.requires_grad]
    opt = torch.optim.AdamW([p for _, p in named], lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
    rng = np.random.default_rng(cfg.seed)
    step = 0
    root = run_dir / "checkpoints"
    ema = _ema(net, cfg.ema)
    if resume and ckpt.latest_checkpoint(root) is not None:
        step, rng = _load_sft(net, opt, named, root, cfg, ema)
    else:
        _fresh(run_dir, cfg, metrics=True)
    z = normalized_rewards(pool.rewards[train_rows], pool.sigma[train_rows], cfg.horizon)  # (n, K)
    targets = soft_targets(z, cfg.tau) if cfg.route_loss == "ce" else z
    bar = _progress(progress, cfg.steps, step, "sft")
    net.train()
    while step < cfg.steps:
        t0 = time.perf_counter()
        pick = rng.integers(0, len(train_rows), cfg.batch_size)
        rows = train_rows[pick]
        charts, chunks, now = pool.tensors(rows, cfg.device)
        out = net(charts, chunks, now)
        reg = torch.as_tensor(pool.regime[rows]).to(cfg.device)
        target = torch.as_tensor(targets[pick], dtype=torch.float32).to(cfg.device)
        l_route = (_soft_ce(out.logits, target) if cfg.route_loss == "ce"
                   else torch.nn.functional.mse_loss(out.scores, target))
        lab = reg >= 0
        l_reg = (torch.nn.functional.cross_entropy(out.regime_logits[lab], reg[lab]) if lab.any()
                 else out.regime_logits.sum() * 0)
        loss = cfg.route_weight * l_route + cfg.regime_weight * l_reg
        opt.zero_grad(set_to_none=True)
        loss.backward()
        gn = float(torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0))
        opt.step()
        if ema is not None:
            ema.update_parameters(net)
        step += 1
        with torch.no_grad():
            w = out.logits.softmax(-1)
            acc = (out.regime_logits[lab].argmax(-1) == reg[lab]).float().mean() if lab.any() else torch.nan
            line = {"step": step, "loss": float(loss), "loss/route": float(l_route), "loss/regime": float(l_reg),
                    "regime/acc_batch": float(acc), "entropy": float(-(w * w.clamp_min(1e-12).log()).sum(-1).mean()),
                    "grad_norm": gn, "lr": cfg.learning_rate, "time/step_s": time.perf_counter() - t0}
        ckpt.append_line(run_dir / "metrics.jsonl", json.dumps(line))
        if bar is not None:
            bar.update(bar.task_ids[0], completed=step, description=f"sft loss {line['loss']:.3f}")
        judged = ema.module if ema is not None else net  # what is evaluated and kept
        if step % cfg.eval_every == 0 or step == cfg.steps:
            _log_val(judged, pool, val_rows, cfg, run_dir, step)
        if (cfg.save_every and step % cfg.save_every == 0) or step == cfg.steps:
            _save_sft(net, opt, named, root, step, rng, ema)
    if bar is not None:
        bar.stop()
    return _finish(ema.module if ema is not None else net, pool, val_rows, cfg, run_dir, save_router)


def _ema(net, decay: float):
    """An exponential moving average of ``net``'s parameters (``torch.optim.swa_utils.AveragedModel``), or
    None for ``decay == 0``. Buffers (the input normalization) are copied, not averaged."""
    if not decay:
        return None
    from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

    return AveragedModel(net, multi_avg_fn=get_ema_multi_avg_fn(decay))


def _fresh(run_dir: Path, cfg: TrainConfig, *, metrics: bool) -> None:
    """Start a run folder: empty logs, this config, no best model of an earlier run."""
    import shutil

    from rl import checkpoint as ckpt

    if metrics:
        ckpt.atomic_write_text(run_dir / "metrics.jsonl", "")
    ckpt.atomic_write_text(run_dir / "val.jsonl", "")
    ckpt.atomic_write_text(run_dir / "train.json", json.dumps(cfg.to_dict(), indent=2) + "\n")
    (run_dir / "best.json").unlink(missing_ok=True)
    shutil.rmtree(run_dir / "best", ignore_errors=True)


def _save_sft(net, opt, named, root: Path, step: int, rng, ema=None) -> None:
    import torch

    from rl import checkpoint as ckpt

    names = [n for n, _ in named]
    tensors = {f"param.{n}": p.detach().cpu().contiguous() for n, p in named}
    tensors.update({f"buffer.{n}": b.detach().cpu().contiguous() for n, b in net.named_buffers()})
    tensors["rng.global"] = torch.get_rng_state()  # dropout draws from it
    if ema is not None:
        tensors.update({f"ema.{k}": v.detach().cpu().contiguous() for k, v in ema.state_dict().items()})
    opt_t, scalars, groups = ckpt.pack_optimizer(opt, names)
    tensors.update(opt_t)
    state = {"format": ckpt.FORMAT, "param_names": names, "step": step, "optimizer_param_groups": groups,
             "optimizer_scalars": scalars, "rng": rng.bit_generator.state}
    ckpt.write_checkpoint(root, f"step-{step:08d}", tensors, _jsonable_state(state))


def _jsonable_state(state: dict) -> dict:
    return json.loads(json.dumps(state, default=int))


def _load_sft(net, opt, named, root: Path, cfg: TrainConfig, ema=None):
    import torch

    from rl import checkpoint as ckpt

    path = ckpt.latest_checkpoint(root)
    tensors, state = ckpt.read_checkpoint(path)
    names = [n for n, _ in named]
    ckpt.check_param_names(path, state["param_names"], names)
    with torch.no_grad():
        for n, p in named:
            p.copy_(tensors[f"param.{n}"])
        for n, b in net.named_buffers():
            b.copy_(tensors[f"buffer.{n}"])
    ckpt.unpack_optimizer(opt, tensors, state, names)
    torch.set_rng_state(tensors["rng.global"])
    if ema is not None:
        ema.load_state_dict({k[4:]: v for k, v in tensors.items() if k.startswith("ema.")})
    rng = np.random.default_rng(cfg.seed)
    rng.bit_generator.state = state["rng"]
    for log in ("metrics.jsonl", "val.jsonl"):
        ckpt.truncate_metrics(root.parent / log, state["step"])
    return int(state["step"]), rng


def _log_val(net, pool, val_rows, cfg, run_dir: Path, step: int) -> dict[str, Any]:
    """Evaluate, append to val.jsonl, and (``keep_best``) save the router as ``best/`` when it improved."""
    from rl import checkpoint as ckpt
    from router.model import save_router

    metrics = {"step": step, **evaluate(net, pool, val_rows, cfg)}
    ckpt.append_line(run_dir / "val.jsonl", json.dumps(metrics))
    if cfg.keep_best:
        best_file = run_dir / "best.json"
        best = json.loads(best_file.read_text()) if best_file.exists() else None
        value = metrics.get(cfg.keep_best)
        if value is not None and (best is None or value > best["value"]):
            save_router(net, run_dir / "best", extra=_extra(cfg, metrics))
            ckpt.atomic_write_text(best_file, json.dumps({"metric": cfg.keep_best, "value": value, "step": step}))
    return metrics


def _extra(cfg: TrainConfig, val: dict[str, Any]) -> dict[str, Any]:
    return {"training": {"stage": cfg.stage, "horizon": cfg.horizon, "data": list(cfg.data), "end": cfg.end,
                         "experts": cfg.experts, "val": val}}


def _finish(net, pool, val_rows, cfg: TrainConfig, run_dir: Path, save_router) -> dict[str, Any]:
    """model/ = the best evaluation (``keep_best``) or the last weights; summary.json."""
    import shutil

    from rl import checkpoint as ckpt

    lines = [json.loads(x) for x in (run_dir / "val.jsonl").read_text().splitlines() if x.strip()]
    summary = {"stage": cfg.stage, "train": cfg.to_dict(), "last": lines[-1], "n_val_rows": len(val_rows),
               "series": [s.name for s in pool.series]}
    best_file = run_dir / "best.json"
    if cfg.keep_best and best_file.exists():
        best = json.loads(best_file.read_text())
        summary["best"] = best
        summary["val"] = next(v for v in lines if v["step"] == best["step"])
        tmp = run_dir / ".model.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.copytree(run_dir / "best", tmp)
        shutil.rmtree(run_dir / "model", ignore_errors=True)
        tmp.rename(run_dir / "model")
    else:
        summary["val"] = lines[-1]
        save_router(net, run_dir / "model", extra=_extra(cfg, lines[-1]))
    ckpt.atomic_write_text(run_dir / "summary.json", json.dumps(summary, indent=2) + "\n")
    return summary


def _progress(enabled: bool, total: int, done: int, label: str):
    if not enabled:
        return None
    from rich.progress import Progress

    bar = Progress()
    bar.add_task(label, total=total, completed=done)
    bar.start()
    return bar


# -------------------------------------------------------------------------------------------------- RL
class ExpertRewards:
    """Rewards of choosing each expert at pool rows, computed on first use and cached: holding the expert's
    exposure for H bars (``horizon_rewards``) from the combined position the STARTING router (a frozen copy)
    held at t-1. ``(rows (B,)) -> (B, K)``."""

    def __init__(self, start_net, pool, cfg: TrainConfig) -> None:
        self.net, self.pool, self.cfg = start_net, pool, cfg
        self.cache: dict[int, np.ndarray] = {}

    def __call__(self, rows: np.ndarray) -> np.ndarray:
        from backtest.accounting import horizon_rewards
        from router.model import route

        rows = np.asarray(rows, dtype=np.int64)
        todo = np.unique(rows[[int(r) not in self.cache for r in rows]])
        if len(todo):
            pool, cfg = self.pool, self.cfg
            prev = todo - 1  # trainable rows have t >= 60: the previous bar is in the same series
            w, _ = route(self.net, *pool.inputs(prev), batch=64, device=next(self.net.parameters()).device)
            start = (w * pool.h[prev]).sum(1)  # (n,)
            out = np.zeros((len(todo), pool.h.shape[1]))
            for i in np.unique(pool.series_id[todo]):
                sel = pool.series_id[todo] == i
                s, t = pool.series[i], pool.t[todo[sel]]
                for k in range(pool.h.shape[1]):
                    out[sel, k] = horizon_rewards(s.ohlcv[:, 0], s.ohlcv[:, 3], t, s.h[t, k], cfg.horizon,
                                                  fees=cfg.fees, slippage=cfg.slippage, start_exposure=start[sel])
            self.cache.update({int(r): v for r, v in zip(todo, out)})
        return np.stack([self.cache[int(r)] for r in rows])


def train_rl(cfg: TrainConfig, run_dir: str | Path, *, resume: bool = False, progress: bool = True,
             pool_data=None) -> dict[str, Any]:
    """Stage 2 (module docstring). Returns the summary (also written to ``summary.json``)."""
    import copy

    import torch

    from rl.trainer import GRPOTrainer, TrainerConfig
    from router.model import save_router
    from router.policy import RouterPolicy, reward_fn

    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    net = _initial_net(cfg)
    pool, train_rows, val_rows = pool_data or load_pool(cfg, net.config)
    net.to(cfg.device)
    rewards = ExpertRewards(copy.deepcopy(net).eval(), pool, cfg)
    if not resume:
        _fresh(run_dir, cfg, metrics=False)  # the trainer starts metrics.jsonl
    net.eval()  # no dropout in RL: sampling and re-scoring must see the same policy
    policy = RouterPolicy(net, pool, device=cfg.device)
    ref = (RouterPolicy(copy.deepcopy(net).requires_grad_(False), pool, device=cfg.device) if cfg.kl_coef > 0
           else None)
    rows_t = torch.as_tensor(train_rows)

    def batch_fn(i: int, gen: torch.Generator) -> torch.Tensor:
        return rows_t[torch.randint(len(rows_t), (cfg.batch_size,), generator=gen, device=gen.device).cpu()]

    tcfg = TrainerConfig(steps=cfg.steps, batch_size=cfg.batch_size, group_size=cfg.group_size,
                         ppo_epochs=cfg.ppo_epochs, loss=cfg.loss, loss_cfg=_loss_cfg(cfg),
                         advantage="riskpo" if cfg.risk == "riskpo" else "grpo", lr=cfg.learning_rate,
                         weight_decay=cfg.weight_decay, entropy_coef=cfg.entropy_coef, kl_coef=cfg.kl_coef,
                         seed=cfg.seed, save_every=cfg.save_every, progress=progress, device=cfg.device)
    trainer = GRPOTrainer(policy, reward_fn(rewards), batch_fn, tcfg, run_dir=run_dir, ref_policy=ref,
                          resume=resume)
    if trainer.rollout_step == 0:
        _log_val(net, pool, val_rows, cfg, run_dir, 0)
    while trainer.rollout_step < cfg.steps:
        target = min(cfg.steps, (trainer.rollout_step // cfg.eval_every + 1) * cfg.eval_every)
        trainer.train(target)
        _log_val(net, pool, val_rows, cfg, run_dir, trainer.rollout_step)
    return _finish(net, pool, val_rows, cfg, run_dir, save_router)


_ACTION_LEVEL_DEFAULTS = {"clip_cov": {"clip_cov_ratio": 0.02, "clip_cov_lb": 0.1},
                          "kl_cov": {"kl_cov_ratio": 0.02}}
"""Covariance-loss settings for one-token rollouts: verl's ratios (2e-4 / 2e-3) are meant for ~10^5 tokens per
batch and its covariance window (1, 5) for token log-probs over a vocabulary; with B*n ~ 10^3 action tokens over
K = 4 experts (covariances ~0.1) they would never touch a token, so the router uses 2% of the tokens and a lower
bound of 0.1 (docs/router.md)."""


def _loss_cfg(cfg: TrainConfig) -> dict[str, Any]:
    return {**_ACTION_LEVEL_DEFAULTS.get(cfg.loss, {}), **cfg.loss_cfg}
