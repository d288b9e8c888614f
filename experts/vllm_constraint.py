"""Constrained answers inside vllm: :class:`experts.answers.AnswerConstraint` as a vllm v1 logits processor.

vllm runs this class in its engine process (``LLM(..., logits_processors=[AnswerLogitsProcessor])``); a request
opts in with ``SamplingParams(extra_args={"drex_answer": {"levels": 10, "free_tokens": 0, "cue": "Exposure:"}})``.
Each step, before sampling, every opted-in row's logits outside ``AnswerConstraint.allowed(generated)`` are set
to -inf: the same rule, trie and tokenizer (loaded from the served model's folder) as the transformers
``ConstrainedLogits``, so greedy answers match token for token and every sampled answer parses.

Why a logits processor and not vllm's structured outputs (``StructuredOutputsParams(choice=[...])``): a grammar
over answer TEXT lets the model reach an answer through any tokenization of it (e.g. `` 0`` ``.`` ``5`` or
`` 0.`` ``5``), while the trie allows exactly the tokenization the transformers backend and the RL policy
score; ``allowed_token_ids`` is fixed per request, not per step. The processor is not argmax-invariant, so vllm
applies it before greedy selection, temperature and sampling (``vllm.v1.sample.sampler.Sampler``), and with
``logprobs_mode="processed_logprobs"`` the returned log-probabilities are those of the constrained
distribution at the sampling temperature.

This module imports vllm at import time (the class must subclass vllm's interface); import it only where vllm
is installed (:mod:`experts.vllm_backend` checks first).
"""
from __future__ import annotations

from typing import Any

import torch
from vllm.v1.sample.logits_processor import BatchUpdate, LogitsProcessor
from vllm.v1.sample.logits_processor.builtin import process_dict_updates

__all__ = ["EXTRA_KEY", "AnswerLogitsProcessor", "request_args"]

EXTRA_KEY = "drex_answer"


def request_args(*, levels: int, free_tokens: int, cue: str) -> dict[str, Any]:
    """The ``SamplingParams.extra_args`` that switch the answer constraint on for one request."""
    return {EXTRA_KEY: {"levels": int(levels), "free_tokens": int(free_tokens), "cue": str(cue)}}


class AnswerLogitsProcessor(LogitsProcessor):
    """Masks every row that asked for ``drex_answer`` to the tokens its answer may continue with."""

    def __init__(self, vllm_config, device: torch.device, is_pin_memory: bool) -> None:
        self.tokenizer_path = vllm_config.model_config.tokenizer
        self.device = device
        self._constraints: dict[tuple, Any] = {}
        self._allowed: dict[tuple, tuple[int, list[int] | None]] = {}
        self.rows: dict[int, tuple[Any, list[int]]] = {}  # batch index -> (constraint, live output token ids)

    @classmethod
    def validate_params(cls, sampling_params) -> None:
        args = (sampling_params.extra_args or {}).get(EXTRA_KEY)
        if args is not None and (not isinstance(args, dict) or int(args.get("levels", 10)) < 1):
            raise ValueError(f"extra_args[{EXTRA_KEY!r}] must be a dict with levels >= 1, got {args!r}")

    def is_argmax_invariant(self) -> bool:
        return False  # it changes the greedy choice: vllm must apply it before argmax

    def _constraint(self, args: dict[str, Any]):
        key = (int(args.get("levels", 10)), int(args.get("free_tokens", 0)), str(args.get("cue", "Exposure:")))
        if key not in self._constraints:
            from experts.answers import AnswerConstraint
            from experts.lm import load_tokenizer

            self._constraints[key] = AnswerConstraint(load_tokenizer(self.tokenizer_path), levels=key[0],
                                                      free_tokens=key[1], cue=key[2])
        return self._constraints[key]

    def _new_state(self, params, prompt_ids, output_ids):
        args = (params.extra_args or {}).get(EXTRA_KEY) if params is not None else None
        return None if args is None else (self._constraint(args), output_ids)

    def update_state(self, batch_update: BatchUpdate | None) -> None:
        process_dict_updates(self.rows, batch_update, self._new_state)

    def apply(self, logits: torch.Tensor) -> torch.Tensor:
        """``logits (num_reqs, V)``: constrained rows get -inf outside their allowed tokens (in place)."""
        if not self.rows:
            return logits
        V = logits.shape[-1]
        forbid = torch.zeros(logits.shape, dtype=torch.bool)
        rows, cols, free_rows, eos_cols = [], [], [], []
        for idx, (cons, out) in self.rows.items():
            allowed = cons.allowed(out)
            if allowed is None:  # free rationale: anything but the end token
                free_rows.append(idx)
                eos_cols.append(cons.eos)
                continue
            forbid[idx] = True
            ok = [a for a in allowed if a < V]
            rows.extend([idx] * len(ok))
            cols.extend(ok)
        if rows:
            forbid[rows, cols] = False
        if free_rows:
            forbid[free_rows, eos_cols] = True
        return logits.masked_fill_(forbid.to(logits.device, non_blocking=True), float("-inf"))
