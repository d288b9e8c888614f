"""A causal LM with constrained answers as an :class:`rl.policy.Policy` (the GRPO trainer's view of an expert).

``sample(batch, n)``: each prompt is prefilled once and its KV cache shared by its n answers, which walk the
answer trie (:func:`experts.decoding.trie_steps`): at each step the logits are restricted to the tokens
:class:`experts.answers.AnswerConstraint` allows (a masked softmax at ``temperature``) and one token is drawn
with the trainer's seeded generator. Rollout rows follow the
``repeat_interleave`` layout (rows ``b*n .. b*n+n-1`` answer prompt b). The response mask marks the DECISION
positions only (where more than one token was allowed): forced tokens (the ``.`` of ``0.5``, the end token
after a full answer) have probability 1 and carry no gradient or entropy.

``logprobs(batch, rollouts)``: with grad, each distinct prompt once, its KV cache shared by its rows' answers;
log-probability and entropy of each sampled token under the same masked distribution (the allowed ids are kept in ``rollouts.extras``; only the
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


def forward_logits(model, ids: torch.Tensor, mask: torch.Tensor, *, keep: int | None = None):
    """Model output (no cache) for left-padded ``ids (B, L)`` with generation-consistent position ids;
    ``keep``: only the last ``keep`` positions' logits."""
    positions = (mask.long().cumsum(-1) - 1).clamp_min(0)
    kw: dict[str, Any] = {"attention_mask": mask, "position_ids": positions, "use_cache": False}
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

    Sampling walks the answer trie with :func:`experts.decoding.trie_steps` (each prompt prefilled once, its
    KV cache shared by its n answers). Rows are padded to the longest answer (``self.depth`` tokens, the end
    token included), so rollouts of one policy always have the same width. ``continue_from`` (entropy-guided
    rollouts, :class:`rl.rollouts.EntropyGuidedSampler`) keeps given answer prefixes and samples the rest.
    """

    def __init__(self, model, tokenizer, constraint: AnswerConstraint, *, temperature: float = 1.0) -> None:
        from experts.decoding import tables_depth, trie_tables

        if constraint.free_tokens:
            raise ValueError("RL rollouts need answers without a free rationale (free_tokens=0)")
        if not temperature > 0:
            raise ValueError(f"temperature must be > 0 for sampling, got {temperature}")
        self.model, self.tokenizer, self.constraint, self.temperature = model, tokenizer, constraint, temperature
        self.device = next(model.parameters()).device
        self.tables = trie_tables(constraint).to(self.device)
        self.depth = tables_depth(self.tables)

    @property
    def vocab_size(self) -> int:
        """K, the most tokens allowed at one answer position: entropies are over the allowed tokens only, so
        log K is their scale (the entropy-guided sampler normalises by it)."""
        return self.tables.width

    def parameters(self) -> Iterable[torch.nn.Parameter]:
        return [p for p in self.model.parameters() if p.requires_grad]

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The model's weights under its Hugging Face names (what ``GRPOTrainer.policy_state_dict`` hands to a
        rollout engine: vllm's loader maps these names)."""
        return self.model.state_dict()

    @torch.no_grad()
    def sample(self, batch: dict[str, Any], n: int, *, generator: torch.Generator | None = None) -> Rollouts:
        """n constrained answers per prompt, rows in ``repeat_interleave`` order."""
        B = batch["input_ids"].shape[0]
        item = torch.arange(B, device=self.device).repeat_interleave(n)
        return self._rollout(batch, item, None, None, n, generator)

    @torch.no_grad()
    def continue_from(self, batch: dict[str, Any], prefix: Rollouts, lengths: torch.Tensor, *,
                      generator: torch.Generator | None = None) -> Rollouts:
        """One continuation per row of ``prefix (R, T)``: row r keeps its first ``lengths[r]`` answer tokens
        and samples the rest for its prompt (``prefix.extras["item"]``); log-probs and entropies at every
        position, the kept prefix included (:class:`rl.rollouts.BranchingPolicy`)."""
        item = prefix.extras["item"].to(self.device)
        return self._rollout(batch, item, prefix.tokens.to(self.device), lengths.to(self.device), 1, generator)

    def _rollout(self, batch, item: torch.Tensor, forced, lengths, group_size: int, generator) -> Rollouts:
        from experts.decoding import HFModel, trie_steps

        tables = self.tables
        lm = HFModel(self.model)
        was_training = self.model.training
        self.model.eval()
        try:
            uniq, inv = torch.unique(item, return_inverse=True)
            ids, mask = batch["input_ids"][uniq], batch["attention_mask"][uniq]
            cache = lm.new_cache()
            logits = lm.forward(ids, mask, (mask.long().cumsum(-1) - 1).clamp_min(0), cache)  # each prompt once
            cache = lm.new_cache([(k[inv], v[inv]) for k, v in lm.cache_tensors(cache)])
            mask = mask[inv]

            def choose(z, step):
                return torch.multinomial(torch.softmax(z, -1), 1, generator=generator).squeeze(-1)

            tokens, states, logp, ent, _ = trie_steps(lm, logits[inv], cache, mask, mask.long().sum(-1), tables,
                                                      choose, temperature=self.temperature, forced=forced,
                                                      forced_len=lengths)
        finally:
            self.model.train(was_training)
        pad = self.depth - tokens.shape[1]
        if pad > 0:  # every row the same width: the longest answer
            R = tokens.shape[0]
            tokens = torch.cat([tokens, torch.full((R, pad), tables.pad, device=tokens.device)], 1)
            states = torch.cat([states, torch.full((R, pad), tables.done, device=states.device)], 1)
            logp = torch.cat([logp, logp.new_zeros((R, pad))], 1)
            ent = torch.cat([ent, ent.new_zeros((R, pad))], 1)
        resp = (tables.n_allowed[states] > 1).float()  # decisions: forced tokens and the done state carry none
        return Rollouts(tokens=tokens, mask=resp, old_logp=logp * resp, entropy=ent * resp, group_size=group_size,
                        extras={"item": item, "allowed": tables.allowed[states]})

    def _logits(self, batch: dict[str, Any], rollouts: Rollouts) -> torch.Tensor:
        """``(rows, Tg, V)`` logits predicting each generated token, with grad.

        Each distinct prompt of the rows runs once (its KV cache expanded to its rows, the gradient summing
        back through the expansion); the answers then run on top: the same values as one forward of prompt +
        answer per row (tested) at about 1/n of the prompt cost for groups of n."""
        from experts.decoding import cache_kwarg, kv_cache

        item = rollouts.extras["item"]
        uniq, inv = torch.unique(item, return_inverse=True)
        ids, mask = batch["input_ids"][uniq], batch["attention_mask"][uniq]
        kw = cache_kwarg(self.model)
        cache = kv_cache(self.model)
        out = self.model(input_ids=ids, attention_mask=mask, position_ids=(mask.long().cumsum(-1) - 1).clamp_min(0),
                         use_cache=True, logits_to_keep=1, **{kw: cache})
        first = out.logits[:, -1][inv]  # (rows, V): predicts answer token 0
        tokens = rollouts.tokens
        Tg = tokens.shape[1]
        if Tg == 1:
            return first[:, None]
        rows_cache = kv_cache(self.model, [(layer.keys[inv], layer.values[inv]) for layer in cache.layers])
        mask = mask[inv]
        amask = torch.cat([mask, torch.ones_like(tokens[:, :-1])], -1)
        pos = mask.long().sum(-1, keepdim=True) + torch.arange(Tg - 1, device=tokens.device)[None]
        rest = self.model(input_ids=tokens[:, :-1], attention_mask=amask, position_ids=pos, use_cache=True,
                          **{kw: rows_cache}).logits  # (rows, Tg - 1, V)
        return torch.cat([first[:, None], rest], 1)

    def logprobs(self, batch: dict[str, Any], rollouts: Rollouts) -> tuple[torch.Tensor, torch.Tensor]:
        z = _masked(self._logits(batch, rollouts).float(), rollouts.extras["allowed"], self.temperature)
        logp_all = torch.log_softmax(z, -1)  # (rows, Tg, K)
        pick = (rollouts.extras["allowed"] == rollouts.tokens[..., None]).float().argmax(-1, keepdim=True)
        logp = logp_all.gather(-1, pick).squeeze(-1)
        ent = -(logp_all.exp() * logp_all.nan_to_num(neginf=0.0)).sum(-1)
        m = rollouts.mask
        return logp * m, ent * m
