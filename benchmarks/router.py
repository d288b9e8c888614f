"""Router speed: charts rendered per second, router decisions per second, and the wall time of a 10-year daily
routed backtest: cold (a fresh process and an empty $DREX_HOME: imports, loads the router, decides every expert,
routes every bar), warm in-process (the same backtest again in that process), new constraints (another
``gross_cap``/``turnover_penalty``: memoized router outputs), and a second fresh process on the filled caches
(the router's and, for LLM experts, their decision cache).

    python benchmarks/router.py                       # CPU, the shipped default (LLM experts) -> results/router.json
    python benchmarks/router.py --checkpoint rules --out benchmarks/results/router_rules.json   # the rules router
    python benchmarks/router.py --device cuda --out benchmarks/results/router_gpu.json

Run from the repository root (``PYTHONPATH=.``); ``--threads N`` pins torch's CPU threads.
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

import numpy as np

# this folder holds router.py: drop it from the import path so that `import router` is the package
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(_HERE.parent))

SPEC, START, END = "sample:SP500", "2009-01-01", "2018-12-31"


def _best(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def charts_per_s(bars, repeat: int) -> float:
    from router.charts import render

    render(bars)  # tables built once
    return len(bars) / _best(lambda: render(bars), repeat)


def decisions_per_s(bars, device: str, batch: int, repeat: int, checkpoint: str) -> dict[str, float]:
    import torch

    from router.charts import render
    from router.features import temporal_inputs
    from router.model import load_router, route
    from router.strategy import resolve_router

    net = load_router(resolve_router(checkpoint), device=device)
    charts = render(bars)
    chunks, now = temporal_inputs(bars)
    route(net, charts[:batch], chunks[:batch], now[:batch], batch=batch, device=device)  # warm-up

    def go():
        route(net, charts, chunks, now, batch=batch, device=device)
        if device.startswith("cuda"):
            torch.cuda.synchronize()

    net_s = _best(go, repeat)
    t_in = _best(lambda: (render(bars), temporal_inputs(bars)), repeat)
    return {"network_rows_per_s": len(bars) / net_s, "with_inputs_rows_per_s": len(bars) / (net_s + t_in)}


_BACKTEST = """
import json, sys, time
t0 = time.perf_counter()
import markets, router.plugin
from backtest.runner import run_strategy
bars = markets.load({spec!r}, {start!r}, {end!r})
params = {{"device": {device!r}, "experts": {experts!r}, "checkpoint": {checkpoint!r}}}
t1 = time.perf_counter()
run = run_strategy(bars, "drex", params, fees=0.001)
t2 = time.perf_counter()
run_strategy(bars, "drex", params, fees=0.001)
t3 = time.perf_counter()
run_strategy(bars, "drex", {{**params, "turnover_penalty": 0.05}}, fees=0.001)
t4 = time.perf_counter()
print(json.dumps({{"bars": len(bars), "import_load_s": t1 - t0, "cold_backtest_s": t2 - t1, "cold_total_s": t2 - t0,
                  "warm_backtest_s": t3 - t2, "new_constraints_s": t4 - t3, "sharpe": run.result.metrics["sharpe"]}}))
"""


def backtest_times(device: str, experts: str, checkpoint: str) -> dict[str, float]:
    import tempfile

    code = _BACKTEST.format(spec=SPEC, start=START, end=END, device=device, experts=experts, checkpoint=checkpoint)
    with tempfile.TemporaryDirectory() as home:
        env = {**os.environ, "PYTHONPATH": str(_HERE.parent), "DREX_HOME": home}
        runs = []
        for _ in range(2):  # a fresh process on empty caches, then another on the filled caches
            t = time.perf_counter()
            out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
            res = json.loads(out.stdout.strip().splitlines()[-1])
            res["process_wall_s"] = time.perf_counter() - t
            runs.append(res)
    return {**runs[0], "cached_process": {k: runs[1][k] for k in ("import_load_s", "cold_backtest_s",
                                                                  "cold_total_s", "process_wall_s")}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--experts", default="checkpoint", help="the router's expert set (checkpoint, rules, llm)")
    ap.add_argument("--checkpoint", default="default", help="the router (default, rules, or a folder)")
    ap.add_argument("--out", default="benchmarks/results/router.json")
    args = ap.parse_args()
    import torch

    import markets

    if args.threads:
        torch.set_num_threads(args.threads)
        os.environ["OMP_NUM_THREADS"] = str(args.threads)
    bars = markets.load(SPEC, START, END)
    res = {
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "torch": torch.__version__,
                    "torch_threads": torch.get_num_threads(), "device": args.device,
                    "gpu": torch.cuda.get_device_name(0) if args.device.startswith("cuda") else None,
                    "loadavg_1m": os.getloadavg()[0]},
        "data": f"{SPEC} {START}..{END} ({len(bars)} bars)",
        "charts_per_s": charts_per_s(bars, args.repeat),
        "router": decisions_per_s(bars, args.device, args.batch, args.repeat, args.checkpoint),
        "checkpoint": args.checkpoint,
        "experts": args.experts,
        "backtest_10y": backtest_times(args.device, args.experts, args.checkpoint),
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(res, indent=2) + "\n")
    print(json.dumps(res, indent=2))
    assert np.isfinite(res["backtest_10y"]["sharpe"])


if __name__ == "__main__":
    main()
