"""rl.bandits.oracles: the torch MLP regressor, scikit-learn regressors, joint and per-action models."""

from __future__ import annotations

import numpy as np
import pytest

from rl.bandits.log import logged_data
from rl.bandits.oracles import JointModel, MLPRegressor, PerActionModel, default_oracle, joint_inputs


def _data(n=600, k=3, f=2, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 2))
    af = rng.normal(size=(n, k, f))
    a = rng.integers(0, k, n)
    mean = x[:, :1] * np.arange(k) + af[..., 0]  # (N, K): action a pays a * x0 + its first feature
    r = mean[np.arange(n), a] + 0.1 * rng.normal(size=n)
    return logged_data(x, a, r, np.full(n, 1 / k), action_features=af), mean


def test_joint_inputs_layout():
    x = np.array([[1.0, 2.0]])
    af = np.array([[[7.0], [8.0]]])
    np.testing.assert_array_equal(joint_inputs(x, 2, af), [[[1, 2, 1, 0, 7], [1, 2, 0, 1, 8]]])
    np.testing.assert_array_equal(joint_inputs(x, 2, one_hot=False), [[[1, 2], [1, 2]]])
    # vowpalwabbit's -q sa: every context feature times every action column [one-hot, features]
    q = joint_inputs(x, 2, af, interactions=True)
    np.testing.assert_array_equal(q[0, 0], [1, 2, 1, 0, 7, 1 * 1, 1 * 0, 1 * 7, 2 * 1, 2 * 0, 2 * 7])
    np.testing.assert_array_equal(q[0, 1], [1, 2, 0, 1, 8, 0, 1, 8, 0, 2, 16])


def test_joint_linear_model_on_interactions_recovers_per_action_linear_rewards():
    linear = pytest.importorskip("sklearn.linear_model")
    data, mean = _data()  # reward = a * x0 + f_a0: linear in the -q sa feature map
    model = JointModel(linear.LinearRegression(), interactions=True)
    model.fit(data)
    test, mean = _data(seed=1)
    pred = model.predict(test.contexts, action_features=test.action_features)
    assert np.abs(pred - mean).mean() < 0.02 and np.abs(pred - mean).max() < 0.1  # reward noise sd 0.1


def test_mlp_regressor_fits_a_nonlinear_function_and_is_seeded():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(1000, 3))
    y = np.sin(2 * x[:, 0]) + x[:, 1] ** 2
    m = MLPRegressor((32, 32), epochs=40, seed=3).fit(x, y)
    xt = rng.normal(size=(500, 3))
    yt = np.sin(2 * xt[:, 0]) + xt[:, 1] ** 2
    r2 = 1 - np.mean((m.predict(xt) - yt) ** 2) / np.var(yt)
    assert r2 > 0.9, r2
    again = MLPRegressor((32, 32), epochs=40, seed=3).fit(x, y)
    np.testing.assert_array_equal(again.predict(xt), m.predict(xt))
    other = MLPRegressor((32, 32), epochs=40, seed=4).fit(x, y)
    assert not np.array_equal(other.predict(xt), m.predict(xt))
    assert np.array_equal(MLPRegressor().predict(xt), np.zeros(500))  # unfitted: 0


def test_mlp_sample_weight_changes_the_fit():
    x = np.zeros((200, 1))
    y = np.r_[np.zeros(100), np.ones(100)]
    w = np.r_[np.full(100, 1.0), np.full(100, 9.0)]
    plain = MLPRegressor((8,), seed=0).fit(x, y).predict(x[:1])[0]
    weighted = MLPRegressor((8,), seed=0).fit(x, y, sample_weight=w).predict(x[:1])[0]
    assert plain == pytest.approx(0.5, abs=0.05) and weighted == pytest.approx(0.9, abs=0.05)


def test_joint_model_learns_action_dependent_rewards():
    data, _ = _data()
    model = default_oracle(seed=0, hidden=(32, 32), epochs=40)
    assert np.array_equal(model.predict(np.zeros((2, 2)), n_actions=3), np.zeros((2, 3)))  # unfitted
    model.fit(data)
    test, mean = _data(seed=1)
    pred = model.predict(test.contexts, action_features=test.action_features)
    assert pred.shape == (600, 3)
    assert np.corrcoef(pred.ravel(), mean.ravel())[0, 1] > 0.95


def test_per_action_model_with_scikit_learn_gradient_boosting():
    ensemble = pytest.importorskip("sklearn.ensemble")
    data, _ = _data()
    model = PerActionModel(ensemble.GradientBoostingRegressor(n_estimators=50, random_state=0))
    model.fit(data)
    assert set(model.models) == {0, 1, 2} and model.models[0] is not model.models[1]  # one clone per action
    test, mean = _data(seed=1)
    pred = model.predict(test.contexts, action_features=test.action_features)
    assert np.corrcoef(pred.ravel(), mean.ravel())[0, 1] > 0.9
    only0 = data.take(data.actions == 0)
    model.fit(only0)  # actions without data predict the mean logged reward
    pred = model.predict(test.contexts, action_features=test.action_features)
    np.testing.assert_allclose(pred[:, 1:], only0.rewards.mean())


def test_ridge_regressor_equals_scikit_learn_ridge():
    from sklearn.linear_model import Ridge

    from rl.bandits import RidgeRegressor

    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 12))
    y = X @ rng.normal(size=12) + 0.5 + rng.normal(size=300)
    w = rng.uniform(0, 3, 300)
    for weights in (None, w):
        ours = RidgeRegressor(2.0).fit(X, y, weights)
        ref = Ridge(alpha=2.0).fit(X, y, sample_weight=weights)
        np.testing.assert_allclose(ours.coef_, ref.coef_, rtol=1e-10)
        assert ours.intercept_ == pytest.approx(ref.intercept_, rel=1e-10)
        np.testing.assert_allclose(ours.predict(X[:7]), ref.predict(X[:7]), rtol=1e-10)
    assert (RidgeRegressor().predict(X[:3]) == 0).all()  # unfitted: 0, as the other oracles


def test_ridge_predictions_do_not_depend_on_the_rows_predicted_together():
    from rl.bandits import RidgeRegressor

    rng = np.random.default_rng(1)
    X = rng.normal(size=(500, 44))
    model = RidgeRegressor(1.0).fit(X, rng.normal(size=500))
    whole = model.predict(X)
    for a, b in ((0, 1), (3, 4), (7, 20), (100, 101)):
        np.testing.assert_array_equal(model.predict(X[a:b]), whole[a:b])
