"""``dqn_pairs``: a deep-Q statistical-arbitrage agent as a decision-maker (trained by ``drex train dqn``).

A model folder (written by ``experts.dqn.export``) holds ``config.json`` (the pair, the environment's options,
the algorithm), ``policy.safetensors`` (the Q- or quantile network's linear layers) and ``manifest.json``
(their SHA-256, ``experts.manifest``). Nothing is unpickled: the network is evaluated in numpy from the
safetensors weights, and a file whose hash differs from the manifest is refused.

``decide(bars)`` replays the agent bar by bar over the whole history with ``backtest.envs.PairsCore`` (the
training environment's own core, in its open-ended replay mode): at row t the observation uses bars up to t
(z-scores, the position, bars held, the trade's return; the stock for the CVaR agent), the greedy action
becomes the target weights of row t (stop-loss and timeout applied), and the agent's book moves to t+1 with
the costs it was trained with (its trade-return and stock features need them; the backtest that evaluates the
weights applies its own costs). The CVaR agent restarts its stock every ``episode_bars`` rows from row 0
(``experts.cvar.choose_threshold``). Rows depend only on bars up to themselves (the registry-wide
look-ahead test checks it); ``start`` slices the replay.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, ClassVar, NamedTuple

import numpy as np
import pandas as pd

from backtest.decisions import Decision, DecisionMaker, Param, register, resolve_checkpoint

__all__ = ["ALGOS", "KIND", "MODEL_FILES", "QPolicy", "load_model", "model_folder", "replay"]

KIND = "drex.dqn_pairs"
ALGOS = ("dqn", "qrdqn-cvar")
MODEL_FILES = ("config.json", "policy.safetensors")
ENV_KEYS = ("hedge_window", "lookback", "exposure", "stop_loss", "max_hold", "fees", "slippage", "band",
            "borrow", "execution", "reward", "reward_scale", "stock", "stock_gamma", "stock_range", "clip")
_TRAIN = "drex train dqn synth:pairs --pairs auto --steps 200000 --out runs/pairs-dqn"


class QPolicy(NamedTuple):
    """An MLP with ReLU between ``layers`` ((out, in) weight, (out,) bias) pairs; ``n_quantiles`` 0 for DQN
    (outputs: A Q-values) or Q for QR-DQN (outputs: Q x A quantiles, quantile-major as sb3-contrib)."""

    layers: list[tuple[np.ndarray, np.ndarray]]
    n_actions: int
    n_quantiles: int

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        """(D,) observation -> (A,) Q-values or (Q, A) quantiles (float64)."""
        h = np.asarray(obs, dtype=np.float64)
        for i, (w, b) in enumerate(self.layers):
            h = w @ h + b
            if i < len(self.layers) - 1:
                h = np.maximum(h, 0.0)
        return h.reshape(self.n_quantiles, self.n_actions) if self.n_quantiles else h


def model_folder(value: str) -> Path:
    """``model=`` -> the folder holding the model files: ``default`` (shipped), a run folder of ``drex train
    dqn`` (its ``model/``) or a model folder."""
    if value == "default":
        try:
            path = resolve_checkpoint("default", package="experts", default="dqn_pairs")
        except FileNotFoundError:
            raise FileNotFoundError(f"no default dqn_pairs model is shipped with this install; train one with "
                                    f"`{_TRAIN}` and pass -p model=runs/pairs-dqn") from None
    else:
        path = Path(value).expanduser()
        if not path.exists():
            raise FileNotFoundError(f"model {value!r} not found; train one with `{_TRAIN}` and pass its --out "
                                    "folder, or model=default")
    return path / "model" if (path / "model" / "manifest.json").exists() else path


def load_model(folder: str | Path) -> tuple[dict[str, Any], QPolicy]:
    """(config, policy) of a model folder after checking its manifest (no pickle is ever loaded)."""
    from safetensors.numpy import load_file

    from experts.manifest import verify

    folder = Path(folder)
    verify(folder, list(MODEL_FILES), kind=KIND, signed=False)
    config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    if config.get("algo") not in ALGOS:
        raise ValueError(f"{folder}/config.json: unknown algo {config.get('algo')!r} (known: {', '.join(ALGOS)})")
    state = load_file(str(folder / "policy.safetensors"))
    n = len([k for k in state if k.endswith(".weight")])
    layers = [(state[f"layer{i}.weight"].astype(np.float64), state[f"layer{i}.bias"].astype(np.float64))
              for i in range(n)]
    return config, QPolicy(layers, int(config["n_actions"]), int(config.get("n_quantiles", 0)))


class Replay(NamedTuple):
    """The agent over T bars: weights (T, 2) of (y, x); actions (T,) chosen; sides (T,) after forced exits;
    scores (T, A) the greedy rule's scores; z, hedge (T,); stock (T,) (NaN for DQN); equity (T,) of the
    agent's own book at each decision row; forced (T,) bool."""

    weights: np.ndarray
    actions: np.ndarray
    sides: np.ndarray
    scores: np.ndarray
    z: np.ndarray
    hedge: np.ndarray
    stock: np.ndarray
    equity: np.ndarray
    forced: np.ndarray


