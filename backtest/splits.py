"""Train/test splits for bar series whose labels span future bars: walk-forward and combinatorial purged CV.

A *sample* is a bar position ``t`` in ``0..T-1``; its *label window* is ``[t, t + h]`` (``h = horizon`` bars:
a label such as "the return over the next h bars" is only known at the close of bar ``t + h``). A split leaks
when a train sample's label window overlaps a test sample's label window, i.e. when ``|i - j| <= h`` for a
train sample ``j`` and a test sample ``i`` (Lopez de Prado, *Advances in Financial Machine Learning* (AFML),
2018, ch. 7.4). Every function here removes such train samples (*purging*), and, for train data that comes
after a test block, also the ``embargo`` bars that follow the test labels (AFML 7.4.2: serial correlation of
features lets a model trained right after a test block recall it; AFML suggests ``embargo ~ 0.01 T``).

* ``walk_forward`` - rolling or expanding train windows followed by consecutive test blocks (the usual
  out-of-sample backtest: every test bar comes after everything its model was trained on).
* ``cpcv`` - combinatorial purged cross-validation (AFML ch. 12.4): ``N`` groups of consecutive bars, every
  choice of ``k`` test groups is a split, and the ``C(N-1, k-1)`` test *paths* each cover every bar once
  (``cpcv_paths`` assembles them from per-split out-of-sample values).
* ``purge`` - the purge/embargo rule on any pair of index arrays.

All indices are int64 positions (use ``bars.iloc[idx]``), sorted ascending. The splits are deterministic:
no randomness is involved. numpy only.
"""
from __future__ import annotations

import math
from itertools import combinations
from typing import Any, NamedTuple

import numpy as np

__all__ = ["CPCV", "CPCVSplit", "Fold", "cpcv", "cpcv_paths", "purge", "walk_forward"]


class Fold(NamedTuple):
    """One walk-forward fold.

    fold: 0-based fold number (in time order).
    train: ``(n_train,)`` int64 sample positions whose label windows end before the test block (purged).
    test: ``(n_test,)`` int64 consecutive positions ``test[0] .. test[-1]``.
    window: ``(lo, hi)`` - the train window ``bars[lo:hi]`` with ``hi == test[0]``: all bars a model may read
        for this fold (``train`` is ``lo .. hi - horizon - 1``; the last ``horizon`` bars are history whose
        labels would reach into the test block).
    """

    fold: int
    train: np.ndarray
    test: np.ndarray
    window: tuple[int, int]


class CPCVSplit(NamedTuple):
    """One split of combinatorial purged cross-validation.

    split: 0-based split number (lexicographic order of ``test_groups``).
    train: ``(n_train,)`` int64 positions outside the test groups, purged and embargoed.
    test: ``(n_test,)`` int64 positions of the test groups (sorted).
    test_groups: the ``k`` test group numbers (ascending).
    paths: the path number each test group's predictions belong to (same order as ``test_groups``).
    """

    split: int
    train: np.ndarray
    test: np.ndarray
    test_groups: tuple[int, ...]
    paths: tuple[int, ...]


class CPCV(NamedTuple):
    """Combinatorial purged cross-validation of ``n_bars`` bars.

    splits: the ``C(N, k)`` splits.
    groups: ``N`` arrays of consecutive positions (sizes differ by at most one bar).
    n_paths: ``C(N-1, k-1) = k C(N, k) / N`` backtest paths.
    path_splits: ``(n_paths, N)`` int64: the split whose model predicts group ``g`` on path ``p``.
    """

    splits: list[CPCVSplit]
    groups: list[np.ndarray]
    n_paths: int
    path_splits: np.ndarray


def _n_bars(bars: Any) -> int:
    """Number of bars from an int or anything with a length (Index, DataFrame, array)."""
    if isinstance(bars, (int, np.integer)) and not isinstance(bars, bool):
        n = int(bars)
    elif hasattr(bars, "__len__"):
        n = len(bars)
    else:
        raise TypeError(f"bars must be a number of bars or a sequence/index of bars, got {type(bars).__name__}")
    if n < 2:
        raise ValueError(f"need at least 2 bars to split, got {n}")
    return n


