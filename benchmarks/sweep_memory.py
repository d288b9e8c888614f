"""Peak memory of ``backtest.sweep`` at 10k, 50k and 200k combinations (issue #9): bounded by the chunking.

Each measurement runs in a fresh process: load ``sample:SP500`` (5,030 daily bars), compile/load the kernels on a
tiny grid, record the peak resident set size (``ru_maxrss``) as the baseline, run the sweep, record the peak
again. The increase is what the sweep itself needed. The stated bound (``backtest.sweep``): one chunk's weights
(``CHUNK_BYTES`` = 64 MiB) and the strategy's temporaries for that chunk, plus ~150 bytes per valid combination
for the result table. ``--unchunked`` also measures one chunk holding the whole grid (the behaviour before
issue #9) at the sizes where that fits in memory.

    PYTHONPATH=. nice -n 10 python benchmarks/sweep_memory.py --out benchmarks/results/sweep_memory.md
"""
from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
from pathlib import Path

GRIDS = {  # trend crossover grids on sample:SP500 whose combinations are all valid (fast < slow)
    10_000: {"fast": list(range(1, 101)), "slow": list(range(101, 201))},
    50_000: {"fast": list(range(1, 251)), "slow": list(range(251, 451))},
    200_000: {"fast": list(range(1, 401)), "slow": list(range(401, 901))},
}

_CHILD = r"""
import json, resource, sys, time
import backtest, markets
grid, chunk = json.loads(sys.argv[1]), json.loads(sys.argv[2])
bars = markets.load("sample:SP500")
backtest.sweep("trend", {"fast": [5, 10], "slow": [20, 30]}, bars, fees=0.001)  # kernels compiled/loaded
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t0 = time.perf_counter()
table = backtest.sweep("trend", grid, bars, fees=0.001, chunk_bytes=chunk)
secs = time.perf_counter() - t0
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"rows": len(table), "bars": len(bars), "base_kb": base, "peak_kb": peak, "seconds": secs,
                  "table_bytes": int(table.memory_usage(deep=True).sum())}))
"""


def measure(n: int, chunk_bytes: int | None) -> dict:
    out = subprocess.run([sys.executable, "-c", _CHILD, json.dumps(GRIDS[n]), json.dumps(chunk_bytes)],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    from backtest.sweep import CHUNK_BYTES, chunk_rows

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="10000,50000,200000")
    ap.add_argument("--unchunked", default="10000", help="sizes also run as one chunk (memory grows with P)")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",") if s]
    unchunked = [int(s) for s in args.unchunked.split(",") if s]
    rows = []
    for n in sizes:
        for label, chunk in [("chunked (64 MiB)", None)] + ([("one chunk", 1 << 40)] if n in unchunked else []):
            t0 = time.perf_counter()
            r = measure(n, chunk)
            rows.append({"combinations": n, "mode": label, **r, "wall": time.perf_counter() - t0})
            print(json.dumps(rows[-1]), flush=True)
    T = rows[0]["bars"]
    bound_mb = lambda n: 4 * CHUNK_BYTES / 2**20 + 150 * n / 2**20
    lines = [
        "# Sweep peak memory (`benchmarks/sweep_memory.py`)",
        "",
        (f"`drex sweep`'s engine, `backtest.sweep(\"trend\", grid, sample:SP500)` ({T:,} daily bars, fees 10 bps), "
        f"each size in a fresh process; {platform.machine()}, {platform.python_version()}, "
        f"`{' '.join(['python', 'benchmarks/sweep_memory.py', *sys.argv[1:]])}`."),
        "",
        (f"Chunks: {chunk_rows(T, 1):,} combinations each ({CHUNK_BYTES >> 20} MiB of weights). Baseline: the process "
        "after loading the bars and the compiled kernels. Increase = peak RSS during the sweep - baseline."),
        "",
        "| combinations | mode | increase (MB) | stated bound (MB) | result table (MB) | peak RSS (MB) | time (s) |",
        "|---:|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        inc = (r["peak_kb"] - r["base_kb"]) / 1024
        bound = f"{bound_mb(r['combinations']):.0f}" if r["mode"].startswith("chunked") else "-"
        lines.append(f"| {r['combinations']:,} | {r['mode']} | {inc:.0f} | {bound} | {r['table_bytes'] / 2**20:.1f} | "
                     f"{r['peak_kb'] / 1024:.0f} | {r['seconds']:.1f} |")
    lines += ["", ("Stated bound: 4 x the chunk's weights (the weights, the strategy's temporaries and the moving "
              "averages of the chunk's windows) + 150 bytes per combination (the result table)."), ""]
    text = "\n".join(lines)
    print(text)
    if args.out:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
