"""Where one process ends and Ray starts to pay: a trend sweep over a synthetic universe, in process vs on Ray.

A seeded synthetic universe (default 500 assets x 2,520 daily bars = 10 years; one market factor plus
idiosyncratic noise, per-asset drift and volatility, trending regimes) and a trend crossover grid of
``--combinations`` valid combinations (default 1,000: 40 fast x 25 slow windows). Each mode runs in a fresh
process:

* ``process-1``: ``backtest.sweep`` on one thread (``DREX_THREADS=1``): the one-core baseline;
* ``process``: ``backtest.sweep`` (chunks of ``CHUNK_BYTES`` of weights; on all cores by threads: here one
  chunk per thread, a 500-asset chunk being too small to split);
* ``ray``: ``backtest.distributed.sweep`` on a local Ray started with ``--ray-cpus`` CPUs (tasks of at most one
  chunk, one kernel thread per task; the bars are put in the object store once).

Memory: the parent samples, every 0.2 s, the proportional set size (PSS: shared pages such as Ray's object
store are split between the processes that map them, so the sum is not double counted) of the child and of
all its descendants (Ray's GCS, raylet, workers), and reports the peak of the sum and the baseline before the
sweep (data loaded, kernels compiled, Ray started), and the CPU seconds all of them used during the sweep
(on a shared host the wall time depends on the other jobs; the CPU time is the work). Every mode must give
the same table (checked: a hash of the rows).

    PYTHONPATH=. nice -n 10 python benchmarks/scale.py --out benchmarks/results/scale.md
    PYTHONPATH=. python benchmarks/scale.py --modes ray --ray-address auto   # on a cluster (ray start --head)
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

_CHILD = r"""
import hashlib, importlib.util, json, os, sys, time
args = json.loads(sys.argv[1])
sys.path.insert(0, args["root"])
spec = importlib.util.spec_from_file_location("drex_bench_scale", args["root"] + "/benchmarks/scale.py")
bench = importlib.util.module_from_spec(spec)
spec.loader.exec_module(bench)  # not via sys.path: benchmarks/experts.py would shadow the experts package
import backtest

def mark(what):
    print("MARK " + json.dumps({"what": what, "t": time.time()}), flush=True)

bars = bench.universe(args["assets"], args["bars"], seed=args["seed"])
g = bench.grid(args["combinations"])
backtest.sweep("trend", {"fast": [5], "slow": [20]}, bars.iloc[:300], fees=0.001)  # kernels compiled/loaded here
run = backtest.sweep
if args["mode"] == "ray":
    from backtest import distributed
    t0 = time.perf_counter()
    ray = distributed.connect(args["address"], num_cpus=args["cpus"])
    startup = time.perf_counter() - t0
    cpus = ray.cluster_resources().get("CPU", 0)
    run = distributed.sweep
else:
    startup, cpus = 0.0, int(os.environ.get("DREX_THREADS") or os.cpu_count())
mark("baseline")
done = []
t0 = time.perf_counter()
table = run("trend", g, bars, fees=0.001, slippage=0.0005, progress=lambda d, n: done.append(time.perf_counter() - t0))
secs = time.perf_counter() - t0
mark("done")
digest = hashlib.sha256(table.to_csv(index=False).encode()).hexdigest()
print("RESULT " + json.dumps({"seconds": secs, "startup": startup, "rows": len(table), "cpus": cpus,
                              "tasks": len(done), "first_task_s": done[0] if done else None, "sha256": digest,
                              "best_sharpe": float(table["sharpe"].max())}), flush=True)