def _check_int(name: str, value: Any, *, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    return int(value)


def _dilate(mask: np.ndarray, before: int, after: int) -> np.ndarray:
    """``out[j]`` = any ``mask[i]`` with ``j - after <= i <= j + before`` (``(T,)`` bool -> ``(T,)`` bool)."""
    T = mask.shape[0]
    c = np.concatenate([[0], np.cumsum(mask, dtype=np.int64)])  # c[k] = mask[:k].sum()
    j = np.arange(T)
    lo = np.clip(j - after, 0, T)
    hi = np.clip(j + before + 1, 0, T)
    return (c[hi] - c[lo]) > 0


def purge(train: Any, test: Any, *, horizon: int, embargo: int = 0, n_bars: int | None = None) -> np.ndarray:
    """Train positions left after purging and embargoing against ``test``.

    train, test: int position arrays ``(n_train,)``, ``(n_test,)``.
    A train sample ``j`` is dropped when a test sample ``i`` has ``i - h <= j <= i + h + embargo``:
    ``j < i`` with ``j + h >= i`` (its label reaches into the test labels), ``i < j <= i + h`` (it starts
    inside a test label window) or ``i + h < j <= i + h + embargo`` (embargo after the test labels).
    Returns the kept train positions ``(n_kept,)`` int64, sorted.
    """
    h = _check_int("horizon", horizon, low=0)
    e = _check_int("embargo", embargo, low=0)
    tr = np.unique(np.asarray(train, dtype=np.int64))
    te = np.unique(np.asarray(test, dtype=np.int64))
    if tr.size == 0 or te.size == 0:
        return tr
    if min(tr[0], te[0]) < 0:
        raise ValueError("train and test positions must be >= 0")
    T = int(max(tr[-1], te[-1]) + 1) if n_bars is None else int(n_bars)
    is_test = np.zeros(T, dtype=bool)
    is_test[te] = True
    blocked = _dilate(is_test, before=h, after=h + e)  # j with a test i in [j - h - e, j + h]
    return tr[~blocked[tr]]


def _wf_sizes(n: int, *, test_bars: int | None, train_bars: int | None, folds: int | None,
              step: int | None) -> tuple[int, int, int, int]:
    """(first test start, test_bars, step, number of folds) of a walk-forward over ``n`` bars."""
    if folds is not None:
        k = _check_int("folds", folds, low=1)
        if step is not None and step != test_bars:
            raise ValueError("step cannot be combined with folds (k folds tile the end of the data); "
                             "pass train_bars/test_bars/step without folds instead")
        if test_bars is None:
            avail = n - (train_bars if train_bars is not None else 0)
            test_bars = avail // (k + 1) if train_bars is None else avail // k
            if test_bars < 1:
                after = "" if train_bars is None else f" after a {train_bars}-bar train window"
                raise ValueError(f"{n} bars are too few for {k} folds{after}; use fewer folds or a shorter "
                                 "train window")
        tb = _check_int("test_bars", test_bars, low=1)
        first = n - k * tb
        if train_bars is not None:
            _check_int("train_bars", train_bars, low=1)
            if first < train_bars:
                raise ValueError(f"train_bars={train_bars} + folds={k} x test_bars={tb} = "
                                 f"{train_bars + k * tb} exceeds the {n} bars; shorten a window or use fewer folds")
        if first < 1:
            raise ValueError(f"folds={k} x test_bars={tb} leaves no bars to train on out of {n}; "
                             "use fewer folds or shorter test blocks")
        return first, tb, tb, k
    if test_bars is None or train_bars is None:
        raise ValueError("walk_forward needs folds=K, or both train_bars and test_bars (e.g. train_bars=756, "
                         "test_bars=126)")
    tb = _check_int("test_bars", test_bars, low=1)
    trb = _check_int("train_bars", train_bars, low=1)
    st = tb if step is None else _check_int("step", step, low=1)
    if st < tb:
        raise ValueError(f"step={st} < test_bars={tb} would make test blocks overlap (bars counted twice when "
                         "the folds are concatenated); use step >= test_bars")
    if trb + tb > n:
        raise ValueError(f"train_bars={trb} + test_bars={tb} exceeds the {n} bars; shorten the windows")
    k = (n - trb - tb) // st + 1
    return trb, tb, st, k


def walk_forward(bars: Any, *, horizon: int = 0, folds: int | None = None, train_bars: int | None = None,
                 test_bars: int | None = None, step: int | None = None, expanding: bool = False) -> list[Fold]:
    """Walk-forward folds: a train window, then a test block right after it, moved forward fold by fold.

    bars: number of bars ``T`` or a sequence/index of ``T`` bars.
    horizon: label horizon ``h`` in bars; the last ``h`` samples of each train window are purged (their
        label windows ``[t, t + h]`` would reach into the test block). 0 for models without forward labels.
    folds: number of folds ``k``. Alone, the ``T`` bars are cut into ``k + 1`` blocks: the first (with the
        remainder ``T mod (k + 1)``) is the first train window, the other ``k`` are the test blocks. With
        ``train_bars`` (or ``test_bars``) the other size is derived so that the ``k`` test blocks end exactly
        at the last bar (bars before the first train window are unused by rolling windows).
    train_bars, test_bars: window sizes (without ``folds``, both are required and the first train window
        starts at bar 0; folds are added while a whole test block fits, a trailing remainder shorter than a
        test block is not evaluated).
    step: bars between consecutive test starts (default ``test_bars``: consecutive test blocks that tile the
        evaluated range; larger leaves gaps; smaller is refused because test blocks would overlap).
    expanding: train windows all start at bar 0 (anchored) instead of rolling with a fixed ``train_bars``.

    Returns ``k`` ``Fold``s in time order; for every fold ``max(train) + h < test[0]``.
    """
    n = _n_bars(bars)
    h = _check_int("horizon", horizon, low=0)
    first, tb, st, k = _wf_sizes(n, test_bars=test_bars, train_bars=train_bars, folds=folds, step=step)
    width = first if train_bars is None else int(train_bars)
    out: list[Fold] = []
    for f in range(k):
        a = first + f * st
        lo = 0 if expanding else a - width
        hi_sample = a - h
        if hi_sample <= lo:
            raise ValueError(f"fold {f}: the {a - lo}-bar train window has no sample left after purging "
                             f"horizon={h} bars; use a longer train window or a shorter horizon")
        out.append(Fold(f, np.arange(lo, hi_sample, dtype=np.int64), np.arange(a, a + tb, dtype=np.int64),
                        (lo, a)))
    return out


def cpcv(bars: Any, *, groups: int = 6, test_groups: int = 2, horizon: int = 0, embargo: int = 0) -> CPCV:
    """Combinatorial purged cross-validation (Lopez de Prado, AFML ch. 12.4).

    bars: number of bars ``T`` or a sequence/index of ``T`` bars.
    groups: ``N``, the number of groups of consecutive bars (sizes ``T // N`` or ``T // N + 1``).
    test_groups: ``k``, test groups per split (``1 <= k < N``); ``k = 1`` is purged k-fold CV.
    horizon: label horizon ``h`` in bars; train samples within ``h`` bars of a test sample are purged.
    embargo: extra bars dropped from the training data after each test block's labels (AFML suggests about
        ``0.01 T``).

    Every one of the ``C(N, k)`` choices of test groups is a split (lexicographic order). Each group is a test
    group in ``C(N-1, k-1)`` splits; the ``p``-th of them (in split order) predicts that group on path ``p``,
    so each of the ``n_paths = C(N-1, k-1)`` paths covers all ``T`` bars exactly once with out-of-sample
    predictions (AFML 12.4, figure 12.1: N = 6, k = 2 gives 15 splits and 5 paths).
    """
    n = _n_bars(bars)
    N = _check_int("groups", groups, low=2)
    k = _check_int("test_groups", test_groups, low=1)
    h = _check_int("horizon", horizon, low=0)
    e = _check_int("embargo", embargo, low=0)
    if k >= N:
        raise ValueError(f"test_groups={k} must be smaller than groups={N} (some groups must remain to train on)")
    if N > n:
        raise ValueError(f"groups={N} exceeds the {n} bars; use fewer groups")
    group_of = np.repeat(np.arange(N), [len(g) for g in np.array_split(np.arange(n), N)])  # (T,)
    group_idx = [np.flatnonzero(group_of == g).astype(np.int64) for g in range(N)]
    combos = list(combinations(range(N), k))
    n_paths = math.comb(N - 1, k - 1)
    seen = np.zeros(N, dtype=np.int64)  # next path number per group
    path_splits = np.full((n_paths, N), -1, dtype=np.int64)
    all_idx = np.arange(n, dtype=np.int64)
    splits: list[CPCVSplit] = []
    for s, tg in enumerate(combos):
        is_test = np.isin(group_of, tg)
        blocked = _dilate(is_test, before=h, after=h + e)
        train = all_idx[~blocked]
        if train.size == 0:
            raise ValueError(f"split {s} (test groups {tg}) has no training sample left after purging "
                             f"horizon={h} and embargo={e}; use more groups, fewer test groups or a smaller "
                             "horizon/embargo")
        paths = tuple(int(seen[g]) for g in tg)
        for g, p in zip(tg, paths):
            path_splits[p, g] = s
        seen[list(tg)] += 1
        splits.append(CPCVSplit(s, train, all_idx[is_test], tuple(tg), paths))
    return CPCV(splits, group_idx, n_paths, path_splits)


def cpcv_paths(cv: CPCV, values: list[Any]) -> np.ndarray:
    """Assemble the out-of-sample backtest paths of a CPCV run.

    cv: the ``CPCV`` the values came from.
    values: one array per split, ``values[s]`` of shape ``(len(cv.splits[s].test),)`` aligned with
        ``cv.splits[s].test`` (e.g. the per-bar strategy returns of the model trained on that split's train set).
    Returns ``(n_paths, T)`` float64: row ``p`` is path ``p``, every bar predicted by exactly one split.
    """
    if len(values) != len(cv.splits):
        raise ValueError(f"values has {len(values)} arrays but the CPCV has {len(cv.splits)} splits; "
                         "pass one array per split, aligned with split.test")
    n = sum(len(g) for g in cv.groups)
    out = np.full((cv.n_paths, n), np.nan)
    for sp, v in zip(cv.splits, values):
        arr = np.asarray(v, dtype=np.float64)
        if arr.shape != sp.test.shape:
            raise ValueError(f"values[{sp.split}] has shape {arr.shape}; expected {sp.test.shape} "
                             "(one value per test position of that split)")
        for g, p in zip(sp.test_groups, sp.paths):
            idx = cv.groups[g]
            out[p, idx] = arr[np.searchsorted(sp.test, idx)]
    return out
