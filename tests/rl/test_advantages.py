"""rl.advantages: hand values and verl/HAPO loop semantics written out as references."""

from __future__ import annotations

import math
from collections import defaultdict

import pytest
import torch

from rl.advantages import broadcast, grpo, rloo, token_group_mean

F64 = torch.float64


def _verl_grpo_loop(scores, index, eps=1e-6, norm=True):
    """verl compute_grpo_outcome_advantage, its loop semantics transcribed."""
    id2score = defaultdict(list)
    for s, i in zip(scores.tolist(), index):
        id2score[i].append(s)
    stats = {}
    for i, vals in id2score.items():
        if len(vals) == 1:
            stats[i] = (0.0, 1.0)
        else:
            t = torch.tensor(vals, dtype=F64)
            stats[i] = (t.mean().item(), torch.std(t).item())
    out = []
    for s, i in zip(scores.tolist(), index):
        mu, sd = stats[i]
        out.append((s - mu) / (sd + eps) if norm else s - mu)
    return torch.tensor(out, dtype=F64)


def _verl_rloo_loop(scores, index):
    id2score = defaultdict(list)
    for s, i in zip(scores.tolist(), index):
        id2score[i].append(s)
    out = []
    for s, i in zip(scores.tolist(), index):
        n = len(id2score[i])
        mu = sum(id2score[i]) / n
        out.append(s * n / (n - 1) - mu * n / (n - 1) if n > 1 else s)
    return torch.tensor(out, dtype=F64)


def test_grpo_by_hand():
    scores = torch.tensor([1.0, 0.0, 0.0, 1.0, 5.0], dtype=F64)
    adv = grpo(scores, torch.tensor([0, 0, 0, 0, 1]))
    sd = math.sqrt(4 * 0.25 / 3)  # unbiased std of [1, 0, 0, 1]
    assert adv.tolist() == pytest.approx(
        [0.5 / (sd + 1e-6), -0.5 / (sd + 1e-6), -0.5 / (sd + 1e-6), 0.5 / (sd + 1e-6), 5.0 / (1 + 1e-6)],
        rel=1e-12,
    )
    # Dr.GRPO: no std division; singleton keeps its score (mean 0)
    assert grpo(scores, torch.tensor([0, 0, 0, 0, 1]), norm_by_std=False).tolist() == [
        0.5,
        -0.5,
        -0.5,
        0.5,
        5.0,
    ]
    # all-equal group -> 0
    assert grpo(torch.ones(3, dtype=F64), torch.tensor([2, 2, 2])).tolist() == [0.0, 0.0, 0.0]


@pytest.mark.parametrize("norm", [True, False])
def test_grpo_matches_verl_loop(norm):
    g = torch.Generator().manual_seed(0)
    scores = torch.randint(0, 3, (40,), generator=g).to(F64) + torch.rand(40, generator=g, dtype=F64)
    index = torch.randint(0, 12, (40,), generator=g).tolist()  # includes singletons and unordered groups
    labels = [f"uid-{i}" for i in index]  # string uids as verl passes them
    want = _verl_grpo_loop(scores, index, norm=norm)
    assert torch.allclose(grpo(scores, torch.tensor(index), norm_by_std=norm), want, rtol=1e-10, atol=1e-12)
    assert torch.allclose(grpo(scores, labels, norm_by_std=norm), want, rtol=1e-10, atol=1e-12)


def test_rloo_by_hand_and_against_loop():
    scores = torch.tensor([1.0, 0.0, 0.0, 1.0, 3.0], dtype=F64)
    # n = 4: A = s - mean(others): 1 - 1/3 = 2/3, 0 - 2/3 = -2/3; singleton keeps 3
    assert rloo(scores, torch.tensor([7, 7, 7, 7, 9])).tolist() == pytest.approx(
        [2 / 3, -2 / 3, -2 / 3, 2 / 3, 3.0]
    )
    g = torch.Generator().manual_seed(1)
    s = torch.rand(30, generator=g, dtype=F64)
    idx = torch.randint(0, 9, (30,), generator=g).tolist()
    assert torch.allclose(rloo(s, torch.tensor(idx)), _verl_rloo_loop(s, idx), rtol=1e-10)


def _hapo_loop(scores, index, lengths, eps=1e-6):
    """HAPO compute_hapo_outcome_advantage loop semantics (valid tokens only in the fallback test)."""
    grpo_ref = _verl_grpo_loop(scores, index, eps)
    out = torch.zeros_like(scores)
    for gid in set(index):
        members = [i for i, x in enumerate(index) if x == gid]
        tokens = torch.tensor([scores[i].item() for i in members for _ in range(int(lengths[i]))], dtype=F64)
        mu, sd = tokens.mean(), tokens.std(unbiased=False)
        normed = [(scores[i] - mu) / (sd + eps) for i in members]
        big = any(abs(float(v)) >= 5 and lengths[i] > 0 for v, i in zip(normed, members))
        for v, i in zip(normed, members):
            out[i] = grpo_ref[i] if big else v
    return out


