"""router.training on tiny runs: the run folder, exact resume, the RL stage with a covariance loss, the CLI."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import typer
from typer.testing import CliRunner

from router.model import load_router, route
from router.training import TrainConfig, load_pool, train_rl, train_sft

TINY = {"d_model": 16, "heads": 2, "vit_layers": 1, "fusion_layers": 1}
DATA = ("synth:regimes?seed=1&n=320",)


def _cfg(**kw) -> TrainConfig:
    base = {"data": DATA, "steps": 4, "batch_size": 8, "eval_every": 2, "save_every": 2, "arch": TINY,
            "horizon": 5}
    return TrainConfig(**{**base, **kw})


@pytest.fixture(scope="module")
def sft_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("sft")
    summary = train_sft(_cfg(), out, progress=False)
    return out, summary


def test_sft_writes_a_run_folder(sft_run):
    out, summary = sft_run
    lines = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [x["step"] for x in lines] == [1, 2, 3, 4]
    assert all(np.isfinite(x["loss"]) and {"loss/route", "loss/regime", "entropy"} <= set(x) for x in lines)
    val = [json.loads(x) for x in (out / "val.jsonl").read_text().splitlines()]
    assert [v["step"] for v in val] == [2, 4] and 0.0 <= val[-1]["regime/acc_synth"] <= 1.0
    assert "route/match_synth" in val[-1] and np.isfinite(val[-1]["sharpe/router"])
    assert json.loads((out / "train.json").read_text())["steps"] == 4
    net = load_router(out / "model")
    assert net.config.experts[0] == "trend?mode=long_short&fast=5&slow=20"
    assert net.config.extra["training"]["stage"] == "sft"
    best = json.loads((out / "best.json").read_text())  # model/ is the best validation Sharpe (keep_best)
    assert best["value"] == max(v["sharpe/router"] for v in val)
    assert summary["val"] == next(v for v in val if v["step"] == best["step"])
    assert (out / "model" / "model.safetensors").read_bytes() == (out / "best" / "model.safetensors").read_bytes()


def test_resume_equals_an_uninterrupted_run(sft_run, tmp_path):
    out, _ = sft_run
    part = tmp_path / "part"
    train_sft(_cfg(steps=2), part, progress=False)
    train_sft(_cfg(steps=4), part, resume=True, progress=False)
    a, b = load_router(out / "best"), load_router(part / "best")
    for (name, x), (_, y) in zip(a.state_dict().items(), b.state_dict().items()):
        assert torch.equal(x, y), name
    assert (part / "metrics.jsonl").read_text() .count("\n") == 4


def test_rl_stage_with_clip_cov(sft_run, tmp_path):
    out, _ = sft_run
    cfg = _cfg(stage="rl", model=str(out), steps=2, batch_size=4, group_size=4, eval_every=1, loss="clip_cov",
               entropy_coef=0.01, keep_best=None)  # model/ = the last weights
    summary = train_rl(cfg, tmp_path / "rl", progress=False)
    lines = [json.loads(x) for x in (tmp_path / "rl" / "metrics.jsonl").read_text().splitlines()]
    assert len(lines) == 2 * cfg.ppo_epochs
    assert {"reward/mean", "entropy", "clip_cov/n_detached"} <= set(lines[0])
    val = [json.loads(x) for x in (tmp_path / "rl" / "val.jsonl").read_text().splitlines()]
    assert [v["step"] for v in val] == [0, 1, 2]
    before, after = load_router(out / "model"), load_router(tmp_path / "rl" / "model")
    pool, _, rows = load_pool(cfg, before.config)
    x = pool.inputs(rows[:16])
    assert not np.array_equal(route(before, *x)[0], route(after, *x)[0])  # the policy moved
    assert summary["stage"] == "rl"


def test_config_and_cli_errors(tmp_path):
    with pytest.raises(ValueError, match="stage must be sft or rl"):
        TrainConfig(stage="dpo")
    with pytest.raises(ValueError, match="route_loss"):
        TrainConfig(route_loss="l1")
    from app.train_router import router_cmd

    app = typer.Typer()
    app.command()(router_cmd)
    res = CliRunner().invoke(app, ["--out", str(tmp_path / "x"), "--stage", "dpo"])
    assert res.exit_code == 2 and "error: stage must be sft or rl" in res.output


def test_rl_rewards_start_from_the_starting_routers_position(sft_run):
    from backtest.accounting import horizon_rewards
    from router.training import ExpertRewards

    out, _ = sft_run
    cfg = _cfg(stage="rl", model=str(out))
    net = load_router(out / "model")
    pool, train, _ = load_pool(cfg, net.config)
    rewards = ExpertRewards(net, pool, cfg)
    rows = train[[5, 40, 5]]
    got = rewards(rows)
    np.testing.assert_array_equal(got[0], got[2])  # cached
    t = pool.t[rows[1]]
    w, _ = route(net, *pool.inputs(np.array([rows[1] - 1])))
    start = float((w[0] * pool.h[rows[1] - 1]).sum())
    s = pool.series[0]
    want = horizon_rewards(s.ohlcv[:, 0], s.ohlcv[:, 3], np.array([t]), s.h[[t], 2], 5, fees=0.001, slippage=0.0,
                           start_exposure=np.array([start]))
    assert got[1, 2] == pytest.approx(want[0], rel=1e-12)
