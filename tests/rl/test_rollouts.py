"""rl.rollouts.EntropyGuidedSampler on toy token policies: group layout, behaviour log-probs, branch points at
the highest-entropy positions, the consecutive-branch penalty, AEPO's budget split, determinism, training."""

from __future__ import annotations

import json
import math

import pytest
import torch

from rl.rollouts import BranchingPolicy, EntropyGuidedSampler
from rl.toy import LinearSoftmaxPolicy, TabularSoftmaxPolicy, context_batches, make_bandit
from rl.trainer import WALL_CLOCK_KEYS, GRPOTrainer, TrainerConfig

T, K = 6, 8


def _peaked_except(hot: int, *, n_contexts: int = 3, eos: int | None = None) -> TabularSoftmaxPolicy:
    """Every position nearly deterministic (logit 4 on token 1) except position ``hot`` (uniform)."""
    init = torch.zeros(n_contexts, T, K)
    init[:, :, 1] = 4.0
    init[:, hot, :] = 0.0
    return TabularSoftmaxPolicy(K, n_contexts=n_contexts, seq_len=T, eos_token=eos, init_logits=init)


def _falling_entropy(n_contexts: int = 4) -> TabularSoftmaxPolicy:
    """Position 0 peaked; positions 1..T-1 flatter than position 0 but less and less flat: the best branch
    point after any position p >= 1 is p + 1 and still above the initial entropy, inviting chains."""
    init = torch.zeros(n_contexts, T, K)
    init[:, 0, 1] = 6.0
    for t in range(1, T):
        init[:, t, 1] = 0.6 * t
    return TabularSoftmaxPolicy(K, n_contexts=n_contexts, seq_len=T, init_logits=init)


def _sample(sampler, batch, n, seed):
    return sampler.sample(batch, n, generator=torch.Generator().manual_seed(seed))


def test_group_layout_and_behaviour_logprobs():
    pol = TabularSoftmaxPolicy(K, n_contexts=3, seq_len=T, eos_token=0,
                               init_logits=torch.randn(3, T, K, generator=torch.Generator().manual_seed(1)))
    batch = torch.tensor([2, 0, 1, 2])
    ro = _sample(EntropyGuidedSampler(pol, global_samples=3), batch, 7, 0)
    assert isinstance(pol, BranchingPolicy)
    assert ro.group_size == 7 and ro.num_rows == 28
    assert torch.equal(ro.extras["context"], batch.repeat_interleave(7))  # branches stay with their prompt
    lp, ent = pol.logprobs(batch, ro)
    valid = ro.mask > 0
    assert torch.allclose(lp[valid], ro.old_logp[valid]) and torch.allclose(ent, ro.entropy)
    par, pos = ro.extras["branch_parent"], ro.extras["branch_pos"]
    assert (par >= 0).sum() > 0  # some rows were branched
    for r in torch.nonzero(par >= 0).flatten().tolist():
        p, t = int(par[r]), int(pos[r])
        assert r // 7 == p // 7 and 1 <= t  # parent in the same group
        assert torch.equal(ro.tokens[r, :t], ro.tokens[p, :t])  # the shared prefix
        assert ro.mask[p, t] == 1  # branched at a valid position of the parent
    assert all(int((par[g * 7 : g * 7 + 7] < 0).sum()) >= 3 for g in range(4))  # >= global_samples globals


def test_branches_start_at_the_highest_entropy_position():
    ro = _sample(EntropyGuidedSampler(_peaked_except(3), global_samples=4), torch.tensor([0, 1, 2]), 8, 0)
    par, pos = ro.extras["branch_parent"], ro.extras["branch_pos"]
    from_globals = (par >= 0) & (pos > 0)
    from_globals &= torch.tensor([bool(par[r] >= 0 and par[int(par[r])] < 0) for r in range(ro.num_rows)])
    assert int(from_globals.sum()) >= 3 and set(pos[from_globals].tolist()) == {3}
    # generic rule: every branch point is the parent's highest-entropy valid position after its own branch point
    for r in torch.nonzero(par >= 0).flatten().tolist():
        p = int(par[r])
        after = torch.arange(T) > int(pos[p])
        h = torch.where(after & (ro.mask[p] > 0), ro.entropy[p], torch.tensor(-math.inf))
        assert int(pos[r]) == int(torch.argmax(h))
    m = ro.extras["rollout_metrics"]
    assert m["global_per_item"] == 4.0 and m["branch_frac"] == pytest.approx(float((pos > 0).float().mean()))


