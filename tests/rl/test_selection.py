"""rl.selection: max-variance subsets against brute force, sample/token selection, schedules."""
from __future__ import annotations

import itertools
import math

import pytest
import torch

from rl.selection import keep_fraction, max_variance_subset, select_samples, select_tokens

D64 = torch.float64


def pvar(xs) -> float:
    mu = sum(xs) / len(xs)
    return sum((x - mu) ** 2 for x in xs) / len(xs)


def test_max_variance_subset_matches_brute_force():
    g = torch.Generator().manual_seed(0)
    for trial in range(60):
        n = 2 + trial % 7  # 2..8
        # mix continuous values and heavy ties (binary rewards are the common case)
        v = torch.randn(n, generator=g, dtype=D64) if trial % 2 else torch.randint(0, 3, (n,), generator=g).to(D64)
        for k in range(1, n + 1):
            idx = max_variance_subset(v, k)
            assert idx.shape == (k,) and len(set(idx.tolist())) == k
            got = pvar(v[idx].tolist())
            best = max(pvar([v[i].item() for i in c]) for c in itertools.combinations(range(n), k))
            assert got == pytest.approx(best, abs=1e-12), (v.tolist(), k)


def test_max_variance_subset_hand_and_batched():
    # [0, 1, 2, 3, 10], k = 3: best is {0, 1, 10} (i = 2 bottom + 1 top): var of (0, 1, 10) = 20.222
    v = torch.tensor([3.0, 10.0, 0.0, 2.0, 1.0], dtype=D64)
    idx = max_variance_subset(v, 3)
    assert sorted(v[idx].tolist()) == [0.0, 1.0, 10.0]
    assert pvar([0, 1, 10]) == pytest.approx(20.2222222, abs=1e-6)
    # batched rows are independent
    rows = torch.stack([v, -v])
    idx2 = max_variance_subset(rows, 3)
    assert sorted(rows[1, idx2[1]].tolist()) == [-10.0, -1.0, 0.0]
    with pytest.raises(ValueError, match="subset size"):
        max_variance_subset(v, 6)


def test_select_samples_groups_and_counts():
    adv = torch.tensor([0.0, 1.0, 2.0, 3.0, 10.0, 5.0, 5.0, -5.0, 5.0, 0.0], dtype=D64)
    gid = [0, 0, 0, 0, 0, 1, 1, 1, 1, 1]
    keep = select_samples(adv, gid, keep=3)
    assert keep.sum() == 6
    assert sorted(adv[:5][keep[:5]].tolist()) == [0.0, 1.0, 10.0]
    # group 1: {5, 5, -5, 5, 0}: max variance triple is {-5, 5, 5} (var 22.2) over {-5, 0, 5} (16.7)
    assert sorted(adv[5:][keep[5:]].tolist()) == [-5.0, 5.0, 5.0]
    # fraction: ceil(0.5 * 5) = 3 per group; ragged groups are fine
    assert select_samples(adv, gid, keep=0.5).sum() == 6
    ragged = select_samples(adv[:7], [0, 0, 0, 0, 0, 1, 1], keep=0.4)  # ceil(2) = 2, ceil(0.8) = 1
    assert ragged[:5].sum() == 2 and ragged[5:].sum() == 1
    assert select_samples(adv, torch.tensor(gid), keep=1.0).all()
    with pytest.raises(ValueError, match="fraction"):
        select_samples(adv, gid, keep=1.5)


def test_select_tokens_top_abs_adv_times_entropy():
    adv = torch.tensor([[1.0, 1.0, 1.0], [-2.0, -2.0, -2.0]], dtype=D64)
    ent = torch.tensor([[0.5, 3.0, 0.1], [0.2, 1.0, 99.0]], dtype=D64)
    mask = torch.tensor([[1, 1, 1], [1, 1, 0]])
    # scores |A| H on valid tokens: 0.5, 3.0, 0.1, 0.4, 2.0 (the padded 198 is ignored); 40% of 5 -> 2 kept
    sel = select_tokens(adv, ent, mask, fraction=0.4)
    assert sel.tolist() == [[False, True, False], [False, True, False]]
    assert select_tokens(adv, ent, mask, fraction=1.0).tolist() == (mask != 0).tolist()
    assert not select_tokens(adv, ent, torch.zeros_like(mask), fraction=0.5).any()
    # action-level (B, 1)
    sel1 = select_tokens(adv[:, :1], ent[:, :1], mask[:, :1], fraction=0.5)
    assert sel1.tolist() == [[True], [False]]  # scores 0.5 vs 0.4


def test_keep_fraction_schedules():
    assert keep_fraction(0.0, start=0.2, end=0.8) == pytest.approx(0.2)
    assert keep_fraction(0.5, start=0.2, end=0.8) == pytest.approx(0.5)
    assert keep_fraction(0.25, start=0.2, end=0.8, schedule="cosine") == pytest.approx(
        0.2 + 0.6 * (1 - math.cos(math.pi / 4)) / 2
    )
    assert keep_fraction(0.9, start=0.3, end=1.0, schedule="constant") == pytest.approx(0.3)
    with pytest.raises(ValueError, match="progress"):
        keep_fraction(1.2, start=0.2, end=0.8)
    with pytest.raises(ValueError, match="schedule"):
        keep_fraction(0.5, start=0.2, end=0.8, schedule="step")
