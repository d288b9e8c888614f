"""Summarize expert training runs: SFT agreement, RL vs SFT validation reward (paired), entropy curves (md + PNG).

    PYTHONPATH=. nice -n 10 python benchmarks/experts_training.py --sft RUNS/sft \
        --rl RUNS/rl/trend-vanilla RUNS/rl/trend-clip_cov ... [--val-size 8000] [--command "..."]

Reads each run's ``summary.json``, ``metrics.jsonl`` and ``validation.jsonl`` (written by ``drex train
experts``), re-scores the SFT model and every RL model on ONE fixed sample of validation rows per expert
(``--val-size``, seed 0; greedy constrained answers through ``experts.decoding``; rewards through
``backtest.accounting.horizon_rewards``) and reports the paired difference RL - SFT with its standard error
(the same rows for both, so most of the market noise cancels). Writes ``benchmarks/results/
experts_training.md`` and ``experts_training_entropy.png``. Reports what the runs measured.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
from pathlib import Path

if __name__ == "__main__":  # benchmarks/experts.py would shadow the package: the repository root goes first
    sys.path[0] = str(Path(__file__).resolve().parents[1])


def _summary(run: Path) -> dict:
    return json.loads((run / "summary.json").read_text())


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()] if path.is_file() else []


def _config(run: Path) -> dict:
    return json.loads((run / "expert.json").read_text())["config"]


def _scores(model_dir: Path, data, rows):
    """(per-row reward (M,), per-row exposure (M,)) of the model's greedy answers on ``rows``."""
    import numpy as np

    from experts.answers import AnswerConstraint, parse_answer
    from experts.backends import DecodeSettings
    from experts.decoding import auto_threads, cpu_threads, decode
    from experts.native import load_native
    from experts.rewards import horizon_rewards

    model, tok = load_native(model_dir)
    with cpu_threads(auto_threads()):
        texts = decode(model, tok, list(data.prompts[rows]), DecodeSettings(), constraint=AnswerConstraint(tok),
                       batch_size=64)
    h = np.array([parse_answer(t)[0] for t in texts])
    r = horizon_rewards(data.exec_price, data.mark_price, data.t[rows], h, data.horizon, fees=data.fees,
                        slippage=data.slippage, start_exposure=data.start[rows], execution=data.execution)
    return np.asarray(r), h


def _paired(style: str, sft: Path, rl_runs: list[Path], val_size: int) -> dict:
    """Per model: mean reward, agreement; per RL run: the paired difference to SFT and its standard error."""
    import numpy as np

    from experts.data import build_dataset
    from experts.training import _val_rows

    c = _config(sft)
    data = build_dataset(style, tuple(c["data"]), end=c["end"], horizon=c["horizon"], fees=c["fees"],
                         slippage=c["slippage"], val_fraction=c["val_fraction"],
                         hindsight_weight=c["hindsight_weight"], risk_budget=c["risk_budget"],
                         rl_fraction=c.get("rl_fraction", 0.0))
    rows = _val_rows(data, val_size)
    teacher = np.clip(data.teacher[rows], -1, 1)
    from experts.rewards import horizon_rewards

    t_r = np.asarray(horizon_rewards(data.exec_price, data.mark_price, data.t[rows], teacher, data.horizon,
                                     fees=data.fees, slippage=data.slippage, start_exposure=data.start[rows],
                                     execution=data.execution))
    base, h0 = _scores(sft / "model", data, rows)
    out = {"rows": len(rows), "teacher": float(t_r.mean()), "sft": float(base.mean()),
           "sft_agree": float(np.mean(np.sign(h0) == np.sign(teacher))), "sft_exposure": float(h0.mean()),
           "teacher_exposure": float(teacher.mean()), "rl": {}}
    for run in rl_runs:
        r, h = _scores(run / "model", data, rows)
        d = r - base
        out["rl"][str(run)] = {"reward": float(r.mean()), "diff": float(d.mean()),
                               "se": float(d.std(ddof=1) / math.sqrt(len(d))),
                               "agree": float(np.mean(np.sign(h) == np.sign(teacher))),
                               "exposure": float(h.mean()), "changed": float(np.mean(h != h0))}
    return out