def _consecutive(penalty: float, seeds=range(12)) -> float:
    sampler = EntropyGuidedSampler(_falling_entropy(), global_samples=2, consecutive_penalty=penalty)
    depth = [_sample(sampler, torch.arange(4), 12, s).extras["branch_depth"] for s in seeds]
    return float(sum(int((d >= 2).sum()) for d in depth)) / len(depth)


def test_consecutive_branch_penalty_reduces_chains():
    none, half, full = _consecutive(0.0), _consecutive(0.5), _consecutive(1.0)
    assert full == 0.0  # penalty 1: never branch right after a high-entropy branch
    assert none > half > full, (none, half, full)
    assert none >= 4.0  # chains do form without the penalty (rows per batch of 48 at depth >= 2)


def test_entropy_pre_monitoring_splits_the_budget():
    batch = torch.tensor([0, 1])
    # question (position 0) more uncertain than the later steps -> all budget global
    root_hot = _sample(EntropyGuidedSampler(_peaked_except(0), monitor_beta=20.0), batch, 8, 0)
    assert root_hot.extras["rollout_metrics"]["global_per_item"] == 8.0
    assert int((root_hot.extras["branch_parent"] >= 0).sum()) == 0
    # later steps more uncertain -> AEPO gives them the budget: min_global global samples only
    step_hot = EntropyGuidedSampler(_peaked_except(3), monitor_beta=20.0, min_global=2)
    assert _sample(step_hot, batch, 8, 0).extras["rollout_metrics"]["global_per_item"] == 2.0
    # balanced -> n * sigmoid(0) = n / 2
    init = torch.zeros(1, T, K)
    flat = EntropyGuidedSampler(TabularSoftmaxPolicy(K, seq_len=T, init_logits=init), monitor_beta=5.0)
    assert _sample(flat, torch.tensor([0]), 8, 0).extras["rollout_metrics"]["global_per_item"] == 4.0


def test_deterministic_with_a_seed():
    sampler = EntropyGuidedSampler(_falling_entropy(), global_samples=3, consecutive_penalty=0.3)
    a, b, c = (_sample(sampler, torch.arange(4), 9, s) for s in (5, 5, 6))
    for key in ("branch_parent", "branch_pos", "branch_depth"):
        assert torch.equal(a.extras[key], b.extras[key])
    assert torch.equal(a.tokens, b.tokens) and torch.equal(a.old_logp, b.old_logp)
    assert not torch.equal(a.tokens, c.tokens)


def test_bad_configs_fail_fast():
    with pytest.raises(TypeError, match="continue_from"):
        EntropyGuidedSampler(LinearSoftmaxPolicy(torch.zeros(2, 3), 4))
    with pytest.raises(ValueError, match="beam"):
        EntropyGuidedSampler(_peaked_except(1), beam=1)
    with pytest.raises(ValueError, match="consecutive_penalty"):
        EntropyGuidedSampler(_peaked_except(1), consecutive_penalty=1.5)


def test_trainer_uses_the_sampler(tmp_path):
    def run(name):
        pol = TabularSoftmaxPolicy(K, n_contexts=3, seq_len=4, eos_token=0)
        cfg = TrainerConfig(steps=3, batch_size=3, group_size=6, num_minibatches=2, lr=0.1, optimizer="adam",
                            weight_decay=0.0, seed=2)
        tr = GRPOTrainer(pol, make_bandit(K, n_contexts=3, seed=1), context_batches(3, 3), cfg,
                         run_dir=tmp_path / name, sampler=EntropyGuidedSampler(pol, global_samples=2))
        return tr.train()

    lines, again = run("a"), run("b")
    strip = [{k: v for k, v in ln.items() if k not in WALL_CLOCK_KEYS} for ln in lines]
    assert strip == [{k: v for k, v in ln.items() if k not in WALL_CLOCK_KEYS} for ln in again]
    assert all(ln["rollout/branch_frac"] > 0 and ln["rollout/global_per_item"] == 2.0 for ln in lines)
    assert lines[0]["ratio_mean"] == pytest.approx(1.0, abs=1e-6)  # old_logp is the behaviour policy's
    assert json.loads((tmp_path / "a" / "metrics.jsonl").read_text().splitlines()[0])["rollout/branch_frac"] > 0
