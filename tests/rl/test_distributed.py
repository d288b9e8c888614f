"""Data-parallel GRPOTrainer: a 2-process gloo run launched by torchrun equals a 1-process run with the same
global batch and seeds (rollout_shards=2) to float tolerance; rank 0 alone writes metrics and checkpoints."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from rl.distributed import dist_info
from rl.trainer import GRPOTrainer, TrainerConfig
from tests.rl.dp_worker import STEPS, make_trainer

ROOT = Path(__file__).resolve().parents[2]


def _read(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_single_process_defaults():
    assert dist_info() == (0, 1)
    with pytest.raises(ValueError, match="rollout_shards=3 must be >= 1 and divide batch_size=4"):
        TrainerConfig(batch_size=4, rollout_shards=3)


def test_two_process_gloo_run_equals_one_process(tmp_path):
    ref = make_trainer(tmp_path / "single")
    ref.train()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           str(ROOT / "tests" / "rl" / "dp_worker.py"), str(tmp_path / "dp"), str(tmp_path)]
    done = subprocess.run(cmd, check=False, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    from safetensors.torch import load_file

    ranks = [load_file(str(tmp_path / f"rank{r}.safetensors"))["logits"] for r in (0, 1)]
    assert torch.equal(ranks[0], ranks[1])  # replicas stay identical
    moved = (ref.policy.logits.detach() - make_trainer(tmp_path / "fresh").policy.logits.detach()).abs().max()
    assert moved > 0.05  # the runs really trained
    torch.testing.assert_close(ranks[0], ref.policy.logits.detach(), rtol=1e-5, atol=1e-6)
    dp, single = _read(tmp_path / "dp" / "metrics.jsonl"), _read(tmp_path / "single" / "metrics.jsonl")
    assert len(dp) == len(single) == STEPS * 2 * 2  # one writer: rank 0
    for a, b in zip(dp, single, strict=True):
        for key in ("reward/mean", "reward/std", "response_length/mean", "tokens"):
            assert a[key] == b[key], key  # gathered, not approximated
        for key in ("entropy/rollout", "loss", "pg_loss", "entropy", "kl", "grad_norm", "clipfrac_high", "cov/mean", "cov/std"):
            assert a[key] == pytest.approx(b[key], rel=1e-4, abs=1e-6), key
    assert len(list((tmp_path / "dp" / "checkpoints").glob("step-*"))) == 2


def test_sharded_rollouts_do_not_depend_on_the_sampler_split(tmp_path):
    """rollout_shards=2 in one process samples shard k with seed derive_seed(base, k): the same rows as a
    ShardedSampler(policy, 2) driven by the same stream."""
    from rl.shards import ShardedSampler

    tr = make_trainer(tmp_path / "a")
    batch = tr.batch_fn(0, tr.gen)
    ro, local = tr._sample(batch)
    gen = torch.Generator().manual_seed(3)
    batch2 = tr.batch_fn(0, gen)
    ro2 = ShardedSampler(tr.policy, 2).sample(batch2, 3, generator=gen)
    assert torch.equal(batch, batch2) and local is batch
    assert torch.equal(ro.tokens, ro2.tokens) and torch.equal(ro.old_logp, ro2.old_logp)
    assert isinstance(tr, GRPOTrainer)
