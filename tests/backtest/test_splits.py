"""backtest.splits: walk-forward and combinatorial purged CV - hand cases, skfolio's published doctest splits,
a brute-force purge check and hypothesis properties (no label window across a train/test boundary)."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from backtest import splits


def _label_overlap(train: np.ndarray, test: np.ndarray, h: int) -> bool:
    """Brute force: does any train label window [j, j+h] intersect a test label window [i, i+h]?"""
    if train.size == 0 or test.size == 0:
        return False
    return bool((np.abs(train[:, None] - test[None, :]) <= h).any())


# ---------------------------------------------------------------- walk-forward

def test_walk_forward_k_folds_tiles_the_data_and_purges_the_horizon():
    folds = splits.walk_forward(20, folds=3, horizon=2)
    # 20 bars, k + 1 = 4 blocks of 5: train 0..4 then tests 5..9, 10..14, 15..19; rolling 5-bar windows
    assert [f.test.tolist() for f in folds] == [list(range(5, 10)), list(range(10, 15)), list(range(15, 20))]
    assert [f.window for f in folds] == [(0, 5), (5, 10), (10, 15)]
    # the last h = 2 samples of each window are purged: label [3, 5] would reach the test bar 5
    assert [f.train.tolist() for f in folds] == [[0, 1, 2], [5, 6, 7], [10, 11, 12]]
    assert [f.fold for f in folds] == [0, 1, 2]


def test_walk_forward_remainder_goes_to_the_first_train_window():
    folds = splits.walk_forward(23, folds=3)  # 23 // 4 = 5-bar tests, first window 23 - 15 = 8 bars
    assert folds[0].window == (0, 8) and folds[0].test.tolist() == list(range(8, 13))
    assert folds[-1].test[-1] == 22
    assert all(len(f.train) == 8 for f in folds)  # rolling windows keep the first window's length


def test_walk_forward_expanding_windows_are_anchored_at_bar_0():
    folds = splits.walk_forward(21, train_bars=6, test_bars=4, expanding=True, horizon=1)
    assert [f.window for f in folds] == [(0, 6), (0, 10), (0, 14)]  # bars 18..20 do not fill a 4-bar block
    assert [f.train.tolist() for f in folds] == [list(range(5)), list(range(9)), list(range(13))]


def test_walk_forward_explicit_sizes_leave_a_short_remainder_unevaluated():
    folds = splits.walk_forward(21, train_bars=6, test_bars=4)
    assert [f.test.tolist() for f in folds] == [[6, 7, 8, 9], [10, 11, 12, 13], [14, 15, 16, 17]]
    assert [f.window for f in folds] == [(0, 6), (4, 10), (8, 14)]
    gapped = splits.walk_forward(30, train_bars=6, test_bars=4, step=6)
    assert [f.test[0] for f in gapped] == [6, 12, 18, 24]


def test_walk_forward_folds_with_train_bars_anchor_at_the_end():
    folds = splits.walk_forward(100, folds=4, train_bars=40)  # (100 - 40) // 4 = 15-bar tests ending at bar 99
    assert [f.test[0] for f in folds] == [40, 55, 70, 85] and folds[-1].test[-1] == 99
    folds = splits.walk_forward(101, folds=4, train_bars=40)  # 61 // 4 = 15: first test at 101 - 60 = 41
    assert folds[0].window == (1, 41) and folds[-1].test[-1] == 100


def test_walk_forward_accepts_an_index():
    idx = pd.date_range("2024-01-01", periods=30, freq="D")
    assert [f.test.tolist() for f in splits.walk_forward(idx, folds=2)] == \
        [f.test.tolist() for f in splits.walk_forward(30, folds=2)]


@pytest.mark.parametrize("kwargs, match", [
    ({}, "folds=K, or both train_bars and test_bars"),
    ({"train_bars": 10, "test_bars": 5, "step": 3}, "step=3 < test_bars=5"),
    ({"folds": 30}, "too few for 30 folds"),
    ({"train_bars": 15, "test_bars": 10}, "exceeds the 20 bars"),
    ({"folds": 2, "train_bars": 4, "horizon": 4}, "no sample left after purging"),
    ({"folds": 0}, "folds must be an integer >= 1"),
    ({"folds": 2, "horizon": -1}, "horizon must be an integer >= 0"),
])
def test_walk_forward_errors_name_the_fix(kwargs, match):
    with pytest.raises(ValueError, match=match):
        splits.walk_forward(20, **kwargs)


@settings(max_examples=150, deadline=None)
@given(n=st.integers(10, 400), k=st.integers(1, 8), h=st.integers(0, 12), expanding=st.booleans(),
       mode=st.sampled_from(["k", "k+train", "sizes"]), frac=st.floats(0.2, 0.6))
def test_walk_forward_properties(n, k, h, expanding, mode, frac):
    kwargs: dict = {"horizon": h, "expanding": expanding}
    if mode == "k":
        kwargs["folds"] = k
    elif mode == "k+train":
        kwargs.update(folds=k, train_bars=max(1, int(n * frac)))
    else:
        kwargs.update(train_bars=max(1, int(n * frac)), test_bars=max(1, n // (2 * k)))
    try:
        folds = splits.walk_forward(n, **kwargs)
    except ValueError:
        return  # sizes that do not fit are refused with a message (covered above)
    assert folds
    prev_end = None
    for f in folds:
        assert f.train.dtype == np.int64 and f.test.dtype == np.int64
        assert np.all(np.diff(f.test) == 1)  # a test block is consecutive bars
        assert np.intersect1d(f.train, f.test).size == 0
        assert f.train.max() + h < f.test[0]  # every label window ends before the test block
        assert not _label_overlap(f.train, f.test, h)
        assert f.window[1] == f.test[0] and f.window[0] <= f.train[0]
        if expanding:
            assert f.window[0] == 0
        if prev_end is not None:
            assert f.test[0] == prev_end + 1  # consecutive, non-overlapping blocks (step = test_bars)
        prev_end = f.test[-1]
    if mode != "sizes":
        assert folds[-1].test[-1] == n - 1 and len(folds) == k  # k folds tile the range up to the last bar
    else:
        assert n - 1 - folds[-1].test[-1] < len(folds[0].test)  # only a remainder shorter than a block is left


# ---------------------------------------------------------------- purge / CPCV

def test_purge_drops_overlapping_labels_and_the_embargo():
    train = np.arange(20)
    test = np.arange(8, 12)
    kept = splits.purge(train, test, horizon=2, embargo=3)
    # dropped: 6, 7 (labels reach 8), the test bars, 12, 13 (start inside test labels), 14, 15, 16 (embargo)
    assert kept.tolist() == [0, 1, 2, 3, 4, 5, 17, 18, 19]
    assert splits.purge(train, test, horizon=0).tolist() == [*range(8), *range(12, 20)]


def test_cpcv_matches_skfolios_published_examples():
    """The splits printed in skfolio's CombinatorialPurgedCV docstring (12 samples, 3 folds, 2 test folds)."""
    plain = splits.cpcv(12, groups=3, test_groups=2)
    assert [s.train.tolist() for s in plain.splits] == [[8, 9, 10, 11], [4, 5, 6, 7], [0, 1, 2, 3]]
    purged = splits.cpcv(12, groups=3, test_groups=2, horizon=1)  # skfolio purged_size=1
    assert [s.train.tolist() for s in purged.splits] == [[9, 10, 11], [5, 6], [0, 1, 2]]
    embargoed = splits.cpcv(12, groups=3, test_groups=2, embargo=1)  # skfolio embargo_size=1
    assert [s.train.tolist() for s in embargoed.splits] == [[9, 10, 11], [5, 6, 7], [0, 1, 2, 3]]
    assert [s.test.tolist() for s in plain.splits] == [list(range(8)), [0, 1, 2, 3, 8, 9, 10, 11],
                                                      list(range(4, 12))]


