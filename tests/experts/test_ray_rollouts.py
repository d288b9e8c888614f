"""experts.ray_rollouts: after a weight sync the Ray workers' rollouts and rewards equal sampling the same shards
in this process, and ``train_rl(ray_workers=2)`` trains exactly as the same shards sampled here.

The Ray tests share the session's local Ray (tests/conftest.py ``ray_session``) and are slow (starting two
actors that load torch and transformers: ~30 s on 2 busy cores): ``pytest -m slow``."""
from __future__ import annotations

import sys

import numpy as np
import pytest
import torch

from experts.policy import encode_prompts
from experts.ray_rollouts import HorizonReward, WorkerPolicy, merge, worker_policy
from rl.shards import ShardedSampler

SPEC = ("synth:regimes?seed=1&n=260",)


@pytest.fixture(scope="module")
def data():
    from experts.data import build_dataset

    return build_dataset("trend", SPEC, end=None, horizon=5, fees=0.001, slippage=0.0, val_fraction=0.2,
                         hindsight_weight=0.5, risk_budget=0.15)


@pytest.fixture
def one_thread():
    """Matmuls on one thread here, as on a 1-CPU worker, so float sums run in the same order."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _batch(policy, data, rows):
    rows = np.asarray(rows)
    return {**encode_prompts(policy.tokenizer, list(data.prompts[rows])), "rows": rows}


def _perturbed(folder) -> WorkerPolicy:
    pol = worker_policy(str(folder))
    gen = torch.Generator().manual_seed(5)
    with torch.no_grad():
        for p in pol.model.parameters():
            p.add_(0.2 * torch.randn(p.shape, generator=gen))
    return pol


def test_ray_workers_without_ray_or_with_a_bad_batch_is_one_line(monkeypatch, tmp_path):
    from typer.testing import CliRunner

    from app.train import train_app

    base = ["experts", "--expert", "trend", "--stage", "rl", "--steps", "1", "--out", str(tmp_path / "run")]
    res = CliRunner().invoke(train_app, [*base, "--ray-workers", "3", "--batch-size", "8"])
    assert res.exit_code == 2 and "--batch-size 8 must be a multiple of --ray-workers 3" in res.output
    res = CliRunner().invoke(train_app, [*base, "--ray-address", "auto"])
    assert res.exit_code == 2 and "--ray-address needs --ray-workers N" in res.output
    res = CliRunner().invoke(train_app, [*base, "--ray-workers", "2", "--rollout-backend", "vllm"])
    assert res.exit_code == 2 and "use it without --rollout-backend vllm" in res.output
    sft = [a if a != "rl" else "sft" for a in base]
    res = CliRunner().invoke(train_app, [*sft, "--ray-workers", "2"])
    assert res.exit_code == 2 and "use it with --stage rl" in res.output
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError, as where it is not installed
    res = CliRunner().invoke(train_app, [*base, "--ray-workers", "2"])
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert res.exit_code == 2 and len(lines) == 1 and 'pip install -e ".[ray]"' in lines[0], res.output
    assert not (tmp_path / "run").exists()  # nothing loaded or written before the checks


def test_padded_shards_keep_the_policy_numbers(tiny_model_dir, data, one_thread):
    """Padding to the longest answer and renumbering items over shards: the trainer's log-probs of the merged
    rows equal the sampling log-probs (a wrong item would score another prompt's answer)."""
    pol = _perturbed(tiny_model_dir)
    batch = _batch(pol, data, [3, 40, 77, 120])
    ro = merge(ShardedSampler(pol, 2).sample(batch, 3, generator=torch.Generator().manual_seed(2)))
    assert ro.tokens.shape == (12, pol.constraint.answer_depth + 1)
    assert torch.equal(ro.extras["item"], torch.arange(12) // 3)
    logp, ent = pol.logprobs(batch, ro)
    assert torch.allclose(logp, ro.old_logp, atol=1e-5) and torch.allclose(ent, ro.entropy, atol=1e-5)
    assert (ro.mask.sum(1) > 0).all()


@pytest.mark.slow
def test_workers_sample_and_score_like_local_shards(ray_session, tiny_model_dir, data, one_thread):
    from experts.policy import answer_values
    from experts.ray_rollouts import RayExpertSampler
    from experts.rewards import horizon_rewards

    local = _perturbed(tiny_model_dir)
    batch = _batch(local, data, [5, 17, 60, 99])
    reward = HorizonReward.from_data(data)
    sampler = RayExpertSampler(str(tiny_model_dir), num_workers=2, reward=reward)
    try:
        before = sampler.sample(batch, 3, generator=torch.Generator().manual_seed(1))
        assert sampler.sync_weights(local.state_dict()) == 1
        got = sampler.sample(batch, 3, generator=torch.Generator().manual_seed(1))
    finally:
        sampler.close()
    want = merge(ShardedSampler(local, 2).sample(batch, 3, generator=torch.Generator().manual_seed(1)))
    for key in ("tokens", "mask", "old_logp", "entropy"):
        assert torch.equal(getattr(got, key), getattr(want, key)), key
    for key in ("allowed", "item", "exposure"):
        assert torch.equal(got.extras[key], want.extras[key]), key
    assert not torch.equal(before.old_logp, got.old_logp)  # the workers' own (unperturbed) weights before
    # scored on the workers = train_rl's in-process reward of the same answers
    rows = np.repeat(batch["rows"], 3)
    h = answer_values(local.constraint, want.tokens).numpy()
    r = horizon_rewards(data.exec_price, data.mark_price, data.t[rows], h, data.horizon, fees=data.fees,
                        slippage=data.slippage, start_exposure=data.start[rows], execution=data.execution)
    assert torch.equal(got.extras["reward"], torch.as_tensor(r, dtype=torch.float32))
    assert got.extras["reward"].abs().sum() > 0


class _LocalTwin:
    """RayExpertSampler's in-process twin: the same shards, seeds, padding, merge and reward, no Ray."""

    def __init__(self, folder, *, num_workers, reward, temperature=1.0, address=None, device="cpu"):
        self.policy = worker_policy(str(folder), temperature=temperature)
        self.shards, self.reward, self.version = ShardedSampler(self.policy, num_workers), reward, 0

    def sync_weights(self, state_dict):
        self.policy.load_state_dict(state_dict)
        self.version += 1
        return self.version

    def sample(self, batch, n, *, generator=None):
        ro = merge(self.shards.sample(batch, n, generator=generator))
        ro.extras["reward"] = self.reward(batch, ro)  # row-wise: the same as per shard
        return ro

    def close(self):
        pass


@pytest.mark.slow
def test_train_rl_on_ray_workers_equals_local_shards(ray_session, tiny_model_dir, data, one_thread, tmp_path,
                                                      monkeypatch):
    """3 RL iterations with 2 Ray workers end with exactly the weights of the same run sampling its shards here
    (weights synced before every rollout; rewards and CVaR shaping as in process). ~1 min on 2 busy cores."""
    from safetensors.torch import load_file

    from experts import ray_rollouts
    from experts.training import TrainConfig, train_rl

    cfg = TrainConfig(style="trend", stage="rl", data=SPEC, end=None, steps=3, batch_size=4, group_size=4,
                      val_size=8, model=str(tiny_model_dir), optimizer="clip_cov", lr=5e-3, save_every=0,
                      risk="cvar")
    ray_run = train_rl(cfg, tmp_path / "ray", data=data, ray_workers=2)
    monkeypatch.setattr(ray_rollouts, "RayExpertSampler", _LocalTwin)
    local_run = train_rl(cfg, tmp_path / "local", data=data, ray_workers=2)
    a, b = (load_file(str(tmp_path / d / "model" / "model.safetensors")) for d in ("ray", "local"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert ray_run["val/reward"] == local_run["val/reward"]
    start = load_file(str(tiny_model_dir / "model.safetensors"))
    assert any(not torch.equal(a[k], start[k]) for k in start)  # it did train
