"""TradingEnv / BatchedTradingEnv: the accounting is backtest.run's (1e-9), no look-ahead, the test window is
never read, gymnasium's and SB3's check_env, batched == single, seeded determinism."""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import backtest
from backtest.envs import BatchedTradingEnv, TradingEnv, price_features
from backtest.lookahead import perturb_after


def _bars(T: int = 400, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    idx = pd.date_range("2020-01-01", periods=T, freq="D", tz="UTC", name="timestamp")
    close = 50 * np.exp(np.cumsum(rng.normal(0, 0.02, T)))
    open_ = close * np.exp(rng.normal(0, 0.01, T))
    out = pd.DataFrame({"open": open_, "high": np.maximum(open_, close) * 1.01,
                        "low": np.minimum(open_, close) * 0.99, "close": close, "volume": 1.0}, index=idx)
    out.attrs["symbol"] = "X"
    return out


def _play(env, start, actions):
    obs, _ = env.reset(options={"start": start})
    rows = [obs]
    weights, equity, rewards = [], [], []
    for a in actions:
        obs, r, _term, _trunc, info = env.step(a)
        rows.append(obs)
        weights.append(info["weights"])
        equity.append(info["equity"])
        rewards.append(r)
    return np.array(rows), np.array(weights), np.array(equity), np.array(rewards)


@pytest.mark.parametrize("execution", ["next_open", "next_close"])
@pytest.mark.parametrize("kind", ["discrete", "continuous"])
@pytest.mark.parametrize("band", [0.0, 0.1])
def test_env_equity_equals_backtest_run_for_the_same_weights(execution, kind, band):
    bars = _bars()
    L, t0 = 120, 150
    rng = np.random.default_rng(1)
    acts = rng.integers(0, 3, L) if kind == "discrete" else rng.uniform(-1.2, 1.2, (L, 1)).astype(np.float32)
    env = TradingEnv(bars, window=(0, 300), actions=kind, max_exposure=0.9, episode_bars=L, fees=0.001,
                     slippage=0.0005, band=band, execution=execution, seed=0)
    _, w, eq, rew = _play(env, t0, acts)
    weights = np.full(L + 1, np.nan)
    weights[:L] = w[:, 0]  # row i = the env's target at decision row t0 + i; the last row is never executed
    res = backtest.run(bars.iloc[t0:t0 + L + 1], weights, fees=0.001, slippage=0.0005, band=band,
                       execution=execution)
    np.testing.assert_allclose(eq, res.equity.to_numpy()[1:], rtol=1e-9, atol=0)
    np.testing.assert_allclose(rew, res.returns.to_numpy()[1:], rtol=1e-9, atol=1e-12)
    if kind == "discrete":
        assert set(np.unique(w)) <= {-0.9, 0.0, 0.9}
    else:
        assert np.abs(w).max() <= 0.9 + 1e-12  # actions clipped to [-1, 1] * max_exposure


def test_log_reward_and_scale():
    bars = _bars()
    acts = np.random.default_rng(2).integers(0, 3, 50)
    simple = _play(TradingEnv(bars, episode_bars=50, seed=0), 100, acts)
    logged = _play(TradingEnv(bars, episode_bars=50, reward="log", reward_scale=100.0, seed=0), 100, acts)
    np.testing.assert_allclose(logged[3], 100.0 * np.log1p(simple[3]), rtol=1e-12)


def test_observation_is_the_feature_window_and_the_drifted_position():
    bars = _bars()
    env = TradingEnv(bars, lookback=4, episode_bars=10, seed=0)
    obs, _ = env.reset(options={"start": 50})
    f = price_features(*(bars[c].to_numpy() for c in ("open", "high", "low", "close")))
    np.testing.assert_allclose(obs[:-1], np.clip(f[47:51].ravel(), -10, 10).astype(np.float32))  # clip=10
    assert obs[-1] == 0.0
    obs, *_ = env.step(2)
    close, eq = bars["close"].to_numpy(), env.core.book.equity[0]
    np.testing.assert_allclose(obs[-1], env.core.book.shares[0, 0] * close[51] / eq, rtol=1e-6)
    assert 0.9 < obs[-1] < 1.1


def test_observations_do_not_change_when_later_bars_change():
    bars = _bars()
    cut, t0, L = 220, 150, 100
    acts = np.random.default_rng(3).integers(0, 3, L)
    base = _play(TradingEnv(bars, window=(0, 390), episode_bars=L, seed=0), t0, acts)
    moved = _play(TradingEnv(perturb_after(bars, cut, seed=5), window=(0, 390), episode_bars=L, seed=0), t0, acts)
    k = cut - t0  # observation k is at decision row cut; reward k-1 is marked at bar cut
    np.testing.assert_array_equal(base[0][:k + 1], moved[0][:k + 1])
    np.testing.assert_array_equal(base[3][:k], moved[3][:k])
    assert not np.array_equal(base[0][k + 2:], moved[0][k + 2:])  # the perturbation did reach later rows


def test_the_test_window_is_never_read():
    bars = _bars()
    hi = 300
    moved = perturb_after(bars, hi - 1, seed=9)  # every bar from hi on is different
    a = BatchedTradingEnv(bars, window=(100, hi), n_envs=16, episode_bars=40, seed=4)
    b = BatchedTradingEnv(moved, window=(100, hi), n_envs=16, episode_bars=40, seed=4)
    oa, _ = a.reset()
    ob, _ = b.reset()
    np.testing.assert_array_equal(oa, ob)
    rng = np.random.default_rng(0)
    for _ in range(500):  # many autoresets: episodes start in [100, hi - 1 - 40]
        act = rng.integers(0, 3, 16)
        ra, rb = a.step(act), b.step(act)
        for x, y in zip(ra[:4], rb[:4]):
            np.testing.assert_array_equal(x, y)
        assert a.core.t.max() <= hi - 1 and a.core.t.min() >= 100


def test_check_env_gymnasium_and_sb3():
    from gymnasium.utils.env_checker import check_env
    from stable_baselines3.common.env_checker import check_env as sb3_check_env

    bars = _bars()
    for kind in ("discrete", "continuous"):
        check_env(TradingEnv(bars, actions=kind, seed=0), skip_render_check=True)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            sb3_check_env(TradingEnv(bars, actions=kind, seed=0))


def test_batched_equals_single_episodes():
    bars = _bars()
    B, L = 5, 60
    starts = np.array([40, 77, 150, 200, 41])
    acts = np.random.default_rng(7).integers(0, 3, (L, B))
    batched = BatchedTradingEnv(bars, n_envs=B, episode_bars=L, fees=0.002, seed=0)
    obs, _ = batched.reset(options={"starts": starts})
    got_obs, got_rew = [obs], []
    for a in acts:
        obs, r, _term, trunc, info = batched.step(a)
        got_obs.append(info["final_obs"])
        got_rew.append(r)
    assert info["done"].all() and trunc.all()
    for b in range(B):
        o, _, _, r = _play(TradingEnv(bars, episode_bars=L, fees=0.002, seed=0), starts[b], acts[:, b])
        np.testing.assert_array_equal(np.array(got_obs)[:, b], o)
        np.testing.assert_array_equal(np.array(got_rew)[:, b], r)


def test_seeded_determinism_and_random_starts():
    bars = _bars()

    def run(seed):
        env = BatchedTradingEnv(bars, n_envs=8, episode_bars=30, seed=seed)
        obs, _ = env.reset()
        rng = np.random.default_rng(0)
        out = [obs]
        for _ in range(100):
            out.append(env.step(rng.integers(0, 3, 8))[0])
        return np.array(out), env.core.t.copy()

    a, b, c = run(1), run(1), run(2)
    np.testing.assert_array_equal(a[0], b[0])
    assert not np.array_equal(a[0], c[0])
    single = TradingEnv(bars, seed=3)
    s1 = single.reset()[1]["t"]
    s2 = TradingEnv(bars, seed=3).reset()[1]["t"]
    assert s1 == s2


@pytest.mark.parametrize(("kw", "msg"), [({"window": (0, 100)}, "episode_bars"), ({"window": (0, 10)}, "finite features"), ({"window": (5, 2)}, "lo < hi"),
                                         ({"actions": "spot"}, "actions"), ({"reward": "sharpe"}, "reward"),
                                         ({"fees": 10}, "fees")])
def test_bad_options_name_the_fix(kw, msg):
    with pytest.raises(ValueError, match=msg):
        TradingEnv(_bars(), **kw)
