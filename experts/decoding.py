"""Fast batched decoding of expert answers: one prefill with the KV cache, then only the answer's choice steps.

What ``transformers``' ``generate`` spends on a 0.56M-parameter expert is overhead: a Python logits processor
per step and row, a forward per generated token (forced ones included), a full prompt prefill per row. This
module decodes the same answers with:

* **one shared prefix**: the longest common token prefix of the prompts of a call (the header and first label:
  a third of a trend prompt) is run once; its KV cache is expanded to every batch;
* **one prefill per batch** of left-padded suffixes, sorted by length so batches pad little;
* **trie tables**: the answer trie of :class:`experts.answers.AnswerConstraint` as tensors (``allowed (S, K)``
  token ids and ``next (S, K)`` states per trie state), so a step is a gather over the batch: the logits at the
  K allowed ids, an argmax (greedy) or a Gumbel-max draw (sampling), the next state. A step where every row's
  next token is forced (the ``.`` in ``0.5``) costs no choice; it rides with the next forward (two tokens in
  one call), and the final end token costs no forward at all;
* **per-prompt randomness**: with ``temperature > 0`` each prompt draws its noise from its own generator seeded
  by ``(seed, prompt text)``, so a sampled answer is a function of (model, settings, prompt) only: the same
  whatever the batch size, the batch it falls in or the call it comes from (the decision cache stays exact).

Free rationale (``free_tokens > 0``) and unconstrained decoding take the general path: per-row rules of
:meth:`experts.answers.AnswerConstraint.allowed` over the full vocabulary, same prefill and per-prompt noise.

Greedy answers equal ``model.generate`` with :class:`experts.answers.ConstrainedLogits` (tested); sampling is
exact sampling from ``softmax(logits / temperature)`` restricted to the allowed tokens (no top-k/top-p, no
repetition penalty, whatever the model's ``generation_config`` says).
"""
from __future__ import annotations

import contextlib
import hashlib
import inspect
import os
from collections.abc import Iterator, Sequence
from typing import NamedTuple

import numpy as np
import torch

__all__ = [
    "HFModel",
    "TrieTables",
    "as_lm",
    "auto_threads",
    "cache_kwarg",
    "cpu_threads",
    "decode",
    "final_states",
    "kv_cache",
    "prefill",
    "row_generator",
    "shared_prefix",
    "tables_depth",
    "trie_steps",
    "trie_tables",
]

MIN_PREFIX = 4  # shared-prefix tokens below which the prefix is not worth a separate forward


class TrieTables(NamedTuple):
    """The answer trie as tensors. States: 0 = root, ..., ``done`` = after the end token.

    allowed: (S, K) long, the allowed token ids per state, -1 padded, in the order of
    ``AnswerConstraint.allowed`` (children by id, then the end token where an answer is complete).
    next: (S, K) long, the state after each allowed token (-1 where none).
    n_allowed: (S,) long. value: (S,) float64, the answer's exposure at states that complete one (NaN elsewhere).
    text: per state, the answer text spelled by the path to it (its decoded tokens).
    """

    allowed: torch.Tensor
    next: torch.Tensor
    n_allowed: torch.Tensor
    value: np.ndarray
    text: list[str]
    done: int
    eos: int
    pad: int

    @property
    def width(self) -> int:
        return int(self.allowed.shape[1])

    def to(self, device) -> TrieTables:
        return self._replace(allowed=self.allowed.to(device), next=self.next.to(device),
                             n_allowed=self.n_allowed.to(device))


