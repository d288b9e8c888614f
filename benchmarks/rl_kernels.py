"""Time and peak memory of LM-head log-prob + entropy (forward + backward): naive vs chunked vs fused.

    .venv/bin/python benchmarks/rl_kernels.py [--n 8192 --vocab 32000 --hidden 512 --repeats 3]

Variants (all compute logp (N,) and entropy (N,) of softmax(h @ W^T), then backward of
sum(g1 * logp + g2 * H) to h and W):

* ``naive``   -- full (N, V) fp32 logits, ``torch.log_softmax``, gather, ``-(p * logp).sum``;
* ``chunked`` -- full (N, V) logits, then ``rl.entropy.logprobs_from_logits`` / ``entropy_from_logits``
  with row chunks (autograd keeps each chunk's intermediates, so this only saves memory under no_grad);
* ``fused``   -- ``rl.entropy.fused_linear_logprobs_entropy`` (never holds the (N, V) logits).

Memory method. CPU: each variant runs in its own fresh subprocess; it builds the inputs, records its resident
set size (psutil RSS), runs forward + backward once, and reports ``ru_maxrss`` (the process's high-water
mark) minus that baseline: the extra peak memory of the computation. tracemalloc cannot see torch's
allocations, hence RSS. CUDA (when present): ``torch.cuda.max_memory_allocated`` after
``reset_peak_memory_stats``, minus the inputs. Time: median of ``--repeats`` forward+backward runs after the
measured one. Results go to ``benchmarks/results/rl_kernels.md`` (``--out``).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VARIANTS = ("naive", "chunked", "fused")


def _inputs(n, v, d, device):
    import torch

    g = torch.Generator().manual_seed(0)
    h = (torch.randn(n, d, generator=g) / d**0.5).to(device).requires_grad_()
    w = (torch.randn(v, d, generator=g) * 0.5).to(device).requires_grad_()
    y = torch.randint(0, v, (n,), generator=g).to(device)
    g1, g2 = torch.randn(n, generator=g).to(device), torch.randn(n, generator=g).to(device)
    return h, w, y, g1, g2


def _run(variant, h, w, y, g1, g2, chunk):
    import torch

    from rl.entropy import entropy_from_logits, fused_linear_logprobs_entropy, logprobs_from_logits

    h.grad = w.grad = None
    if variant == "naive":
        logq = torch.log_softmax(h @ w.T, dim=-1)  # (N, V)
        lp = logq.gather(-1, y[:, None]).squeeze(-1)
        ent = -(logq.exp() * logq).sum(-1)
    elif variant == "chunked":
        z = h @ w.T  # (N, V)
        lp, ent = logprobs_from_logits(z, y, chunk), entropy_from_logits(z, chunk)
    else:
        lp, ent = fused_linear_logprobs_entropy(h, w, y, 1.0, chunk)
    ((lp * g1).sum() + (ent * g2).sum()).backward()
    return float(lp.detach().sum()), float(ent.detach().sum())


def _child(args) -> None:
    import psutil
    import torch

    torch.set_num_threads(args.threads)
    device = args.device
    h, w, y, g1, g2 = _inputs(args.n, args.vocab, args.hidden, device)
    chunk = args.chunk
    if device == "cuda":
        torch.cuda.synchronize()
        base = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
    else:
        base = psutil.Process().memory_info().rss
    t0 = time.perf_counter()
    check = _run(args.variant, h, w, y, g1, g2, chunk)
    if device == "cuda":
        torch.cuda.synchronize()
        peak = torch.cuda.max_memory_allocated() - base
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - base
    first = time.perf_counter() - t0
    times = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        _run(args.variant, h, w, y, g1, g2, chunk)
        if device == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    gh = float(h.grad.double().norm())
    print(
        json.dumps(
            {
                "variant": args.variant,
                "device": device,
                "peak_bytes": int(peak),
                "first_s": first,
                "median_s": statistics.median(times) if times else first,
                "check": check,
                "grad_h": gh,
            }
        )
    )


def _measure(variant, args, device, chunk):
    cmd = [
        sys.executable,
        __file__,
        "--child",
        "--variant",
        variant,
        "--device",
        device,
        "--chunk",
        str(chunk),
        "--n",
        str(args.n),
        "--vocab",
        str(args.vocab),
        "--hidden",
        str(args.hidden),
        "--repeats",
        str(args.repeats),
        "--threads",
        str(args.threads),
    ]
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--n", type=int, default=8192)
    p.add_argument("--vocab", type=int, default=32000)
    p.add_argument("--hidden", type=int, default=512)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--chunk", type=int, default=512, help="fused kernel token chunk")
    p.add_argument("--entropy-chunk", type=int, default=2048, help="row chunk of the chunked variant")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "rl_kernels.md"))
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--variant", default="naive", help=argparse.SUPPRESS)
    p.add_argument("--device", default="cpu", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        _child(args)
        return
    import torch

    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    load = os.getloadavg()
    rows = []
    for device in devices:
        for variant in VARIANTS:
            chunk = {"fused": args.chunk, "chunked": args.entropy_chunk}.get(variant, 0)
            r = _measure(variant, args, device, chunk)
            r["chunk"] = chunk
            rows.append(r)
            print(json.dumps(r), flush=True)
    _write(args, rows, load, os.getloadavg())


def _write(args, rows, load_before, load_after) -> None:
    import platform

    import torch

    lines = [
        "# rl.entropy kernels: log-prob + entropy (+ backward)",
        "",
        (
            f"Command: `.venv/bin/python benchmarks/rl_kernels.py --n {args.n} --vocab {args.vocab} "
            f"--hidden {args.hidden} --repeats {args.repeats} --chunk {args.chunk} --threads {args.threads}`"
        ),
        (
            f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores shared with the team, "
            f"torch {torch.__version__}, {args.threads} torch threads; load average before "
            f"{load_before[0]:.2f}, after {load_after[0]:.2f} (other engineers' jobs were running)."
        ),
        "",
        (
            "Peak memory: CPU = extra resident memory at the high-water mark of a fresh subprocess per variant "
            "(ru_maxrss minus RSS after building the inputs); CUDA = torch.cuda.max_memory_allocated minus the "
            "inputs. Time: median of the repeats after one measured run."
        ),
        "",
        "| device | variant | chunk | peak extra memory (MiB) | time fwd+bwd (s) | memory vs naive | time vs naive |",
        "| --- | --- | --- | ---: | ---: | ---: | ---: |",
    ]
    for device in sorted({r["device"] for r in rows}):
        naive = next(r for r in rows if r["device"] == device and r["variant"] == "naive")
        for r in (r for r in rows if r["device"] == device):
            lines.append(
                f"| {device} | {r['variant']} | {r['chunk']} | {r['peak_bytes'] / 2**20:,.0f} | {r['median_s']:.2f} | "
                f"{r['peak_bytes'] / naive['peak_bytes']:.1%} | {r['median_s'] / naive['median_s']:.2f}x |"
            )
    checks = {
        r["variant"]: (round(r["check"][0], 1), round(r["check"][1], 1)) for r in rows if r["device"] == "cpu"
    }
    lines += ["", f"Sanity (sum logp, sum H) per CPU variant: {checks}", ""]
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text("\n".join(lines))


if __name__ == "__main__":
    main()
