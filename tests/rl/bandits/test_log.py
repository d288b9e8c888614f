"""rl.bandits.log: decisions recorded when made, rewards later and out of order, parquet round trip."""

from __future__ import annotations

import numpy as np
import pytest

from rl.bandits.log import DecisionLog, Decisions, logged_data
from rl.bandits.policies import decide


def _decisions(n: int, k: int, seed: int, avail: np.ndarray) -> Decisions:
    rng = np.random.default_rng(seed)
    p = rng.random((n, k)) * avail
    return decide(p / p.sum(1, keepdims=True), rng)


def _filled_log(n=30, k=4, d=3, f=2, seed=0):
    rng = np.random.default_rng(seed)
    log = DecisionLog(k, d, action_feature_dim=f)
    avail = rng.random((n, k)) < 0.7
    avail[:, 0] = True
    x, af = rng.normal(size=(n, d)), rng.normal(size=(n, k, f))
    dec = _decisions(n, k, seed, avail)
    ids = np.concatenate(
        [
            log.record(
                x[:10], Decisions(*(a[:10] for a in dec)), available=avail[:10], action_features=af[:10]
            ),
            log.record(
                x[10:],
                Decisions(*(a[10:] for a in dec)),
                available=avail[10:],
                action_features=af[10:],
                generation=1,
            ),
        ]
    )
    return log, ids, x, af, avail, dec


def test_rewards_out_of_order_give_the_same_data_as_in_order():
    log_a, ids, *_ = _filled_log()
    log_b, *_ = _filled_log()
    rewards = np.linspace(-1, 1, len(ids))
    log_a.add_rewards(ids, rewards)
    perm = np.random.default_rng(5).permutation(len(ids))
    for part in np.array_split(perm, 3):
        log_b.add_rewards(ids[part], rewards[part])
    for a, b in zip(log_a.data(), log_b.data(), strict=True):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(log_a.data().rounds, np.arange(len(ids)))


def test_pending_and_generation_filter():
    log, ids, x, af, _avail, dec = _filled_log()
    log.add_rewards(ids[[25, 3, 12]], np.array([1.0, 0.0, 0.5]))
    np.testing.assert_array_equal(log.pending(), np.setdiff1d(ids, [3, 12, 25]))
    d = log.data()
    np.testing.assert_array_equal(d.rounds, [3, 12, 25])
    np.testing.assert_array_equal(d.rewards, [0.0, 0.5, 1.0])
    np.testing.assert_array_equal(d.contexts, x[[3, 12, 25]])
    np.testing.assert_array_equal(d.action_features, af[[3, 12, 25]])
    np.testing.assert_array_equal(d.propensities, dec.propensities[[3, 12, 25]])
    np.testing.assert_array_equal(log.data(generations=1).rounds, [12, 25])
    np.testing.assert_array_equal(log.data(generations=1).generations, [1, 1])


def test_parquet_round_trip_keeps_pending_rewards(tmp_path):
    log, ids, *_ = _filled_log()
    log.add_rewards(ids[::2], np.arange(15, dtype=float))
    path = log.to_parquet(tmp_path / "sub" / "log.parquet")
    assert [p.name for p in path.parent.iterdir()] == ["log.parquet"]  # no temp file left behind
    back = DecisionLog.read_parquet(path)
    assert len(back) == len(log)
    np.testing.assert_array_equal(back.pending(), log.pending())
    for a, b in zip(back.data(), log.data(), strict=True):
        np.testing.assert_array_equal(a, b)
    back.add_rewards(ids[1::2], np.ones(15))  # the read log keeps accepting rewards
    assert back.pending().size == 0


def test_parquet_refuses_foreign_files(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"a": [1, 2]}), tmp_path / "other.parquet")
    with pytest.raises(ValueError, match="not a DREX bandit decision log"):
        DecisionLog.read_parquet(tmp_path / "other.parquet")


def test_log_errors_name_the_fix():
    log, ids, *_ = _filled_log()
    log.add_rewards(ids[:1], [1.0])
    with pytest.raises(ValueError, match="round 0 already has a reward"):
        log.add_rewards(ids[:1], [1.0])
    with pytest.raises(KeyError, match="unknown round id"):
        log.add_rewards([99], [1.0])
    with pytest.raises(ValueError, match="rewards must be finite"):
        log.add_rewards([1], [np.nan])
    bad = Decisions(np.array([0]), np.array([0.3]), np.array([[0.5, 0.5, 0.0, 0.0]]))
    with pytest.raises(ValueError, match="propensities differ"):
        log.record(np.zeros((1, 3)), bad, action_features=np.zeros((1, 4, 2)))
    with pytest.raises(ValueError, match="pass action_features"):
        log.record(np.zeros((1, 3)), Decisions(np.array([0]), np.array([0.5]), np.array([[0.5, 0.5, 0, 0]])))
    mass = Decisions(np.array([0]), np.array([0.5]), np.array([[0.5, 0.5, 0.0, 0.0]]))
    with pytest.raises(ValueError, match="mass on unavailable"):
        log.record(
            np.zeros((1, 3)),
            mass,
            available=np.array([[True, False, True, True]]),
            action_features=np.zeros((1, 4, 2)),
        )


def test_logged_data_validation():
    d = logged_data(
        np.zeros((2, 1)), np.array([0, 1]), np.array([1.0, 0.0]), np.array([0.5, 0.5]), n_actions=2
    )
    assert d.n_rounds == 2 and d.n_actions == 2 and d.available.all()
    with pytest.raises(ValueError, match="propensities must lie in"):
        logged_data(np.zeros((1, 1)), np.array([0]), np.array([1.0]), np.array([0.0]), n_actions=2)
    with pytest.raises(ValueError, match="not in its round's action set"):
        logged_data(
            np.zeros((1, 1)),
            np.array([1]),
            np.array([1.0]),
            np.array([1.0]),
            available=np.array([[True, False]]),
        )
