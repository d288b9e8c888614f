"""Expert throughput on this machine: decisions/s and generated tokens/s, and a 10-year backtest cold vs cached.

    PYTHONPATH=. python benchmarks/experts.py [--style trend] [--n 256] [--out benchmarks/results/experts.md]

* generation: the shipped default expert, greedy constrained decoding of ``--n`` distinct prompts (S&P 500) at
  batch 1 and 64 through the transformers backend (the cache off);
* backtest: ``decide`` over ten years of daily S&P 500 bars (2009-2018, 2,516 bars) then ``backtest.run``,
  first in a fresh process-free state with an empty decision cache (cold: model load + generation), then again
  (from the decision cache). The issue's targets: < 30 s cold, < 1 s cached.
Numbers depend on the machine's load: the results file records the CPU count and load average.
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path


def _generation(style: str, n: int) -> list[dict]:
    import markets
    from experts.expert import EXPERTS
    from experts.prompts import build_prompts

    bars = markets.load("sample:SP500")
    prompts = list(build_prompts(style, bars, start=len(bars) - n).text[:, 0])
    rows = []
    for batch in (1, 64):
        ex = EXPERTS[style](cache=False, batch_size=batch)
        backend = ex.backend()
        backend.generate(prompts[:4], ex.settings)  # warm-up
        subset = prompts if batch > 1 else prompts[: max(8, n // 8)]
        t0 = time.perf_counter()
        texts = backend.generate(subset, ex.settings)
        dt = time.perf_counter() - t0
        tokens = sum(len(backend.tokenizer(t, add_special_tokens=False)["input_ids"]) + 1 for t in texts)
        rows.append({"batch": batch, "prompts": len(subset), "seconds": dt, "decisions_per_s": len(subset) / dt,
                     "generated_tokens_per_s": tokens / dt})
    return rows


def _backtest(style: str) -> dict:
    import backtest
    import markets
    from experts.expert import EXPERTS

    bars = markets.load("sample:SP500", start="2009-01-01", end="2018-12-31")
    out = {"bars": len(bars)}
    for label in ("cold", "cached"):
        t0 = time.perf_counter()
        weights = EXPERTS[style]().decide(bars).weights
        res = backtest.run(bars, weights, fees=0.001)
        out[f"{label}_s"] = time.perf_counter() - t0
        out[f"{label}_sharpe"] = float(res.metrics["sharpe"])
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--style", default="trend")
    ap.add_argument("--n", type=int, default=256)
    ap.add_argument("--out", default="benchmarks/results/experts.md")
    args = ap.parse_args()
    os.environ["DREX_HOME"] = tempfile.mkdtemp(prefix="drex-bench-")  # an empty decision cache
    t0 = time.perf_counter()
    bt = _backtest(args.style)
    gen = _generation(args.style, args.n)
    lines = [f"# Expert throughput ({args.style}, shipped default model, CPU)", "",
             (f"Machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at the end; "
             f"benchmark wall time {time.perf_counter() - t0:.0f} s."), "",
             "| backend | batch | prompts | s | decisions/s | generated tokens/s |", "|---|---|---|---|---|---|"]
    for r in gen:
        lines.append(f"| transformers | {r['batch']} | {r['prompts']} | {r['seconds']:.2f} | "
                     f"{r['decisions_per_s']:.1f} | {r['generated_tokens_per_s']:.1f} |")
    lines += ["", (f"10-year daily backtest (S&P 500 2009-2018, {bt['bars']} bars, decide + backtest.run): "
              f"cold {bt['cold_s']:.1f} s, from the decision cache {bt['cached_s']:.2f} s "
              f"(Sharpe {bt['cold_sharpe']:.2f} both times: {bt['cold_sharpe'] == bt['cached_sharpe']}).")]
    text = "\n".join(lines) + "\n"
    print(text)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text)


if __name__ == "__main__":
    main()
