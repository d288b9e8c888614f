"""Training the deep-Q pairs agent: pair selection, SB3 DQN / CVaR QR-DQN on the batched pairs environment,
checkpoints, and the test-window evaluation against the z-score rule.

``train(DQNConfig(spec=...), out)``:

1. loads the bars and cuts them: the first ``train_frac`` of the bars are the training window (pair
   selection, episodes), the rest the test window (never read by training: the environment cuts the bars
   there, ``backtest.envs``);
2. picks the pair by Engle-Granger on the training window (``experts.pairs.select_pair``; ``pairs="Y,X"``
   fixes it);
3. trains SB3's ``DQN`` (``algo="dqn"``) or ``experts.cvar_qrdqn.CVaRQRDQN`` (``algo="qrdqn-cvar"``: QR-DQN
   acting on ``CVaR_alpha`` with the stock-augmented state) on ``BatchedPairsEnv`` with ``n_envs`` episodes
   stepped together (``experts.sb3_env.BatchedVecEnv``). SB3 counts ``train_freq`` in vector steps, so each
   vector step (``n_envs`` env steps) runs ``gradient_steps = max(1, round(n_envs * replay_ratio /
   batch_size))`` updates: ``replay_ratio`` replayed samples per env step whatever ``n_envs`` is (SB3's
   defaults, batch 32 every 4 steps, are 8). ``target_update`` is in env steps (SB3 divides it by n_envs);
4. writes ``metrics.jsonl`` (one line per ``log_every`` env steps: ``reward/mean`` = mean episode return of
   the last 100 episodes, ``train/loss``, ``exploration_rate``, ``steps_per_s``, ...), checkpoints every
   ``save_every`` env steps under ``checkpoints/step_N/`` and the final model under ``model/`` (``export``:
   ``config.json`` + ``policy.safetensors`` for the decision-maker, ``sb3.zip`` to resume, all hashed and
   signed in ``manifest.json``);
5. evaluates on the test window through the backtester (``evaluate``): the agent, ``pairs_zscore`` with the
   same hedge window, and a seeded random policy, net of ``fees``: ``evaluation.json``.

Heavy imports (torch, SB3, statsmodels, gymnasium) happen inside the functions.
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from experts.dqn_pairs import ALGOS, KIND, MODEL_FILES

__all__ = ["DQNConfig", "evaluate", "export", "load_sb3", "train"]

SB3_FILE = "sb3.zip"


@dataclass(frozen=True)
class DQNConfig:
    """Every option of ``drex train dqn`` (defaults fit the 1-minute ``synth:pairs`` data).

    spec: data spec. pairs: ``"auto"`` (Engle-Granger on the training window) or ``"Y,X"``. algo: ``"dqn"`` |
    ``"qrdqn-cvar"``. alpha: CVaR level of the risk-sensitive agent. steps: env steps (transitions).
    train_frac: the training window's share of the bars (the rest is the test window). n_envs: episodes per
    vector step. seed: seeds SB3, the environment and the random baseline. fees, slippage: costs (fractions)
    in the environment and the evaluation. hedge_window, lookback, exposure, stop_loss, max_hold,
    episode_bars: ``PairsTradingEnv`` options. reward_scale: rewards are net returns times this (1000: in
    tenths of a percent). gamma: discount. lr, batch_size, buffer_size, learning_starts, replay_ratio,
    target_update, exploration_fraction, exploration_final_eps, net_arch: DQN hyperparameters (SB3 names).
    n_quantiles, stock_range: QR-DQN quantiles and the thresholds b the CVaR agent is trained on (its stock
    starts at -b, b uniform in the range, in reward units). log_every, save_every: env steps between metric
    lines / checkpoints (0: no checkpoints). threads: torch CPU threads (1 is fastest for these small
    networks).
    """

    spec: str
    pairs: str = "auto"
    algo: str = "dqn"
    alpha: float = 0.1
    steps: int = 200_000
    train_frac: float = 0.7
    n_envs: int = 32
    seed: int = 0
    fees: float = 0.001
    slippage: float = 0.0
    hedge_window: int = 120
    lookback: int = 8
    exposure: float = 1.0
    stop_loss: float = 0.02
    max_hold: int = 240
    episode_bars: int = 256
    reward_scale: float = 1000.0
    gamma: float = 0.99
    lr: float = 5e-4
    batch_size: int = 256
    buffer_size: int = 200_000
    learning_starts: int = 5_000
    replay_ratio: float = 8.0
    target_update: int = 5_000
    exploration_fraction: float = 0.3
    exploration_final_eps: float = 0.02
    net_arch: tuple[int, ...] = (64, 64)
    n_quantiles: int = 32
    stock_range: tuple[float, float] = (-3.0, 3.0)
    log_every: int = 5_000
    save_every: int = 0
    threads: int = 1

    def __post_init__(self) -> None:
        if self.algo not in ALGOS:
            raise ValueError(f"algo must be one of {', '.join(ALGOS)}, got {self.algo!r}")
        if not 0.0 < self.alpha <= 1.0:
            raise ValueError(f"alpha must be in (0, 1] (CVaR level, e.g. 0.1), got {self.alpha}")
        if not 0.1 <= self.train_frac < 1.0:
            raise ValueError(f"train_frac must be in [0.1, 1) (the rest is the test window), got {self.train_frac}")
        for name in ("steps", "n_envs", "batch_size", "buffer_size", "n_quantiles", "log_every"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not 0.0 < self.gamma <= 1.0:
            raise ValueError(f"gamma must be in (0, 1], got {self.gamma}")

    @property
    def gradient_steps(self) -> int:
        return max(1, round(self.n_envs * self.replay_ratio / self.batch_size))

    def env_options(self) -> dict[str, Any]:
        """The environment's options (the model's ``config.json`` keeps them for the replay)."""
        return {"hedge_window": self.hedge_window, "lookback": self.lookback, "exposure": self.exposure,
                "stop_loss": self.stop_loss, "max_hold": self.max_hold, "fees": self.fees,
                "slippage": self.slippage, "reward": "simple", "reward_scale": self.reward_scale,
                "stock": self.algo == "qrdqn-cvar", "stock_gamma": self.gamma,
                "stock_range": list(self.stock_range)}


def _atomic_json(path: Path, obj: Any) -> None:
    from backtest.atomic import write_text_atomic
    from backtest.jsonable import jsonable

    write_text_atomic(path, json.dumps(jsonable(obj), indent=2) + "\n")


def prepare(cfg: DQNConfig) -> tuple[Any, tuple[str, str], int, dict[str, Any]]:
    """(bars, (y, x), hi, selection info): the data, the pair and the end of the training window."""
    import markets
    from backtest.envs.features import pair_names
    from experts.pairs import select_pair

    bars = markets.load(cfg.spec)
    hi = int(len(bars) * cfg.train_frac)
    if cfg.pairs == "auto":
        choice = select_pair(bars, formation=(0, hi))
        pair, info = (choice.y, choice.x), choice._asdict()
    else:
        pair, info = pair_names(bars, cfg.pairs), {"y": None, "x": None, "selected": "given"}
    return bars, pair, hi, info


def _model(cfg: DQNConfig, venv: Any) -> Any:
    """A new SB3 model for ``cfg`` on ``venv``."""
    common = {"learning_rate": cfg.lr, "buffer_size": cfg.buffer_size, "learning_starts": cfg.learning_starts,
              "batch_size": cfg.batch_size, "gamma": cfg.gamma, "train_freq": (1, "step"),
              "gradient_steps": cfg.gradient_steps, "target_update_interval": cfg.target_update,
              "exploration_fraction": cfg.exploration_fraction, "exploration_final_eps": cfg.exploration_final_eps,
              "seed": cfg.seed, "verbose": 0, "device": "cpu"}
    if cfg.algo == "dqn":
        from stable_baselines3 import DQN

        return DQN("MlpPolicy", venv, policy_kwargs={"net_arch": list(cfg.net_arch)}, **common)
    from experts.cvar_qrdqn import CVaRQRDQN

    kw = {"net_arch": list(cfg.net_arch), "n_quantiles": cfg.n_quantiles}
    return CVaRQRDQN("MlpPolicy", venv, policy_kwargs=kw, **common)


def _linear_layers(model: Any) -> list[Any]:
    import torch

    net = model.q_net.q_net if hasattr(model, "q_net") else model.quantile_net.quantile_net
    return [m for m in net if isinstance(m, torch.nn.Linear)]


def export(model: Any, cfg: DQNConfig, pair: tuple[str, str], folder: Path, *, meta: dict[str, Any]) -> Path:
    """Write ``folder`` atomically: config.json, policy.safetensors (linear layers, float32), sb3.zip and the
    signed manifest of the three."""
    from safetensors.numpy import save_file

    from backtest.atomic import staged_dir
    from experts.manifest import write_manifest

    with staged_dir(folder) as tmp:
        layers = _linear_layers(model)
        state = {}
        for i, lin in enumerate(layers):
            state[f"layer{i}.weight"] = lin.weight.detach().cpu().numpy().astype(np.float32)
            state[f"layer{i}.bias"] = lin.bias.detach().cpu().numpy().astype(np.float32)
        save_file(state, str(tmp / "policy.safetensors"))
        config = {"format": KIND, "algo": cfg.algo, "pair": list(pair), "n_actions": 3,
                  "n_quantiles": cfg.n_quantiles if cfg.algo == "qrdqn-cvar" else 0, "alpha": cfg.alpha,
                  "episode_bars": cfg.episode_bars, "gamma": cfg.gamma, "env": cfg.env_options(),
                  "train": asdict(cfg), **meta}
        _atomic_json(tmp / "config.json", config)
        model.save(str(tmp / SB3_FILE))
        write_manifest(tmp, [*MODEL_FILES, SB3_FILE], kind=KIND)
    return folder


def load_sb3(folder: str | os.PathLike, env: Any = None) -> Any:
    """The SB3 model saved by ``export`` (to resume training). Refused unless the folder's manifest is signed
    by this machine's key and every hash matches: the zip holds pickles."""
    from experts.manifest import verify

    folder = Path(folder)
    verify(folder, [*MODEL_FILES, SB3_FILE], kind=KIND, signed=True)
    algo = json.loads((folder / "config.json").read_text(encoding="utf-8"))["algo"]
    if algo == "dqn":
        from stable_baselines3 import DQN as cls
    else:
        from experts.cvar_qrdqn import CVaRQRDQN as cls
    return cls.load(str(folder / SB3_FILE), env=env, device="cpu")