def _label(run: Path) -> str:
    c = _config(run)
    extra = " + entropy-guided" if c.get("rollouts") == "entropy-guided" else ""
    return f"{c['optimizer']}{extra}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sft", type=Path, required=True, help="SFT run folder (with <style>/ subfolders or one style)")
    ap.add_argument("--rl", type=Path, nargs="*", default=[], help="RL run folders")
    ap.add_argument("--val-size", type=int, default=8000, help="validation rows scored per expert (paired)")
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/experts_training.md"))
    ap.add_argument("--command", default="", help="the commands that produced the runs (recorded)")
    args = ap.parse_args()

    sft_runs = sorted(p for p in args.sft.iterdir() if (p / "summary.json").is_file()) or [args.sft]
    by_style = {_summary(r)["style"]: r for r in sft_runs}
    rl_by_style: dict[str, list[Path]] = {}
    for run in args.rl:
        rl_by_style.setdefault(_summary(run)["style"], []).append(run)
    lines = ["# Expert training: SFT agreement with the teachers, RL vs SFT validation reward", ""]
    if args.command:
        lines += ["Commands:", "", "```bash", args.command, "```", ""]
    c0 = _config(sft_runs[0])
    lines += [(f"Data: {', '.join(c0['data'])} up to {c0['end']}, split by date (backtest.splits.purge, H = "
               f"{c0['horizon']} bars): SFT on the first {1 - c0['val_fraction'] - c0.get('rl_fraction', 0):.0%} "
               f"of the dates, RL on the next {c0.get('rl_fraction', 0):.0%} (held out from SFT), validation on the "
               f"last {c0['val_fraction']:.0%}. Greedy constrained answers. Agreement: sign of the exposure equals "
               "the teacher's (flat its own class). Reward: net return of the answered exposure over the next "
               f"{c0['horizon']} bars (fees {c0['fees'] * 1e4:g} bps, a cash account entering from the teacher's "
               "previous exposure; backtest.accounting.horizon_rewards)."), "",
              "## SFT (the training run's own validation sample)", "",
              "| expert | SFT steps | val agreement | val reward (expert) | val reward (teacher) |",
              "|---|---|---|---|---|"]
    for style, run in sorted(by_style.items()):
        s = _summary(run)
        lines.append(f"| {style} | {s['steps']} | {s['val/agreement']:.3f} | {s['val/reward']:+.5f} | "
                     f"{s['val/teacher_reward']:+.5f} |")
    if rl_by_style:
        lines += ["", f"## RL vs SFT, paired on {args.val_size:,} validation rows per expert", "",
                  ("Mean reward per 5-bar decision; RL - SFT is the mean of the per-row differences on the same rows, "
                  "with its standard error; 'changed' is the share of rows where the RL model answers differently "
                  "from the SFT model."), "",
                  ("| expert | model | RL iterations | val reward | RL - SFT (± s.e.) | agreement | mean exposure "
                  "| changed | final entropy |"), "|---|---|---|---|---|---|---|---|---|"]
        for style in sorted(rl_by_style):
            res = _paired(style, by_style[style], rl_by_style[style], args.val_size)
            lines.append(f"| {style} | teacher ({style} rule) | | {res['teacher']:+.5f} | | 1.000 | "
                         f"{res['teacher_exposure']:+.2f} | | |")
            lines.append(f"| {style} | SFT | | {res['sft']:+.5f} | | {res['sft_agree']:.3f} | "
                         f"{res['sft_exposure']:+.2f} | | |")
            for run in rl_by_style[style]:
                r, m = res["rl"][str(run)], _jsonl(run / "metrics.jsonl")
                lines.append(f"| {style} | RL {_label(run)} | {_summary(run)['steps']} | {r['reward']:+.5f} | "
                             f"{r['diff']:+.5f} ± {r['se']:.5f} | {r['agree']:.3f} | {r['exposure']:+.2f} | "
                             f"{r['changed']:.1%} | {m[-1]['entropy']:.3f} |")
        _plot(rl_by_style, args.out.with_name("experts_training_entropy.png"))
        lines += ["", ("![entropy, rollout reward and validation reward per expert and optimizer]"
                      "(experts_training_entropy.png)")]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_suffix(".tmp")
    tmp.write_text("\n".join(lines) + "\n")
    os.replace(tmp, args.out)
    print("\n".join(lines))


def _plot(rl_by_style: dict[str, list[Path]], png: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    styles = sorted(rl_by_style)
    fig, ax = plt.subplots(3, len(styles), figsize=(4.2 * len(styles), 8.5), squeeze=False)
    for j, style in enumerate(styles):
        for run in rl_by_style[style]:
            m, v = _jsonl(run / "metrics.jsonl"), _jsonl(run / "validation.jsonl")
            label = _label(run)
            it = [x["rollout"] for x in m]
            ax[0][j].plot(it, [x["entropy"] for x in m], label=label, lw=1)
            ax[1][j].plot(it, [x["reward/mean"] for x in m], label=label, lw=0.8, alpha=0.8)
            if v:
                ax[2][j].plot([x["step"] for x in v], [x["val/reward"] for x in v], marker="o", label=label)
        ax[0][j].set(title=f"{style}: entropy of decision tokens", xlabel="RL iteration")
        ax[1][j].set(title=f"{style}: rollout reward (mean)", xlabel="RL iteration")
        ax[2][j].set(title=f"{style}: validation reward", xlabel="RL iteration")
        ax[0][j].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(png, dpi=100)


if __name__ == "__main__":
    main()