def test_cpcv_afml_figure_12_1_paths():
    """AFML fig. 12.1: N = 6 groups, k = 2 -> 15 splits, 5 paths; path p takes each group's p-th test split."""
    cv = splits.cpcv(60, groups=6, test_groups=2)
    assert len(cv.splits) == math.comb(6, 2) == 15 and cv.n_paths == 5
    assert cv.path_splits.tolist() == [[0, 0, 1, 2, 3, 4], [1, 5, 5, 6, 7, 8], [2, 6, 9, 9, 10, 11],
                                       [3, 7, 10, 12, 12, 13], [4, 8, 11, 13, 14, 14]]
    assert cv.splits[5].test_groups == (1, 2) and cv.splits[5].paths == (1, 1)


def test_cpcv_matches_skfolio_when_installed():
    skcv = pytest.importorskip("skfolio.model_selection")
    X = np.zeros((120, 1))
    ref = skcv.CombinatorialPurgedCV(n_folds=6, n_test_folds=3, purged_size=2, embargo_size=3)
    ours = splits.cpcv(120, groups=6, test_groups=3, horizon=2, embargo=3)
    for (train, tests), sp in zip(ref.split(X), ours.splits):
        assert train.tolist() == sp.train.tolist()
        assert np.concatenate(tests).tolist() == sp.test.tolist()
    assert ref.get_path_ids().tolist() == [list(s.paths) for s in ours.splits]


