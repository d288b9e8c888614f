"""Environment steps per second: DREX's single and batched environments vs gym-anytrading's ``stocks-v0``, and
DQN training steps per second.

* Same data for the one-asset environments: the bundled S&P 500 closes (``sample:SP500``, 4,826 daily bars);
  gym-anytrading's ``StocksEnv`` on a ``Close`` column of it (window 30, the whole series as one episode),
  DREX's ``TradingEnv`` (lookback 30, episodes of 4,000 bars, fees and the accounting of ``backtest.run``) and
  ``BatchedTradingEnv`` (B episodes per ``step``). Random actions, resets included, after a warm-up.
* ``PairsTradingEnv`` / ``BatchedPairsEnv`` on ``synth:pairs`` (20,000 minute bars).
* DQN training (``experts.dqn``'s SB3 setup, the one ``drex train dqn`` uses) on ``BatchedPairsEnv`` through
  ``BatchedVecEnv`` for several ``n_envs``, and SB3's ``DummyVecEnv`` of ``PairsTradingEnv`` for comparison.

    python benchmarks/envs.py            # writes benchmarks/results/envs.md
    python benchmarks/envs.py --quick    # smaller budgets

gym-anytrading is a benchmark-only dependency (the ``bench`` extra).
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the repository's packages, not benchmarks/experts.py

import numpy as np


def _rate(step, n_steps: int, per_call: int, repeat: int = 3) -> float:
    """Best steps/s of ``repeat`` timed runs of ``n_steps // per_call`` calls (after one warm-up call)."""
    step()
    best = 0.0
    for _ in range(repeat):
        calls = max(1, n_steps // per_call)
        t0 = time.perf_counter()
        for _ in range(calls):
            step()
        best = max(best, calls * per_call / (time.perf_counter() - t0))
    return best


def gym_anytrading_rate(close: np.ndarray, n: int) -> float:
    import pandas as pd
    from gym_anytrading.envs import StocksEnv

    env = StocksEnv(df=pd.DataFrame({"Close": close}), window_size=30, frame_bound=(30, len(close)))
    env.reset(seed=0)
    rng = np.random.default_rng(0)

    def step():
        _, _, term, trunc, _ = env.step(int(rng.integers(0, 2)))
        if term or trunc:
            env.reset()

    return _rate(step, n, 1)


def single_rate(env, n: int, n_actions: int = 3) -> float:
    env.reset(seed=0)
    rng = np.random.default_rng(0)

    def step():
        _, _, term, trunc, _ = env.step(int(rng.integers(0, n_actions)))
        if term or trunc:
            env.reset()

    return _rate(step, n, 1)


def batched_rate(env, n: int) -> float:
    env.reset(seed=0)
    B = env.num_envs
    acts = np.random.default_rng(0).integers(0, 3, (64, B))
    k = [0]

    def step():
        env.step(acts[k[0] % 64])
        k[0] += 1

    return _rate(step, n, B)


def dqn_rate(bars, n_envs: int, steps: int, *, dummy: bool = False) -> float:
    """Env steps/s of SB3 DQN learning (after learning_starts) with ``experts.dqn``'s settings."""
    import torch
    from stable_baselines3.common.vec_env import DummyVecEnv

    from backtest.envs import BatchedPairsEnv, PairsTradingEnv
    from experts.dqn import DQNConfig, _model
    from experts.sb3_env import BatchedVecEnv

    torch.set_num_threads(1)
    cfg = DQNConfig(spec="synth:pairs", n_envs=n_envs, learning_starts=1_000, fees=0.0001)
    opts = {**cfg.env_options(), "window": (0, 14_000), "episode_bars": cfg.episode_bars}
    if dummy:
        venv = DummyVecEnv([lambda i=i: PairsTradingEnv(bars, seed=i, **opts) for i in range(n_envs)])
    else:
        venv = BatchedVecEnv(BatchedPairsEnv(bars, n_envs=n_envs, seed=0, **opts))
    model = _model(cfg, venv)
    model.learn(2_000)  # past learning_starts: the timed part trains
    t0 = time.perf_counter()
    model.learn(steps, reset_num_timesteps=False)
    return steps / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out", default=str(ROOT / "benchmarks/results/envs.md"))
    args = ap.parse_args()
    import markets
    from backtest.envs import BatchedPairsEnv, BatchedTradingEnv, PairsTradingEnv, TradingEnv

    n = 20_000 if args.quick else 100_000
    nb = 2_000_000 if args.quick else 10_000_000
    sp = markets.load("sample:SP500")
    pairs = markets.load("synth:pairs")
    close = sp["close"].to_numpy()
    rows = [("gym-anytrading StocksEnv (stocks-v0 class)", "SP500", 1, gym_anytrading_rate(close, n))]
    rows.append(("DREX TradingEnv", "SP500", 1, single_rate(TradingEnv(sp, lookback=30, episode_bars=4_000), n)))
    for B in (256, 4096, 16384):
        env = BatchedTradingEnv(sp, n_envs=B, lookback=30, episode_bars=4_000, seed=0)
        rows.append(("DREX BatchedTradingEnv", "SP500", B, batched_rate(env, nb)))
    rows.append(("DREX PairsTradingEnv", "synth:pairs", 1, single_rate(PairsTradingEnv(pairs), n)))
    for B in (256, 4096, 16384):
        rows.append(("DREX BatchedPairsEnv", "synth:pairs", B, batched_rate(BatchedPairsEnv(pairs, n_envs=B), nb)))
    steps = 10_000 if args.quick else 40_000
    dqn = [(f"BatchedVecEnv n_envs={k}", dqn_rate(pairs, k, steps)) for k in (1, 8, 32, 128)]
    dqn.append(("DummyVecEnv of 8 PairsTradingEnv", dqn_rate(pairs, 8, steps, dummy=True)))
    lines = ["# Environment and DQN training throughput", "",
             (f"`python benchmarks/envs.py{' --quick' if args.quick else ''}` on {os.cpu_count()} CPU cores, load "
             f"average {os.getloadavg()[0]:.1f} at the end (numpy {np.__version__}; best of 3; random actions, "
             "resets included)."), "",
             "| environment | data | episodes per step call | env steps/s |", "|---|---|---:|---:|"]
    lines += [f"| {name} | {data} | {b:,} | {rate:,.0f} |" for name, data, b, rate in rows]
    lines += ["", "DQN training (SB3 DQN, MLP 64x64, batch 256, replay ratio 8, 1 torch thread, synth:pairs):", "",
              "| vectorization | env steps/s |", "|---|---:|"]
    lines += [f"| {name} | {rate:,.0f} |" for name, rate in dqn]
    Path(args.out).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
