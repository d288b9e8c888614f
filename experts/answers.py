"""The answer language: a target exposure on a grid, its parser, and constrained decoding for any tokenizer.

An answer is the text generated after the prompt's cue ``Exposure:``: one grid level written with one
decimal and a leading space (`` -0.3``, `` 0.0``, `` 1.0``), then the end-of-sequence token. The grid has
``2 * levels + 1`` points from -1 to 1 (default 21, step 0.1).

Constrained decoding builds a trie over the TOKEN sequences of the allowed answer strings, tokenized in
context (``cue + answer`` minus the tokens of ``cue``), so it works for any tokenizer: one token per answer
(a word-level vocabulary) or several (digits split individually, byte-level BPE). At each step only the
children of the current trie node are allowed, plus the end-of-sequence token once a whole answer is written;
after it only end-of-sequence (or padding) is allowed. Optional rationale: with ``free_tokens > 0`` the model
first writes up to that many tokens of free text; when the text so far ends with the cue, the answer trie
starts; when the budget is spent without the cue, the cue's tokens are forced, then the trie.

``AnswerConstraint.allowed(generated)`` is the one rule; :class:`ConstrainedLogits` applies it as a
transformers ``LogitsProcessor``, the RL policy uses it to compute log-probabilities of the constrained
distribution, and the vllm backend applies it per request.
"""
from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = [
    "AnswerConstraint",
    "ConstrainedLogits",
    "answer_grid",
    "answer_strings",
    "format_answer",
    "parse_answer",
    "snap",
]

_NUMBER = re.compile(r"[-+]?\d+(?:\.\d+)?")
DEFAULT_LEVELS = 10


def answer_grid(levels: int = DEFAULT_LEVELS) -> np.ndarray:
    """The ``2 * levels + 1`` allowed exposures from -1 to 1 (``levels=10``: step 0.1), ascending."""
    if levels < 1:
        raise ValueError(f"levels must be >= 1 (10 gives the 21-point grid of step 0.1), got {levels}")
    return np.round(np.arange(-levels, levels + 1) / levels, 6)


def _decimals(levels: int) -> int:
    return 1 if 10 % levels == 0 else 2


def format_answer(exposure: float, levels: int = DEFAULT_LEVELS) -> str:
    """``0.3 -> " 0.3"`` (leading space, one decimal; -0.0 is written 0.0); the value is snapped first."""
    v = snap(exposure, levels)
    return f" {v + 0.0:.{_decimals(levels)}f}"


def answer_strings(levels: int = DEFAULT_LEVELS) -> list[str]:
    """Every allowed answer string, in grid order."""
    return [format_answer(v, levels) for v in answer_grid(levels)]


def snap(exposure: float | np.ndarray, levels: int = DEFAULT_LEVELS) -> Any:
    """Round to the nearest grid level (clipped to [-1, 1])."""
    x = np.clip(np.asarray(exposure, dtype=np.float64), -1.0, 1.0)
    out = np.round(x * levels) / levels + 0.0
    return float(out) if out.ndim == 0 else out


def parse_answer(text: str, *, levels: int = DEFAULT_LEVELS, cue: str = "Exposure:") -> tuple[float, bool]:
    """``(exposure, malformed)`` from generated text.

    The number read is the first one after the LAST ``cue`` in the text (a rationale may precede it), or the
    first number of the text when it has no cue. A number in [-1, 1] is snapped to the grid; no number, or one
    outside [-1, 1], is malformed and maps to 0.0. Never raises.
    """
    if not isinstance(text, str):
        return 0.0, True
    tail = text.rsplit(cue, 1)[-1] if cue and cue in text else text
    m = _NUMBER.search(tail)
    if m is None:
        return 0.0, True
    try:
        v = float(m.group())
    except ValueError:  # pragma: no cover - the regex only matches floats
        return 0.0, True
    if not math.isfinite(v) or abs(v) > 1.0 + 1e-9:
        return 0.0, True
    return snap(v, levels), False


# ------------------------------------------------------------------------------------------------- trie
@dataclass
class _Node:
    children: dict[int, _Node] = field(default_factory=dict)
    value: float | None = None  # set where a whole answer ends


def _encode(tokenizer, text: str) -> list[int]:
    return list(tokenizer.encode(text, add_special_tokens=False))


def _in_context(tokenizer, context: str, answer: str) -> list[int]:
    """Tokens of ``answer`` as they follow ``context`` (``enc(context + answer)`` minus ``enc(context)``);
    the standalone encoding when the two merge across the boundary."""
    ctx = _encode(tokenizer, context)
    full = _encode(tokenizer, context + answer)
    if full[: len(ctx)] == ctx and len(full) > len(ctx):
        return full[len(ctx):]
    return _encode(tokenizer, answer)