def test_cpcv_paths_reassemble_each_bar_once():
    cv = splits.cpcv(50, groups=5, test_groups=2, horizon=1, embargo=1)
    # value = 1000 * split + bar: each path must read every bar from exactly the split path_splits names
    values = [1000.0 * s.split + s.test for s in cv.splits]
    paths = splits.cpcv_paths(cv, values)
    assert paths.shape == (cv.n_paths, 50) and np.isfinite(paths).all()
    bars = np.arange(50)
    for p in range(cv.n_paths):
        np.testing.assert_array_equal(paths[p] % 1000, bars)
        for g, idx in enumerate(cv.groups):
            assert set((paths[p, idx] // 1000).tolist()) == {cv.path_splits[p, g]}
    with pytest.raises(ValueError, match="one array per split"):
        splits.cpcv_paths(cv, values[:-1])


@pytest.mark.parametrize("kwargs, match", [
    ({"groups": 4, "test_groups": 4}, "must be smaller than groups"),
    ({"groups": 40}, "exceeds the 30 bars"),
    ({"groups": 3, "test_groups": 2, "horizon": 10}, "no training sample left"),
    ({"embargo": -2}, "embargo must be an integer >= 0"),
])
def test_cpcv_errors_name_the_fix(kwargs, match):
    with pytest.raises(ValueError, match=match):
        splits.cpcv(30, **kwargs)


@settings(max_examples=120, deadline=None)
@given(n=st.integers(12, 300), N=st.integers(2, 8), kfrac=st.floats(0.0, 1.0), h=st.integers(0, 6),
       e=st.integers(0, 6))
def test_cpcv_properties(n, N, kfrac, h, e):
    k = 1 + int(kfrac * (N - 2))  # 1 <= k < N
    try:
        cv = splits.cpcv(n, groups=N, test_groups=k, horizon=h, embargo=e)
    except ValueError:
        return
    assert len(cv.splits) == math.comb(N, k) and cv.n_paths == math.comb(N - 1, k - 1)
    assert np.array_equal(np.concatenate(cv.groups), np.arange(n))
    sizes = [len(g) for g in cv.groups]
    assert max(sizes) - min(sizes) <= 1
    for sp in cv.splits:
        assert np.intersect1d(sp.train, sp.test).size == 0
        assert not _label_overlap(sp.train, sp.test, h)  # purged: no label window crosses a boundary
        # embargo: no train sample within h + e bars after a test sample
        after = sp.train[:, None] - sp.test[None, :]
        assert not ((after > 0) & (after <= h + e)).any()
        # the brute-force purge keeps exactly what cpcv kept
        diff = np.arange(n)[:, None] - sp.test[None, :]  # (n, n_test): j - i for every bar j, test bar i
        brute = np.flatnonzero(~((diff >= -h) & (diff <= h + e)).any(axis=1))  # includes dropping the tests
        assert np.array_equal(sp.train, brute)
    # every group is tested once on every path
    assert (cv.path_splits >= 0).all()
    for p in range(cv.n_paths):
        for g in range(N):
            sp = cv.splits[cv.path_splits[p, g]]
            assert g in sp.test_groups and sp.paths[sp.test_groups.index(g)] == p
