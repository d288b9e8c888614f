"""Evidence for the router (issue #12): out-of-sample regime accuracy and regime-expert agreement on synthetic
regime data, and held-out backtests against buy-and-hold, each expert and the equal-weight mix (10 bps).

    PYTHONPATH=. python benchmarks/router_evidence.py [--checkpoint default] [--out benchmarks/results]
    PYTHONPATH=. python benchmarks/router_evidence.py --checkpoint rules   # -> router_evidence_rules.md

Synthetic data (exact regime labels, ``markets.synthetic.regimes``):
* "held-out periods": the last 20% of each training series (seeds 1-8, the validation part that training never
  fits on, purged by H bars);
* "unseen seeds": seeds 101-108, 2,520 bars each, every bar from 264 on (the router's warm-up).
A bar counts as matched when its largest routing weight is the expert that fits its true regime: the router's
own expert with the highest mean normalized 20-bar reward in that regime over the synthetic training seeds
(table "Which expert fits which regime"; for the ``rules`` set this is ``router.experts.REGIME_EXPERT``: up ->
positioning, down -> trend, sideways -> reversal, breakout -> breakout).

Held-out backtests: the rows after the training data (real: 2015-01-01 on; synthetic: unseen seeds) through
``backtest.run_strategy`` with 10 bps fees, next-open execution.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

# this folder holds router.py: drop it from the import path so that `import router` is the package
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(_HERE.parent))
import pandas as pd

SYNTH_TRAIN = [f"synth:regimes?seed={s}&n=2520" for s in range(1, 9)]
SYNTH_UNSEEN = [f"synth:regimes?seed={s}&n=2520" for s in range(101, 109)]
REAL = ["sample:SP500", "sample:NASDAQ", "sample:MSFT"]


def _routing(spec: str, checkpoint: str, rows: np.ndarray):
    """(weights (R, K), regime probs (R, P), true regime names (R,), labels, regimes) of one synthetic spec."""
    import markets
    from backtest.decisions import build
    from router.data import _synthetic_labels

    bars = markets.load(spec)
    dm = build("drex", {"checkpoint": checkpoint})
    ohlcv = bars[["open", "high", "low", "close", "volume"]].to_numpy(np.float64)
    w, p = dm.route(ohlcv, rows)
    truth = _synthetic_labels(spec, bars.index)[rows]
    from router.experts import exposures

    h = exposures(bars, dm.experts).weights[rows, 0, :]  # (R, K)
    return w, p, truth, dm, h


def _experts(checkpoint: str):
    """The expert set the router was trained on (its checkpoint's config)."""
    from router.experts import parse_experts
    from router.strategy import resolve_router

    cfg = json.loads((resolve_router(checkpoint) / "config.json").read_text())
    return parse_experts(list(cfg["experts"]))


def synthetic_evidence(checkpoint: str, regime_expert: dict[str, str]) -> dict:
    from router.data import SYNTH_REGIME_MAP, time_split
    from router.experts import label

    out = {}
    for name, specs, pick in (("held_out_periods", SYNTH_TRAIN, "val"), ("unseen_seeds", SYNTH_UNSEEN, "all")):
        W, P, Y, E = [], [], [], []
        for spec in specs:
            rows = time_split(2520, 20, 0.2)[1] if pick == "val" else np.arange(264, 2520)
            w, p, truth, dm, h = _routing(spec, checkpoint, rows)
            W.append(w), P.append(p), Y.append(truth), E.append(h)
        w, p, truth, h = np.concatenate(W), np.concatenate(P), np.concatenate(Y), np.concatenate(E)
        regimes = list(dm.regimes)
        labels = [label(s) for s in dm.experts]
        y = np.array([regimes.index(SYNTH_REGIME_MAP[t]) for t in truth])
        want = np.array([labels.index(regime_expert[regimes[i]]) for i in y])
        pred = p.argmax(1)
        conf = pd.crosstab(pd.Series(np.array(regimes)[y], name="true"),
                           pd.Series(np.array(regimes)[pred], name="predicted")).reindex(index=regimes,
                                                                                           columns=regimes, fill_value=0)
        mean_w = pd.DataFrame(w, columns=labels).groupby(np.array(regimes)[y]).mean().reindex(regimes)
        out[name] = {
            "bars": len(y),
            "regime_accuracy": float((pred == y).mean()),
            "regime_accuracy_by_regime": {r: float((pred[y == i] == i).mean()) for i, r in enumerate(regimes)},
            "matched_expert_share": float((w.argmax(1) == want).mean()),
            # diagnostic: the top-weighted expert holds the same exposure as the regime's expert (|diff| <= 0.05)
            "top_expert_same_exposure_share": float((np.abs(h[np.arange(len(y)), w.argmax(1)]
                                                            - h[np.arange(len(y)), want]) <= 0.05).mean()),
            "matched_by_regime": {r: float((w.argmax(1)[y == i] == want[y == i]).mean())
                                  for i, r in enumerate(regimes)},
            "confusion": conf.to_dict(orient="index"),
            "mean_weights_by_true_regime": mean_w.round(4).to_dict(orient="index"),
        }
    return out


def expert_rewards_by_regime(experts, horizon: int = 20, fees: float = 0.001) -> dict:
    """Mean normalized H-bar reward z = r / (sigma sqrt(H)) of each expert by true regime, over the synthetic
    training seeds (what the regime -> expert map is read from)."""
    from router.data import SYNTH_REGIME_MAP, build_series, normalized_rewards, realized_sigma
    from router.experts import label
    from router.model import REGIMES

    frames = []
    for spec in SYNTH_TRAIN:
        (s,) = build_series(spec, experts, regimes=REGIMES, horizon=horizon, fees=fees)
        ok = s.trainable(horizon)
        z = normalized_rewards(s.rewards[ok], realized_sigma(s.ohlcv)[ok], horizon)
        f = pd.DataFrame(z, columns=[label(e) for e in experts])
        f["regime"] = [SYNTH_REGIME_MAP[t] for t in s.true_regime[ok]]
        frames.append(f)
    return pd.concat(frames).groupby("regime").mean().reindex(list(REGIMES)).round(4).to_dict(orient="index")


def backtests(checkpoint: str, experts, fees: float = 0.001) -> dict:
    import markets
    from backtest.engine import run
    from backtest.runner import run_strategy
    from router.experts import exposures, label

    rows = {}
    for spec in REAL + SYNTH_UNSEEN[:4]:
        synth = spec.startswith("synth:")
        bars = markets.load(spec)
        start = 264 if synth else int(bars.index.searchsorted(pd.Timestamp("2015-01-01", tz="UTC")))
        table = {}
        runs = [("buy_and_hold", "buy_and_hold", {})]
        runs += [(label(s), s.name, s.params) for s in experts]
        runs += [("drex", "drex", {"checkpoint": checkpoint})]
        for name, strategy, params in runs:
            res = run_strategy(bars, strategy, params, start=start, fees=fees).result
            table[name] = _metrics(res)
        ex = exposures(bars, experts, start=start).weights[:, 0, :]  # (R, K)
        equal = pd.Series(ex.mean(axis=1), index=bars.index[start:])
        table["equal_weight"] = _metrics(run(bars.iloc[start:], equal, fees=fees))
        rows[f"{spec} from {bars.index[start]:%Y-%m-%d}"] = table
    return rows


def _metrics(res) -> dict:
    return {k: float(res.metrics[k]) for k in ("total_return", "sharpe", "max_drawdown", "turnover_annual")}


def _md(ev: dict, bt: dict, checkpoint: str, er: dict | None = None) -> str:
    lines = [f"# Router evidence (checkpoint `{checkpoint}`)", "",
             (f"Produced by `PYTHONPATH=. python benchmarks/router_evidence.py --checkpoint {checkpoint}`. Synthetic "
             "regime data with exact labels;"),
             "goal: regime accuracy >= 80% and the largest weight on the regime's expert on >= 60% of bars.", "",
             "| synthetic set | bars | regime accuracy | matched-expert share | top expert trades like the matched one |",
             "|---|---|---|---|---|"]
    for name, v in ev.items():
        lines.append(f"| {name.replace('_', ' ')} | {v['bars']} | {v['regime_accuracy']:.1%} | "
                     f"{v['matched_expert_share']:.1%} | {v['top_expert_same_exposure_share']:.1%} |")
    for name, v in ev.items():
        lines += ["", f"**{name.replace('_', ' ')}**: accuracy by true regime "
                  + ", ".join(f"{r} {a:.1%}" for r, a in v["regime_accuracy_by_regime"].items())
                  + "; matched share by regime "
                  + ", ".join(f"{r} {a:.1%}" for r, a in v["matched_by_regime"].items()), "",
                  "mean routing weight by true regime:", "",
                  "| regime | " + " | ".join(next(iter(v["mean_weights_by_true_regime"].values())).keys()) + " |",
                  "|---|" + "---|" * len(next(iter(v["mean_weights_by_true_regime"].values())))]
        for r, ws in v["mean_weights_by_true_regime"].items():
            lines.append(f"| {r} | " + " | ".join(f"{x:.3f}" for x in ws.values()) + " |")
    if er:
        experts = list(next(iter(er.values())))
        lines += ["", "## Which expert fits which regime (the regime -> expert map)", "",
                  ("Mean normalized reward z = r / (sigma sqrt(H)) of following each of the router's experts for "
                  "H = 20 bars after 10 bps costs, by true regime, synthetic seeds 1-8; the largest per row is the "
                  "regime's expert:"), "",
                  "| regime | " + " | ".join(experts) + " |", "|---|" + "---|" * len(experts)]
        for r, v in er.items():
            lines.append(f"| {r} | " + " | ".join(f"{v[e]:+.3f}" for e in experts) + " |")
    lines += ["", "## Held-out backtests (10 bps fees, next-open execution; not walk-forward)", "",
              ("Real data after the training cut (2015-01-01 on) and unseen synthetic seeds; `equal_weight` holds the "
              "mean of the four experts' weights."), ""]
    for where, table in bt.items():
        lines += [f"**{where}**", "", "| strategy | total return | Sharpe | max drawdown | annual turnover |",
                  "|---|---|---|---|---|"]
        for name, m in table.items():
            lines.append(f"| {name} | {m['total_return']:.1%} | {m['sharpe']:.2f} | {m['max_drawdown']:.1%} | "
                         f"{m['turnover_annual']:.1f} |")
        lines.append("")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--checkpoint", default="default")
    ap.add_argument("--out", default="benchmarks/results")
    args = ap.parse_args()
    import router.plugin  # noqa: F401

    experts = _experts(args.checkpoint)
    er = expert_rewards_by_regime(experts)
    regime_expert = {r: max(z, key=z.get) for r, z in er.items()}
    ev = synthetic_evidence(args.checkpoint, regime_expert)
    bt = backtests(args.checkpoint, experts)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = "router_evidence" if args.checkpoint == "default" else f"router_evidence_{Path(args.checkpoint).name}"
    (out / f"{stem}.json").write_text(json.dumps({"synthetic": ev, "expert_rewards_by_regime": er,
                                                  "regime_expert": regime_expert, "backtests": bt}, indent=2) + "\n")
    text = _md(ev, bt, args.checkpoint, er)
    (out / f"{stem}.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
