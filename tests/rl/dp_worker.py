"""The data-parallel run of tests/rl/test_distributed.py, launched by torchrun (one process per rank):

    python -m torch.distributed.run --standalone --nproc_per_node=2 tests/rl/dp_worker.py RUN_DIR OUT_DIR

It trains 2 rollout iterations, resumes from the checkpoint in a new trainer and trains 2 more, then writes
every rank's final parameters to OUT_DIR/rank<r>.safetensors. :func:`make_trainer` is also the 1-process
reference the test compares against.
"""

from __future__ import annotations

import copy
import sys

import torch

from rl.toy import TabularSoftmaxPolicy, context_batches, make_bandit
from rl.trainer import GRPOTrainer, TrainerConfig

STEPS = 4


def make_trainer(run_dir, *, resume: bool = False) -> GRPOTrainer:
    """A token policy with an end token (variable lengths), KL to a reference, 2 epochs x 2 minibatches of
    micro-batches of 3 rows, 2 rollout shards."""
    init = torch.randn(4, 5, 6, generator=torch.Generator().manual_seed(0))
    policy = TabularSoftmaxPolicy(6, n_contexts=4, seq_len=5, eos_token=0, init_logits=init)
    cfg = TrainerConfig(
        steps=STEPS, batch_size=4, group_size=3, ppo_epochs=2, num_minibatches=2, micro_batch_size=3,
        optimizer="adam", lr=0.05, weight_decay=0.0, kl_coef=0.1, kl_type="k3", entropy_coef=0.01,
        rollout_shards=2, seed=3,
    )
    return GRPOTrainer(
        policy, make_bandit(6, n_contexts=4, n_good=2, seed=2), context_batches(4, 4), cfg,
        run_dir=run_dir, ref_policy=copy.deepcopy(policy), resume=resume,
    )


def main(run_dir: str, out_dir: str) -> None:
    import torch.distributed as dist
    from safetensors.torch import save_file

    from rl.distributed import init_from_env

    rank, world = init_from_env("gloo")
    assert world == 2, world
    make_trainer(run_dir).train(steps=2)
    trainer = make_trainer(run_dir, resume=True)
    assert trainer.rollout_step == 2
    trainer.train()
    save_file({"logits": trainer.policy.logits.detach().contiguous()}, f"{out_dir}/rank{rank}.safetensors")
    dist.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
