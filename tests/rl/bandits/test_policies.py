"""rl.bandits.policies: propensities are the sampling probabilities, hand values, learning, determinism."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest

from rl.bandits.log import DecisionLog, logged_data
from rl.bandits.oracles import JointModel, MLPRegressor
from rl.bandits.policies import EpsilonGreedy, LinearTS, LinUCB, SquareCB
from rl.bandits.probabilities import sample_actions
from rl.bandits.simulate import SyntheticProblem, run_generations
from rl.bandits.softmax import SoftmaxPolicy

K = 4


def _small_mlp(seed=0):
    return JointModel(MLPRegressor((16,), epochs=5, seed=seed))


def _policies():
    return {
        "squarecb": SquareCB(K, _small_mlp(), seed=1),
        "epsilon_greedy": EpsilonGreedy(K, _small_mlp(), epsilon=0.2, seed=1),
        "linucb": LinUCB(K, seed=1),
        "linear_ts": LinearTS(K, n_draws=50, seed=1),
        "softmax": SoftmaxPolicy(K, hidden=(8,), epochs=2, seed=1),
    }


def _trained(name):
    problem = SyntheticProblem(n_actions=K, context_dim=3, p_available=0.6, seed=2)
    policy = _policies()[name]
    run_generations(policy, problem, n_generations=2, rounds_per_generation=200, seed=3)
    return policy, problem.sample(300, np.random.default_rng(9))


@pytest.mark.parametrize("name", sorted(_policies()))
def test_logged_propensities_are_the_probabilities_used_to_sample(name):
    policy, rounds = _trained(name)
    kw = {"available": rounds.available}
    twin = copy.deepcopy(policy)  # same parameters and generator state
    d = policy.act(rounds.contexts, **kw)
    p = twin.probabilities(rounds.contexts, **kw)  # the distribution act must have sampled from
    np.testing.assert_array_equal(d.probabilities, p)
    np.testing.assert_array_equal(d.actions, sample_actions(p, twin.rng))  # drawn from exactly that p
    np.testing.assert_array_equal(d.propensities, p[np.arange(len(p)), d.actions])
    assert np.all(p[~rounds.available] == 0.0) and np.allclose(p.sum(1), 1.0)
    log = DecisionLog(K, 3)
    log.record(rounds.contexts, d, **kw)  # the log re-checks the propensities and the action sets


def test_squarecb_uses_the_gamma_schedule_and_the_oracle():
    policy = SquareCB(2, _small_mlp(), gamma_scale=10.0, gamma_exponent=0.5)
    x = np.zeros((1, 1))
    np.testing.assert_allclose(policy.probabilities(x), [[0.5, 0.5]])  # unfitted: predicts 0, gamma 0
    data = logged_data(
        np.zeros((100, 1)),
        np.arange(100) % 2,
        (np.arange(100) % 2).astype(float),
        np.full(100, 0.5),
        n_actions=2,
        rounds=np.arange(100),
    )
    policy.fit(data)
    assert policy.t == 100 and policy.gamma == pytest.approx(100.0)
    pred = policy.predict(x)
    want_other = 1 / (2 + 100 * (pred[0, 1] - pred[0, 0]))
    np.testing.assert_allclose(policy.probabilities(x), [[want_other, 1 - want_other]], rtol=1e-12)
    assert pred[0, 1] > pred[0, 0] + 0.5  # action 1 pays 1, action 0 pays 0
    fixed = SquareCB(2, policy.oracle, gamma=3.0, floor=0.2)
    assert fixed.gamma == 3.0
    p = fixed.probabilities(x)
    assert p[0, 0] >= 0.1 - 1e-12  # floor 0.2 over 2 actions


def test_linucb_hand_values_and_ties():
    # one feature x = 1; arm 0 saw reward 1 once: A0 = 1 + 1, theta0 = 1/2, width sqrt(1/2); arm 1 unseen
    data = logged_data(np.ones((1, 1)), np.array([0]), np.array([1.0]), np.array([1.0]), n_actions=2)
    pol = LinUCB(2, alpha=1.0, l2_lambda=1.0)
    pol.fit(data)
    np.testing.assert_allclose(pol.scores(np.ones((1, 1))), [[0.5 + math.sqrt(0.5), 1.0]])
    np.testing.assert_array_equal(pol.probabilities(np.ones((1, 1))), [[1.0, 0.0]])
    pol2 = LinUCB(2, alpha=2.0)
    pol2.fit(data)
    np.testing.assert_array_equal(pol2.probabilities(np.ones((1, 1))), [[0.0, 1.0]])  # 0.5 + 1.414 < 2
    np.testing.assert_array_equal(  # ...unless arm 1 is unavailable
        pol2.probabilities(np.ones((1, 1)), available=np.array([[True, False]])), [[1.0, 0.0]]
    )
    fresh = LinUCB(3)
    np.testing.assert_array_equal(
        fresh.probabilities(np.ones((2, 2))), [[1, 0, 0], [1, 0, 0]]
    )  # ties: lowest


def test_linucb_ridge_equals_scikit_learn():
    sklearn = pytest.importorskip("sklearn.linear_model")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 3))
    a = rng.integers(0, 3, 200)
    r = x @ np.array([1.0, -2.0, 0.5]) + a + rng.normal(size=200)
    pol = LinUCB(3, alpha=0.0, l2_lambda=2.5)
    data = logged_data(x, a, r, np.full(200, 1 / 3), n_actions=3)
    pol.fit(data)
    mean = pol.scores(x[:5])
    for arm in range(3):
        ridge = sklearn.Ridge(alpha=2.5, fit_intercept=False).fit(x[a == arm], r[a == arm])
        np.testing.assert_allclose(mean[:, arm], ridge.predict(x[:5]), rtol=1e-9)
    halves = LinUCB(3, alpha=0.0, l2_lambda=2.5)  # partial_fit in two batches = one fit
    halves.partial_fit(data.take(np.arange(100)))
    halves.partial_fit(data.take(np.arange(100, 200)))
    np.testing.assert_allclose(halves.scores(x[:5]), mean, rtol=1e-10)


def test_linear_ts_frequencies_match_the_gaussian_posterior():
    # two arms with independent posteriors: P(arm 0 best) = Phi((m0 - m1) / sqrt(s0^2 + s1^2))
    data = logged_data(
        np.ones((3, 1)), np.array([0, 0, 1]), np.array([1.0, 0.6, 0.5]), np.ones(3), n_actions=2
    )
    pol = LinearTS(2, alpha=1.0, n_draws=40_000, seed=0)
    pol.fit(data)
    m0, s0 = 1.6 / 3, math.sqrt(1 / 3)  # A0 = 1 + 2, b0 = 1.6
    m1, s1 = 0.5 / 2, math.sqrt(1 / 2)
    want = 0.5 * (1 + math.erf((m0 - m1) / math.sqrt(s0**2 + s1**2) / math.sqrt(2)))
    p = pol.probabilities(np.ones((1, 1)))
    assert p[0, 0] == pytest.approx(want, abs=4 * math.sqrt(want * (1 - want) / 40_000))
    assert np.all((p * 40_000) % 1 == 0)  # frequencies of the draws


def test_epsilon_greedy_learns_and_explores():
    problem = SyntheticProblem(n_actions=K, context_dim=3, seed=4)
    stats = run_generations(
        EpsilonGreedy(K, _small_mlp(), epsilon=0.1, seed=0),
        problem,
        n_generations=3,
        rounds_per_generation=400,
        seed=0,
    )
    assert stats[-1].value > stats[0].value + 0.3  # from uniform towards the best arm
    assert stats[-1].min_propensity == pytest.approx(0.1 / K)


def test_policies_validate_inputs():
    with pytest.raises(ValueError, match="pass action_features"):
        LinUCB(2, shared=True).probabilities(np.zeros((1, 2)))
    with pytest.raises(ValueError, match="data has 3 actions, the policy 2"):
        SquareCB(2).fit(logged_data(np.zeros((1, 1)), np.array([0]), np.ones(1), np.ones(1), n_actions=3))
