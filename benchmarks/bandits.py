"""Contextual bandits (rl.bandits) against vowpalwabbit and mabwiser, the oscillation effect, OPE coverage.

    .venv/bin/python benchmarks/bandits.py [--sections vw,mabwiser,oscillation,coverage] [--seeds 3]

Sections (each rewrites its own ``## `` block of ``benchmarks/results/bandits.md``; the others are kept):

* ``vw`` -- DREX's :class:`~rl.bandits.SquareCB` against vowpalwabbit's ``--cb_explore_adf --squarecb``
  (same gamma schedule 10 * t^0.5) on the same synthetic problems: the same contexts, action sets, action
  features and reward noise (a pre-drawn (N, K) reward table, so both learners see the same reward for the
  same choice). VW learns after every round (linear model, ``-q sa``: every context feature crossed with
  the action's id and features, the best linear feature map for these problems); DREX acts on batches of
  ``--batch`` rounds and retrains its oracle after each batch on everything logged (delayed feedback).
  ADF labels are ``0:cost:prob`` with cost = -reward (without the leading ``0:`` the pmf stays uniform).
* ``mabwiser`` -- DREX's :class:`~rl.bandits.LinUCB` against ``mabwiser``'s ``LearningPolicy.LinUCB`` with
  the same alpha and l2_lambda, fed the same batches: the share of identical decisions, average rewards,
  the largest difference of the upper confidence bounds, rounds per second.
* ``oscillation`` -- successive SquareCB generations, each retrained only on the previous generation's logs
  (Adyen's short-term memory), on a Bernoulli problem with a high base rate; per-generation value for no
  mitigation, an exploration floor, mixing in the previous policy, importance-weighted oracle training,
  and long memory (all logs). Writes ``bandits_oscillation.png`` and ``.json`` (the plotted means).
* ``coverage`` -- bootstrap-interval coverage of DM/IPS/SNIPS/DR/switch-DR with a known truth
  (:func:`rl.bandits.coverage_experiment`).

vowpalwabbit and mabwiser are benchmark-only dependencies: nothing else in DREX imports them.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch

from rl.bandits import (
    DecisionLog,
    JointModel,
    LinUCB,
    MLPRegressor,
    PerActionModel,
    SquareCB,
    SyntheticProblem,
    coverage_experiment,
    generation_curves,
    logged_data,
    run_generations,
    sample_actions,
)

RESULTS = ROOT / "benchmarks" / "results"
SECTIONS = ("vw", "mabwiser", "oscillation", "coverage")
TITLES = {
    "vw": "SquareCB: DREX vs vowpalwabbit",
    "mabwiser": "LinUCB: DREX vs mabwiser",
    "oscillation": "The oscillation effect and its mitigations",
    "coverage": "OPE interval coverage",
}
VW_PROBLEMS = {
    "linear": {"kind": "linear", "action_feature_dim": 2, "p_available": 0.8, "noise": 0.5},
    "nonlinear": {"kind": "nonlinear", "action_feature_dim": 2, "p_available": 0.8, "noise": 0.5},
}


# ---- vowpalwabbit ------------------------------------------------------------------------------------------


def _vw_example(x: np.ndarray, af: np.ndarray, actions: np.ndarray, label: tuple[int, float, float] | None):
    """ADF lines: the shared context, then one line per available action (its id and features)."""
    lines = ["shared |s " + " ".join(f"x{j}:{v:.6f}" for j, v in enumerate(x))]
    for pos, a in enumerate(actions):
        feats = " ".join(f"f{j}:{v:.6f}" for j, v in enumerate(af[a]))
        head = f"0:{label[1]:.6f}:{label[2]:.6f} " if label is not None and label[0] == pos else ""
        lines.append(f"{head}|a id{a} {feats}")
    return lines


def run_vw(problem: SyntheticProblem, n_rounds: int, seed: int) -> dict:
    import vowpalwabbit

    rounds, table = _rounds(problem, n_rounds, seed)
    vw = vowpalwabbit.Workspace(f"--cb_explore_adf --squarecb -q sa --quiet --random_seed {seed}")
    rng = np.random.default_rng([seed, 99])
    rewards, values = np.empty(n_rounds), np.empty(n_rounds)
    t0 = time.perf_counter()
    for i in range(n_rounds):
        acts = np.flatnonzero(rounds.available[i])
        pmf = np.asarray(vw.predict(_vw_example(rounds.contexts[i], rounds.action_features[i], acts, None)))
        pmf = pmf / pmf.sum()
        pos = int(sample_actions(pmf[None, :], rng)[0])
        a = acts[pos]
        rewards[i] = table[i, a]
        values[i] = float(pmf @ rounds.mean_rewards[i, acts])
        label = (pos, -rewards[i], pmf[pos])
        vw.learn(_vw_example(rounds.contexts[i], rounds.action_features[i], acts, label))
    secs = time.perf_counter() - t0
    vw.finish()
    return _summary(rewards, values, rounds, secs)


def _rounds(problem: SyntheticProblem, n_rounds: int, seed: int):
    """The shared round sequence and (N, K) reward table of a seed."""
    rounds = problem.sample(n_rounds, np.random.default_rng([seed, 1]))
    noise = np.random.default_rng([seed, 2]).standard_normal(rounds.mean_rewards.shape)
    return rounds, rounds.mean_rewards + problem.noise * noise


def _summary(rewards, values, rounds, secs) -> dict:
    best = np.nanmax(rounds.mean_rewards, axis=1)
    n = len(rewards)
    return {
        "reward": float(rewards.mean()),
        "value": float(values.mean()),
        "value_last_half": float(values[n // 2 :].mean()),
        "optimal": float(best.mean()),
        "seconds": secs,
        "rounds_per_s": n / secs,
    }


def _mlp_oracle(seed: int) -> JointModel:
    return JointModel(
        MLPRegressor((64, 64), epochs=3, min_steps=100, max_steps=300, warm_start=True, seed=seed)
    )


def _batches(n_rounds: int, first: int, batch: int) -> list[slice]:
    """Retraining points: batches of ``first``, 2 * first, ... rounds, doubling up to ``batch``."""
    out, s, size = [], 0, min(first, batch)
    while s < n_rounds:
        out.append(slice(s, min(s + size, n_rounds)))
        s += size
        size = min(2 * size, batch)
    return out


def _oracle(name: str, seed: int):
    if name == "mlp":
        return _mlp_oracle(seed)
    from sklearn.linear_model import Ridge

    if name == "ridge_q":  # one ridge on vowpalwabbit's -q sa feature map
        return JointModel(Ridge(alpha=1.0), interactions=True)
    return PerActionModel(Ridge(alpha=1.0))  # "ridge": one ridge per action on [x, f_a]


def run_drex_squarecb(
    problem: SyntheticProblem, n_rounds: int, seed: int, *, batch: int, first_batch: int, oracle: str
) -> dict:
    rounds, table = _rounds(problem, n_rounds, seed)
    policy = SquareCB(problem.n_actions, _oracle(oracle, seed), seed=seed)
    log = DecisionLog(problem.n_actions, problem.context_dim, action_feature_dim=problem.action_feature_dim)
    rewards, values = np.empty(n_rounds), np.empty(n_rounds)
    t0 = time.perf_counter()
    for sl in _batches(n_rounds, first_batch, batch):
        kw = {"available": rounds.available[sl], "action_features": rounds.action_features[sl]}
        d = policy.act(rounds.contexts[sl], **kw)
        ids = log.record(rounds.contexts[sl], d, **kw)
        r = table[sl][np.arange(len(ids)), d.actions]
        log.add_rewards(ids, r)
        rewards[sl] = r
        values[sl] = np.nansum(d.probabilities * rounds.mean_rewards[sl], axis=1)
        policy.fit(log.data())
    return _summary(rewards, values, rounds, time.perf_counter() - t0)


def section_vw(args) -> list[str]:
    rows = [
        (
            "| problem | learner | avg reward | avg expected reward (all rounds) | last half | optimal "
            "| rounds/s |"
        ),
        "| --- | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    first, b = args.first_batch, args.batch
    learners = {  # label -> (oracle, first batch) for DREX; None for vowpalwabbit
        "vowpalwabbit --cb_explore_adf --squarecb -q sa (online, linear)": None,
        f"DREX SquareCB, MLP oracle (default), batches {first} doubling to {b}": ("mlp", first),
        f"DREX SquareCB, ridge on the -q sa feature map, batches {first} doubling to {b}": ("ridge_q", first),
        f"DREX SquareCB, MLP oracle, batches of {b} from the start": ("mlp", b),
        f"DREX SquareCB, per-action ridge on [x, f_a] (misspecified), batches {first} doubling to {b}": (
            "ridge",
            first,
        ),
    }
    verdict = []
    for pname, cfg in VW_PROBLEMS.items():
        problem = SyntheticProblem(n_actions=5, context_dim=5, seed=0, **cfg)
        res = {}
        for lname, spec in learners.items():
            if spec is None:
                runs = [run_vw(problem, args.rounds, s) for s in range(args.seeds)]
            else:
                runs = [
                    run_drex_squarecb(problem, args.rounds, s, batch=b, first_batch=spec[1], oracle=spec[0])
                    for s in range(args.seeds)
                ]
            res[lname] = runs
            m = {k: float(np.mean([r[k] for r in runs])) for k in runs[0]}
            sd = {k: float(np.std([r[k] for r in runs])) for k in runs[0]}
            rows.append(
                f"| {pname} | {lname} | {m['reward']:.4f} ± {sd['reward']:.4f} "
                f"| {m['value']:.4f} ± {sd['value']:.4f} | {m['value_last_half']:.4f} | {m['optimal']:.4f} "
                f"| {m['rounds_per_s']:,.0f} |"
            )
            print(rows[-1], flush=True)
        vw = res[next(iter(learners))]
        for lname in list(learners)[1:3]:
            diff = [d["value"] - v["value"] for d, v in zip(res[lname], vw, strict=True)]
            verdict.append(
                f"* {pname}, {lname.split(',')[1].strip()} minus vowpalwabbit (expected reward per round, "
                f"paired by seed): {np.mean(diff):+.4f} (seeds {', '.join(f'{x:+.4f}' for x in diff)})."
            )
    return [
        (
            f"{args.rounds:,} rounds per run, seeds 0..{args.seeds - 1} (mean ± std over seeds); K = 5 "
            "actions, D = 5 context features, F = 2 per-round action features, each action available with "
            "probability 0.8, Gaussian reward noise sd 0.5. Every learner uses gamma_t = 10 t^0.5. `avg "
            "expected reward` = mean over rounds of sum_a p(a) mu(a) of the behaviour policy (the realised "
            "reward without the noise); `last half` = the same over the second half. DREX acts on a batch, "
            "then gets the batch's rewards and retrains on everything logged; vowpalwabbit learns after "
            "every round."
        ),
        "",
        *rows,
        "",
        *verdict,
    ]


# ---- mabwiser ----------------------------------------------------------------------------------------------


def section_mabwiser(args) -> list[str]:
    from mabwiser.mab import MAB, LearningPolicy

    problem = SyntheticProblem(n_actions=5, context_dim=5, kind="linear", noise=0.5, seed=0)
    rows = [
        (
            "| seed | identical decisions | DREX avg reward | mabwiser avg reward | max abs UCB difference | "
            "DREX rounds/s | mabwiser rounds/s |"
        ),
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    agree_all = []
    for seed in range(args.seeds):
        rounds, table = _rounds(problem, args.rounds, seed)
        x, n, b = rounds.contexts, args.rounds, args.batch
        first = np.random.default_rng([seed, 3]).integers(0, 5, b)  # shared uniformly random first batch
        drex = LinUCB(5, alpha=args.alpha, l2_lambda=1.0)
        mab = MAB(
            arms=list(range(5)),
            learning_policy=LearningPolicy.LinUCB(alpha=args.alpha, l2_lambda=1.0),
            seed=seed,
        )
        acts = {"drex": np.empty(n, dtype=np.int64), "mab": np.empty(n, dtype=np.int64)}
        acts["drex"][:b] = acts["mab"][:b] = first
        t_drex = t_mab = 0.0
        t = time.perf_counter()
        drex.fit(logged_data(x[:b], first, table[np.arange(b), first], np.full(b, 0.2), n_actions=5))
        t_drex += time.perf_counter() - t
        t = time.perf_counter()
        mab.fit(first, table[np.arange(b), first], x[:b])
        t_mab += time.perf_counter() - t
        max_diff = 0.0
        for s in range(b, n, b):
            sl = slice(s, min(s + b, n))
            t = time.perf_counter()
            ucb = drex.scores(x[sl])
            a_d = np.argmax(ucb, axis=1)
            t_drex += time.perf_counter() - t
            t = time.perf_counter()
            a_m = np.asarray(mab.predict(x[sl]), dtype=np.int64).reshape(-1)
            t_mab += time.perf_counter() - t
            exp = mab.predict_expectations(x[sl])
            exp = [exp] if isinstance(exp, dict) else exp
            max_diff = max(
                max_diff, float(np.abs(ucb - np.array([[e[k] for k in range(5)] for e in exp])).max())
            )
            acts["drex"][sl], acts["mab"][sl] = a_d, a_m
            rows_sl = np.arange(sl.start, sl.stop)
            t = time.perf_counter()
            drex.partial_fit(logged_data(x[sl], a_d, table[rows_sl, a_d], np.ones(len(a_d)), n_actions=5))
            t_drex += time.perf_counter() - t
            t = time.perf_counter()
            mab.partial_fit(a_m, table[rows_sl, a_m], x[sl])
            t_mab += time.perf_counter() - t
        agree = float((acts["drex"] == acts["mab"]).mean())
        agree_all.append(agree)
        r_d = table[np.arange(n), acts["drex"]].mean()
        r_m = table[np.arange(n), acts["mab"]].mean()
        rows.append(
            f"| {seed} | {agree:.2%} | {r_d:.4f} | {r_m:.4f} | {max_diff:.1e} | {n / t_drex:,.0f} "
            f"| {n / t_mab:,.0f} |"
        )
        print(rows[-1], flush=True)
    return [
        (
            f"{args.rounds:,} rounds, batches of {args.batch} (predict a batch, then update on it; the first "
            "batch is the same uniformly random actions for both), K = 5, D = 5, linear Gaussian problem, "
            f"alpha = {args.alpha}, l2_lambda = 1. Rounds/s count prediction and update time only."
        ),
        "",
        *rows,
    ]


# ---- oscillation -------------------------------------------------------------------------------------------

OSC_PROBLEM = {
    "n_actions": 5,
    "context_dim": 5,
    "kind": "nonlinear",
    "reward": "bernoulli",
    "scale": 4.0,
    "offset": 1.0,
    "p_available": 0.8,
    "seed": 0,
}
OSC_VARIANTS = {  # label -> (SquareCB options, run_generations options)
    "none (short memory)": ({}, {}),
    "exploration floor 0.1": ({"floor": 0.1}, {}),
    "mix previous policy 0.5": ({}, {"mix_previous": 0.5}),
    "importance-weighted oracle": ({"importance_weighting": True}, {}),
    "long memory (all logs)": ({}, {"memory": "all"}),
}


OSC_ORACLES = {  # label -> factory(seed)
    "MLP oracle (64, 64)": lambda s: JointModel(MLPRegressor((64, 64), epochs=10, seed=s)),
    "per-action ridge oracle (misspecified: linear in x for a nonlinear reward)": lambda s: (
        _ridge_per_action()
    ),
}


def _ridge_per_action() -> PerActionModel:
    from sklearn.linear_model import Ridge

    return PerActionModel(Ridge(alpha=1.0))


def _oscillation_runs(args, make_oracle) -> dict:
    problem = SyntheticProblem(**OSC_PROBLEM)
    runs = {}
    for label, (pol_kw, run_kw) in OSC_VARIANTS.items():
        t = time.perf_counter()
        runs[label] = [
            run_generations(
                SquareCB(5, make_oracle(s), seed=s, **pol_kw),
                problem,
                n_generations=args.generations,
                rounds_per_generation=args.generation_rounds,
                seed=s,
                **run_kw,
            )
            for s in range(args.seeds)
        ]
        print(f"oscillation {label}: {time.perf_counter() - t:.0f} s", flush=True)
    return runs


def _oscillation_tables(runs: dict, curves: dict) -> list[str]:
    rows = [
        (
            "| variant | mean value, generations 2+ | worst generation (any seed) "
            "| mean abs change between generations | min logged propensity |"
        ),
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for label, seeds in runs.items():
        v = np.array([[g.value for g in run] for run in seeds])  # (S, G)
        swing = np.abs(np.diff(v[:, 2:], axis=1)).mean(1)
        minp = min(g.min_propensity for run in seeds for g in run[1:])
        rows.append(
            f"| {label} | {v[:, 2:].mean():.4f} ± {v[:, 2:].mean(1).std():.4f} | {v[:, 2:].min():.4f} "
            f"| {swing.mean():.4f} ± {swing.std():.4f} | {minp:.1e} |"
        )
    mean_rows = [
        "| variant | " + " | ".join(f"g{g}" for g in curves["generation"]) + " |",
        "| --- |" + " ---: |" * len(curves["generation"]),
    ]
    for label, s in curves["series"].items():
        mean_rows.append(f"| {label} | " + " | ".join(f"{m:.3f}" for m in s["mean"]) + " |")
    return [*rows, "", "Mean value per generation (mean over seeds):", "", *mean_rows]


def section_oscillation(args) -> list[str]:
    body, all_curves = [], {}
    for oracle, make in OSC_ORACLES.items():
        runs = _oscillation_runs(args, make)
        all_curves[oracle] = generation_curves(runs)
        first = runs[next(iter(runs))]
        optimal = float(np.mean([g.optimal for run in first for g in run]))
        uniform = float(np.mean([run[0].value for run in first]))
        body += [f"### {oracle}", "", *_oscillation_tables(runs, all_curves[oracle]), ""]
    out_dir = Path(args.out).parent  # next to the .md, which links the .png
    (out_dir / "bandits_oscillation.json").write_text(json.dumps(all_curves) + "\n")
    _plot_oscillation(all_curves, out_dir / "bandits_oscillation.png")
    problem = ", ".join(f"{k}={v!r}" for k, v in OSC_PROBLEM.items())
    return [
        (
            f"`SyntheticProblem({problem})`: Bernoulli rewards with a high base rate (uniform policy "
            f"{uniform:.3f}, best action {optimal:.3f}), K = 5, each action available with probability 0.8. "
            "SquareCB with the default gamma schedule 10 t^0.5 (t = rounds elapsed), "
            f"{args.generations} generations of {args.generation_rounds:,} rounds, seeds "
            f"0..{args.seeds - 1}; each generation is retrained on the previous generation's logs "
            "only, except 'long memory'. Value = expected reward of the behaviour policy, "
            "sum_a p(a) mu(a), per round. Generation 0 is uniform and generation 1 is trained on "
            "uniform logs, so the effect starts at generation 2."
        ),
        "",
        *body,
        "![value per generation](bandits_oscillation.png)",
    ]


def _plot_oscillation(all_curves: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(all_curves), figsize=(7 * len(all_curves), 4.5), sharey=True)
    for ax, (oracle, curves) in zip(np.atleast_1d(axes), all_curves.items(), strict=True):
        g = np.array(curves["generation"])
        for label, s in curves["series"].items():
            m, sd = np.array(s["mean"]), np.array(s["std"])
            ax.plot(g, m, marker="o", ms=3, label=label)
            ax.fill_between(g, m - sd, m + sd, alpha=0.12)
        ax.set_title(f"SquareCB generations, {oracle.split(' (')[0]}", fontsize=10)
        ax.set_xlabel("generation (retrained on logged, delayed feedback)")
        ax.grid(alpha=0.3)
    np.atleast_1d(axes)[0].set_ylabel("expected reward of the behaviour policy")
    np.atleast_1d(axes)[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# ---- coverage ----------------------------------------------------------------------------------------------


def section_coverage(args) -> list[str]:
    rows = ["| rounds | estimator | coverage | mean width | bias |", "| ---: | --- | ---: | ---: | ---: |"]
    reps = args.coverage_replications
    se = (0.9 * 0.1 / reps) ** 0.5
    for n in (500, 2000):
        res = coverage_experiment(n_replications=reps, n_rounds=n, n_bootstrap=500, level=0.9, seed=1)
        for e in res.coverage:
            rows.append(
                f"| {n} | {e} | {res.coverage[e]:.3f} | {res.mean_width[e]:.4f} | {res.bias[e]:+.4f} |"
            )
        print(rows[-5:], flush=True)
    return [
        (
            f"`coverage_experiment(n_replications={reps}, n_bootstrap=500, level=0.9, seed=1)`: 20 contexts, "
            "4 actions, Bernoulli rewards, a softmax logging policy mixed with 20% uniform, a softmax target "
            "policy, a reward model that overestimates every action by 0.05 (DM is biased by design), "
            f"switch-DR with tau = 5. Nominal 90%; the binomial standard error of a coverage estimate is "
            f"{se:.4f}."
        ),
        "",
        *rows,
    ]


# ---- main --------------------------------------------------------------------------------------------------


def _sections_of(text: str) -> dict[str, str]:
    out = {}
    for block in text.split("\n## ")[1:]:
        title = block.split("\n", 1)[0].strip()
        key = next((k for k, v in TITLES.items() if title.startswith(v)), None)
        if key:
            out[key] = "## " + block.rstrip() + "\n"
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sections", default=",".join(SECTIONS))
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--rounds", type=int, default=10_000, help="rounds per run (vw, mabwiser)")
    p.add_argument("--batch", type=int, default=200, help="DREX retrains after each batch of rounds")
    p.add_argument("--first-batch", type=int, default=25, help="first DREX batch; sizes double up to --batch")
    p.add_argument("--alpha", type=float, default=1.0, help="LinUCB alpha")
    p.add_argument("--generations", type=int, default=15)
    p.add_argument("--generation-rounds", type=int, default=2000)
    p.add_argument("--coverage-replications", type=int, default=2000)
    p.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    p.add_argument("--out", default=str(RESULTS / "bandits.md"))
    args = p.parse_args()
    names = args.sections.split(",")
    bad = [k for k in names if k not in SECTIONS]
    if bad:
        p.error(f"unknown sections {bad}; choose from {list(SECTIONS)}")
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    old = out.read_text() if out.exists() else ""
    sections = _sections_of(old)
    argv = " ".join(sys.argv[1:])
    for k in names:
        t0, load = time.perf_counter(), os.getloadavg()[0]
        body = globals()[f"section_{k}"](args)
        sections[k] = "\n".join(
            [
                f"## {TITLES[k]}",
                "",
                (
                    f"Command: `.venv/bin/python benchmarks/bandits.py {argv}` "
                    f"({time.perf_counter() - t0:.0f} s, load {load:.1f} at the start of the section, "
                    f"{time.strftime('%Y-%m-%d %H:%M')})."
                ),
                "",
                *body,
                "",
            ]
        )
    versions = _versions()
    lines = [
        "# Contextual bandits (rl.bandits)",
        "",
        (
            f"Machine: {platform.machine()}, {os.cpu_count()} cores shared with other work, torch "
            f"{torch.__version__} on CPU with {args.threads} thread(s), numpy {np.__version__}, {versions}. "
            "Timings are noisy: the load average at the start of each section is given."
        ),
        "",
    ]
    for k in SECTIONS:
        if k in sections:
            lines.append(sections[k])
    reading = ("## Reading" + old.split("\n## Reading", 1)[1]) if "\n## Reading" in old else ""
    text = "\n".join(lines) + ("\n" + reading if reading else "")
    tmp = out.with_suffix(".md.tmp")
    tmp.write_text(text)
    os.replace(tmp, out)
    print(text)


def _versions() -> str:
    from importlib.metadata import PackageNotFoundError, version

    parts = []
    for pkg in ("vowpalwabbit", "mabwiser", "scikit-learn"):
        try:
            parts.append(f"{pkg} {version(pkg)}")
        except PackageNotFoundError:
            parts.append(f"{pkg} missing")
    return ", ".join(parts)


if __name__ == "__main__":
    main()
