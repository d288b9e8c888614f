"""rl.bandits.probabilities: SquareCB's inverse-gap weighting by hand, ties, action sets, sampling."""

from __future__ import annotations

import numpy as np
import pytest

from rl.bandits.probabilities import (
    epsilon_greedy_probabilities,
    gamma_schedule,
    mix_probabilities,
    sample_actions,
    squarecb_probabilities,
    with_floor,
)


def test_squarecb_hand_values_unique_best():
    # K = 3, gamma = 10: gaps 0.3 and 0.1 -> 1/(3 + 3) and 1/(3 + 1); the best gets the rest
    p = squarecb_probabilities(np.array([[0.5, 0.2, 0.4]]), 10.0)
    np.testing.assert_allclose(p, [[1 - 1 / 6 - 1 / 4, 1 / 6, 1 / 4]], rtol=0, atol=1e-15)


def test_squarecb_counts_only_available_actions():
    # action 1 unavailable (its NaN prediction is ignored): K = 2, gap 0.1 -> 1/(2 + 1)
    pred = np.array([[0.5, np.nan, 0.4]])
    p = squarecb_probabilities(pred, 10.0, np.array([[True, False, True]]))
    np.testing.assert_allclose(p, [[2 / 3, 0.0, 1 / 3]], rtol=0, atol=1e-15)
    assert p[0, 1] == 0.0


def test_squarecb_ties_share_the_greedy_mass():
    # two best actions: the third gets 1/(3 + 10 * 0.4) = 1/7, the tied pair share 6/7 equally
    p = squarecb_probabilities(np.array([[0.5, 0.5, 0.1]]), 10.0)
    np.testing.assert_allclose(p, [[3 / 7, 3 / 7, 1 / 7]], rtol=0, atol=1e-15)
    # column order does not matter
    q = squarecb_probabilities(np.array([[0.1, 0.5, 0.5]]), 10.0)
    np.testing.assert_allclose(q[0, ::-1], p[0], atol=1e-15)


def test_squarecb_gamma_zero_is_uniform_and_per_round_gamma():
    pred = np.array([[0.9, 0.1, 0.0, 0.3], [0.2, 0.4, 0.6, 0.8]])
    avail = np.array([[True, True, False, True], [True, True, True, True]])
    np.testing.assert_allclose(
        squarecb_probabilities(pred, 0.0, avail), [[1 / 3, 1 / 3, 0, 1 / 3], [0.25] * 4]
    )
    p = squarecb_probabilities(pred, np.array([0.0, 5.0]), avail)
    np.testing.assert_allclose(p[0], [1 / 3, 1 / 3, 0, 1 / 3])
    # row 2: K = 4, gamma 5, gaps 0.6, 0.4, 0.2 -> 1/7, 1/6, 1/5
    np.testing.assert_allclose(p[1], [1 / 7, 1 / 6, 1 / 5, 1 - 1 / 7 - 1 / 6 - 1 / 5])


def test_squarecb_matches_the_vowpalwabbit_rule_when_the_best_is_unique():
    # vowpalwabbit (cb_explore_adf_squarecb.cc), costs c = -yhat: 1/(K + gamma (c_a - c_min)), rest on argmin
    rng = np.random.default_rng(0)
    pred = rng.normal(size=(50, 6))
    gamma = 37.0
    p = squarecb_probabilities(pred, gamma)
    cost = -pred
    want = 1.0 / (6 + gamma * (cost - cost.min(1, keepdims=True)))
    best = cost.argmin(1)
    want[np.arange(50), best] = 0.0
    want[np.arange(50), best] = 1.0 - want.sum(1)
    np.testing.assert_allclose(p, want, rtol=1e-12)
    assert np.all(p.max(1) >= 1 / 6)  # the best action keeps at least 1/K


def test_squarecb_bad_input_names_the_problem():
    with pytest.raises(ValueError, match="round 1 has no available action"):
        squarecb_probabilities(np.zeros((2, 2)), 1.0, np.array([[True, False], [False, False]]))
    with pytest.raises(ValueError, match="action 1 in round 0 is nan"):
        squarecb_probabilities(np.array([[0.0, np.nan]]), 1.0)
    with pytest.raises(ValueError, match="gamma must be finite and >= 0"):
        squarecb_probabilities(np.zeros((1, 2)), -1.0)
    with pytest.raises(ValueError, match="boolean mask"):
        squarecb_probabilities(np.zeros((1, 2)), 1.0, np.ones((1, 2)))


def test_epsilon_greedy_floor_and_mix_hand_values():
    pred = np.array([[0.2, 0.9, 0.9, 0.0]])
    avail = np.array([[True, True, True, False]])
    p = epsilon_greedy_probabilities(pred, 0.3, avail)
    np.testing.assert_allclose(p, [[0.1, 0.1 + 0.35, 0.1 + 0.35, 0.0]])
    f = with_floor(np.array([[0.0, 1.0, 0.0, 0.0]]), 0.3, avail)
    np.testing.assert_allclose(f, [[0.1, 0.8, 0.1, 0.0]])
    np.testing.assert_allclose(mix_probabilities(p, f, 0.5), (p + f) / 2)


def test_gamma_schedule_vowpalwabbit_defaults():
    assert gamma_schedule(0) == 0.0
    assert gamma_schedule(100) == pytest.approx(100.0)  # 10 * 100 ** 0.5
    np.testing.assert_allclose(gamma_schedule(np.array([4, 9]), scale=2.0, exponent=1.0), [8.0, 18.0])


def test_sample_actions_frequencies_and_zero_probability():
    p = np.tile([0.5, 0.0, 0.2, 0.3], (200_000, 1))
    a = sample_actions(p, np.random.default_rng(1))
    freq = np.bincount(a, minlength=4) / len(a)
    se = np.sqrt(p[0] * (1 - p[0]) / len(a))
    assert freq[1] == 0.0
    assert np.all(np.abs(freq - p[0]) <= 4 * se + 1e-12), freq
    b = sample_actions(p[:100], np.random.default_rng(1))
    np.testing.assert_array_equal(b, a[:100])  # seeded: same uniforms, same actions