def trie_tables(constraint) -> TrieTables:
    """Tables of ``constraint``'s answer trie (free_tokens must be 0: a rationale is not a trie)."""
    if constraint.free_tokens:
        raise ValueError("trie tables describe answers without a rationale (free_tokens=0)")
    nodes, paths = [constraint.root], [[]]
    i = 0
    while i < len(nodes):  # breadth first: a state's number is its index
        node = nodes[i]
        for tok in sorted(node.children):
            nodes.append(node.children[tok])
            paths.append(paths[i] + [tok])
        i += 1
    index = {id(n): k for k, n in enumerate(nodes)}
    done = len(nodes)
    K = constraint.max_branching
    allowed = torch.full((done + 1, K), -1, dtype=torch.long)
    nxt = torch.full((done + 1, K), -1, dtype=torch.long)
    value = np.full(done + 1, np.nan)
    for k, node in enumerate(nodes):
        toks = sorted(node.children)
        states = [index[id(node.children[t])] for t in toks]
        if node.value is not None:
            toks.append(constraint.eos)
            states.append(done)
            value[k] = node.value
        allowed[k, : len(toks)] = torch.tensor(toks)
        nxt[k, : len(states)] = torch.tensor(states)
    allowed[done, 0], nxt[done, 0] = constraint.pad, done
    text = [constraint.tokenizer.decode(p) for p in paths] + [""]
    return TrieTables(allowed, nxt, (allowed >= 0).sum(-1), value, text, done, constraint.eos, constraint.pad)


# ------------------------------------------------------------------------------------------- CPU threads
def auto_threads() -> int:
    """Intra-op threads for CPU decoding: ``$DREX_THREADS`` when set, else the idle cores (cores minus the
    1-minute load average, at least 1, at most torch's default).

    A small model's matmuls gain little from many threads and lose a lot when the cores are busy: OpenMP
    threads that wait for a descheduled sibling spin. Measured on a 2-core machine at load 8: one thread
    decoded 2,048 prompts in 11 s, two threads in 55 s (benchmarks/results/experts.md). The thread count
    changes speed only (the logits were bit-identical at 1 and 2 threads).
    """
    env = os.environ.get("DREX_THREADS", "").strip()
    if env:
        try:
            n = int(env)
        except ValueError:
            raise ValueError(f"DREX_THREADS={env!r} must be a positive integer (intra-op threads)") from None
        if n < 1:
            raise ValueError(f"DREX_THREADS={env!r} must be a positive integer (intra-op threads)")
        return n
    cores = os.cpu_count() or 1
    try:
        load = os.getloadavg()[0]
    except OSError:  # pragma: no cover - platforms without a load average
        load = 0.0
    return max(1, min(torch.get_num_threads(), round(cores - load)))


@contextlib.contextmanager
def cpu_threads(n: int) -> Iterator[None]:
    """Run the block with ``n`` intra-op threads (restored after)."""
    before = torch.get_num_threads()
    if n != before:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        if n != before:
            torch.set_num_threads(before)


