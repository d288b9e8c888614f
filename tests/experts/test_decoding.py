"""The fast decoder (experts.decoding) against transformers' generate, its sampling, prefix sharing, threads."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from experts.answers import AnswerConstraint, ConstrainedLogits, answer_strings, parse_answer
from experts.backends import DecodeSettings, generate_texts
from experts.decoding import auto_threads, decode, row_generator, tables_depth, trie_tables
from tests.experts.conftest import random_bars
from tests.experts.test_answers import _model, _tokenizer


def _prompts(n: int = 24) -> list[str]:
    from experts.prompts import build_prompts

    return list(build_prompts("trend", random_bars(200, seed=11), start=200 - n).text[:, 0])


@pytest.mark.parametrize("kind", ["word", "bpe", "drex"])
def test_trie_tables_spell_the_grid(kind, tiny_tokenizer):
    tok = _tokenizer(kind, tiny_tokenizer)
    c = AnswerConstraint(tok)
    t = trie_tables(c)
    ends = [s for s in range(t.done) if not np.isnan(t.value[s])]
    assert sorted(t.text[s] for s in ends) == sorted(answer_strings())
    for s in ends:  # the path text parses to the state's value
        assert parse_answer(t.text[s]) == (pytest.approx(t.value[s]), False)
    assert tables_depth(t) == c.answer_depth + 1  # the answer tokens and the end token


@pytest.mark.parametrize("kind", ["word", "bpe", "drex"])
def test_greedy_equals_generate_with_the_logits_processor(kind, tiny_tokenizer):
    tok = _tokenizer(kind, tiny_tokenizer)
    model = _model(tok, seed=3)
    c = AnswerConstraint(tok)
    prompts = _prompts() if kind == "drex" else [f"Style: trend. {w} Exposure:" for w in ("up", "down", "up up")] * 3
    ref = generate_texts(model, tok, prompts, DecodeSettings(), constraint=c, batch_size=5)
    assert decode(model, tok, prompts, DecodeSettings(), constraint=c, batch_size=7) == ref
    assert decode(model, tok, prompts, DecodeSettings(), constraint=c, batch_size=1) == ref


def test_free_rationale_and_unconstrained_equal_generate(tiny_tokenizer):
    tok = tiny_tokenizer
    model = _model(tok, seed=2)
    prompts = _prompts(10)
    free = AnswerConstraint(tok, free_tokens=5)
    s = DecodeSettings(free_tokens=5)
    texts = decode(model, tok, prompts, s, constraint=free, batch_size=4)
    assert texts == generate_texts(model, tok, prompts, s, constraint=free, batch_size=3)
    assert all("Exposure:" in t and not parse_answer(t)[1] for t in texts)
    u = DecodeSettings(constrained=False, max_new_tokens=6)
    assert decode(model, tok, prompts, u, batch_size=4) == generate_texts(model, tok, prompts, u, batch_size=6)


def test_sampling_parses_spreads_and_ignores_batching(tiny_tokenizer):
    tok = tiny_tokenizer
    model = _model(tok, seed=4)
    c = AnswerConstraint(tok)
    prompts = _prompts(40)
    seen = set()
    for seed in range(6):
        s = DecodeSettings(temperature=1.5, seed=seed)
        a = decode(model, tok, prompts, s, constraint=c, batch_size=64)
        b = decode(model, tok, prompts[::-1], s, constraint=c, batch_size=3)[::-1]
        assert a == b  # a sampled answer depends on (model, settings, prompt) only
        assert all(t in answer_strings() for t in a)
        seen |= set(a)
    assert len(seen) >= 6  # a random model spreads over the grid
    again = decode(model, tok, prompts, DecodeSettings(temperature=1.5, seed=0), constraint=c)
    other = decode(model, tok, prompts, DecodeSettings(temperature=1.5, seed=1), constraint=c)
    assert again == decode(model, tok, prompts, DecodeSettings(temperature=1.5, seed=0), constraint=c) != other


def test_gumbel_max_draws_follow_the_softmax():
    from experts.decoding import _gumbel

    z = np.array([1.0, 0.0, -1.0, 2.5])
    rng = row_generator(0, "p")
    draws = np.argmax(z + _gumbel(rng, (40000, 4)), axis=1)
    freq = np.bincount(draws, minlength=4) / len(draws)
    p = np.exp(z) / np.exp(z).sum()
    assert np.allclose(freq, p, atol=0.01)  # 40k draws: standard error < 0.0025


def test_shared_prefix_changes_nothing(tiny_tokenizer, monkeypatch):
    import experts.decoding as dec

    tok = tiny_tokenizer
    model = _model(tok, seed=5)
    c = AnswerConstraint(tok)
    prompts = _prompts(30)
    ids = tok(prompts)["input_ids"]
    assert dec._common_prefix(ids) >= 20  # the header and first label are shared
    with_prefix = decode(model, tok, prompts, DecodeSettings(), constraint=c)
    monkeypatch.setattr(dec, "MIN_PREFIX", 10**9)
    assert decode(model, tok, prompts, DecodeSettings(), constraint=c) == with_prefix


def test_prefill_logits_match_a_plain_forward(tiny_tokenizer):
    from experts.decoding import as_lm, prefill, shared_prefix

    tok = tiny_tokenizer
    model = _model(tok, seed=6)
    prompts = _prompts(8)
    ids = tok(prompts)["input_ids"]
    lm = as_lm(model)
    with torch.inference_mode():
        logits, *_ = prefill(lm, ids, shared_prefix(lm, ids), pad=tok.pad_token_id)
        for i, row in enumerate(ids):
            ref = model(input_ids=torch.tensor([row])).logits[0, -1]
            assert torch.allclose(logits[i], ref, atol=1e-5)


def test_processor_and_tables_agree_on_every_prefix(tiny_tokenizer):
    tok = tiny_tokenizer
    c = AnswerConstraint(tok)
    t = trie_tables(c)
    proc = ConstrainedLogits(c, prompt_length=0)
    paths, todo = {0: []}, [0]
    while todo:  # every state's token path, from the tables
        s = todo.pop()
        for tok_id, nxt in zip(t.allowed[s].tolist(), t.next[s].tolist()):
            if tok_id >= 0 and nxt != t.done:
                paths[nxt] = paths[s] + [tok_id]
                todo.append(nxt)
    assert len(paths) == t.done
    for s, path in paths.items():  # the processor allows exactly the table's row after the path
        scores = proc(torch.tensor([path]), torch.zeros(1, len(tok)))
        allowed = sorted(torch.nonzero(scores[0] == 0).flatten().tolist())
        assert allowed == sorted(x for x in t.allowed[s].tolist() if x >= 0)


def test_auto_threads(monkeypatch):
    monkeypatch.setenv("DREX_THREADS", "3")
    assert auto_threads() == 3
    monkeypatch.setenv("DREX_THREADS", "zero")
    with pytest.raises(ValueError, match="DREX_THREADS"):
        auto_threads()
    monkeypatch.delenv("DREX_THREADS")
    assert 1 <= auto_threads() <= torch.get_num_threads()
