"""The expert decision-maker: decide, decision cache, batching, look-ahead, multi-asset, model loading paths."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from experts.answers import answer_grid
from experts.expert import EXPERTS, PositioningExpert, TrendExpert, resolve_checkpoint
from tests.experts.conftest import random_bars


def test_decide_shapes_trace_and_grid(tiny_model_dir):
    bars = random_bars(140)
    d = TrendExpert(checkpoint=str(tiny_model_dir), cache=False).decide(bars, start=120)
    assert d.weights.index.equals(bars.index[120:]) and d.trace.index.equals(d.weights.index)
    assert list(d.trace.columns) == ["prompt", "answer", "exposure", "malformed"]
    assert np.isin(d.weights.to_numpy().round(6), answer_grid()).all()
    assert (d.trace["exposure"].to_numpy() == d.weights.to_numpy()).all() and not d.trace["malformed"].any()
    assert d.trace["prompt"].iloc[0].startswith("Style: trend.")


def test_batched_equals_one_by_one(tiny_model_dir):
    bars = random_bars(120, seed=5)
    big = TrendExpert(checkpoint=str(tiny_model_dir), cache=False, batch_size=64).decide(bars, start=90)
    one = TrendExpert(checkpoint=str(tiny_model_dir), cache=False, batch_size=1).decide(bars, start=90)
    assert list(big.trace["answer"]) == list(one.trace["answer"])


def test_answers_in_chunks_with_a_progress_bar_equal_one_call(tiny_model_dir, monkeypatch, capsys):
    import experts.expert as ex_mod

    bars = random_bars(120, seed=5)
    whole = TrendExpert(checkpoint=str(tiny_model_dir), cache=False).decide(bars, start=60)
    monkeypatch.setattr(ex_mod, "GENERATE_CHUNK", 16)
    monkeypatch.setattr(ex_mod.sys.stderr, "isatty", lambda: True)  # a terminal: the bar is shown
    ex = TrendExpert(checkpoint=str(tiny_model_dir))
    chunked = ex.decide(bars, start=60)
    assert list(chunked.trace["answer"]) == list(whole.trace["answer"]) and ex.stats["generated"] == 60
    assert "answering" in capsys.readouterr().err
    # every chunk went to the decision cache as it finished
    assert ex.decide(bars, start=60).trace["answer"].tolist() == whole.trace["answer"].tolist()
    assert ex.stats["generated"] == 60 and ex.stats["cached"] == 60


def test_cache_second_run_generates_nothing_and_is_look_ahead_safe(tiny_model_dir):
    bars = random_bars(150, seed=7)
    ex = TrendExpert(checkpoint=str(tiny_model_dir))
    first = ex.decide(bars, start=100)
    assert ex.stats["generated"] == 50
    again = ex.decide(bars, start=100)
    assert ex.stats["generated"] == 50 and ex.stats["cached"] == 50
    pd.testing.assert_frame_equal(first.trace, again.trace)
    # a paper tick over one more bar generates exactly one new row
    more = random_bars(151, seed=7)
    ex.decide(more, start=150)
    assert ex.stats["generated"] == 51
    # perturbing bars after row k cannot change rows <= k (same prompts -> same keys -> same answers)
    k = 130
    noisy = bars.copy()
    noisy.iloc[k + 1:] *= 1.5
    cut = ex.decide(noisy, start=100)
    pd.testing.assert_frame_equal(cut.trace.iloc[: k - 100 + 1], first.trace.iloc[: k - 100 + 1])


def test_seeded_sampling_is_deterministic(tiny_model_dir):
    bars = random_bars(120, seed=9)
    a = TrendExpert(checkpoint=str(tiny_model_dir), cache=False, temperature=1.0, seed=3).decide(bars, start=80)
    b = TrendExpert(checkpoint=str(tiny_model_dir), cache=False, temperature=1.0, seed=3).decide(bars, start=80)
    c = TrendExpert(checkpoint=str(tiny_model_dir), cache=False, temperature=1.0, seed=4).decide(bars, start=80)
    assert list(a.trace["answer"]) == list(b.trace["answer"]) != list(c.trace["answer"])


def test_multi_asset_one_over_n_sleeves(tiny_model_dir):
    a, b = random_bars(110, seed=1, symbol="A"), random_bars(110, seed=2, symbol="B")
    multi = pd.concat({"A": a, "B": b}, axis=1, names=["asset", "field"])
    d = PositioningExpert(checkpoint=str(tiny_model_dir), cache=False).decide(multi, start=100)
    assert list(d.weights.columns) == ["A", "B"]
    assert {"A/prompt", "A/answer", "A/exposure", "A/malformed", "B/exposure"} <= set(d.trace.columns)
    assert np.allclose(d.weights["A"], d.trace["A/exposure"] / 2) and np.allclose(d.weights["B"], d.trace["B/exposure"] / 2)
    single = PositioningExpert(checkpoint=str(tiny_model_dir), cache=False).decide(a, start=100)
    assert list(single.trace["answer"]) == list(d.trace["A/answer"])


def test_checkpoint_resolution_errors_name_the_fix(tmp_path, tiny_model_dir):
    with pytest.raises(FileNotFoundError, match="not 'default', an existing folder"):
        resolve_checkpoint(str(tmp_path / "nope"), "trend")
    with pytest.raises(FileNotFoundError, match="holds no model for the trend expert"):
        resolve_checkpoint(str(tmp_path), "trend")
    run = tmp_path / "run"
    (run / "trend").mkdir(parents=True)
    import shutil

    shutil.copytree(tiny_model_dir, run / "trend" / "model")
    assert resolve_checkpoint(str(run), "trend") == str((run / "trend" / "model").resolve())
    with pytest.raises(KeyError, match="no parameter"):
        TrendExpert(checkpoint=str(tiny_model_dir), bogus=1)


@pytest.mark.parametrize("arch", ["llama", "qwen2"])
def test_pretrained_architectures_by_path(tmp_path, tiny_tokenizer, arch):
    from transformers import AutoModelForCausalLM

    from experts.lm import new_model, save_model

    model = new_model(tiny_tokenizer, arch=arch, seed=1, hidden_size=64, intermediate_size=128,
                      num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=2)
    folder = save_model(model, tiny_tokenizer, tmp_path / arch)
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= {p.name for p in folder.iterdir()}
    loaded = AutoModelForCausalLM.from_pretrained(str(folder))
    assert type(loaded).__name__ == {"llama": "LlamaForCausalLM", "qwen2": "Qwen2ForCausalLM"}[arch]
    d = EXPERTS["reversal"](checkpoint=str(folder), cache=False).decide(random_bars(60), start=50)
    assert len(d.weights) == 10 and not d.trace["malformed"].any()


def test_lora_adapter_through_peft(tmp_path, tiny_model_dir):
    import torch
    from peft import LoraConfig, get_peft_model

    from experts.lm import load_model

    base, tok = load_model(tiny_model_dir)
    peft_model = get_peft_model(base, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"]))
    with torch.no_grad():  # make the adapter matter: LoRA B starts at zero
        for name, p in peft_model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.5)
    peft_model.save_pretrained(tmp_path / "adapter")
    cfg = (tmp_path / "adapter" / "adapter_config.json")
    assert cfg.is_file() and str(tiny_model_dir) in cfg.read_text()
    bars = random_bars(80, seed=4)
    with_adapter = TrendExpert(checkpoint=str(tmp_path / "adapter"), cache=False).decide(bars, start=40)
    plain = TrendExpert(checkpoint=str(tiny_model_dir), cache=False).decide(bars, start=40)
    assert not with_adapter.trace["malformed"].any() and not plain.trace["malformed"].any()
    adapted = TrendExpert(checkpoint=str(tmp_path / "adapter")).backend()
    assert adapted.engine == "transformers"  # peft adapters load through transformers + peft
    assert TrendExpert(checkpoint=str(tiny_model_dir)).backend().engine == "native"
    ids = tok(["Style: trend. Exposure:"], return_tensors="pt")
    with torch.no_grad():
        a = adapted.model(**ids).logits
        b = load_model(tiny_model_dir)[0](**ids).logits
    assert (a - b).abs().max() > 1e-3  # the adapter was applied on load
    assert TrendExpert(checkpoint=str(tmp_path / "adapter")).identity != TrendExpert(
        checkpoint=str(tiny_model_dir)).identity


@pytest.mark.parametrize("style", ["trend", "positioning"])
def test_cli_start_loads_the_experts_warmup(style, tiny_model_dir):
    """`drex backtest --start` loads `warmup` bars first: the first decided prompt has every feature."""
    from app.backtest_cli import _load_with_warmup
    from experts.expert import EXPERTS

    ex = EXPERTS[style](checkpoint=str(tiny_model_dir), cache=False)
    assert ex.warmup >= 150
    bars, first = _load_with_warmup("sample:SP500", "2017-06-01", "2017-07-31", ex.warmup, offline=True)
    assert first == ex.warmup and bars.index[first] >= pd.Timestamp("2017-06-01", tz="UTC")
    d = ex.decide(bars, start=first)
    assert d.weights.index[0] == bars.index[first]
    assert not any("n/a" in p for p in d.trace["prompt"])