def test_token_group_mean_by_hand():
    # group 0: lengths [1, 3], scores [1, 0]: token-mean 0.25, biased var (0.75^2 + 3 * 0.25^2) / 4 = 0.1875
    sd = math.sqrt(0.1875)
    # group 1: lengths [1, 100], scores [1, 0]: mean 1/101, std 10/101 -> A_0 = 10 >= 5 -> GRPO fallback
    scores = torch.tensor([1.0, 0.0, 1.0, 0.0], dtype=F64)
    adv = token_group_mean(scores, torch.tensor([0, 0, 1, 1]), torch.tensor([1, 3, 1, 100]))
    grpo_sd = math.sqrt(0.5)
    assert adv.tolist() == pytest.approx(
        [0.75 / (sd + 1e-6), -0.25 / (sd + 1e-6), 0.5 / (grpo_sd + 1e-6), -0.5 / (grpo_sd + 1e-6)], rel=1e-10
    )


def test_token_group_mean_matches_loop_and_accepts_a_mask():
    g = torch.Generator().manual_seed(2)
    scores = torch.randint(0, 2, (24,), generator=g).to(F64)
    index = torch.randint(0, 5, (24,), generator=g).tolist()
    lengths = torch.randint(1, 30, (24,), generator=g)
    want = _hapo_loop(scores, index, lengths)
    assert torch.allclose(
        token_group_mean(scores, torch.tensor(index), lengths), want, rtol=1e-10, atol=1e-12
    )
    mask = (torch.arange(30)[None, :] < lengths[:, None]).to(torch.int64)  # (B, T) right-padded
    assert torch.allclose(token_group_mean(scores, torch.tensor(index), mask), want, rtol=1e-10, atol=1e-12)


def test_int_group_size_means_contiguous_groups():
    scores = torch.tensor([1.0, 0.0, 0.0, 0.0, 2.0, 2.0, 2.0, 2.0])
    # group 0: mean 0.25, unbiased std sqrt((0.75^2 + 3 * 0.25^2) / 3) = 0.5; group 1 all equal -> 0
    assert torch.allclose(grpo(scores, 4), torch.tensor([1.5, -0.5, -0.5, -0.5, 0, 0, 0, 0]), atol=1e-5)
    assert torch.equal(rloo(scores, 4), rloo(scores, torch.tensor([0] * 4 + [1] * 4)))
    with pytest.raises(ValueError, match="group size 3 must be >= 1 and divide the 8 scores"):
        grpo(scores, 3)


def test_broadcast_and_errors():
    adv = torch.tensor([2.0, -1.0])
    mask = torch.tensor([[1, 1, 0], [1, 0, 0]])
    assert broadcast(adv, mask).tolist() == [[2.0, 2.0, 0.0], [-1.0, 0.0, 0.0]]
    with pytest.raises(ValueError, match="one score per response"):
        grpo(torch.ones(2, 3), torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="one label per response"):
        grpo(torch.ones(3), ["a", "b"])
    with pytest.raises(ValueError, match="same B"):
        broadcast(adv, mask[:1])


def test_registry_resolves_names_and_lists_the_valid_ones(tmp_path):
    from rl.advantages import ADVANTAGES, advantage, register_advantage, takes_lengths
    from rl.toy import TabularSoftmaxPolicy, context_batches, make_bandit
    from rl.trainer import GRPOTrainer, TrainerConfig

    assert {"grpo", "rloo", "token_group_mean", "riskpo"} <= set(ADVANTAGES)
    assert ADVANTAGES["grpo"] is grpo and takes_lengths("token_group_mean") and not takes_lengths("rloo")
    s = torch.tensor([1.0, 0.0, 3.0, 1.0])
    assert torch.equal(advantage("rloo", s, 2), rloo(s, 2))
    lengths = torch.tensor([1.0, 3.0, 2.0, 2.0])
    assert torch.equal(advantage("token_group_mean", s, 2, lengths_or_mask=lengths), token_group_mean(s, 2, lengths))
    with pytest.raises(ValueError, match="lengths_or_mask"):
        advantage("token_group_mean", s, 2)
    with pytest.raises(KeyError, match="registered: grpo, riskpo, rloo, token_group_mean"):
        advantage("gae", s, 2)
    with pytest.raises(ValueError, match="already registered"):
        register_advantage("grpo")(grpo)

    def trainer(name, **cfg):
        return GRPOTrainer(
            TabularSoftmaxPolicy(4, seq_len=3, eos_token=0), make_bandit(4), context_batches(1, 2),
            TrainerConfig(steps=1, batch_size=2, group_size=2, advantage=name, advantage_cfg=cfg),
            run_dir=tmp_path / name,
        )

    assert torch.equal(trainer("rloo").advantage_fn(s, 2), rloo(s, 2))
    assert trainer("token_group_mean", fallback_at=50.0).train()  # gets the rollout lengths from the trainer
    with pytest.raises(KeyError, match="unknown advantage estimator 'gae'; registered: grpo"):
        trainer("gae")
