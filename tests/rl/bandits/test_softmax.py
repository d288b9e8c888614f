"""rl.bandits.softmax: a softmax policy trained from logs with every registered rl.losses loss."""

from __future__ import annotations

import math

import numpy as np
import pytest

from rl.bandits.log import logged_data
from rl.bandits.softmax import SoftmaxPolicy
from rl.losses import POLICY_LOSSES


@pytest.mark.parametrize("loss", sorted(POLICY_LOSSES))
def test_softmax_policy_trains_with_every_registered_loss(loss):
    # two actions, action 1 pays 1 and action 0 pays 0; logs from the uniform first generation
    pol = SoftmaxPolicy(2, epochs=8, batch_size=64, lr=0.1, loss=loss, seed=0)
    x = np.random.default_rng(0).normal(size=(256, 2))
    p0 = pol.probabilities(x)
    np.testing.assert_allclose(p0, 0.5)  # zero last layer: uniform start
    d = pol.act(x)
    data = logged_data(x, d.actions, d.actions.astype(float), d.propensities, probabilities=d.probabilities)
    pol.fit(data)
    p1 = pol.probabilities(x)
    assert p1[:, 1].mean() > 0.6, (loss, p1[:, 1].mean())
    assert all(math.isfinite(m["loss"]) for m in pol.metrics)


def test_softmax_policy_respects_action_sets_and_validates():
    pol = SoftmaxPolicy(3, hidden=(4,), seed=0)
    avail = np.array([[True, False, True], [False, True, False]])
    p = pol.probabilities(np.zeros((2, 2)), available=avail)
    np.testing.assert_allclose(p, [[0.5, 0.0, 0.5], [0.0, 1.0, 0.0]])
    with pytest.raises(KeyError, match="unknown policy loss 'ppo'; registered:"):
        SoftmaxPolicy(2, loss="ppo")
