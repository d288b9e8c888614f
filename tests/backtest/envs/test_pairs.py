"""PairsTradingEnv / BatchedPairsEnv: both legs' accounting is backtest.run's (1e-9), stop-loss and timeout,
the rolling regression against statsmodels OLS, no look-ahead, the test window is never read, check_env,
batched == single, the stock of the risk-sensitive agent, seeded determinism."""
from __future__ import annotations

import itertools
import warnings

import numpy as np
import pytest

import backtest
import markets
from backtest.envs import BatchedPairsEnv, PairsTradingEnv, pair_features, spread_weights
from backtest.lookahead import perturb_after


@pytest.fixture(scope="module")
def bars():
    return markets.load("synth:pairs?seed=3&n=1500&half_life=30&spread_vol=0.004")


def _play(env, start, actions, **opts):
    obs, _ = env.reset(options={"start": start, **opts})
    rows, weights, equity, rewards, forced = [obs], [], [], [], []
    for a in actions:
        held = env.core.hold[0]
        obs, r, _, _, info = env.step(a)
        rows.append(obs)
        weights.append(info["weights"])
        equity.append(info["equity"])
        rewards.append(r)
        forced.append(0 if not env.core.forced[0] else 2 if held >= env.core.max_hold else 1)  # 1 stop, 2 timeout
    return np.array(rows), np.array(weights), np.array(equity), np.array(rewards), np.array(forced)


def test_rolling_regression_equals_statsmodels_ols(bars):
    import statsmodels.api as sm

    close = markets.fields(bars, "close")
    ly, lx = np.log(close["A"].to_numpy()), np.log(close["B"].to_numpy())
    W = 60
    f = pair_features(ly, lx, W)
    assert np.isnan(f.z[:W - 1]).all() and np.isfinite(f.z[W - 1:]).all()
    for t in (W - 1, 700, 1499):
        fit = sm.OLS(ly[t - W + 1:t + 1], sm.add_constant(lx[t - W + 1:t + 1])).fit()
        np.testing.assert_allclose([f.intercept[t], f.hedge[t]], fit.params, rtol=1e-9)
        np.testing.assert_allclose(f.spread[t], fit.resid[-1], rtol=1e-7, atol=1e-12)
        np.testing.assert_allclose(f.z[t], fit.resid[-1] / np.sqrt(fit.scale), rtol=1e-7)


