"""The native Llama / Qwen2 forward (experts.native) against transformers: logits, answers, tokenizer."""
from __future__ import annotations

import json

import pytest
import torch

from experts.answers import AnswerConstraint
from experts.backends import DecodeSettings, TransformersBackend
from experts.decoding import decode
from experts.native import load_native, unsupported_reason
from tests.experts.test_decoding import _prompts

CASES = {
    "llama": {"arch": "llama"},
    "llama-gqa": {"arch": "llama", "num_attention_heads": 4, "num_key_value_heads": 2, "hidden_size": 128},
    "qwen2": {"arch": "qwen2"},  # q/k/v biases
}


@pytest.fixture(scope="module", params=sorted(CASES))
def pair(request, tmp_path_factory, tiny_tokenizer):
    """(transformers model, native model, tokenizer) of one saved random model; biases made non-zero."""
    from experts.lm import load_model, new_model, save_model

    kw = {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 2,
          "num_key_value_heads": 2, **CASES[request.param]}
    model = new_model(tiny_tokenizer, seed=7, **kw)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("bias") or "norm" in name:
                p.add_(torch.randn_like(p) * 0.1)
    folder = save_model(model, tiny_tokenizer, tmp_path_factory.mktemp("native") / request.param)
    hf, tok = load_model(folder)
    return hf, *load_native(folder), tok


def test_logits_equal_transformers(pair):
    hf, native, _ntok, tok = pair
    prompts = _prompts(6)
    enc = tok(prompts, return_tensors="pt", padding=True)
    mask = enc["attention_mask"]
    pos = (mask.cumsum(-1) - 1).clamp_min(0)
    with torch.no_grad():
        ref = hf(input_ids=enc["input_ids"], attention_mask=mask, position_ids=pos).logits[:, -1]
    got = native.forward(enc["input_ids"], mask, pos, native.new_cache())
    assert torch.allclose(got, ref, atol=2e-5, rtol=1e-4)


def test_greedy_and_sampled_answers_equal_transformers(pair):
    hf, native, ntok, tok = pair
    prompts = _prompts(30)
    c = AnswerConstraint(tok)
    for s in (DecodeSettings(), DecodeSettings(temperature=1.0, seed=2)):
        assert decode(native, ntok, prompts, s, constraint=AnswerConstraint(ntok), batch_size=8) == decode(
            hf, tok, prompts, s, constraint=c, batch_size=8)


def test_tokenizer_equals_transformers(pair):
    _hf, _native, ntok, tok = pair
    prompts = _prompts(5) + ["Exposure: -0.3", "anything ünïcode"]
    assert ntok(prompts)["input_ids"] == tok(prompts)["input_ids"]
    assert (ntok.pad_token_id, ntok.eos_token_id, ntok.bos_token_id) == (tok.pad_token_id, tok.eos_token_id,
                                                                         tok.bos_token_id)
    for p in prompts:
        ids = ntok.encode(p, add_special_tokens=False)
        assert ids == tok.encode(p, add_special_tokens=False)
        assert ntok.decode(ids) == tok.decode(ids) and ntok.decode(ntok.encode(p), skip_special_tokens=True) == p


def test_the_backend_chooses_native_for_plain_folders_only(tmp_path, tiny_model_dir, monkeypatch):
    assert unsupported_reason(tiny_model_dir) is None
    assert TransformersBackend(tiny_model_dir).engine == "native"
    monkeypatch.setenv("DREX_NATIVE", "0")
    assert TransformersBackend(tiny_model_dir).engine == "transformers"
    cfg = json.loads((tiny_model_dir / "config.json").read_text())
    for change, reason in (({"rope_scaling": {"rope_type": "linear", "factor": 2.0}}, "scaled RoPE"),
                           ({"hidden_act": "gelu"}, "activation"),
                           ({"architectures": ["GPT2LMHeadModel"]}, "architecture")):
        d = tmp_path / reason.replace(" ", "_")
        d.mkdir()
        for f in tiny_model_dir.iterdir():
            (d / f.name).write_bytes(f.read_bytes())
        (d / "config.json").write_text(json.dumps({**cfg, **change}))
        assert reason in unsupported_reason(d)
