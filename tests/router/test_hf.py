"""A pretrained vision-language backbone by path: a tiny randomly initialized Qwen2-VL (no download), saved
and loaded by folder, frozen or LoRA-tuned under the router's own fusion and heads."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import markets
from router.charts import render
from router.features import temporal_inputs
from router.model import RouterConfig, RouterNet, load_router, route, save_router

pytest.importorskip("transformers")
pytest.importorskip("peft")

EXPERTS = ("trend", "reversal", "breakout", "positioning")


@pytest.fixture(scope="module")
def tiny_qwen2vl(tmp_path_factory):
    """A 2-layer Qwen2-VL (hidden 64, vision depth 2) with a character-level tokenizer, saved like a hub model."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast, Qwen2VLConfig, Qwen2VLForConditionalGeneration
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    out = tmp_path_factory.mktemp("tiny-qwen2vl")
    special = ["<pad>", "<unk>", "<|vision_start|>", "<|vision_end|>", "<|image_pad|>", "<|video_pad|>"]
    chars = list("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 .,:%+-/")
    vocab = {t: i for i, t in enumerate(special + chars)}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Split(pattern="", behavior="isolated")
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", unk_token="<unk>",
                                   additional_special_tokens=special[2:])
    cfg = Qwen2VLConfig(
        text_config={"vocab_size": 128, "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
                     "num_attention_heads": 2, "num_key_value_heads": 2, "max_position_embeddings": 512,
                     "rope_scaling": {"type": "mrope", "mrope_section": [4, 6, 6]}, "bos_token_id": 0,
                     "eos_token_id": 0, "pad_token_id": 0},
        vision_config={"depth": 2, "embed_dim": 32, "hidden_size": 64, "num_heads": 2, "patch_size": 14,
                       "spatial_merge_size": 2, "in_chans": 3, "mlp_ratio": 2},
        image_token_id=vocab["<|image_pad|>"], video_token_id=vocab["<|video_pad|>"],
        vision_start_token_id=vocab["<|vision_start|>"], vision_end_token_id=vocab["<|vision_end|>"])
    torch.manual_seed(0)
    Qwen2VLForConditionalGeneration(cfg).save_pretrained(out)
    Qwen2VLImageProcessorPil().save_pretrained(out)
    fast.save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def inputs():
    bars = markets.load("synth:regimes?seed=1&n=300")
    rows = np.arange(294, 300)
    chunks, now = temporal_inputs(bars, rows=rows)
    return render(bars, rows), chunks, now


def _net(path, tune):
    torch.manual_seed(1)
    return RouterNet(RouterConfig(experts=EXPERTS, backbone=str(path), backbone_tune=tune, image_scale=1))


def _steps(net, inputs, n=3):
    opt = torch.optim.AdamW([p for p in net.parameters() if p.requires_grad], lr=1e-2)
    x = [torch.as_tensor(a) for a in inputs]
    for _ in range(n):
        out = net(*x)
        loss = (out.scores ** 2).mean() + out.regime_logits.logsumexp(-1).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()


@pytest.mark.parametrize("tune", ["frozen", "lora"])
def test_backbone_trains_saves_and_loads(tiny_qwen2vl, inputs, tune, tmp_path):
    net = _net(tiny_qwen2vl, tune)
    base = {n: p.detach().clone() for n, p in net.backbone.named_parameters() if "lora_" not in n}
    trainable = {n for n, p in net.named_parameters() if p.requires_grad}
    assert "router_head.0.weight" in trainable and "backbone_proj.weight" in trainable
    assert not any(n.startswith("backbone.") and "lora_" not in n for n in trainable)  # the base stays frozen
    assert any("lora_" in n for n in trainable) == (tune == "lora")
    before = route(net, *inputs, batch=4)[0]
    _steps(net, inputs)
    after = route(net, *inputs, batch=4)[0]
    assert not np.allclose(before, after)
    for n, p in net.backbone.named_parameters():
        if "lora_" not in n:
            assert torch.equal(p, base[n]), n
    if tune == "lora":
        lora_b = [p for n, p in net.backbone.named_parameters() if "lora_B" in n]
        assert lora_b and any(p.abs().sum() > 0 for p in lora_b)  # the adapters moved off their zero init
    path = save_router(net, tmp_path / "router")
    assert (path / "adapter" / "adapter_model.safetensors").is_file() == (tune == "lora")
    back = load_router(path)
    np.testing.assert_allclose(route(back, *inputs, batch=4)[0], after, rtol=1e-5, atol=1e-7)


def test_text_of_the_numbers():
    from router.hf import feature_text

    _, now = temporal_inputs(markets.load("synth:regimes?seed=1&n=300"), rows=[0, 299])
    texts = feature_text(now)
    assert "return 20 bars n/a" in texts[0]  # warm-up
    assert "RSI 14 +" in texts[1] and texts[1].endswith("Market regime:")