def _callback(cfg: DQNConfig, run: Path, pair: tuple[str, str], meta: dict[str, Any], progress: Any) -> Any:
    from stable_baselines3.common.callbacks import BaseCallback

    class Metrics(BaseCallback):
        """metrics.jsonl every ``log_every`` env steps; checkpoints every ``save_every`` env steps."""

        def _on_training_start(self) -> None:
            self.t0, self.last_log, self.last_save = time.perf_counter(), self.num_timesteps, self.num_timesteps
            self.file = open(run / "metrics.jsonl", "a", encoding="utf-8")  # noqa: SIM115 - closed at the end

        def _on_step(self) -> bool:
            n = self.num_timesteps
            if n - self.last_log >= cfg.log_every:
                self.last_log = n
                eps = [e["r"] for e in self.model.ep_info_buffer] or [float("nan")]
                line = {"step": n, "reward/mean": float(np.mean(eps)), "reward/std": float(np.std(eps)),
                        "exploration_rate": float(self.model.exploration_rate),
                        "train/loss": self.model.logger.name_to_value.get("train/loss", float("nan")),
                        "steps_per_s": n / max(time.perf_counter() - self.t0, 1e-9)}
                self.file.write(json.dumps(line) + "\n")
                self.file.flush()
                if progress is not None:
                    progress(line)
            if cfg.save_every and n - self.last_save >= cfg.save_every:
                self.last_save = n
                export(self.model, cfg, pair, run / "checkpoints" / f"step_{n:09d}", meta=meta)
            return True

        def _on_training_end(self) -> None:
            self.file.close()

    return Metrics()


