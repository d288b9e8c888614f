"""Deep-Q statistical arbitrage vs the z-score rule on the test windows of synth:pairs and the best bundled pair.

For each data set, DQN and CVaR QR-DQN (``experts.dqn.train``, the code behind ``drex train dqn``) are trained on
the first 70 % of the bars (pair chosen by Engle-Granger on that window) and evaluated on the last 30 % through
the backtester, net of costs, with ``pairs_zscore`` (same pair, same hedge window) and a seeded random policy.
Writes ``benchmarks/results/dqn_pairs.md`` and the runs under ``--runs`` (default ``out/dqn_pairs``, ignored by git).

    python benchmarks/dqn_pairs.py                 # the recorded figures (~30 min on a busy 2-core machine)
    python benchmarks/dqn_pairs.py --steps 20000   # a quick look
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the repository's packages, not benchmarks/experts.py

SETS = {
    # minute bars: costs of liquid intraday stat-arb (1 bp per leg and side)
    "synth:pairs": {"fees": 0.0001, "hedge_window": 120, "episode_bars": 256, "max_hold": 240,
                    "stop_loss": 0.02},
    # daily close-only panel, DREX's default 10 bps
    "sample:SP20": {"fees": 0.001, "hedge_window": 60, "episode_bars": 128, "max_hold": 60, "stop_loss": 0.05,
                    "reward_scale": 100.0},
}
METRICS = ("sharpe", "max_drawdown", "cvar_5", "total_return", "n_trades")


def _f(value, spec: str) -> str:
    """A number for the table; NaN/None (a Sharpe ratio of a strategy that never trades) as "n/a"."""
    return "n/a" if value is None or math.isnan(value) else format(value, spec)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=200_000)
    ap.add_argument("--runs", default="out/dqn_pairs")
    ap.add_argument("--out", default="benchmarks/results/dqn_pairs.md")
    ap.add_argument("--sets", default=",".join(SETS))
    ap.add_argument("--algos", default="dqn,qrdqn-cvar")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--reuse", action="store_true", help="use runs that already have an evaluation.json")
    args = ap.parse_args()

    from experts.dqn import DQNConfig, train

    rows, notes = [], []
    for spec in args.sets.split(","):
        opts = SETS[spec]
        for algo in args.algos.split(","):
            cfg = DQNConfig(spec=spec, algo=algo, steps=args.steps, seed=args.seed, **opts)
            run = Path(args.runs) / f"{spec.replace(':', '-')}-{algo}"
            t0 = time.perf_counter()
            if args.reuse and (run / "evaluation.json").exists():
                s = json.loads((run / "evaluation.json").read_text())
            else:
                s = train(cfg, run, progress=lambda line: print(json.dumps(line), flush=True))
            print(f"{spec} {algo}: {time.perf_counter() - t0:.0f} s", flush=True)
            notes.append(f"* `{spec}` `{algo}`: pair {s['pair'][0]}/{s['pair'][1]} (Engle-Granger p = "
                         f"{s['selection'].get('pvalue', float('nan')):.2g} on the training window), test window "
                         f"from {s['train_end']}, {s['steps_per_s']:.0f} training steps/s, run `{run}`")
            for name, m in s["test"].items():
                if algo != args.algos.split(",")[0] and name != "agent":
                    continue  # the baselines are the same for every algorithm
                label = algo if name == "agent" else name
                rows.append((spec, f"{opts['fees']:g}", label, *(m[k] for k in METRICS)))
    lines = ["# Deep-Q pairs trading vs the z-score rule (test windows, net of costs)", "",
             f"`python benchmarks/dqn_pairs.py --steps {args.steps}` (seed {args.seed}; CPU, 1 torch thread).",
             "Sharpe annualised with the data's periods per year (minute bars: 525,600).", "",
             "| data | fees | strategy | Sharpe | max drawdown | CVaR(5%) | total return | orders |",
             "|---|---|---|---:|---:|---:|---:|---:|"]
    for spec, fees, label, sh, mdd, cvar, tr, n in rows:
        lines.append(f"| {spec} | {fees} | {label} | {_f(sh, '.2f')} | {_f(mdd, '.4f')} | {_f(cvar, '.5f')} | "
                     f"{_f(tr, '+.4f')} | {_f(n, '.0f')} |")
    lines += ["", *notes, "",
              ("`random`: uniform actions through the agent's replay (stop-loss and timeout included); "
              "`pairs_zscore`: entry |z| >= 2, exit |z| <= 0.5, stop |z| >= 4, same pair and hedge window."), ""]
    Path(args.out).write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
