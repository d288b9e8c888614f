"""A causal LM with constrained answers as an :class:`rl.policy.Policy` (the GRPO trainer's view of an expert).

``sample(batch, n)``: the n answers of each prompt are decoded token by token with the KV cache; at each step
the logits are restricted to the tokens :class:`experts.answers.AnswerConstraint` allows (a masked softmax at
``temperature``) and one token is drawn with the trainer's seeded generator. Rollout rows follow the
``repeat_interleave`` layout (rows ``b*n .. b*n+n-1`` answer prompt b). The response mask marks the DECISION
positions only (where more than one token was allowed): forced tokens (the ``.`` of ``0.5``, the end token
after a full answer) have probability 1 and carry no gradient or entropy.

``logprobs(batch, rollouts)``: one forward of prompt + answer with grad; log-probability and entropy of each
sampled token under the same masked distribution (the allowed ids are kept in ``rollouts.extras``; only the
allowed logits are gathered, so a 150k-token vocabulary costs K <= 21 columns, not V).

Left padding everywhere; position ids are ``cumsum(attention_mask) - 1`` as in ``transformers``' generation,
so training and inference see the same positions.
"""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch

from experts.answers import AnswerConstraint
from rl.policy import Rollouts

__all__ = ["LMPolicy", "answer_values", "encode_prompts", "forward_logits"]