def train(cfg: DQNConfig, out: str | os.PathLike, *, progress: Any = None, resume: bool = False) -> dict[str, Any]:
    """Train (module docstring) into the run folder ``out``; returns the summary written to evaluation.json."""
    import torch

    from backtest.envs.pairs import BatchedPairsEnv
    from experts.sb3_env import BatchedVecEnv

    run = Path(out)
    run.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(cfg.threads)
    bars, pair, hi, selection = prepare(cfg)
    meta = {"spec": cfg.spec, "train_window": [0, hi], "test_window": [hi, len(bars)],
            "train_end": str(bars.index[hi - 1]), "selection": selection}
    _atomic_json(run / "config.json", {**asdict(cfg), **meta, "pair": list(pair), "loss": cfg.algo})
    env = BatchedPairsEnv(bars, pair=pair, window=(0, hi), n_envs=cfg.n_envs, episode_bars=cfg.episode_bars,
                          seed=cfg.seed, **cfg.env_options())
    venv = BatchedVecEnv(env)
    if resume:
        model = load_sb3(run / "model", env=venv)
        model.set_random_seed(cfg.seed)
    else:
        model = _model(cfg, venv)
    t0 = time.perf_counter()
    model.learn(total_timesteps=cfg.steps, callback=_callback(cfg, run, pair, meta, progress),
                reset_num_timesteps=not resume)
    seconds = time.perf_counter() - t0
    meta["train_seconds"], meta["train_steps"] = seconds, int(model.num_timesteps)
    export(model, cfg, pair, run / "model", meta=meta)
    result = evaluate(bars, run / "model", start=hi, fees=cfg.fees, slippage=cfg.slippage, seed=cfg.seed,
                      hedge_window=cfg.hedge_window)
    summary = {"pair": list(pair), **meta, "steps_per_s": model.num_timesteps / max(seconds, 1e-9),
               "test": result}
    _atomic_json(run / "evaluation.json", summary)
    return summary


