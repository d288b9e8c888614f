"""Data and figures of the Bandits & DQN page (plain functions, testable without Streamlit).

* ``generations(...)``: successive bandit policy generations on ``rl.bandits.SyntheticProblem``, each
  retrained on logged, delayed feedback (the loop of ``rl.bandits.run_generations``), with per generation the
  realised reward, the expected reward of the deployed policy and of the best action, and the off-policy
  estimates (IPS, SNIPS, DR with bootstrap intervals, ``rl.bandits.evaluate_policy``) of the NEXT policy made
  from this generation's logs before it is deployed: the OPE forecast next to what then happened.
* ``pairs_view(spec, model, ...)``: the ``dqn_pairs`` agent on the last bars of a data set: its trace (spread,
  z-score, actions), equity net of costs and the z-score rule's on the same bars.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

__all__ = ["generations", "generations_figure", "model_choices", "ope_figure", "pairs_figure", "pairs_view"]

ESTIMATORS = ("ips", "snips", "dr")


def _policy(kind: str, n_actions: int, seed: int, floor: float) -> Any:
    from rl.bandits import EpsilonGreedy, JointModel, LinUCB, RidgeRegressor, SquareCB

    if kind == "squarecb":
        return SquareCB(n_actions, JointModel(RidgeRegressor(1.0), interactions=True), floor=floor, seed=seed)
    if kind == "epsilon_greedy":
        return EpsilonGreedy(n_actions, JointModel(RidgeRegressor(1.0), interactions=True), epsilon=0.1, seed=seed)
    if kind == "linucb":
        return LinUCB(n_actions, alpha=1.0, seed=seed)
    raise ValueError(f"policy must be squarecb, epsilon_greedy or linucb, got {kind!r}")


def generations(*, policy: str = "squarecb", n_generations: int = 8, rounds: int = 1000, memory: str = "last",
                floor: float = 0.0, kind: str = "nonlinear", n_bootstrap: int = 200, seed: int = 0) -> pd.DataFrame:
    """One row per generation g: ``reward`` (realised mean), ``value`` (expected reward of the deployed
    policy), ``optimal``; and ``{ips,snips,dr}`` / ``_low`` / ``_high``: the OPE estimate, from generation
    g-1's logs, of the policy deployed in generation g (NaN for g = 0). ``memory``: retrain on the last
    generation's logs (``"last"``) or all (``"all"``)."""
    import copy

    from rl.bandits import DecisionLog, JointModel, RidgeRegressor, SyntheticProblem, evaluate_policy

    if memory not in ("last", "all"):
        raise ValueError(f"memory must be 'last' or 'all', got {memory!r}")
    problem = SyntheticProblem(n_actions=5, context_dim=5, action_feature_dim=0, kind=kind, p_available=0.8,
                               seed=seed)
    pol = _policy(policy, problem.n_actions, seed, floor)
    log = DecisionLog(problem.n_actions, problem.context_dim)
    rng_rounds, rng_rewards = np.random.default_rng([seed, 1]), np.random.default_rng([seed, 2])
    rows: list[dict[str, Any]] = []
    forecast: dict[str, Any] = {}
    for g in range(n_generations):
        r = problem.sample(rounds, rng_rounds)
        d = pol.act(r.contexts, available=r.available)
        ids = log.record(r.contexts, d, available=r.available, generation=g)
        rewards = problem.draw_rewards(r, d.actions, rng_rewards)
        log.add_rewards(ids, rewards)
        mu = np.nan_to_num(r.mean_rewards, nan=-np.inf)
        rows.append({"generation": g, "reward": float(rewards.mean()),
                     "value": float(np.nansum(d.probabilities * r.mean_rewards, axis=1).mean()),
                     "optimal": float(mu.max(axis=1).mean()), **forecast})
        data = log.data(generations=g)
        model = JointModel(RidgeRegressor(1.0), interactions=True)  # DR's reward model: fitted on these logs
        model.fit(data)
        pol.fit(data if memory == "last" else log.data())
        res = evaluate_policy(copy.deepcopy(pol), data, reward_model=model, estimators=ESTIMATORS,
                              n_bootstrap=n_bootstrap, seed=seed + g)
        forecast = {}
        for name, o in res.items():
            forecast |= {name: o.estimate, f"{name}_low": o.low, f"{name}_high": o.high}
    return pd.DataFrame(rows).set_index("generation")


