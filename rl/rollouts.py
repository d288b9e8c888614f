"""Entropy-guided rollouts (ARPO / AEPO style) for any token policy: part of each group's sampling budget
branches new continuations from the highest-entropy positions of earlier samples, with a penalty on branching
again and again along one path.

Sources. ARPO (Dong et al. 2025, arXiv:2507.19849; dongguanting/ARPO@e257337,
``verl/workers/rollout/vllm_rollout/vllm_rollout_with_tools.py``): ``initial_rollouts`` global samples of the
``n`` per prompt, then at each tool-call step a sample branches ``beam_size - 1`` continuations, each accepted
when ``clamp(u - entropy_weight * dH, 0, 1) <= branch_probability`` (u uniform), i.e. with probability
``clip(branch_probability + entropy_weight * dH, 0, 1)``, where dH is the step's entropy minus the sample's
initial entropy, both divided by log(vocab); leftover budget becomes new global samples (scripts: n 16,
initial 8, beam 2, branch_probability 0.5, entropy_weight 0.2). AEPO (Dong et al. 2025, arXiv:2510.14545;
paper only -- the public ARPO snapshot predates it): entropy pre-monitoring sets the number of global samples
per prompt to ``m = n * sigmoid(beta * (H_root - H_tool))`` (question entropy vs mean tool-step entropy), and a
branch penalty lowers the branch probability of paths that already branched at consecutive high-entropy steps.

Generic form used here (a token policy has no tool calls; every position is a candidate step):

1. Probe: one sample per batch item (``policy.sample(batch, 1)``). ``H_root`` = its entropy at position 0,
   ``H_tool`` = its mean entropy over its later valid positions (entropies divided by log V when V is known).
2. Budget split: ``m_b = global_samples`` (default n // 2, ARPO) or, with ``monitor_beta``, AEPO's
   ``m_b = clip(round(n * sigmoid(monitor_beta * (H_root - H_tool))), min_global, n)`` per item. The m_b - 1
   other global samples are continuations of the probe from position 0 (a fresh sample).
3. Branch rounds: every row created in the previous round (at first the global samples) is a candidate with
   its highest-entropy position t* after its own branch point (1 <= t* < its length); dH = H[t*] - H[0].
   Its branch probability is ``clip(branch_probability + entropy_weight * dH, 0, 1) * (1 - consecutive_penalty)
   ** l``, with l the number of consecutive high-entropy branchings (dH > 0) on the path that produced the row
   (our concrete form of AEPO's penalty; ``consecutive_penalty=1`` forbids a branch right after a high-entropy
   branch). Rows try ``beam - 1`` children each, highest probability first, while the item has budget; a child
   keeps the parent's tokens before t* and samples the rest (``policy.continue_from``).
4. Items with budget left once a round creates no branch get more global samples (ARPO's fallback).

The result is a valid :class:`rl.policy.Rollouts` with ``group_size = n``: the n rows of batch item b (global
samples first, then branches in creation order) are contiguous, ``old_logp`` / ``entropy`` are the behaviour
policy's at every position (the shared prefix included), and ``extras`` gains ``branch_parent`` (row index of
the parent in this batch, -1 for global samples), ``branch_pos`` (t*, 0 for global samples), ``branch_depth``
(l) and ``rollout_metrics`` (logged by the trainer as ``rollout/...``).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import torch

from rl.policy import Policy, Rollouts

__all__ = ["BranchingPolicy", "EntropyGuidedSampler"]


@runtime_checkable
class BranchingPolicy(Policy, Protocol):
    """A :class:`rl.policy.Policy` that can continue given prefixes (all the sampler needs beyond ``sample``)."""

    def continue_from(
        self, batch: Any, prefix: Rollouts, lengths: torch.Tensor, *, generator: torch.Generator | None = None
    ) -> Rollouts:
        """One continuation per row of ``prefix`` (no grad).

        Row r keeps ``prefix.tokens[r, :lengths[r]]`` and samples positions ``lengths[r]`` onwards for the batch
        item that row belongs to (mapped through ``prefix.extras``, as ``logprobs`` does for row subsets);
        ``lengths[r] = 0`` is a fresh sample. Returns R rows (``group_size=1``) with ``old_logp``/``entropy`` at
        EVERY position, prefix included, and the per-row extras ``logprobs`` needs.

        Args:
            prefix: (R, T) rows of earlier rollouts of this batch.
            lengths: (R,) long, prefix lengths.
        """
        ...


@dataclass(frozen=True)
class EntropyGuidedSampler:
    """Sample ``n`` rows per batch item, part of them branched at high-entropy positions (module doc).

    Args:
        policy: a :class:`BranchingPolicy`.
        global_samples: global samples per item (default n // 2, at least ``min_global``); ignored with
            ``monitor_beta``.
        monitor_beta: AEPO entropy pre-monitoring sensitivity (None = fixed ``global_samples``).
        min_global: fewest global samples per item (>= 1).
        beam: a branching row tries ``beam - 1`` children per round (ARPO beam_size 2).
        branch_probability: base branch probability (ARPO 0.5).
        entropy_weight: weight of the entropy rise dH (ARPO 0.2).
        consecutive_penalty: p *= (1 - consecutive_penalty) ** l (0 = ARPO, no penalty).
        vocab_size: V for normalising entropies by log V (default ``policy.vocab_size`` if it exists, else no
            normalisation).
    """

    policy: Any
    global_samples: int | None = None
    monitor_beta: float | None = None
    min_global: int = 1
    beam: int = 2
    branch_probability: float = 0.5
    entropy_weight: float = 0.2
    consecutive_penalty: float = 0.5
    vocab_size: int | None = None

    def __post_init__(self) -> None:
        if not callable(getattr(self.policy, "continue_from", None)):
            raise TypeError(
                f"{type(self.policy).__name__} has no continue_from(batch, prefix, lengths, *, generator): entropy-"
                f"guided rollouts need it (see rl.rollouts.BranchingPolicy)"
            )
        if self.min_global < 1 or self.beam < 2:
            raise ValueError(f"need min_global >= 1 and beam >= 2 (got {self.min_global}, {self.beam})")
        for name in ("branch_probability", "consecutive_penalty"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}")

    # ------------------------------------------------------------------------------------------ helpers
    def _scale(self) -> float:
        v = self.vocab_size or getattr(self.policy, "vocab_size", None)
        return math.log(v) if v and v > 1 else 1.0

    def _globals_per_item(self, probe: Rollouts, n: int, scale: float) -> torch.Tensor:
        """(B,) long: m_b, the global samples of each item (module doc, step 2)."""
        b = probe.num_rows
        if self.monitor_beta is None:
            m = self.global_samples if self.global_samples is not None else n // 2
            return torch.full((b,), min(max(m, self.min_global), n), dtype=torch.long)
        h = probe.entropy.float().cpu() / scale  # (B, T)
        mask = probe.mask.float().cpu()
        h_root = h[:, 0]
        later = mask[:, 1:]
        h_tool = (h[:, 1:] * later).sum(-1) / later.sum(-1).clamp_min(1.0)
        share = torch.sigmoid(self.monitor_beta * (h_root - h_tool))
        m = torch.round(n * share).long()
        m = torch.where(later.sum(-1) > 0, m, torch.full_like(m, n))  # nothing to branch from: all global
        return m.clamp(min(self.min_global, n), n)

    # ------------------------------------------------------------------------------------------ sample
    @torch.no_grad()
    def sample(self, batch: Any, n: int, *, generator: torch.Generator | None = None) -> Rollouts:
        """B*n rows, the n of batch item b contiguous (see the module doc)."""
        scale = self._scale()
        probe = self.policy.sample(batch, 1, generator=generator)  # (B, T): row b is item b
        n_items = probe.num_rows
        m = self._globals_per_item(probe, n, scale)
        budget = (n - m).tolist()
        parts: list[Rollouts] = [probe]
        item = [torch.arange(n_items)]
        parent, pos, depth = [torch.full((n_items,), -1)], [torch.zeros(n_items, dtype=torch.long)], []
        depth.append(torch.zeros(n_items, dtype=torch.long))
        more = torch.arange(n_items).repeat_interleave(m - 1)  # items needing m_b - 1 more global samples
        frontier_start = 0
        if more.numel():
            parts.append(self._continue(batch, probe, more, torch.zeros_like(more), generator))
            item.append(more)
            parent.append(torch.full((more.numel(),), -1))
            pos.append(torch.zeros(more.numel(), dtype=torch.long))
            depth.append(torch.zeros(more.numel(), dtype=torch.long))
        branch_h: list[float] = []
        while any(budget):
            rows = Rollouts.cat(parts, group_size=1)
            items, bpos, dep = torch.cat(item), torch.cat(pos), torch.cat(depth)
            cand = self._candidates(rows, bpos, frontier_start, scale)  # (row, t*, dH, h) per eligible row
            frontier_start = rows.num_rows
            if not cand:
                break
            probs = [
                min(max(self.branch_probability + self.entropy_weight * dh, 0.0), 1.0)
                * (1.0 - self.consecutive_penalty) ** int(dep[r])
                for r, _, dh, _ in cand
            ]
            trials = len(cand) * (self.beam - 1)
            u = torch.rand(trials, generator=generator, device=generator.device if generator else "cpu").cpu()
            order = sorted(range(len(cand)), key=lambda i: (-probs[i], cand[i][0]))
            src, at, kids_depth = [], [], []
            for rank, i in enumerate(order):
                r, t, dh, h = cand[i]
                for c in range(self.beam - 1):
                    b = int(items[r])
                    if budget[b] > 0 and float(u[rank * (self.beam - 1) + c]) < probs[i]:
                        budget[b] -= 1
                        src.append(r)
                        at.append(t)
                        kids_depth.append(int(dep[r]) + 1 if dh > 0 else 0)
                        branch_h.append(h)
            if not src:
                break
            src_t = torch.tensor(src)
            parts.append(self._continue(batch, rows, src_t, torch.tensor(at), generator))
            item.append(items[src_t])
            parent.append(src_t)
            pos.append(torch.tensor(at))
            depth.append(torch.tensor(kids_depth))
        fill = torch.tensor([b for b in range(n_items) for _ in range(budget[b])], dtype=torch.long)
        if fill.numel():  # ARPO's fallback: leftover budget becomes global samples
            parts.append(self._continue(batch, probe, fill, torch.zeros_like(fill), generator))
            item.append(fill)
            parent.append(torch.full((fill.numel(),), -1))
            pos.append(torch.zeros(fill.numel(), dtype=torch.long))
            depth.append(torch.zeros(fill.numel(), dtype=torch.long))
        return self._assemble(parts, item, parent, pos, depth, n, m, branch_h)

    def _continue(self, batch, rows: Rollouts, src: torch.Tensor, at: torch.Tensor, generator) -> Rollouts:
        dev = rows.tokens.device
        out = self.policy.continue_from(batch, rows.rows(src.to(dev)), at.to(dev), generator=generator)
        if out.num_rows != src.numel():
            raise ValueError(
                f"{type(self.policy).__name__}.continue_from returned {out.num_rows} rows for {src.numel()} prefixes"
            )
        return out

    @staticmethod
    def _candidates(rows: Rollouts, bpos: torch.Tensor, start: int, scale: float) -> list[tuple[int, int, float, float]]:
        """(row, t*, dH, H[t*]) for the rows created since ``start`` that have a position after their branch
        point: t* = the first highest-entropy valid position in (branch_pos, length)."""
        h = rows.entropy.float().cpu() / scale  # (R, T)
        valid = rows.mask.cpu() > 0
        t_idx = torch.arange(h.shape[1])
        out = []
        for r in range(start, rows.num_rows):
            ok = valid[r] & (t_idx > max(int(bpos[r]), 0))
            if not bool(ok.any()):
                continue
            t = int(torch.argmax(torch.where(ok, h[r], torch.tensor(-math.inf))))
            out.append((r, t, float(h[r, t] - h[r, 0]), float(h[r, t])))
        return out

    @staticmethod
    def _assemble(parts, item, parent, pos, depth, n, m, branch_h) -> Rollouts:
        rows = Rollouts.cat(parts, group_size=1)
        items = torch.cat(item)
        order = torch.sort(items, stable=True).indices  # item-major, creation order inside an item
        inverse = torch.empty_like(order)
        inverse[order] = torch.arange(order.numel())
        par = torch.cat(parent)
        par = torch.where(par >= 0, inverse[par.clamp_min(0)], par)
        dev = rows.tokens.device
        out = rows.rows(order.to(dev))
        branched = (torch.cat(pos) > 0).float()
        extras = {
            **out.extras,
            "branch_parent": par[order].to(dev),
            "branch_pos": torch.cat(pos)[order].to(dev),
            "branch_depth": torch.cat(depth)[order].to(dev),
            "rollout_metrics": {
                "branch_frac": float(branched.mean()),
                "global_per_item": float(m.float().mean()),
                "branch_entropy": sum(branch_h) / len(branch_h) if branch_h else 0.0,
                "max_branch_depth": float(torch.cat(depth).max()),
            },
        }
        return dataclasses.replace(out, group_size=n, extras=extras)
