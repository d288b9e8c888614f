"""Answer grid, parser, and constrained decoding for single- and multi-token answer tokenizers."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from experts.answers import (
    AnswerConstraint,
    ConstrainedLogits,
    answer_grid,
    answer_strings,
    format_answer,
    parse_answer,
)
from experts.policy import LMPolicy, answer_values, encode_prompts


def test_grid_and_format():
    g = answer_grid()
    assert len(g) == 21 and g[0] == -1.0 and g[-1] == 1.0 and np.allclose(np.diff(g), 0.1)
    assert answer_strings()[:2] == [" -1.0", " -0.9"] and answer_strings()[10] == " 0.0"
    assert format_answer(-0.0) == " 0.0" and format_answer(0.26) == " 0.3" and format_answer(7) == " 1.0"


@pytest.mark.parametrize(("text", "value", "bad"), [
    (" 0.3", 0.3, False), ("-1.0", -1.0, False), (" 0.26 because", 0.3, False),
    ("trend is up. Exposure: -0.4", -0.4, False), ("Exposure: 0.2 Exposure: 0.7", 0.7, False),
    ("", 0.0, True), ("long", 0.0, True), (" 1.5", 0.0, True), ("-2", 0.0, True), (None, 0.0, True),
])
def test_parse_answer_never_raises(text, value, bad):
    assert parse_answer(text) == (pytest.approx(value), bad)


# ---------------------------------------------------------------------------------------- tokenizers
def _word_level():
    """Each answer string is ONE token (a word-level vocabulary)."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    words = ["<unk>", "<pad>", "<s>", "</s>", "Exposure:", "Style:", " trend.", " up", " down"] + answer_strings()
    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Split(Regex(r" ?[^ ]+"), behavior="isolated")
    tok.decoder = decoders.Fuse()
    return PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", pad_token="<pad>", bos_token="<s>",
                                   eos_token="</s>", padding_side="left")


