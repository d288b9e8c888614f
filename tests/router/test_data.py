"""router.data: hindsight and synthetic regime labels, rewards, targets and the purged time split."""
from __future__ import annotations

import numpy as np
import pytest

from backtest.accounting import horizon_rewards
from markets.synthetic import regimes
from router.data import (
    SYNTH_REGIME_MAP,
    build_series,
    hindsight_regimes,
    normalized_rewards,
    soft_targets,
    time_split,
)
from router.experts import EXPERT_SETS
from router.model import REGIMES


def _ohlcv(returns: np.ndarray) -> np.ndarray:
    c = 100 * np.exp(np.r_[0.0, np.cumsum(returns)])
    return np.column_stack([c, c, c, c, np.ones_like(c)])


def test_hindsight_labels_by_hand():
    wiggle = np.tile([0.01, -0.01], 40)  # 80 returns: sigma ~ 0.01, no drift
    r = np.r_[wiggle, np.full(10, 0.01), np.tile([0.03, -0.03], 5), wiggle[:20]]
    labels = hindsight_regimes(_ohlcv(r), 10, REGIMES)
    # bar t's future is bars t+1..t+10, i.e. returns r[t .. t+9] (r[i] is the return of bar i+1)
    assert REGIMES[labels[70]] == "sideways"  # a wiggle: no net move, same volatility
    assert REGIMES[labels[80]] == "up"  # ten returns of +1%: z = 0.1 / (0.01 sqrt(10)) > 0.5, no vol burst
    assert REGIMES[labels[90]] == "breakout"  # the +-3% wiggle triples the volatility
    assert (labels[:20] == -1).all() and (labels[-10:] == -1).all()  # no trailing sigma / no full future
    down = hindsight_regimes(_ohlcv(np.r_[wiggle, np.full(10, -0.01), wiggle[:5]]), 10, REGIMES)
    assert REGIMES[down[80]] == "down"


def test_synthetic_labels_are_the_generators():
    spec = "synth:regimes?seed=4&n=300"
    (s,) = build_series(spec, EXPERT_SETS["rules"], regimes=REGIMES, horizon=5)
    _, truth = regimes(300, 4)
    want = np.array([REGIMES.index(SYNTH_REGIME_MAP[x]) for x in truth])
    np.testing.assert_array_equal(s.regime, want)
    assert s.synthetic and list(s.true_regime) == list(truth)


def test_rewards_follow_each_expert_from_its_previous_exposure():
    (s,) = build_series("synth:regimes?seed=2&n=200", EXPERT_SETS["rules"], regimes=REGIMES, horizon=5,
                        fees=0.002)
    o, c = s.ohlcv[:, 0], s.ohlcv[:, 3]
    t, k = 120, 2
    want = horizon_rewards(o, c, np.array([t]), s.h[[t], k], 5, fees=0.002, slippage=0.0,
                           start_exposure=s.h[[t - 1], k])
    assert s.rewards[t, k] == pytest.approx(want[0], rel=1e-12)
    assert np.isnan(s.rewards[-5:]).all() and np.isfinite(s.rewards[1:-5]).all()
    assert s.trainable(5).sum() == 200 - 60 - 5


def test_targets_by_hand():
    z = normalized_rewards(np.array([[0.02, -0.01, np.nan]]), np.array([0.01]), 4)
    np.testing.assert_allclose(z, [[1.0, -0.5, 0.0]])
    q = soft_targets(np.array([[1.0, 0.0]]), 0.5)
    np.testing.assert_allclose(q, [[np.e**2 / (np.e**2 + 1), 1 / (np.e**2 + 1)]])
    assert normalized_rewards(np.array([[1.0]]), np.array([0.001]), 1)[0, 0] == 5.0  # clipped


def test_time_split_is_purged():
    train, val = time_split(1000, 20, 0.2)
    assert val[0] == 800 and val[-1] == 999 and len(val) == 200
    assert train[-1] + 20 < val[0] and train[0] == 0
    with pytest.raises(ValueError, match="val_frac"):
        time_split(100, 5, 1.0)