def evaluate(bars: Any, model: str | os.PathLike, *, start: int, fees: float = 0.001, slippage: float = 0.0,
             seed: int = 0, hedge_window: int | None = None) -> dict[str, dict[str, float]]:
    """Test-window metrics (rows ``start..`` of ``bars``, decided with all earlier bars as history, net of costs)
    of the agent in ``model``, ``pairs_zscore`` on the same pair and hedge window, and a seeded random policy
    (uniform actions through the same replay). Returns ``{name: backtest metrics}``."""
    from backtest.decisions import build, decide
    from backtest.engine import run as backtest_run
    from experts.dqn_pairs import replay

    dm = build("dqn_pairs", {"model": str(model)}, fresh=True)
    kw = {"fees": fees, "slippage": slippage}
    test = bars.iloc[start:]
    out = {"agent": backtest_run(test, decide(dm, bars, start=start).weights, **kw).metrics}
    y, x = dm.pair
    hw = hedge_window or int(dm.model_config["env"]["hedge_window"])
    z = build("pairs_zscore", {"pair": f"{y},{x}", "hedge_window": hw})
    out["pairs_zscore"] = backtest_run(test, decide(z, bars, start=start).weights, **kw).metrics
    acts = np.random.default_rng(seed).integers(0, 3, len(bars))
    r = replay(bars, dm.model_config, actions=acts)
    import pandas as pd

    from markets.frames import assets

    w = pd.DataFrame(0.0, index=bars.index, columns=pd.Index(assets(bars), name="asset"))
    w[y], w[x] = r.weights[:, 0], r.weights[:, 1]
    out["random"] = backtest_run(test, w.iloc[start:], **kw).metrics
    return out
