"""Assemble the walk-forward table of issue #12 from ``drex evaluate --json`` files (one dataset per section).

    PYTHONPATH=. python benchmarks/router_evaluate_table.py DIR > benchmarks/results/router_evaluate.md

DIR holds, per dataset: ``<spec>-default.json`` (``-s drex``: the shipped router over the LLM experts, those
experts and their equal-weight mix), ``<spec>-teachers.json`` (``-s trend -s reversal -s breakout -s
positioning``: the four teachers with default parameters and their mix), ``<spec>-drex.json`` (``-s drex -p
drex:checkpoint=rules``: the router trained over the long/short rule experts, those experts and their mix),
``<spec>-llm.json`` (``-s drex -p drex:checkpoint=rules -p drex:experts=llm``: that router over the LLM experts)
and ``<spec>-bandit.json`` (``-s bandit``: the bandit router over the four teachers, learning online from its
delayed rewards over the whole history before each decision). Every run: the same test folds (2015-01-02 on),
10 bps fees, next-open.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

ROWS = [  # (file tag, key in the json, label in the table)
    ("drex", "buy_and_hold", "buy_and_hold"),
    ("teachers", "trend", "trend (teacher, default)"),
    ("teachers", "reversal", "reversal (teacher, default)"),
    ("teachers", "breakout", "breakout (teacher, default)"),
    ("teachers", "positioning", "positioning (teacher, default)"),
    ("teachers", "equal_weight", "equal_weight of the 4 teachers"),
    ("default", "expert:trend", "expert:trend (LLM)"),
    ("default", "expert:reversal", "expert:reversal (LLM)"),
    ("default", "expert:breakout", "expert:breakout (LLM)"),
    ("default", "expert:positioning", "expert:positioning (LLM)"),
    ("default", "equal_weight", "equal_weight of the 4 LLM experts"),
    ("default", "drex", "**drex** (shipped default: router trained over the LLM experts)"),
    ("llm", "drex", "drex -p checkpoint=rules -p experts=llm (rule-trained router over the LLM experts)"),
    ("drex", "trend", "trend (rule expert: long/short 5/20)"),
    ("drex", "reversal", "reversal (rule expert: long/short Bollinger)"),
    ("drex", "breakout", "breakout (rule expert: long/short)"),
    ("drex", "positioning", "positioning (rule expert)"),
    ("drex", "equal_weight", "equal_weight of the 4 rule experts"),
    ("drex", "drex", "drex -p checkpoint=rules (router over the rule experts)"),
    ("bandit", "bandit", "bandit router (SquareCB over the 4 teachers)"),
]


def main() -> None:
    root = Path(sys.argv[1])
    specs = sorted({p.name.rsplit("-", 1)[0] for p in root.glob("*.json")},
                   key=lambda s: ["sample_SP500", "sample_NASDAQ", "sample_MSFT", "sample_SP20"].index(s))
    print("# drex evaluate: walk-forward, net of 10 bps, test folds from 2015-01-02\n")
    print(__doc__.split("\n\n", 2)[2].strip() + "\n")
    for spec in specs:
        runs = {tag: json.loads((root / f"{spec}-{tag}.json").read_text())
                for tag in ("default", "drex", "teachers", "llm", "bandit") if (root / f"{spec}-{tag}.json").exists()}
        first = next(iter(runs["drex"].values()))
        folds = first.get("folds", [])
        span = f"{folds[0]['test_start'][:10]} .. {folds[-1]['test_end'][:10]}, {len(folds)} folds" if folds and \
            "test_start" in folds[0] else ""
        print(f"## {spec.replace('_', ':', 1)} {span}\n")
        print("| strategy | Sharpe [95% CI] | vs b&h | total return | max drawdown | turnover/yr |")
        print("|---|---|---|---|---|---|")
        for tag, key, label in ROWS:
            r = runs.get(tag, {}).get(key)
            if r is None:
                continue
            def f(k, fmt="{:.2f}", r=r):
                return "n/a" if r.get(k) is None else fmt.format(r[k])

            print(f"| {label} | {f('sharpe')} [{f('sharpe_ci_low')}, {f('sharpe_ci_high')}] | "
                  f"{r['vs_buy_and_hold']} | {f('total_return', '{:.1%}')} | {f('max_drawdown', '{:.1%}')} | "
                  f"{f('turnover', '{:.1f}')} |")
        print()


if __name__ == "__main__":
    main()
