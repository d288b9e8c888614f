"""Summarize expert training runs: SFT agreement, RL vs SFT validation reward, entropy curves (md + PNG).

    PYTHONPATH=. python benchmarks/experts_training.py --sft RUNS/sft --rl RUNS/rl-trend-vanilla RUNS/rl-trend-clip_cov ...

Reads each run's ``summary.json`` and ``metrics.jsonl`` (written by ``drex train experts``) and writes
``benchmarks/results/experts_training.md`` and ``experts_training_entropy.png``. Reports what the runs measured.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path


def _summary(run: Path) -> dict:
    return json.loads((run / "summary.json").read_text())


def _metrics(run: Path) -> list[dict]:
    return [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines() if x.strip()]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sft", type=Path, required=True, help="SFT run folder (with <style>/ subfolders or one style)")
    ap.add_argument("--rl", type=Path, nargs="*", default=[], help="RL run folders")
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/experts_training.md"))
    ap.add_argument("--command", default="", help="the commands that produced the runs (recorded)")
    args = ap.parse_args()

    sft_runs = sorted(p for p in args.sft.iterdir() if (p / "summary.json").is_file()) or [args.sft]
    lines = ["# Expert training: SFT agreement with the teachers, RL vs SFT validation reward", ""]
    if args.command:
        lines += ["Commands:", "", "```bash", args.command, "```", ""]
    lines += [("Validation: the last 20% of the dates up to 2014-12-31 of sample:SP500, NASDAQ, MSFT, SP20 (purged by "
              "H = 5 bars), a fixed sample of validation bars (seed 0), greedy constrained answers. Agreement: sign "
              "of the exposure equals the teacher's (flat its own class). Reward: mean net return over the next 5 "
              "bars (fees 10 bps, from the teacher's previous exposure)."), "",
              "| expert | SFT steps | val agreement | val reward (expert) | val reward (teacher) |",
              "|---|---|---|---|---|"]
    for run in sft_runs:
        s = _summary(run)
        lines.append(f"| {s['style']} | {s['steps']} | {s['val/agreement']:.3f} | {s['val/reward']:+.5f} | "
                     f"{s['val/teacher_reward']:+.5f} |")
    if args.rl:
        lines += ["", ("| expert | optimizer | RL steps | val reward SFT | val reward RL | RL - SFT | agreement SFT -> RL |"
                  " final entropy |"), "|---|---|---|---|---|---|---|---|"]
        for run in args.rl:
            s, m = _summary(run), _metrics(run)
            d = s["val/reward"] - s["before/val/reward"]
            lines.append(f"| {s['style']} | {s['optimizer']} | {s['steps']} | {s['before/val/reward']:+.5f} | "
                         f"{s['val/reward']:+.5f} | {d:+.5f} | {s['before/val/agreement']:.3f} -> "
                         f"{s['val/agreement']:.3f} | {m[-1]['entropy']:.3f} |")
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(1, 2, figsize=(10, 3.5))
        for run in args.rl:
            s, m = _summary(run), _metrics(run)
            label = f"{s['style']} {s['optimizer']}"
            ax[0].plot([x["step"] for x in m], [x["entropy"] for x in m], label=label)
            ax[1].plot([x["step"] for x in m], [x["reward/mean"] for x in m], label=label)
        ax[0].set(title="entropy of decision tokens", xlabel="optimizer step")
        ax[1].set(title="rollout reward (mean, 5-bar net return)", xlabel="optimizer step")
        ax[0].legend(fontsize=8)
        fig.tight_layout()
        png = args.out.with_name("experts_training_entropy.png")
        fig.savefig(png, dpi=110)
        lines += ["", f"![entropy and reward curves]({png.name})"]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
