"""A tiny end-to-end SFT -> RL run, exact resume of both stages, rewards against the backtester."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from experts.rewards import horizon_rewards
from experts.training import TrainConfig, train_rl, train_sft

SPEC = ("synth:regimes?seed=1&n=260",)
TINY = {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 1, "num_attention_heads": 2,
        "num_key_value_heads": 2}


def _sft_cfg(**kw):
    base = {"style": "trend", "data": SPEC, "end": None, "steps": 4, "batch_size": 8, "val_size": 16, "save_every": 2, "arch": TINY,
                "lr": 1e-2}
    return TrainConfig(**{**base, **kw})


def _weights(folder):
    from safetensors.torch import load_file

    return load_file(str(folder / "model.safetensors"))


def test_rewards_match_the_backtester_and_hand_values():
    import backtest
    from tests.experts.conftest import random_bars

    bars = random_bars(60, seed=2)
    o, c = bars["open"].to_numpy(), bars["close"].to_numpy()
    t, e, H = np.array([3, 10, 40]), np.array([0.7, -0.4, 1.0]), 5
    got = horizon_rewards(o, c, t, e, H, fees=0.001, slippage=0.0005)
    for ti, ei, g in zip(t, e, got):
        w = pd.Series(0.0, index=bars.index[ti: ti + H + 1])
        w.iloc[:H] = ei
        res = backtest.run(bars.iloc[ti: ti + H + 1], w, fees=0.001, slippage=0.0005, init_cash=1.0,
                           periods_per_year=252)
        assert g == pytest.approx(res.equity.iloc[-1] - 1.0, abs=1e-12)
    # one bar, full long from flat in a cash account: the buy is cut so that it and its fee spend the cash
    # (q = 1 / (open (1 + fee))), then open -> close
    one = horizon_rewards(o, c, np.array([7]), np.array([1.0]), 1, fees=0.001, slippage=0.0)
    assert one[0] == pytest.approx(c[8] / (o[8] * 1.001) - 1.0, abs=1e-12)
    # already fully long at t's close, no costs: the close-to-close return
    held = horizon_rewards(o, c, np.array([7]), np.array([1.0]), 3, fees=0.0, slippage=0.0, start_exposure=1.0)
    assert held[0] == pytest.approx(c[10] / c[7] - 1.0, abs=1e-12)
    with pytest.raises(ValueError, match="t \\+ horizon"):
        horizon_rewards(o, c, np.array([58]), np.array([1.0]), 5, fees=0.0, slippage=0.0)


def test_sft_then_rl_end_to_end(tmp_path, tiny_tokenizer):
    sft = train_sft(_sft_cfg(), tmp_path / "sft", tokenizer=tiny_tokenizer)
    assert {"val/agreement", "val/reward", "val/teacher_reward"} <= set(sft) and sft["val/malformed"] == 0.0
    lines = [json.loads(x) for x in (tmp_path / "sft" / "metrics.jsonl").read_text().splitlines()]
    assert [x["step"] for x in lines] == [1, 2, 3, 4] and "val/agreement" in lines[-1]
    cfg = TrainConfig(style="trend", stage="rl", data=SPEC, end=None, steps=2, batch_size=4, group_size=4,
                      val_size=16, model=str(tmp_path / "sft"), optimizer="clip_cov", lr=1e-3, save_every=1)
    rl = train_rl(cfg, tmp_path / "rl")
    assert rl["before/val/agreement"] == sft["val/agreement"]  # RL starts from the SFT model
    rl_lines = [json.loads(x) for x in (tmp_path / "rl" / "metrics.jsonl").read_text().splitlines()]
    assert len(rl_lines) == 2 and all("entropy" in x and "reward/mean" in x for x in rl_lines)
    from experts.expert import TrendExpert
    from tests.experts.conftest import random_bars

    d = TrendExpert(checkpoint=str(tmp_path / "rl"), cache=False).decide(random_bars(40), start=35)
    assert len(d.weights) == 5 and not d.trace["malformed"].any()


def test_sft_resume_equals_uninterrupted(tmp_path, tiny_tokenizer):
    train_sft(_sft_cfg(), tmp_path / "a", tokenizer=tiny_tokenizer)
    part = train_sft(_sft_cfg(), tmp_path / "b", tokenizer=tiny_tokenizer, stop_at=2)
    assert part["stopped"] and part["step"] == 2
    train_sft(_sft_cfg(), tmp_path / "b", resume=True)
    wa, wb = _weights(tmp_path / "a" / "model"), _weights(tmp_path / "b" / "model")
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    la = (tmp_path / "a" / "metrics.jsonl").read_text().splitlines()
    lb = (tmp_path / "b" / "metrics.jsonl").read_text().splitlines()
    strip = lambda ln: {k: v for k, v in json.loads(ln).items() if k not in ("tokens_per_s", "time/step_s")}
    assert [strip(x) for x in la] == [strip(x) for x in lb]
    with pytest.raises(ValueError, match="different configuration"):
        train_sft(_sft_cfg(lr=5e-3), tmp_path / "b", resume=True)


def test_rl_resume_equals_uninterrupted(tmp_path, tiny_tokenizer):
    train_sft(_sft_cfg(steps=2), tmp_path / "sft", tokenizer=tiny_tokenizer)
    cfg = TrainConfig(style="trend", stage="rl", data=SPEC, end=None, steps=3, batch_size=4, group_size=4,
                      val_size=8, model=str(tmp_path / "sft"), optimizer="kl_cov", lr=1e-3, save_every=1)
    train_rl(cfg, tmp_path / "a")
    assert train_rl(cfg, tmp_path / "b", stop_at=2)["stopped"]
    train_rl(cfg, tmp_path / "b", resume=True)
    wa, wb = _weights(tmp_path / "a" / "model"), _weights(tmp_path / "b" / "model")
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


def test_config_errors_name_the_fix():
    with pytest.raises(ValueError, match="choose one of trend"):
        TrainConfig(style="momentum")
    with pytest.raises(KeyError, match="registered: "):
        TrainConfig(style="trend", stage="rl", optimizer="nope")
