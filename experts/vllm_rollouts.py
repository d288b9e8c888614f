"""RL rollouts sampled by vllm, trained by transformers: :class:`VLLMRolloutSampler`, an :class:`rl.policy.Sampler`.

    sampler = VLLMRolloutSampler(policy, VLLMBackend(folder, batch_size=B * n))
    trainer = GRPOTrainer(policy, reward_fn, batch_fn, cfg, run_dir=..., sampler=sampler)

``drex train experts --stage rl --rollout-backend vllm`` wires it. Per rollout iteration:

1. **sync**: before every rollout that follows an optimizer step the trainer calls
   ``sampler.sync_weights(trainer.policy_state_dict())`` (the policy's Hugging Face state dict); the weights go
   into the running engine in place (:meth:`experts.vllm_backend.VLLMBackend.load_weights`: a safetensors file
   in shared memory, ``collective_rpc`` -> ``model_runner.reload_weights``, prefix cache cleared). No restart.
2. **sample**: the B prompts (their token ids, padding removed) each n times, one request per row with the seed
   ``base + row`` (``base`` one draw of the trainer's generator: the rollouts are a deterministic function of
   its state), constrained by the answer trie inside vllm, at the policy's temperature.
3. **score the behaviour policy**: ``old_logp`` and ``entropy`` are RECOMPUTED by the transformers policy
   (:meth:`experts.policy.LMPolicy.logprobs`, one forward without grad over prompt + answer), not taken from
   vllm. The PPO ratio ``exp(logp - old_logp)`` compares the trainer's own numerics, so the first update of a
   rollout is exactly on-policy (ratio 1, as with transformers sampling) instead of carrying vllm-vs-trainer
   kernel differences (bf16 matmuls, fused attention on GPU) into every clipped ratio -- the mismatch that
   verl avoids the same way (it recomputes ``old_log_prob`` with the actor). vllm's own log-probabilities of the
   sampled tokens (``processed_logprobs``: after the constraint and the temperature) are kept in
   ``extras["vllm_logp"]``; their gap to the recomputed values is logged per rollout (``vllm/logp_gap_max``)
   as a check that the engine samples from the trainer's current weights.

Rows follow :class:`experts.policy.LMPolicy`'s layout (``extras["item"]``, ``extras["allowed"]``, the response
mask on decision tokens only), so the trainer and every loss treat them exactly like transformers rollouts.
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import torch

from rl.policy import Rollouts

__all__ = ["VLLMRolloutSampler", "score_answers", "vllm_sampler"]


def _allowed(constraint, tokens: list[list[int]], T: int) -> torch.Tensor:
    """``(R, T, K)`` allowed ids at every position (-1 padded), as ``LMPolicy.sample`` records them."""
    out = torch.full((len(tokens), T, constraint.max_branching), -1, dtype=torch.long)
    for r, row in enumerate(tokens):
        for k in range(T):
            allowed = constraint.allowed(row[:k])
            out[r, k, : len(allowed)] = torch.tensor(allowed)
    return out


@torch.no_grad()
def score_answers(policy, batch: dict[str, Any], answers: list[list[int]], n: int) -> Rollouts:
    """Rollouts of generated ``answers`` (token ids per row, B*n rows in ``repeat_interleave`` order) in
    :class:`experts.policy.LMPolicy`'s layout, with ``old_logp``/``entropy`` computed by ``policy`` (one forward
    without grad, eval mode): padded with the pad token, the response mask on decision tokens before the end."""
    cons = policy.constraint
    R = len(answers)
    T = max(len(t) for t in answers)
    tokens = torch.full((R, T), cons.pad, dtype=torch.long)
    for r, t in enumerate(answers):
        tokens[r, : len(t)] = torch.tensor(t, dtype=torch.long)
    allowed = _allowed(cons, tokens.tolist(), T)
    mask = ((allowed >= 0).sum(-1) > 1).float()  # decision positions
    done = torch.zeros(R, dtype=torch.bool)
    for k in range(T):  # nothing after the end token counts
        mask[:, k] *= (~done).float()
        done |= (tokens[:, k] == cons.eos) | (tokens[:, k] == cons.pad)
    dev = policy.device
    m = mask.to(dev)
    ro = Rollouts(tokens=tokens.to(dev), mask=m, old_logp=torch.zeros_like(m), entropy=torch.zeros_like(m),
                  group_size=n, extras={"item": torch.arange(R, device=dev) // n, "allowed": allowed.to(dev)})
    was_training = policy.model.training
    policy.model.eval()
    logp, ent = policy.logprobs(batch, ro)
    policy.model.train(was_training)
    return Rollouts(tokens=ro.tokens, mask=m, old_logp=logp.float() * m, entropy=ent.float() * m, group_size=n,
                    extras=ro.extras)


class VLLMRolloutSampler:
    """Rollouts of ``policy`` (an :class:`experts.policy.LMPolicy`) drawn by ``backend`` (a
    :class:`experts.vllm_backend.VLLMBackend` serving the same model).

    ``log_path``: a JSON-lines file that gets one line per rollout (sampling and sync time, logp gap).
    """

    def __init__(self, policy, backend, *, log_path: str | os.PathLike | None = None) -> None:
        if policy.constraint.free_tokens:
            raise ValueError("RL rollouts need answers without a free rationale (free_tokens=0)")
        self.policy, self.backend = policy, backend
        self.log_path = Path(log_path) if log_path is not None else None
        self.stats: list[dict[str, Any]] = []
        self._synced_s: float | None = None

    def sync_weights(self, state_dict: dict[str, torch.Tensor]) -> None:
        """Load the trainer's current weights (name -> tensor, Hugging Face names) into the engine."""
        t0 = time.perf_counter()
        self.backend.load_weights(state_dict)
        self._synced_s = time.perf_counter() - t0

    @torch.no_grad()
    def sample(self, batch: dict[str, Any], n: int, *, generator: torch.Generator | None = None) -> Rollouts:
        """B*n rows (``repeat_interleave`` layout) sampled by vllm; ``old_logp``/``entropy`` recomputed by the
        transformers policy (module docstring)."""
        t0 = time.perf_counter()
        pol, cons = self.policy, self.policy.constraint
        ids, att = batch["input_ids"], batch["attention_mask"]
        B = int(ids.shape[0])
        R = B * n
        dev = generator.device if generator is not None else "cpu"
        base = int(torch.randint(0, 2**62, (1,), generator=generator, device=dev).item())
        prompts = [ids[b][att[b].bool()].tolist() for b in range(B)]
        rows = [p for p in prompts for _ in range(n)]
        seeds = [(base + r) % (2**63 - 1) for r in range(R)]
        toks, vlp = self.backend.sample_ids(rows, temperature=pol.temperature, seeds=seeds,
                                            max_tokens=cons.answer_depth + 1, constraint=cons, logprobs=True)
        t1 = time.perf_counter()
        ro = score_answers(pol, batch, toks, n)
        T = ro.tokens.shape[1]
        vllm_logp = torch.zeros((R, T), dtype=torch.float32)
        for r, lp in enumerate(vlp):
            vllm_logp[r, : len(lp)] = torch.tensor(lp)
        m = ro.mask
        vllm_logp = vllm_logp.to(m.device) * m
        gap = (vllm_logp - ro.old_logp).abs() * m
        self._log({"vllm/sample_s": t1 - t0, "vllm/recompute_s": time.perf_counter() - t1,
                   "vllm/logp_gap_max": float(gap.max()) if gap.numel() else 0.0,
                   "vllm/logp_gap_mean": float(gap.sum() / m.sum().clamp_min(1.0)),
                   "vllm/sync_s": self._synced_s})
        self._synced_s = None
        ro.extras["vllm_logp"] = vllm_logp
        return ro

    def _log(self, line: dict[str, Any]) -> None:
        line = {"rollout": len(self.stats) + 1, **line}
        self.stats.append(line)
        if self.log_path is not None:
            with self.log_path.open("a") as f:
                f.write(json.dumps(line) + "\n")

    def close(self) -> None:
        self.backend.close()


def vllm_sampler(policy, folder, *, device: str = "cpu", rows: int = 64, log_path: str | os.PathLike | None = None,
                 fresh: bool = True, **backend_kwargs) -> VLLMRolloutSampler:
    """A :class:`VLLMRolloutSampler` over a new engine serving ``folder`` (the policy's initial model) with room
    for ``rows`` = B*n sequences at once; ``fresh`` empties ``log_path`` first."""
    from experts.vllm_backend import VLLMBackend

    if hasattr(policy.model, "peft_config"):
        raise ValueError("vllm rollouts need a plain model, not a peft adapter: merge it first "
                         "(model.merge_and_unload().save_pretrained(...)) and pass that folder as --model")
    dtype = str(next(policy.model.parameters()).dtype).removeprefix("torch.")
    backend = VLLMBackend(folder, device=str(device), dtype=dtype, batch_size=rows, **backend_kwargs)
    if log_path is not None and fresh:
        Path(log_path).write_text("")
    return VLLMRolloutSampler(policy, backend, log_path=log_path)