def _bpe_no_digit_split():
    """Byte-level BPE without digit splitting and without the regex: answers segment in varied ways."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    tok.decoder = decoders.ByteLevel()
    corpus = [f"Style: trend. Exposure:{a}" for a in answer_strings()] * 3
    tok.train_from_iterator(corpus, trainers.BpeTrainer(vocab_size=300, special_tokens=["<pad>", "<s>", "</s>"],
                                                       initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                                       show_progress=False))
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", bos_token="<s>", eos_token="</s>",
                                   padding_side="left")


def _tokenizer(kind, tiny_tokenizer):
    return {"word": _word_level, "bpe": _bpe_no_digit_split}[kind]() if kind != "drex" else tiny_tokenizer


def _model(tok, seed=0):
    from experts.lm import new_model

    return new_model(tok, seed=seed, hidden_size=64, intermediate_size=128, num_hidden_layers=1,
                     num_attention_heads=2, num_key_value_heads=2)


def _paths(node, prefix=()):
    if node.value is not None:
        yield list(prefix), node.value
    for tok, child in node.children.items():
        yield from _paths(child, prefix + (tok,))


@pytest.mark.parametrize("kind", ["word", "bpe", "drex"])
def test_trie_spells_every_answer(kind, tiny_tokenizer):
    tok = _tokenizer(kind, tiny_tokenizer)
    c = AnswerConstraint(tok)
    paths = list(_paths(c.root))
    assert sorted(tok.decode(ids) for ids, _ in paths) == sorted(answer_strings())
    for ids, value in paths:
        assert parse_answer(tok.decode(ids)) == (pytest.approx(value), False)
        for i, t in enumerate(ids):
            assert t in c.allowed(ids[:i])
        assert c.allowed(ids) == [c.eos] and c.allowed(ids + [c.eos]) == [c.pad]
    lengths = {len(ids) for ids, _ in paths}
    if kind == "word":
        assert lengths == {1}
    if kind == "drex":
        assert max(lengths) >= 3  # digits are separate tokens


@pytest.mark.parametrize("kind", ["word", "bpe", "drex"])
def test_every_sampled_answer_parses_many_seeds(kind, tiny_tokenizer):
    from transformers import LogitsProcessorList

    tok = _tokenizer(kind, tiny_tokenizer)
    model = _model(tok)
    c = AnswerConstraint(tok)
    enc = tok(["Style: trend. Exposure:"] * 16, return_tensors="pt", padding=True)
    seen = set()
    for seed in range(8):
        torch.manual_seed(seed)
        out = model.generate(**enc, do_sample=True, temperature=1.5, top_k=None, top_p=None,
                             max_new_tokens=c.max_new_tokens, pad_token_id=tok.pad_token_id,
                             eos_token_id=tok.eos_token_id,
                             logits_processor=LogitsProcessorList([ConstrainedLogits(c, enc["input_ids"].shape[1])]))
        for text in tok.batch_decode(out[:, enc["input_ids"].shape[1]:], skip_special_tokens=True):
            value, bad = parse_answer(text)
            assert not bad and text in answer_strings(), text
            seen.add(value)
    assert len(seen) >= 6  # a random model spreads over the grid: the constraint is not degenerate


@pytest.mark.parametrize("kind", ["word", "bpe", "drex"])
def test_policy_samples_parse_and_logprobs_match(kind, tiny_tokenizer):
    tok = _tokenizer(kind, tiny_tokenizer)
    model = _model(tok, seed=1)
    c = AnswerConstraint(tok)
    pol = LMPolicy(model, tok, c, temperature=1.0)
    batch = encode_prompts(tok, ["Style: trend. Exposure:", "Style: up Exposure:"])
    for seed in range(10):
        ro = pol.sample(batch, 8, generator=torch.Generator().manual_seed(seed))
        texts = tok.batch_decode(ro.tokens, skip_special_tokens=True)
        values = answer_values(c, ro.tokens)
        for text, v in zip(texts, values.tolist()):
            assert parse_answer(text) == (pytest.approx(v), False)
        logp, ent = pol.logprobs(batch, ro)
        assert torch.allclose(logp, ro.old_logp, atol=1e-5) and torch.allclose(ent, ro.entropy, atol=1e-5)
        assert bool((ro.mask.sum(-1) >= 1).all())  # every answer has at least one decision
        # forced positions carry no decision: probability 1 under the constraint
        assert bool((ro.old_logp[ro.mask == 0] == 0).all())


def test_unconstrained_malformed_counts_as_flat(tiny_model_dir):
    from experts.expert import TrendExpert
    from tests.experts.conftest import random_bars

    ex = TrendExpert(checkpoint=str(tiny_model_dir), constrained=False, cache=False)
    d = ex.decide(random_bars(40), start=30)
    bad = d.trace["malformed"].to_numpy(dtype=bool)
    assert bad.sum() > 0 and ex.stats["malformed"] == bad.sum()
    assert (d.weights.to_numpy()[bad] == 0).all()
    assert np.isin(d.weights.to_numpy().round(6), answer_grid()).all()


def test_free_rationale_then_answer(tiny_tokenizer):
    from transformers import LogitsProcessorList

    tok = tiny_tokenizer
    model = _model(tok, seed=2)
    c = AnswerConstraint(tok, free_tokens=6)
    enc = tok(["Style: trend. Think, then answer."] * 8, return_tensors="pt", padding=True)
    for seed in range(5):
        torch.manual_seed(seed)
        out = model.generate(**enc, do_sample=True, max_new_tokens=c.max_new_tokens, top_k=None, top_p=None,
                             pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id,
                             logits_processor=LogitsProcessorList([ConstrainedLogits(c, enc["input_ids"].shape[1])]))
        for text in tok.batch_decode(out[:, enc["input_ids"].shape[1]:], skip_special_tokens=True):
            assert "Exposure:" in text and not parse_answer(text)[1], text