def generations_figure(frame: pd.DataFrame) -> go.Figure:
    fig = go.Figure()
    for col, dash in (("value", None), ("reward", "dot"), ("optimal", "dash")):
        fig.add_scatter(x=frame.index, y=frame[col], name=col, mode="lines+markers", line={"dash": dash})
    fig.update_layout(title="Reward per policy generation", xaxis_title="generation", yaxis_title="reward",
                      height=340, margin={"l": 10, "r": 10, "t": 40, "b": 10})
    return fig


def ope_figure(frame: pd.DataFrame) -> go.Figure:
    fig = go.Figure()
    g = frame.index.to_numpy()
    for k, name in enumerate(ESTIMATORS):
        if name not in frame:
            continue
        est, lo, hi = frame[name], frame[f"{name}_low"], frame[f"{name}_high"]
        fig.add_scatter(x=g + 0.1 * (k - 1), y=est, name=name.upper(), mode="markers",
                        error_y={"type": "data", "symmetric": False, "array": hi - est, "arrayminus": est - lo})
    fig.add_scatter(x=g, y=frame["value"], name="realised value", mode="lines", line={"color": "black"})
    fig.update_layout(title="Off-policy forecast of each generation (95% bootstrap intervals) vs what happened",
                      xaxis_title="generation", yaxis_title="expected reward", height=340,
                      margin={"l": 10, "r": 10, "t": 40, "b": 10})
    return fig


def model_choices(runs_root: Any) -> list[str]:
    """``default`` plus every run folder under ``runs_root`` with a ``model/manifest.json``."""
    from pathlib import Path

    root = Path(runs_root)
    found = sorted(str(p.parent.parent) for p in root.glob("*/model/manifest.json")) if root.exists() else []
    return ["default", *found]


def pairs_view(spec: str, model: str, *, last: int = 3000, fees: float = 0.0001) -> dict[str, Any]:
    """The agent and the z-score rule on the last ``last`` bars of ``spec`` (decided with all earlier bars as
    history): ``trace`` (z, hedge, spread, side, action), ``agent`` / ``zscore`` equity, ``pair``, metrics."""
    import backtest
    import markets
    from backtest.decisions import build, decide
    from backtest.envs.features import pair_features

    bars = markets.load(spec)
    start = max(0, len(bars) - int(last))
    dm = build("dqn_pairs", {"model": model})
    y, x = dm.pair
    d = decide(dm, bars, start=start)
    test = bars.iloc[start:]
    agent = backtest.run(test, d.weights, fees=fees)
    hw = int(dm.model_config["env"]["hedge_window"])
    z = backtest.run_strategy(bars, "pairs_zscore", {"pair": f"{y},{x}", "hedge_window": hw}, start=start,
                              fees=fees).result
    close = markets.fields(bars, "close")
    spread = pair_features(np.log(close[y].to_numpy()), np.log(close[x].to_numpy()), hw).spread[start:]
    trace = d.trace.assign(spread=spread)
    return {"pair": (y, x), "trace": trace, "agent": agent.equity, "zscore": z.equity,
            "metrics": pd.DataFrame({"dqn_pairs": agent.metrics, "pairs_zscore": z.metrics}),
            "algo": dm.model_config["algo"]}


def pairs_figure(view: dict[str, Any]) -> go.Figure:
    tr = view["trace"]
    fig = make_subplots(rows=3, cols=1, shared_xaxes=True, vertical_spacing=0.04,
                        subplot_titles=("spread (rolling regression residual)", "z-score and the agent's side",
                                        "equity net of costs"))
    fig.add_scatter(x=tr.index, y=tr["spread"], name="spread", row=1, col=1)
    fig.add_scatter(x=tr.index, y=tr["z"], name="z-score", row=2, col=1)
    for side, color, label in ((1.0, "green", "long spread"), (-1.0, "red", "short spread")):
        opened = (tr["side"] == side) & (tr["side"].shift(1) != side)
        fig.add_scatter(x=tr.index[opened], y=tr["z"][opened], mode="markers", name=label,
                        marker={"color": color, "size": 7, "symbol": "triangle-up" if side > 0 else "triangle-down"},
                        row=2, col=1)
    fig.add_scatter(x=view["agent"].index, y=view["agent"], name=f"dqn_pairs ({view['algo']})", row=3, col=1)
    fig.add_scatter(x=view["zscore"].index, y=view["zscore"], name="pairs_zscore", row=3, col=1)
    fig.update_layout(height=720, margin={"l": 10, "r": 10, "t": 40, "b": 10})
    return fig