"""


def universe(n_assets: int = 500, n_bars: int = 2520, *, seed: int = 0):
    """Seeded synthetic daily bars of ``n_assets`` (canonical multi-asset frame, ``n_bars`` business days).

    Log returns: beta_i * market_t + idio_it, with a market factor whose drift switches between up, down and
    flat regimes (mean length 120 bars), per-asset beta, drift and volatility; opens gap from the previous
    close, highs/lows bracket open and close.
    """
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    regime = np.cumsum(rng.random(n_bars) < 1 / 120) % 3  # (T,) 0 up, 1 down, 2 flat
    market = np.array([6e-4, -6e-4, 0.0])[regime] + rng.normal(0, 0.009, n_bars)
    beta = rng.uniform(0.5, 1.5, n_assets)
    vol = rng.uniform(0.008, 0.025, n_assets)
    drift = rng.normal(1e-4, 2e-4, n_assets)
    logret = market[:, None] * beta + drift + rng.normal(0, 1, (n_bars, n_assets)) * vol  # (T, N)
    close = 50 * np.exp(np.cumsum(logret, axis=0))
    gap = np.exp(rng.normal(0, 0.003, (n_bars, n_assets)))
    open_ = np.vstack([close[:1], close[:-1]]) * gap
    high = np.maximum(open_, close) * (1 + rng.uniform(0, 0.01, (n_bars, n_assets)))
    low = np.minimum(open_, close) * (1 - rng.uniform(0, 0.01, (n_bars, n_assets)))
    idx = pd.bdate_range("2010-01-04", periods=n_bars, tz="UTC", name="timestamp")
    names = [f"A{i:04d}" for i in range(n_assets)]
    fields = {"open": open_, "high": high, "low": low, "close": close, "volume": np.full((n_bars, n_assets), 1e6)}
    data = np.stack([fields[f] for f in ("open", "high", "low", "close", "volume")], axis=2)  # (T, N, 5)
    cols = pd.MultiIndex.from_product([names, list(fields)], names=["asset", "field"])
    return pd.DataFrame(data.reshape(n_bars, n_assets * 5), index=idx, columns=cols)


def grid(n: int = 1000) -> dict[str, list[int]]:
    """A trend crossover grid of exactly ``n`` valid combinations (fast < slow) when ``n`` is a multiple of 25
    (25 slow windows 50..290; ``n / 25`` fast windows from 2), else the nearest smaller such grid."""
    n_fast = max(1, n // 25)
    return {"fast": list(range(2, 2 + n_fast)), "slow": list(range(50, 300, 10))}


def _tree(pid: int, cpu: dict[int, float]) -> int:
    """PSS bytes of process ``pid`` and all its descendants (those that vanished meanwhile count 0); updates
    ``cpu`` (pid -> user + system CPU seconds so far) for each of them."""
    import psutil

    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0
    total = 0
    for p in procs:
        try:
            total += p.memory_full_info().pss
            t = p.cpu_times()
            cpu[p.pid] = t.user + t.system
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass
    return total


def measure(mode: str, args: argparse.Namespace) -> dict:
    spec = {"root": str(ROOT), "mode": mode, "assets": args.assets, "bars": args.bars, "seed": args.seed,
            "combinations": args.combinations, "cpus": args.ray_cpus, "address": args.ray_address}
    env = {**os.environ, "RAY_AUTH_MODE": os.environ.get("RAY_AUTH_MODE", "disabled")}
    if mode == "process-1":
        env["DREX_THREADS"] = "1"
    load_before = os.getloadavg()[0]
    proc = subprocess.Popen([sys.executable, "-c", _CHILD, json.dumps(spec)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT)
    import threading

    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(proc.stdout.readline, "")), daemon=True)
    reader.start()
    peak = base = 0
    phase = "setup"
    cpu: dict[int, float] = {}
    cpu_base: dict[int, float] = {}
    cpu_end: dict[int, float] = {}
    t0 = time.perf_counter()
    while proc.poll() is None:
        pss = _tree(proc.pid, cpu)
        marks = [json.loads(ln[5:])["what"] for ln in list(lines) if ln.startswith("MARK ")]
        if "done" in marks:
            if phase != "done":
                cpu_end, phase = dict(cpu), "done"
        elif "baseline" in marks:
            if phase != "sweep":
                base, phase, cpu_base = pss, "sweep", dict(cpu)
            peak = max(peak, pss)
        time.sleep(0.2)
    reader.join(5)
    err = proc.stderr.read()
    if proc.returncode:
        raise RuntimeError(f"{mode} run failed ({proc.returncode}):\n{err[-3000:]}")
    result = json.loads(next(ln for ln in lines if ln.startswith("RESULT "))[7:])
    cpu_s = sum(v - cpu_base.get(k, 0.0) for k, v in cpu_end.items())  # CPU seconds of the sweep, all processes
    return {"mode": mode, **result, "base_mb": base / 2**20, "peak_mb": peak / 2**20, "wall": time.perf_counter() - t0,
            "load": (load_before, os.getloadavg()[0]), "cpu_s": cpu_s}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--assets", type=int, default=500)
    ap.add_argument("--bars", type=int, default=2520)
    ap.add_argument("--combinations", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--modes", default="process-1,process,ray",
                    help="process-1 (one thread), process (all cores), ray (local Ray or --ray-address)")
    ap.add_argument("--repeat", type=int, default=1, help="run the modes in turn this many times (noisy hosts)")
    ap.add_argument("--ray-cpus", type=int, default=2, help="CPUs of the local Ray (ignored with --ray-address)")
    ap.add_argument("--ray-address", default=None, help="join this cluster (auto, HOST:6379) instead")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    from backtest.sweep import CHUNK_BYTES, chunk_rows

    rows = []
    for _ in range(args.repeat):
        for mode in args.modes.split(","):
            rows.append(measure(mode, args))
            print(json.dumps(rows[-1]), flush=True)
    digests = {r["sha256"] for r in rows}
    T, N = args.bars, args.assets
    chunk = chunk_rows(T, N)
    load = os.getloadavg()
    lines = [
        "# Scale-out: a sweep over a synthetic universe, in process vs Ray (`benchmarks/scale.py`)",
        "",
        (f"`backtest.sweep(\"trend\", grid, bars)` over {N:,} assets x {T:,} daily bars (seeded synthetic universe, "
         f"`benchmarks.scale.universe`), {rows[0]['rows']:,} crossover combinations, fees 10 bps + slippage 5 bps; "
         f"{platform.machine()}, {os.cpu_count()} cores shared with other jobs (load average {load[0]:.1f} at the "
         f"end), Python {platform.python_version()}. "
         f"`{' '.join(['python', 'benchmarks/scale.py', *sys.argv[1:]])}`."),
        "",
        (f"Chunks: {chunk} combinations ({chunk * T * N * 8 / 2**20:.0f} MiB of weights; {CHUNK_BYTES >> 20} MiB "
         f"target, at least one 8-row block). Same table in every mode: {'yes' if len(digests) == 1 else 'NO'} "
         f"(sha256 of the CSV {min(digests)[:12]}...)."),
        "",
        ("| mode | CPUs | chunks / tasks | sweep wall (s) | sweep CPU (s) | Ray start (s) | first chunk done (s) | "
         "memory before (MB) | peak memory (MB) | peak - before (MB) | load avg (start, end) |"),
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        first = f"{r['first_task_s']:.1f}" if r["first_task_s"] is not None else "-"
        lines.append(f"| {r['mode']} | {r['cpus']:g} | {r['tasks']} | {r['seconds']:.1f} | {r['cpu_s']:.0f} | "
                     f"{r['startup']:.1f} | {first} | {r['base_mb']:.0f} | {r['peak_mb']:.0f} | "
                     f"{r['peak_mb'] - r['base_mb']:.0f} | {r['load'][0]:.1f}, {r['load'][1]:.1f} |")
    lines += ["", ("Memory: PSS of the process and all its descendants (Ray's GCS, raylet, workers, object store "
              "pages), sampled every 0.2 s; \"before\" = data loaded, kernels compiled, Ray started. Sweep CPU: "
              "user + system seconds of all those processes during the sweep (the work, whatever the other "
              "jobs on the host left of the cores)."), ""]
    text = "\n".join(lines)
    print(text)
    if args.out:
        tmp = args.out.with_name(f".{args.out.name}.tmp")
        tmp.write_text(text)
        os.replace(tmp, args.out)


if __name__ == "__main__":
    main()