@pytest.mark.parametrize("execution", ["next_open", "next_close"])
@pytest.mark.parametrize("band", [0.0, 0.1])
def test_both_legs_equal_backtest_run_with_forced_exits(bars, execution, band):
    L, t0 = 400, 300
    acts = np.repeat(np.random.default_rng(1).integers(0, 3, L // 16), 16)  # held for 16 bars unless forced
    kw = {"window": (0, 1200), "hedge_window": 60, "episode_bars": L, "fees": 0.0005, "slippage": 0.0002,
          "band": band, "execution": execution, "stop_loss": 0.002, "max_hold": 7}
    _, w, eq, rew, forced = _play(PairsTradingEnv(bars, seed=0, **kw), t0, acts)
    weights = np.full((L + 1, 2), np.nan)
    weights[:L] = w
    res = backtest.run(bars.iloc[t0:t0 + L + 1], weights, fees=0.0005, slippage=0.0002, band=band,
                       execution=execution)
    np.testing.assert_allclose(eq, res.equity.to_numpy()[1:], rtol=1e-9)
    np.testing.assert_allclose(rew, res.returns.to_numpy()[1:], rtol=1e-9, atol=1e-12)
    assert (forced == 1).sum() >= 2 and (forced == 2).sum() >= 10  # the stop-loss and the timeout both acted
    side = np.sign(w[:, 0])
    edges = np.flatnonzero(np.diff(np.r_[np.nan, side, np.nan]) != 0)  # segments of constant side
    runs = [e - s for s, e in itertools.pairwise(edges) if side[s] != 0]  # lengths of the open trades
    assert max(runs) == 7  # max_hold: no trade is held longer


def test_legs_are_hedged_and_the_hedge_is_frozen_during_a_trade(bars):
    env = PairsTradingEnv(bars, hedge_window=60, max_hold=1000, stop_loss=1.0, episode_bars=50, seed=0)
    _, w, *_ = _play(env, 400, [2] * 20 + [0] * 10 + [1] * 20)
    b = env.core.features.hedge
    np.testing.assert_allclose(w[:20], np.tile(spread_weights(np.array([1]), b[[400]], 1.0), (20, 1)))
    np.testing.assert_allclose(w[20:30], np.tile(spread_weights(np.array([-1]), b[[420]], 1.0), (10, 1)))
    assert (w[30:] == 0).all()
    np.testing.assert_allclose(np.abs(w[:30]).sum(axis=1), 1.0)  # gross = exposure


def test_observations_do_not_change_when_later_bars_change(bars):
    cut, t0, L = 500, 350, 300
    acts = np.random.default_rng(3).integers(0, 3, L)
    kw = {"window": (0, 1400), "hedge_window": 60, "episode_bars": L, "seed": 0}
    base = _play(PairsTradingEnv(bars, **kw), t0, acts)
    moved = _play(PairsTradingEnv(perturb_after(bars, cut, seed=2), **kw), t0, acts)
    k = cut - t0
    np.testing.assert_array_equal(base[0][:k + 1], moved[0][:k + 1])
    np.testing.assert_array_equal(base[3][:k], moved[3][:k])
    assert not np.array_equal(base[0][k + 2:], moved[0][k + 2:])


def test_the_test_window_is_never_read(bars):
    hi = 1000
    moved = perturb_after(bars, hi - 1, seed=4)
    kw = {"window": (200, hi), "n_envs": 32, "episode_bars": 64, "hedge_window": 60, "seed": 1, "stock": True}
    a, b = BatchedPairsEnv(bars, **kw), BatchedPairsEnv(moved, **kw)
    np.testing.assert_array_equal(a.reset()[0], b.reset()[0])
    rng = np.random.default_rng(0)
    for _ in range(300):
        act = rng.integers(0, 3, 32)
        for x, y in zip(a.step(act)[:4], b.step(act)[:4]):
            np.testing.assert_array_equal(x, y)
        assert 200 <= a.core.t.min() and a.core.t.max() <= hi - 1


def test_check_env_gymnasium_and_sb3(bars):
    from gymnasium.utils.env_checker import check_env
    from stable_baselines3.common.env_checker import check_env as sb3_check_env

    for stock in (False, True):
        check_env(PairsTradingEnv(bars, hedge_window=60, stock=stock, seed=0), skip_render_check=True)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            sb3_check_env(PairsTradingEnv(bars, hedge_window=60, stock=stock, seed=0))


def test_batched_equals_single_episodes(bars):
    B, L = 4, 80
    starts = np.array([100, 513, 700, 101])
    acts = np.random.default_rng(5).integers(0, 3, (L, B))
    kw = {"hedge_window": 60, "episode_bars": L, "stop_loss": 0.003, "max_hold": 20, "stock": True}
    env = BatchedPairsEnv(bars, n_envs=B, seed=0, **kw)
    obs, _ = env.reset(options={"starts": starts, "stock": -0.5})
    got_obs, got_rew = [obs], []
    for a in acts:
        obs, r, _term, trunc, info = env.step(a)
        got_obs.append(info["final_obs"])
        got_rew.append(r)
    assert trunc.all()
    for b in range(B):
        o, _, _, r, _ = _play(PairsTradingEnv(bars, seed=0, **kw), starts[b], acts[:, b], stock=-0.5)
        np.testing.assert_array_equal(np.array(got_obs)[:, b], o)
        np.testing.assert_array_equal(np.array(got_rew)[:, b], r)


def test_stock_is_the_discounted_accumulated_reward(bars):
    env = PairsTradingEnv(bars, hedge_window=60, stock=True, stock_gamma=0.9, reward_scale=100.0,
                          episode_bars=30, seed=0)
    o, _, _, r, _ = _play(env, 200, [2] * 30, stock=-0.25)
    c = -0.25
    for k in range(30):
        c = (c + r[k]) / 0.9
        assert o[k + 1, -1] == pytest.approx(c, rel=1e-6)
    env.reset(seed=1)
    lo, hi = env.core.stock_range
    assert -hi <= env.core.stock[0] <= -lo  # a drawn threshold b in stock_range, c_0 = -b


def test_seeded_determinism(bars):
    def run(seed):
        env = BatchedPairsEnv(bars, n_envs=8, hedge_window=60, episode_bars=50, seed=seed)
        out = [env.reset()[0]]
        rng = np.random.default_rng(0)
        out += [env.step(rng.integers(0, 3, 8))[1] for _ in range(120)]
        return out

    a, b, c = run(3), run(3), run(4)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    assert not np.array_equal(a[0], c[0])


def test_bad_pair_and_options(bars):
    with pytest.raises(ValueError, match="assets: A, B"):
        PairsTradingEnv(bars, pair="A,Z")
    with pytest.raises(ValueError, match="0 \\(short spread\\)"):
        env = PairsTradingEnv(bars, hedge_window=60, seed=0)
        env.reset()
        env.step(3)
    with pytest.raises(ValueError, match="at least two assets"):
        PairsTradingEnv(markets.load("sample:SP500").iloc[:500])
