"""Summarize router training runs: entropy over RL training and validation Sharpe per policy loss.

    PYTHONPATH=. python benchmarks/router_training.py --sft runs/router-sft \\
        --rl vanilla=runs/router-rl-vanilla --rl clip_cov=runs/router-rl-clip_cov --rl kl_cov=runs/router-rl-kl_cov

Reads each run's ``metrics.jsonl`` (one line per optimizer step; the routing policy's entropy) and
``val.jsonl`` (validation every ``eval_every`` rollouts: Sharpe of the routed position net of costs on the
held-out later 20% of every training series, regime accuracy, regime-expert match), writes
``benchmarks/results/router_training.md`` and ``router_training.png``.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path


def _lines(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()]


def _row(name: str, run: Path) -> dict:
    val = _lines(run / "val.jsonl")
    metrics = _lines(run / "metrics.jsonl") if (run / "metrics.jsonl").exists() else []
    last = val[-1]
    train = json.loads((run / "train.json").read_text())
    return {"name": name, "steps": train["steps"], "lr": train["lr"],
            "loss": train.get("loss") if train.get("stage") == "rl" else None,
            "entropy_first": metrics[0].get("entropy") if metrics else None,
            "entropy_last": metrics[-1].get("entropy") if metrics else None,
            "sharpe": last["sharpe/router"], "sharpe_equal": last["sharpe/equal"],
            "sharpe_best": max(v["sharpe/router"] for v in val),
            "acc_synth": last.get("regime/acc_synth"), "match": last.get("route/match_synth"),
            "val_entropy": last.get("route/entropy"), "val": val, "metrics": metrics}


def _plot(rows: list[dict], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4))
    for r in rows:
        if r["loss"] is None:
            continue
        m = r["metrics"]
        a.plot([x["rollout"] for x in m], [x["entropy"] for x in m], label=r["name"], lw=1)
        v = r["val"]
        b.plot([x["step"] for x in v], [x["sharpe/router"] for x in v], marker="o", label=r["name"])
    rl = next((r for r in rows if r["loss"] is not None), None)
    if rl is not None:  # the RL runs' step 0 is the SFT router on the RL validation set
        b.axhline(rl["val"][0]["sharpe/router"], color="k", ls="--", lw=1, label="SFT router (step 0)")
        b.axhline(rl["val"][0]["sharpe/equal"], color="gray", ls=":", lw=1, label="equal weight")
    a.set(title="Routing policy entropy (nats; max ln 4 = 1.386)", xlabel="rollout", ylabel="entropy")
    b.set(title="Validation Sharpe of the routed position (10 bps)", xlabel="rollout", ylabel="Sharpe")
    a.legend(fontsize=8)
    b.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=110)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sft", type=Path, required=True)
    ap.add_argument("--rl", action="append", default=[], help="name=run_folder (repeatable)")
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    ap.add_argument("--command", default="", help="the commands that produced the runs (written to the file)")
    args = ap.parse_args()
    rows = [_row("SFT", args.sft)]
    for item in args.rl:
        name, _, path = item.partition("=")
        rows.append(_row(name, Path(path)))
    args.out.mkdir(parents=True, exist_ok=True)
    _plot(rows, args.out / "router_training.png")
    fmt = lambda v, f="{:.3f}": "n/a" if v is None else f.format(v)
    md = ["# Router training: SFT, then GRPO with vanilla, clip_cov and kl_cov", "",
          ("Validation = the later 20% of every training series, purged by H = 20 bars (SFT: synthetic seeds 1-32 "
           "and S&P 500, NASDAQ, MSFT up to 2014; RL: seeds 1-8 and the same real series, so its step 0 is the SFT "
           "router on that smaller set). Sharpe of the routed position (soft weights, no constraints) net of "
           "10 bps, averaged over the series. Entropy: of the routing distribution over the 4 experts (max ln 4 = "
           "1.386). Each run keeps its best validation evaluation (`keep_best`)."), ""]
    if args.command:
        md += ["Commands:", "", "```bash", args.command.strip(), "```", ""]
    md += [("| run | lr | train entropy (first -> last step) | val entropy (last) | val Sharpe (start / best @ step / "
            "last) | equal weight | regime acc synth (last) | regime-expert match (last) |"),
           "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        best = max(r["val"], key=lambda v: v["sharpe/router"])
        md.append(f"| {r['name']} | {fmt(r['lr'], '{:g}')} | {fmt(r['entropy_first'])} -> {fmt(r['entropy_last'])} | "
                  f"{fmt(r['val_entropy'])} | {fmt(r['val'][0]['sharpe/router'])} / {fmt(best['sharpe/router'])} @ "
                  f"{best['step']} / {fmt(r['sharpe'])} | {fmt(r['sharpe_equal'])} | "
                  f"{fmt(r['acc_synth'], '{:.1%}')} | {fmt(r['match'], '{:.1%}')} |")
    md += ["", "Validation curve per run (step: Sharpe / entropy / match):", ""]
    for r in rows:
        md.append(f"* {r['name']}: " + "; ".join(f"{v['step']}: {v['sharpe/router']:.3f} / {v['route/entropy']:.3f} / "
                                                 f"{v.get('route/match_synth') or 0:.1%}" for v in r["val"]))
    md += ["", "![entropy and validation Sharpe](router_training.png)", ""]
    (args.out / "router_training.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    main()