class AnswerConstraint:
    """The allowed next tokens given the tokens generated so far (the rule of constrained decoding).

    Args:
        tokenizer: any Hugging Face tokenizer (``encode``, ``decode``, ``eos_token_id``).
        levels: grid half-size (10: 21 levels, step 0.1).
        cue: the text after which the answer starts (the prompt's last line).
        free_tokens: rationale budget; 0 (default) = the answer starts right away.
    """

    def __init__(self, tokenizer, *, levels: int = DEFAULT_LEVELS, cue: str = "Exposure:",
                 free_tokens: int = 0) -> None:
        eos = tokenizer.eos_token_id
        if eos is None:
            raise ValueError("the tokenizer has no eos_token_id: constrained answers must end with one; set "
                             "tokenizer.eos_token (e.g. '</s>')")
        self.tokenizer, self.levels, self.cue, self.free_tokens = tokenizer, levels, cue, int(free_tokens)
        self.eos = int(eos)
        pad = tokenizer.pad_token_id
        self.pad = int(pad) if pad is not None else self.eos
        self.root = _Node()
        for value, text in zip(answer_grid(levels), answer_strings(levels)):
            ids = _in_context(tokenizer, cue, text)
            node = self.root
            for tok in ids:
                node = node.children.setdefault(int(tok), _Node())
            node.value = float(value)
        self.answer_depth = self._depth(self.root)
        self.cue_ids = _in_context(tokenizer, "Reason.", " " + cue)
        self.max_new_tokens = self.answer_depth + 1 + (self.free_tokens + len(self.cue_ids) if free_tokens else 0)
        self.max_branching = max(self._branching(self.root), 2)

    def _depth(self, node: _Node) -> int:
        return 0 if not node.children else 1 + max(self._depth(c) for c in node.children.values())

    def _branching(self, node: _Node) -> int:
        own = len(node.children) + (1 if node.value is not None else 0)
        return max([own] + [self._branching(c) for c in node.children.values()])

    # ------------------------------------------------------------------ the rule
    def _answer_start(self, generated: Sequence[int]) -> tuple[int, list[int] | None]:
        """Where the answer starts in ``generated`` (free-text mode), or the forced cue tokens still to write:
        ``(start, None)`` once the answer has started, ``(-1, forced)`` while forcing the cue, ``(-1, [])``
        while the rationale is still free."""
        if not self.free_tokens:
            return 0, None
        text_ids: list[int] = []
        for i, tok in enumerate(generated):
            text_ids.append(tok)
            if i + 1 <= self.free_tokens and self.tokenizer.decode(text_ids).rstrip().endswith(self.cue):
                return i + 1, None
            if i + 1 == self.free_tokens:
                break
        n = len(generated)
        if n < self.free_tokens:
            return -1, []
        done = n - self.free_tokens  # cue tokens already forced
        if done < len(self.cue_ids):
            return -1, self.cue_ids[done:]
        return self.free_tokens + len(self.cue_ids), None

    def allowed(self, generated: Sequence[int]) -> list[int] | None:
        """Token ids allowed next after ``generated`` (this row's generated tokens); ``None`` = any token
        but the end token (free rationale). After a finished answer only padding is allowed."""
        generated = [int(t) for t in generated]
        start, forced = self._answer_start(generated)
        if forced is not None:
            return [forced[0]] if forced else None
        node = self.root
        for tok in generated[start:]:
            if tok in (self.eos, self.pad) and node.value is not None:
                return [self.pad]
            child = node.children.get(tok)
            if child is None:  # off the trie (can only happen to text not produced under the rule)
                return [self.eos]
            node = child
        out = sorted(node.children)
        if node.value is not None:
            out.append(self.eos)
        return out

    def decision_positions(self, generated: Sequence[int]) -> list[bool]:
        """Per generated token: was it a choice (more than one token allowed there)? Forced tokens
        (``.`` after ``0``, the end token after a full answer) carry no decision."""
        out = []
        for i in range(len(generated)):
            allowed = self.allowed(generated[:i])
            out.append(allowed is None or len(allowed) > 1)
        return out


class ConstrainedLogits:
    """A transformers ``LogitsProcessor``: sets every score outside :meth:`AnswerConstraint.allowed` to -inf.

    ``prompt_length``: the (left-padded) prompt length L0; the generated tokens of row b are
    ``input_ids[b, L0:]``.
    """

    def __init__(self, constraint: AnswerConstraint, prompt_length: int) -> None:
        self.constraint, self.prompt_length = constraint, int(prompt_length)

    def __call__(self, input_ids, scores):
        import torch

        gen = input_ids[:, self.prompt_length:].tolist()
        mask = torch.full_like(scores, float("-inf"))
        for b, row in enumerate(gen):
            allowed = self.constraint.allowed(row)
            if allowed is None:  # free rationale: anything but the end token
                mask[b] = 0.0
                mask[b, self.constraint.eos] = float("-inf")
            else:
                mask[b, [a for a in allowed if a < scores.shape[-1]]] = 0.0
        return scores + mask
