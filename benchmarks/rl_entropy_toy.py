"""Entropy collapse on toy tasks with known optima: vanilla GRPO vs the entropy-balanced losses, same seeds,
lr and steps for every method of a setting.

    .venv/bin/python benchmarks/rl_entropy_toy.py [--seeds 5] [--settings A,B,C,D,E,F] [--steps N]

Two tasks (``rl.toy``), both trained by ``rl.trainer.GRPOTrainer`` with GRPO advantages:

* ``decoy`` (settings A, B; ``rl.toy.bandit_entropy_run``): a 32-armed bandit with ONE best arm (rewards
  1.0, 0.95, 0.90 on 3 near-optimal arms, the rest uniform in [0, 0.5)) and a decoy arm of reward 0.75 that
  the initial policy prefers (logit 3; p = 0.39 at the start). The optimum is a deterministic policy, so
  every method must end near zero entropy; the question is only whether it gets stuck on the decoy. Adam.
* ``multi`` (settings C, D, E, F; ``rl.toy.multi_optimum_entropy_run``): 32 arms of which 8 pay 1.0 (the rest
  uniform in [0, 0.5)), like a prompt with many correct answers, and an uneven prior over the optimal arms
  (logits 3 -> 0 evenly spaced, others 0: p_opt = 0.70, reward 0.767, entropy 2.76 at the start). Any
  policy on the optimal arms reaches the optimum 1.0; the most diverse one has entropy log 8 = 2.079. The
  policy-gradient step on softmax logits, dz_a ~ pi_a (A_a - E A), favours the optimal arms that are
  already likely (rich get richer), so vanilla PG is expected to concentrate on a few answers. C: one action per sample, SGD;
  D: sequences of T = 8 independent positions (the score is the mean arm reward of the 8 tokens, the
  advantage is broadcast over them, 1024 tokens per rollout), SGD; E: as C with Adam. F: as C but
  OFF-POLICY, the regime where PPO clipping binds (and BAPO was designed for): 8 epochs x 2 minibatches = 16
  SGD updates on each rollout, lr 1.0; the F table adds the clip fractions and BAPO's chosen bounds.

Options are the reference defaults (``rl/losses``) unless the row name says otherwise: Clip-Cov's token
ratio 2e-4 and KL-Cov's 2e-3 are sized for LLM batches of ~10^6 tokens and floor to 1 token per minibatch
here; the ``@0.02`` / ``@0.2`` rows raise them to 2% / 20% of a minibatch's tokens. Curves are exact (the
entropy of pi and E_pi[reward] after every rollout; for D averaged over the 8 positions), mean over seeds.
Writes ``benchmarks/results/rl_entropy_toy.md``, ``.png`` and ``.curves.json`` (the mean curves the plot is
drawn from). Settings not run this time keep their ``## Setting`` sections in the .md and their stored curves
in the plot; a ``## Reading`` section already in the .md (the hand-written interpretation) is kept.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rl.toy import bandit_entropy_run, multi_optimum_entropy_run

METHODS: dict[str, tuple[str, dict]] = {
    "vanilla": ("vanilla", {}),
    "clip_cov": ("clip_cov", {}),
    "kl_cov": ("kl_cov", {}),
    "steer": ("steer", {}),
    "bapo": ("bapo", {}),
    "clip_cov@0.02": ("clip_cov", {"clip_cov_ratio": 0.02}),
    "kl_cov@0.02": ("kl_cov", {"kl_cov_ratio": 0.02}),
    "clip_cov@0.2": ("clip_cov", {"clip_cov_ratio": 0.2}),
    "kl_cov@0.2": ("kl_cov", {"kl_cov_ratio": 0.2}),
}
_OLD = ["vanilla", "clip_cov", "kl_cov", "steer", "bapo", "clip_cov@0.2", "kl_cov@0.2"]
_DECOY = {
    "n_actions": 32,
    "n_good": 3,
    "gap": 0.05,
    "decoy_logit": 3.0,
    "decoy_reward": 0.75,
    "optimizer": "adam",
}
_MULTI = {"n_actions": 32, "n_optimal": 8, "prior_top": 3.0, "group_size": 8, "num_minibatches": 2}
SETTINGS: dict[str, dict] = {  # per setting the same for every method
    "A": {
        "task": "decoy",
        "steps": 200,
        "methods": _OLD,
        "cfg": {**_DECOY, "batch_size": 8, "group_size": 8, "num_minibatches": 4, "lr": 0.05},
    },
    "B": {
        "task": "decoy",
        "steps": 200,
        "methods": _OLD,
        "cfg": {**_DECOY, "batch_size": 4, "group_size": 8, "num_minibatches": 2, "lr": 0.1},
    },
    "C": {
        "task": "multi",
        "steps": 150,
        "methods": _OLD,  # 2% of a 32-token minibatch floors to 1 token, the reference count
        "cfg": {**_MULTI, "seq_len": 1, "batch_size": 8, "optimizer": "sgd", "lr": 0.5},
    },
    "D": {
        "task": "multi",
        "steps": 120,
        "methods": list(METHODS),
        "cfg": {**_MULTI, "seq_len": 8, "batch_size": 16, "optimizer": "sgd", "lr": 4.0},
    },
    "E": {
        "task": "multi",
        "steps": 100,
        "methods": _OLD,
        "cfg": {**_MULTI, "seq_len": 1, "batch_size": 8, "optimizer": "adam", "lr": 0.05},
    },
    "F": {  # off-policy: 16 updates per rollout, so the ratios leave [0.8, 1.2] and the clips bind
        "task": "multi",
        "steps": 60,
        "methods": _OLD,
        "cfg": {
            **_MULTI,
            "num_minibatches": 2,
            "ppo_epochs": 8,
            "seq_len": 1,
            "batch_size": 8,
            "optimizer": "sgd",
            "lr": 1.0,
        },
    },
}
MATCH_REWARD = 0.98  # "equal reward" point of the multi-optimum tables


def run_setting(setting: dict, seeds: list[int], steps: int) -> dict[str, list[dict[str, list[float]]]]:
    """{method: [curves per seed]} for one setting."""
    fn = bandit_entropy_run if setting["task"] == "decoy" else multi_optimum_entropy_run
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in setting["methods"]:
            loss, cfg = METHODS[name]
            out[name] = [
                fn(
                    loss,
                    seed=s,
                    run_dir=os.path.join(tmp, f"{name}-{s}"),
                    loss_cfg=cfg,
                    steps=steps,
                    **setting["cfg"],
                )
                for s in seeds
            ]
    return out


def _sd(x: list[float]) -> float:
    return statistics.stdev(x) if len(x) > 1 else 0.0


def _first(curve: list[float], level: float) -> int | None:
    return next((i for i, r in enumerate(curve) if r >= level), None)


def summarise_decoy(curves: list[dict[str, list[float]]]) -> dict[str, float]:
    """Final entropy / reward mean and std over seeds, mean entropy over the run, the entropy trough of the
    first 40 steps, steps to expected reward 0.99 (steps+1 if never), share of seeds ending with > 0.5
    probability on the near-optimal arms."""
    fe = [c["entropy"][-1] for c in curves]
    fr = [c["reward"][-1] for c in curves]
    return {
        "entropy": statistics.mean(fe),
        "entropy_std": _sd(fe),
        "reward": statistics.mean(fr),
        "reward_std": _sd(fr),
        "entropy_auc": statistics.mean(statistics.mean(c["entropy"]) for c in curves),
        "found_good": statistics.mean(float(c["p_good"][-1] > 0.5) for c in curves),
        "min_entropy_early": statistics.mean(min(c["entropy"][:41]) for c in curves),
        "steps_to_099": statistics.mean(
            (_first(c["reward"], 0.99) if _first(c["reward"], 0.99) is not None else len(c["reward"]))
            for c in curves
        ),
    }


def summarise_multi(curves: list[dict[str, list[float]]]) -> dict[str, float]:
    """Final entropy / reward / entropy on the optimal arms (mean, std over seeds); entropy at the first step
    with expected reward >= MATCH_REWARD (mean over the seeds that got there, and how many did); steps to
    that reward (steps+1 if never)."""
    fe = [c["entropy"][-1] for c in curves]
    fr = [c["reward"][-1] for c in curves]
    fo = [c["opt_entropy"][-1] for c in curves]
    hits = [_first(c["reward"], MATCH_REWARD) for c in curves]
    at = [c["entropy"][i] for c, i in zip(curves, hits) if i is not None]
    clip = {  # mean over training of the per-rollout means, then over seeds (nan if the loss reports none)
        k: statistics.mean(statistics.mean(c[k]) for c in curves) if k in curves[0] else math.nan
        for k in ("clipfrac_low", "clipfrac_high", "c_low", "c_high")
    }
    return {
        **clip,
        "entropy": statistics.mean(fe),
        "entropy_std": _sd(fe),
        "reward": statistics.mean(fr),
        "reward_std": _sd(fr),
        "opt_entropy": statistics.mean(fo),
        "opt_entropy_std": _sd(fo),
        "entropy_at_match": statistics.mean(at) if at else math.nan,
        "n_match": len(at),
        "steps_to_match": statistics.mean(
            i if i is not None else len(c["reward"]) for c, i in zip(curves, hits)
        ),
    }


def paired_final_gain(
    curves: list[dict[str, list[float]]], base: list[dict[str, list[float]]]
) -> tuple[float, float, int]:
    """Final entropy minus the baseline's on the same seed: (mean, std over seeds, number of seeds > 0)."""
    d = [c["entropy"][-1] - b["entropy"][-1] for c, b in zip(curves, base, strict=True)]
    return statistics.mean(d), _sd(d), sum(x > 0 for x in d)


