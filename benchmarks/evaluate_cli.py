"""Wall time of ``drex evaluate`` as a whole CLI process (start-up, data, 5 folds, 6 backtests, table).

    .venv/bin/python benchmarks/evaluate_cli.py [--repeats 5 --out benchmarks/results/evaluate.md]

Runs ``python -m app.cli evaluate sample:SP500 -s trend -s reversal -s breakout -s positioning -s buy_and_hold
--folds 5`` (issue #10's command; ``drex evaluate ...`` is the same entry point) ``--repeats`` times in a fresh
process from the repository root, after one warm-up run (file-system caches), and records every wall time,
the median, the machine and its load. Also times the same evaluation with ``--optimize
trend:'fast=5:50:5,slow=20:200:10'`` (a 174-combination in-sample sweep per fold) and ``drex lookahead`` on the
whole history. The issue asks for < 30 s for the first command.
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RULES = ["-s", "trend", "-s", "reversal", "-s", "breakout", "-s", "positioning", "-s", "buy_and_hold"]
COMMANDS = {
    "evaluate, 5 rules, 5 folds": ["evaluate", "sample:SP500", *RULES, "--folds", "5"],
    "evaluate + --optimize trend (174 combinations per fold)":
        ["evaluate", "sample:SP500", *RULES, "--folds", "5", "--optimize", "trend:fast=5:50:5,slow=20:200:10"],
    "lookahead trend, 5,031 bars, 8 cuts": ["lookahead", "sample:SP500", "-s", "trend"],
}


def _time(args: list[str]) -> float:
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "app.cli", *args], cwd=ROOT, capture_output=True, text=True,
                         check=False)
    dt = time.perf_counter() - t0
    if out.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed ({out.returncode}):\n{out.stderr}")
    return dt


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/evaluate.md")
    args = parser.parse_args(argv)
    rows = []
    for name, cmd in COMMANDS.items():
        _time(cmd)  # warm-up: file caches, numba's on-disk cache of the sweep kernel
        times = [_time(cmd) for _ in range(args.repeats)]
        rows.append((name, cmd, times))
        print(f"{name}: median {statistics.median(times):.2f} s ({', '.join(f'{t:.2f}' for t in times)})")
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    lines = [
        "# `drex evaluate` / `drex lookahead` wall time (whole CLI process)",
        "",
        (f"Command: `python benchmarks/evaluate_cli.py --repeats {args.repeats}`; {time.strftime('%Y-%m-%d %H:%M')}, "
        f"{platform.machine()} with {os.cpu_count()} CPU(s), Python {platform.python_version()}, load average "
        f"{load:.1f} at the end (other work shares the machine)."),
        "",
        "| command | median wall time | runs |",
        "|---|---:|---|",
    ]
    for name, cmd, times in rows:
        lines.append(f"| `drex {' '.join(cmd)}` ({name}) | {statistics.median(times):.2f} s | "
                     f"{', '.join(f'{t:.2f}' for t in times)} |")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"results: {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