# ------------------------------------------------------------------------------------------- model plumbing
def cache_kwarg(model) -> str:
    """The forward keyword of the KV cache: ``cache`` (transformers >= 5.2x) or ``past_key_values``."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return "cache" if "cache" in inspect.signature(base.forward).parameters else "past_key_values"


def kv_cache(model, kv: Sequence[tuple[torch.Tensor, torch.Tensor]] | None = None):
    """A ``DynamicCache`` for a transformers ``model`` (its layer types from the config), filled with per-layer
    ``(k, v)`` tensors ``(B, heads, L, head_dim)`` when given."""
    from transformers import DynamicCache

    cache = DynamicCache(config=model.config)
    for i, (k, v) in enumerate(kv or ()):
        cache.update(k, v, i)
    return cache


class HFModel:
    """A ``transformers`` causal LM behind the three calls decoding needs (:class:`experts.native.NativeLM`
    has the same): ``new_cache(kv=None)``, ``cache_tensors(cache)``, ``forward(ids (B, n), mask (B, L + n),
    positions (B, n), cache) -> logits (B, V)`` of the last position (the cache grows in place)."""

    def __init__(self, model) -> None:
        self.model, self.kw = model, cache_kwarg(model)
        self.device = next(model.parameters()).device
        gen = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
        self.eos_ids = [gen] if isinstance(gen, int) else [int(e) for e in gen or []]

    def new_cache(self, kv=None):
        return kv_cache(self.model, kv)

    @staticmethod
    def cache_tensors(cache) -> list[tuple[torch.Tensor, torch.Tensor]]:
        return [(layer.keys, layer.values) for layer in cache.layers]

    def forward(self, ids: torch.Tensor, mask: torch.Tensor, positions: torch.Tensor, cache) -> torch.Tensor:
        out = self.model(input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=True,
                         logits_to_keep=1, **{self.kw: cache})
        return out.logits[:, -1]


def as_lm(model):
    """``model`` itself when it already speaks the decoding interface (a NativeLM), else an :class:`HFModel`."""
    return model if callable(getattr(model, "new_cache", None)) else HFModel(model)


def row_generator(seed: int, prompt: str) -> np.random.Generator:
    """The random stream of one prompt under a sampling seed (independent of batching)."""
    digest = hashlib.sha256(f"{int(seed)}\x00{prompt}".encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))


def _gumbel(rng: np.random.Generator, shape) -> np.ndarray:
    u = rng.random(shape)
    return -np.log(-np.log(np.clip(u, 1e-12, 1.0 - 1e-12)))


# ------------------------------------------------------------------------------------------- prefill
def _common_prefix(ids: list[list[int]]) -> int:
    first = ids[0]
    n = min(len(x) for x in ids) - 1  # every row keeps at least one token of its own to predict from
    for row in ids[1:]:
        k = 0
        while k < n and row[k] == first[k]:
            k += 1
        n = k
    return max(n, 0)


class _Prefix(NamedTuple):
    length: int
    kv: list[tuple[torch.Tensor, torch.Tensor]] | None  # (1, heads, P, head_dim) per layer


def shared_prefix(lm, ids: list[list[int]]) -> _Prefix:
    """The KV cache of the longest common token prefix of ``ids`` (every row keeps a token of its own), run
    once; no prefix when it is shorter than ``MIN_PREFIX`` tokens."""
    P = _common_prefix(ids)
    if P < MIN_PREFIX:
        return _Prefix(0, None)
    x = torch.tensor([ids[0][:P]], device=lm.device)
    cache = lm.new_cache()
    lm.forward(x, torch.ones_like(x), torch.arange(P, device=lm.device)[None], cache)
    return _Prefix(P, lm.cache_tensors(cache))


def prefill(lm, rows: list[list[int]], prefix: _Prefix, *, pad: int):
    """Run the (left-padded) suffixes of ``rows`` after the shared prefix (``lm``: :func:`as_lm`).

    Returns ``(logits (B, V) at each row's last token, cache, mask (B, P + S), next_pos (B,))``.
    """
    P = prefix.length
    suffix = [r[P:] for r in rows]
    B, S = len(rows), max(map(len, suffix))
    ids = torch.full((B, S), pad, dtype=torch.long)
    mask = torch.zeros((B, P + S), dtype=torch.long)
    mask[:, :P] = 1
    for i, s in enumerate(suffix):
        ids[i, S - len(s):] = torch.tensor(s)
        mask[i, P + S - len(s):] = 1
    ids, mask = ids.to(lm.device), mask.to(lm.device)
    positions = (mask.cumsum(-1) - 1).clamp_min(0)[:, P:]
    kv = None if prefix.kv is None else [(k.expand(B, -1, -1, -1), v.expand(B, -1, -1, -1)) for k, v in prefix.kv]
    cache = lm.new_cache(kv)
    logits = lm.forward(ids, mask, positions, cache)
    return logits, cache, mask, mask.sum(-1)


# ------------------------------------------------------------------------------------------- trie decoding
def trie_steps(lm, logits: torch.Tensor, cache, mask: torch.Tensor, next_pos: torch.Tensor,
               tables: TrieTables, choose, *, temperature: float = 1.0,
               forced: torch.Tensor | None = None, forced_len: torch.Tensor | None = None):
    """Walk the answer trie for a batch whose prompts are prefilled (``logits (B, V)``: the next-token logits).

    ``choose(z (B, K), step) -> (B,)`` picks a column of the allowed tokens from their logits divided by
    ``temperature`` (-inf where not allowed); it is not called at steps where every row is forced.
    ``forced (B, Tf)`` / ``forced_len (B,)``: row b's first ``forced_len[b]`` tokens are given (a prefix to
    continue from); their log-probs and entropies are still computed.

    Returns ``(tokens (B, T), states (B, T), logp (B, T), entropy (B, T), columns (B, T))``: the state BEFORE
    each token (its allowed ids are ``tables.allowed[state]``), the log-prob and entropy of the constrained
    distribution ``softmax(z)`` (0 at forced positions), ``columns``: the picked column of ``allowed``; T = the
    steps until every row is done.
    """
    B = logits.shape[0]
    dev = logits.device
    state = torch.zeros(B, dtype=torch.long, device=dev)
    toks, states, logps, ents, picks = [], [], [], [], []
    pending: list[torch.Tensor] = []  # tokens chosen but not yet fed to the model
    step = 0
    while True:
        if bool((state == tables.done).all()):
            break
        allowed = tables.allowed[state]  # (B, K)
        n_ok = tables.n_allowed[state]
        prefixed = (step < forced_len) if forced_len is not None else None
        need_logits = bool((n_ok > 1).any()) or (prefixed is not None and bool(prefixed.any()))
        if need_logits and pending:
            fed = torch.stack(pending, 1)  # (B, n)
            n = fed.shape[1]
            mask = torch.cat([mask, torch.ones((B, n), dtype=mask.dtype, device=dev)], -1)
            positions = next_pos[:, None] + torch.arange(n, device=dev)[None]
            logits = lm.forward(fed, mask, positions, cache)
            next_pos = next_pos + n
            pending = []
        if need_logits:
            z = logits.float().gather(-1, allowed.clamp_min(0)) / temperature
            z = z.masked_fill(allowed < 0, float("-inf"))
            logp_all = torch.log_softmax(z, -1)
            pick = choose(z, step) if bool((n_ok > 1).any()) else torch.zeros(B, dtype=torch.long, device=dev)
            if prefixed is not None:
                given = forced[:, min(step, forced.shape[1] - 1)]
                given_col = (allowed == given[:, None]).float().argmax(-1)
                pick = torch.where(prefixed, given_col, pick)
            pick = torch.where(n_ok > 1, pick, torch.zeros_like(pick))
            p = logp_all.exp()
            ent = -(p * logp_all.nan_to_num(neginf=0.0)).sum(-1)
            lp = logp_all.gather(-1, pick[:, None]).squeeze(-1)
            single = n_ok <= 1
            ent, lp = ent.masked_fill(single, 0.0), lp.masked_fill(single, 0.0)
        else:
            pick = torch.zeros(B, dtype=torch.long, device=dev)
            lp = ent = torch.zeros(B, device=dev)
        tok = allowed.gather(-1, pick[:, None]).squeeze(-1)
        toks.append(tok)
        states.append(state)
        logps.append(lp)
        ents.append(ent)
        picks.append(pick)
        state = tables.next[state].gather(-1, pick[:, None]).squeeze(-1)
        pending.append(tok)
        step += 1
    if not toks:
        empty = torch.zeros((B, 0), dtype=torch.long, device=dev)
        return empty, empty, empty.float(), empty.float(), empty
    return (torch.stack(toks, 1), torch.stack(states, 1), torch.stack(logps, 1), torch.stack(ents, 1),
            torch.stack(picks, 1))


# ------------------------------------------------------------------------------------------- general decoding
def _free_steps(lm, logits, cache, mask, next_pos, prompts, settings, constraint, eos_ids) -> list[list[int]]:
    """Free rationale / unconstrained decoding: per-row rules over the full vocabulary (see module doc)."""
    B = logits.shape[0]
    dev = logits.device
    pad = constraint.pad if constraint is not None else eos_ids[0]
    max_new = constraint.max_new_tokens if constraint is not None else settings.max_new_tokens + settings.free_tokens
    rngs = [row_generator(settings.seed, p) for p in prompts] if settings.temperature > 0 else None
    gen: list[list[int]] = [[] for _ in range(B)]
    finished = [False] * B
    for step in range(max_new):
        vocab = logits.shape[-1]
        z = logits.float() / (settings.temperature if settings.temperature > 0 else 1.0)
        m = torch.zeros_like(z)
        for b in range(B):
            if finished[b]:
                m[b] = float("-inf")
                m[b, pad] = 0.0
                continue
            allowed = constraint.allowed(gen[b]) if constraint is not None else None
            if allowed is None:
                if constraint is not None:  # free rationale: anything but the end token
                    m[b, constraint.eos] = float("-inf")
            else:
                m[b] = float("-inf")
                m[b, [a for a in allowed if a < vocab]] = 0.0
        z = z + m
        if rngs is not None:
            z = z + torch.as_tensor(np.stack([_gumbel(r, vocab) for r in rngs]), dtype=z.dtype, device=dev)
        tok = z.argmax(-1)
        for b, t in enumerate(tok.tolist()):
            if not finished[b]:
                gen[b].append(t)
                if t in eos_ids or (constraint is not None and t == constraint.pad):
                    finished[b] = True
        if all(finished) or step == max_new - 1:
            break
        mask = torch.cat([mask, torch.ones((B, 1), dtype=mask.dtype, device=dev)], -1)
        logits = lm.forward(tok[:, None], mask, next_pos[:, None], cache)
        next_pos = next_pos + 1
    return gen


# ------------------------------------------------------------------------------------------- entry point
def decode(model, tokenizer, prompts: Sequence[str], settings, *, constraint=None, batch_size: int = 64,
           tables: TrieTables | None = None) -> list[str]:
    """Answer texts (the generated text after each prompt, special tokens removed), in prompt order.

    ``model``: a transformers causal LM or a :class:`experts.native.NativeLM`; ``settings``:
    :class:`experts.backends.DecodeSettings`; ``constraint``: the answer rule (None = unconstrained);
    ``tables``: precomputed :func:`trie_tables` of ``constraint`` (built when needed).
    """
    if not prompts:
        return []
    prompts = list(prompts)
    lm = as_lm(model)
    ids = tokenizer(prompts)["input_ids"]
    use_trie = constraint is not None and not constraint.free_tokens
    if use_trie:
        tables = (tables if tables is not None else trie_tables(constraint)).to(lm.device)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    eos_ids = list(dict.fromkeys(([tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else [])
                                 + list(lm.eos_ids))) or [pad]
    out: list[str] = [""] * len(prompts)
    sample = settings.temperature > 0
    with torch.inference_mode():
        prefix = shared_prefix(lm, ids)
        order = sorted(range(len(prompts)), key=lambda i: (len(ids[i]), i))
        for k in range(0, len(order), batch_size):
            idx = order[k: k + batch_size]
            logits, cache, mask, next_pos = prefill(lm, [ids[i] for i in idx], prefix, pad=pad)
            if not use_trie:
                gen = _free_steps(lm, logits, cache, mask, next_pos, [prompts[i] for i in idx], settings,
                                  constraint, eos_ids)
                for i, text in zip(idx, tokenizer.batch_decode(gen, skip_special_tokens=True)):
                    out[i] = text
                continue
            if sample:
                steps = tables_depth(tables)
                noise = torch.as_tensor(np.stack([_gumbel(row_generator(settings.seed, prompts[i]),
                                                          (steps, tables.width)) for i in idx]),
                                        dtype=torch.float32, device=lm.device)  # (B, steps, K)

                def choose(z, step, noise=noise):
                    return (z + noise[:, step]).argmax(-1)
            else:
                def choose(z, step):
                    return z.argmax(-1)
            _, states, *_ = trie_steps(lm, logits, cache, mask, next_pos, tables, choose,
                                       temperature=settings.temperature if sample else 1.0)
            for i, s in zip(idx, final_states(states, tables).tolist()):
                out[i] = tables.text[s]
    return out


def tables_depth(tables: TrieTables) -> int:
    """The most tokens an answer takes, its end token included (the longest root-to-done path)."""
    depth = np.zeros(tables.done + 1, dtype=np.int64)
    nxt = tables.next.cpu().numpy()
    for s in range(tables.done - 1, -1, -1):  # children have larger numbers (breadth-first)
        kids = nxt[s][nxt[s] >= 0]
        depth[s] = 1 + max((depth[c] if c != tables.done else 0) for c in kids)
    return int(depth[0])


def final_states(states: torch.Tensor, tables: TrieTables) -> torch.Tensor:
    """(B,) the state at which each row took its end token (the state that completes its answer): the last
    state of ``states (B, T)`` that is not ``done``."""
    last = (states != tables.done).long().cumsum(-1).argmax(-1)  # first index of the maximum = last non-done
    return states.gather(-1, last[:, None]).squeeze(-1)