def _doc_text() -> str:
    """The task description of the module doc as Markdown (one line per paragraph / bullet)."""
    text = __doc__.split("\n\n", 2)[2].split("Writes ``")[0]
    out = []
    for para in text.strip().split("\n\n"):
        items = [" ".join(b.split()) for b in ("\n" + para).split("\n* ")]
        out.append("\n".join([items[0]] + ["* " + b for b in items[1:]]).strip())
    return "\n\n".join(out)


def _mean_curve(curves, key):
    return [statistics.mean(vals) for vals in zip(*(c[key] for c in curves))]


def mean_curves(results: dict) -> dict[str, dict[str, list[float]]]:
    """{method: {"entropy": mean curve, "reward": mean curve}} over seeds (what the plot draws)."""
    return {
        name: {k: [round(v, 6) for v in _mean_curve(curves, k)] for k in ("entropy", "reward")}
        for name, curves in results.items()
    }


def _plot(by_setting: dict[str, dict[str, dict[str, list[float]]]], path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, grid = plt.subplots(len(by_setting), 3, figsize=(16, 4 * len(by_setting)), squeeze=False)
    for axes, (setting, results) in zip(grid, by_setting.items()):
        for name, mc in results.items():
            style = "-" if "@" not in name else ("--" if name.endswith("@0.2") else ":")
            h, r = mc["entropy"], mc["reward"]
            line = axes[0].plot(h, style, label=name)[0]
            axes[1].plot(r, style, label=name, color=line.get_color())
            axes[2].plot(r, h, style, label=name, color=line.get_color())
        task = SETTINGS[setting]["task"]
        axes[0].set(
            xlabel="rollout step", ylabel="policy entropy (nats)", title=f"{setting} ({task}): entropy"
        )
        axes[1].set(
            xlabel="rollout step", ylabel="expected reward", title=f"{setting} ({task}): expected reward"
        )
        axes[2].set(
            xlabel="expected reward",
            ylabel="policy entropy (nats)",
            title=f"{setting}: entropy vs reward (mean curves)",
        )
        axes[1].axhline(1.0, color="grey", lw=0.8, ls=":")
        if task == "multi":
            axes[0].axhline(math.log(8), color="grey", lw=0.8, ls=":")
            axes[2].set_xlim(0.9, 1.0)
        axes[1].set_ylim(max(0.0, axes[1].get_ylim()[0]), 1.01)
        axes[1].legend(loc="lower right", fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def _old_sections(text: str) -> dict[str, str]:
    """{setting key: its '## Setting X ...' section text (up to the next '## ' or 'Curves:' line)}."""
    out = {}
    for chunk in text.split("\n## Setting ")[1:]:
        body = chunk.split("\n## ")[0].split("\nCurves: ")[0].rstrip()
        out[chunk.split(" ", 1)[0]] = "## Setting " + body
    return out


def _table(results: dict, task: str, *, off_policy: bool = False) -> list[str]:
    if task == "decoy":
        rows = [
            "| method | final entropy (nats) | final reward | mean H over run | min H (<=40) | steps to 0.99 | found |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
        ]
        for name, curves in results.items():
            s = summarise_decoy(curves)
            rows.append(
                f"| {name} | {s['entropy']:.3f} ± {s['entropy_std']:.3f} | {s['reward']:.3f} ± {s['reward_std']:.3f} "
                f"| {s['entropy_auc']:.3f} | {s['min_entropy_early']:.3f} | {s['steps_to_099']:.1f} "
                f"| {s['found_good']:.0%} |"
            )
        return rows
    rows = [
        (
            f"| method | final entropy (nats) | final reward | final H on optimal arms | H at reward >= {MATCH_REWARD} "
            f"(seeds) | steps to {MATCH_REWARD} |"
        ),
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    if off_policy:
        rows[0] += " final H - vanilla (paired; seeds >) | clipfrac low / high | BAPO c_low / c_high |"
        rows[1] += " ---: | ---: | ---: |"
    for name, curves in results.items():
        s = summarise_multi(curves)
        row = (
            f"| {name} | {s['entropy']:.3f} ± {s['entropy_std']:.3f} | {s['reward']:.4f} ± {s['reward_std']:.4f} "
            f"| {s['opt_entropy']:.3f} ± {s['opt_entropy_std']:.3f} | {s['entropy_at_match']:.3f} "
            f"({s['n_match']}/{len(curves)}) | {s['steps_to_match']:.1f} |"
        )
        if off_policy:
            gain, gain_sd, n_up = paired_final_gain(curves, results["vanilla"])
            bounds = "–" if math.isnan(s["c_low"]) else f"{s['c_low']:.3f} / {s['c_high']:.3f}"
            row += (
                f" {gain:+.3f} ± {gain_sd:.3f} ({n_up}/{len(curves)}) "
                f"| {s['clipfrac_low']:.4f} / {s['clipfrac_high']:.4f} | {bounds} |"
            )
        rows.append(row)
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--settings", default=",".join(SETTINGS), help="comma-separated keys of SETTINGS")
    p.add_argument("--steps", type=int, default=None, help="override every setting's rollout steps")
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "rl_entropy_toy.md"))
    args = p.parse_args()
    names = args.settings.split(",")
    unknown = [k for k in names if k not in SETTINGS]
    if unknown:
        p.error(f"unknown settings {unknown}; choose from {list(SETTINGS)}")
    t0, load = time.perf_counter(), os.getloadavg()[0]
    seeds = list(range(args.seeds))
    by_setting, steps_of, secs = {}, {}, {}
    for k in names:
        steps_of[k] = args.steps or SETTINGS[k]["steps"]
        t1 = time.perf_counter()
        by_setting[k] = run_setting(SETTINGS[k], seeds, steps_of[k])
        secs[k] = time.perf_counter() - t1
        print(f"setting {k}: {secs[k]:.0f} s", flush=True)
    out = Path(args.out)
    png = out.with_suffix(".png")
    png.parent.mkdir(parents=True, exist_ok=True)
    cache = out.with_suffix(".curves.json")
    stored = json.loads(cache.read_text()) if cache.exists() else {}
    stored.update({k: mean_curves(v) for k, v in by_setting.items()})
    stored = {k: stored[k] for k in SETTINGS if k in stored}
    cache.write_text(json.dumps(stored) + "\n")
    _plot(stored, png)
    old_text = out.read_text() if out.exists() else ""
    kept = {k: v for k, v in _old_sections(old_text).items() if k in SETTINGS and k not in by_setting}
    cmd = f".venv/bin/python benchmarks/rl_entropy_toy.py --seeds {args.seeds} --settings {args.settings}"
    if args.steps:
        cmd += f" --steps {args.steps}"
    lines = [
        "# Entropy collapse on toy tasks (rl.trainer.GRPOTrainer)",
        "",
        f"Command: `{cmd}` ({time.perf_counter() - t0:.0f} s on 2 shared CPU cores, load {load:.1f} at the start).",
        *(
            [
                f"Settings {', '.join(kept)} are kept from an earlier run: "
                + old_text.split("Command: ", 1)[1].split("\n", 1)[0].split(". Settings ")[0].rstrip(".")
                + "."
            ]
            if kept and "Command: " in old_text
            else []
        ),
        "",
        _doc_text(),
        "",
        (
            f"Seeds 0..{args.seeds - 1}; mean ± std over seeds. Decoy tables: `mean H` = entropy averaged over the run, "
            "`min H (<=40)` = the entropy trough of the first 40 steps (the collapse onto the decoy), `steps to 0.99` = "
            "first step with expected reward >= 0.99 (steps+1 if never), `found` = share of seeds ending with > 50% "
            "probability on the near-optimal arms. Multi-optimum tables: `H on optimal arms` = entropy of pi "
            f"restricted to the 8 optimal arms and renormalised (log 8 = 2.079 is the most diverse optimum); `H at reward "
            f">= {MATCH_REWARD}` = entropy at the first step whose expected reward reaches {MATCH_REWARD} (the equal-reward "
            "comparison; mean over the seeds that got there, count in brackets); `steps to` = that step (steps+1 if never)."
        ),
    ]
    for k, st in SETTINGS.items():
        if k in kept:
            lines += ["", kept[k]]
        if k not in by_setting:
            continue
        results = by_setting[k]
        first = next(iter(results.values()))[0]
        lines += [
            "",
            f"## Setting {k} ({st['task']}, {steps_of[k]} rollout steps, {secs[k]:.0f} s)",
            "",
            f"`{st['cfg']}`; start: entropy {first['entropy'][0]:.3f} nats, expected reward {first['reward'][0]:.3f}.",
            "",
            *_table(results, st["task"], off_policy=st["cfg"].get("ppo_epochs", 1) > 1),
        ]
    lines += [
        "",
        f"Curves: `{png.name}` (entropy and expected reward vs step, and entropy vs reward; mean over seeds).",
        "",
    ]
    reading = ""
    if "\n## Reading" in old_text:
        reading = "## Reading" + old_text.split("\n## Reading", 1)[1]
    out.write_text("\n".join(lines) + ("\n" + reading if reading else ""))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