def encode_prompts(tokenizer, prompts: list[str], device: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
    """Left-padded ``input_ids`` / ``attention_mask`` ``(B, L)``."""
    enc = tokenizer(list(prompts), return_tensors="pt", padding=True)
    return {"input_ids": enc["input_ids"].to(device), "attention_mask": enc["attention_mask"].to(device)}


def forward_logits(model, ids: torch.Tensor, mask: torch.Tensor, *, keep: int | None = None, past=None,
                   positions: torch.Tensor | None = None):
    """Model output for left-padded ``ids (B, L)`` with generation-consistent position ids; ``keep``: only the
    last ``keep`` positions' logits."""
    if positions is None:
        positions = (mask.long().cumsum(-1) - 1).clamp_min(0)
    kw: dict[str, Any] = {"attention_mask": mask, "position_ids": positions, "use_cache": past is not None}
    if past is not None:
        kw["past_key_values"] = past
    if keep is not None:
        kw["logits_to_keep"] = keep
    return model(input_ids=ids, **kw)


def _masked(logits: torch.Tensor, allowed: torch.Tensor, temperature: float) -> torch.Tensor:
    """Logits ``(..., V)`` gathered at ``allowed (..., K)`` (pad -1 -> -inf), divided by the temperature."""
    z = logits.gather(-1, allowed.clamp_min(0)) / temperature
    return z.masked_fill(allowed < 0, float("-inf"))


def answer_values(constraint: AnswerConstraint, tokens: torch.Tensor) -> torch.Tensor:
    """The grid exposure each row of ``tokens (R, T)`` spells (0.0 where it spells none)."""
    out = []
    for row in tokens.tolist():
        node = constraint.root
        for tok in row:
            nxt = node.children.get(tok)
            if nxt is None:
                break
            node = nxt
        out.append(node.value if node.value is not None else 0.0)
    return torch.tensor(out, dtype=torch.float64)


class LMPolicy:
    """GRPO policy over a HF causal LM; ``batch`` is a dict with ``input_ids``/``attention_mask`` ``(B, L)``
    (left padded) plus anything the reward function needs.

    Args:
        model: a ``transformers`` causal LM (its trainable parameters are the policy's).
        tokenizer: its tokenizer.
        constraint: the answer rule (free rationale not supported in RL: ``free_tokens`` must be 0).
        temperature: sampling temperature (> 0).
    """

    def __init__(self, model, tokenizer, constraint: AnswerConstraint, *, temperature: float = 1.0) -> None:
        if constraint.free_tokens:
            raise ValueError("RL rollouts need answers without a free rationale (free_tokens=0)")
        if not temperature > 0:
            raise ValueError(f"temperature must be > 0 for sampling, got {temperature}")
        self.model, self.tokenizer, self.constraint, self.temperature = model, tokenizer, constraint, temperature
        self.device = next(model.parameters()).device

    def parameters(self) -> Iterable[torch.nn.Parameter]:
        return [p for p in self.model.parameters() if p.requires_grad]

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The model's weights under its Hugging Face names (what ``GRPOTrainer.policy_state_dict`` hands to a
        rollout engine: vllm's loader maps these names)."""
        return self.model.state_dict()

    def _allowed(self, rows: list[list[int]]) -> torch.Tensor:
        K = self.constraint.max_branching
        out = torch.full((len(rows), K), -1, dtype=torch.long)
        for i, row in enumerate(rows):
            a = self.constraint.allowed(row)
            out[i, : len(a)] = torch.tensor(a)
        return out

    @torch.no_grad()
    def sample(self, batch: dict[str, Any], n: int, *, generator: torch.Generator | None = None) -> Rollouts:
        ids = batch["input_ids"].repeat_interleave(n, 0)  # (B*n, L)
        mask = batch["attention_mask"].repeat_interleave(n, 0)
        R = ids.shape[0]
        was_training = self.model.training
        self.model.eval()
        out = forward_logits(self.model, ids, mask, keep=1, past=_new_cache())
        past, logits = out.past_key_values, out.logits[:, -1]
        pos = mask.long().sum(-1)  # next position id per row
        gen: list[list[int]] = [[] for _ in range(R)]
        toks, logps, ents, allowed_all, decision = [], [], [], [], []
        for _ in range(self.constraint.answer_depth + 1):
            allowed = self._allowed(gen).to(self.device)  # (R, K)
            z = _masked(logits.float(), allowed, self.temperature)
            logp_all = torch.log_softmax(z, -1)
            probs = logp_all.exp()
            pick = torch.multinomial(probs, 1, generator=generator).squeeze(-1)  # (R,)
            tok = allowed.gather(-1, pick[:, None]).squeeze(-1)
            ent = -(probs * logp_all.nan_to_num(neginf=0.0)).sum(-1)
            toks.append(tok)
            logps.append(logp_all.gather(-1, pick[:, None]).squeeze(-1))
            ents.append(ent)
            allowed_all.append(allowed)
            decision.append((allowed >= 0).sum(-1) > 1)
            for i, t in enumerate(tok.tolist()):
                gen[i].append(t)
            if all(t in (self.constraint.pad, self.constraint.eos) for t in tok.tolist()):
                break
            mask = torch.cat([mask, torch.ones_like(mask[:, :1])], -1)
            out = forward_logits(self.model, tok[:, None], mask, past=past, positions=pos[:, None])
            past, logits = out.past_key_values, out.logits[:, -1]
            pos = pos + 1
        self.model.train(was_training)
        tokens = torch.stack(toks, 1)  # (R, Tg)
        resp = torch.stack(decision, 1).float()
        done = torch.zeros(R, dtype=torch.bool, device=self.device)
        for k in range(tokens.shape[1]):  # nothing after the end token counts
            resp[:, k] = resp[:, k] * (~done).float()
            done = done | (tokens[:, k] == self.constraint.eos) | (tokens[:, k] == self.constraint.pad)
        return Rollouts(
            tokens=tokens, mask=resp, old_logp=torch.stack(logps, 1) * resp, entropy=torch.stack(ents, 1) * resp,
            group_size=n,
            extras={"item": torch.arange(R, device=self.device) // n, "allowed": torch.stack(allowed_all, 1)},
        )

    def _logits(self, batch: dict[str, Any], rollouts: Rollouts) -> torch.Tensor:
        """``(rows, Tg, V)`` logits predicting each generated token, with grad."""
        item = rollouts.extras["item"]
        ids = torch.cat([batch["input_ids"][item], rollouts.tokens], -1)  # (rows, L + Tg)
        mask = torch.cat([batch["attention_mask"][item], torch.ones_like(rollouts.tokens)], -1)
        Tg = rollouts.tokens.shape[1]
        logits = forward_logits(self.model, ids, mask, keep=Tg + 1).logits  # (rows, Tg + 1, V)
        return logits[:, :-1]

    def logprobs(self, batch: dict[str, Any], rollouts: Rollouts) -> tuple[torch.Tensor, torch.Tensor]:
        z = _masked(self._logits(batch, rollouts).float(), rollouts.extras["allowed"], self.temperature)
        logp_all = torch.log_softmax(z, -1)  # (rows, Tg, K)
        pick = (rollouts.extras["allowed"] == rollouts.tokens[..., None]).float().argmax(-1, keepdim=True)
        logp = logp_all.gather(-1, pick).squeeze(-1)
        ent = -(logp_all.exp() * logp_all.nan_to_num(neginf=0.0)).sum(-1)
        m = rollouts.mask
        return logp * m, ent * m


def _new_cache():
    from transformers import DynamicCache

    return DynamicCache()
