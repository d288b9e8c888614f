"""rl.ray_rollouts with a local Ray (2 CPUs): workers sample with synced weights exactly what local sharded
sampling gives, score on the worker, and drive the trainer to the same parameters as a local run.

The Ray tests take ~50 s (starting Ray and its actors), so they are marked slow: ``pytest -m slow``."""

from __future__ import annotations

import functools
import sys

import pytest
import torch

from rl.rollouts import EntropyGuidedSampler
from rl.shards import ShardedSampler
from rl.toy import TabularSoftmaxPolicy, context_batches, make_bandit
from rl.trainer import GRPOTrainer, TrainerConfig

FACTORY = functools.partial(TabularSoftmaxPolicy, 6, n_contexts=4, seq_len=4, eos_token=0)
TASK = make_bandit(6, n_contexts=4, n_good=2, seed=3)


def test_missing_ray_names_the_extra(monkeypatch):
    from rl import ray_rollouts

    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(ImportError, match=r'pip install -e "\.\[ray\]"'):
        ray_rollouts.RayRolloutPool(FACTORY)


@pytest.fixture(scope="module")
def ray_local(ray_session):
    """The session's local Ray (tests/conftest.py: 2 CPUs, workers import THIS checkout's rl)."""
    return ray_session[0]


def _local_policy():
    pol = FACTORY()
    with torch.no_grad():
        pol.logits.copy_(torch.randn(pol.logits.shape, generator=torch.Generator().manual_seed(7)))
    return pol


@pytest.mark.slow
def test_synced_workers_sample_like_local_sharded_sampling(ray_local):
    from rl.ray_rollouts import RayRolloutPool, worker_rewards

    local = _local_policy()
    batch = torch.tensor([3, 0, 2, 1])
    with RayRolloutPool(FACTORY, num_workers=2, reward_fn=TASK) as pool:
        before = pool.sample(batch, 3, generator=torch.Generator().manual_seed(1))
        assert pool.sync_weights(local.state_dict()) == 1
        got = pool.sample(batch, 3, generator=torch.Generator().manual_seed(1))
        want = ShardedSampler(local, 2).sample(batch, 3, generator=torch.Generator().manual_seed(1))
        assert torch.equal(got.tokens, want.tokens) and torch.equal(got.mask, want.mask)
        assert torch.equal(got.old_logp, want.old_logp) and torch.equal(got.entropy, want.entropy)
        assert not torch.equal(before.old_logp, want.old_logp)  # the workers' own (uniform) weights before
        assert torch.equal(worker_rewards(batch, got), TASK(batch, want))  # scored on the workers
        assert got.group_size == 3 and torch.equal(got.extras["context"], batch.repeat_interleave(3))
    with RayRolloutPool(FACTORY, num_workers=2,
                        sampler_factory=functools.partial(EntropyGuidedSampler, global_samples=2)) as pool:
        pool.sync_weights(local.state_dict())
        got = pool.sample(batch, 4, generator=torch.Generator().manual_seed(2))
        want = ShardedSampler(EntropyGuidedSampler(local, global_samples=2), 2).sample(
            batch, 4, generator=torch.Generator().manual_seed(2))
        assert torch.equal(got.tokens, want.tokens)
        assert torch.equal(got.extras["branch_pos"], want.extras["branch_pos"])


@pytest.mark.slow
def test_trainer_with_the_pool_equals_local_training(ray_local, tmp_path):
    from rl.ray_rollouts import RayRolloutPool, worker_rewards

    cfg = TrainerConfig(steps=3, batch_size=4, group_size=3, num_minibatches=2, lr=0.1, optimizer="adam",
                        weight_decay=0.0, seed=4)
    local_pol = _local_policy()
    GRPOTrainer(local_pol, TASK, context_batches(4, 4), cfg, run_dir=tmp_path / "local",
                sampler=ShardedSampler(local_pol, 2)).train()
    pol = _local_policy()
    with RayRolloutPool(FACTORY, num_workers=2, reward_fn=TASK) as pool:
        tr = GRPOTrainer(pol, worker_rewards, context_batches(4, 4), cfg, run_dir=tmp_path / "ray", sampler=pool)
        tr.train()
        assert pool.version == 3  # synced before each of the 3 rollouts (the weights changed every time)
    assert torch.equal(pol.logits, local_pol.logits)