def replay(bars: Any, config: dict[str, Any], policy: QPolicy | None = None, *,
           actions: np.ndarray | None = None) -> Replay:
    """Run the agent (or the fixed ``actions`` (T,), e.g. a random policy) over ``bars`` (module docstring)."""
    from backtest.envs.pairs import PairsCore
    from experts.cvar import choose_threshold, stock_scores

    env = {k: config["env"][k] for k in ENV_KEYS if k in config["env"]}
    if "stock_range" in env:
        env["stock_range"] = tuple(env["stock_range"])
    core = PairsCore(bars, pair=tuple(config["pair"]), episode_bars=0, n_envs=1, **env)
    T = len(bars)
    cvar = config["algo"] == "qrdqn-cvar"
    segment = int(config.get("episode_bars", 0)) if cvar else 0
    grid = np.linspace(*env.get("stock_range", (0.0, 0.0)), 21)
    alpha = float(config.get("alpha", 1.0))
    core.reset_rows(np.array([0]), 0, {"stock": 0.0})
    n_act = 3
    out = Replay(np.zeros((T, 2)), np.full(T, 1, np.int64), np.zeros(T, np.int64), np.full((T, n_act), np.nan),
                 core.features.z[:T].copy(), core.features.hedge[:T].copy(), np.full(T, np.nan), np.zeros(T),
                 np.zeros(T, bool))
    for t in range(T):
        if cvar and policy is not None and t % segment == 0:
            obs0 = core.observe()[0]

            def at(c: float, obs0: np.ndarray = obs0) -> np.ndarray:
                o = obs0.copy()
                o[-1] = np.float32(c)
                return policy(o)

            b, _ = choose_threshold(at, grid, alpha)
            core.stock[0] = -b
        obs = core.observe()[0]
        if actions is not None:
            a = int(actions[t])
        else:
            q = policy(obs)
            s = stock_scores(q, obs[-1]) if cvar else q
            a = int(np.argmax(s))
            out.scores[t] = s
        out.stock[t] = obs[-1] if cvar else np.nan
        out.equity[t] = core.book.equity[0]
        w = core.decide(np.array([a]))
        out.weights[t], out.actions[t], out.sides[t], out.forced[t] = w[0], a, core.side[0], core.forced[0]
        if t + 1 < T:
            core.advance(w)
    return out


@register("dqn_pairs")
class DQNPairs(DecisionMaker):
    """Deep-Q pairs trading (DQN or CVaR QR-DQN) trained by `drex train dqn`; model=default or a run folder."""

    params: ClassVar[dict] = {"model": Param("default", doc="run folder of `drex train dqn`, a model folder, or "
                                                             "default (the model shipped with DREX)")}
    example_spec = "synth:pairs?seed=1&n=2000"

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self.folder = model_folder(str(self.config["model"]))
        self.model_config, self.policy = load_model(self.folder)
        self.pair = tuple(self.model_config["pair"])

    @property
    def warmup(self) -> int:
        env = self.model_config["env"]
        return int(env["hedge_window"]) + int(env["lookback"])

    def decide(self, bars: Any, *, start: int = 0) -> Decision:
        from markets.frames import assets

        names = assets(bars)
        missing = [a for a in self.pair if a not in names]
        if missing:
            raise ValueError(f"the dqn_pairs model {self.folder} trades the pair {self.pair}, but the bars lack "
                             f"{', '.join(missing)} (assets: {', '.join(names)}); load data with both assets or "
                             "train a model on this data (`drex train dqn SPEC --pairs auto`)")
        r = replay(bars, self.model_config, self.policy)
        y, x = self.pair
        weights = pd.DataFrame(0.0, index=bars.index, columns=pd.Index(names, name="asset"))
        weights[y], weights[x] = r.weights[:, 0], r.weights[:, 1]
        trace = pd.DataFrame({"z": r.z, "hedge": r.hedge, "action": r.actions.astype(float),
                              "side": r.sides.astype(float), "forced": r.forced.astype(float),
                              "score_short": r.scores[:, 0], "score_flat": r.scores[:, 1],
                              "score_long": r.scores[:, 2], "stock": r.stock, "agent_equity": r.equity},
                             index=bars.index)
        return Decision(weights.iloc[start:], trace.iloc[start:])
