"""``TradingEnv``: one asset, traded bar by bar with the backtester's accounting.

Observation (float32, ``lookback * F + 1``): the last ``lookback`` rows of causal features (default
``features.price_features``: percent log return, percent log range, percent distance to the 20-bar mean),
oldest first, clipped to +-``clip``, then the current position (the drifted weight at the close). Actions:
``"discrete"`` 0 / 1 / 2 = short / flat / long ``max_exposure``; ``"continuous"`` a target exposure in
[-1, 1] times ``max_exposure``. The target is a weight (fraction of equity) decided at bar t's close and
filled at bar t+1 (``backtest.accounting.step``: fees, slippage, the no-trade band and the cash account of
``backtest.run``); the reward is the net return of bar t+1 (module ``backtest.envs._core``).

``TradingEnv`` (gymnasium, one episode) and ``BatchedTradingEnv`` (B episodes in numpy, autoreset) share one
core. ``window=(lo, hi)``: episodes start at decision rows >= lo and never read a bar at or after hi (the test
window); the bars are cut at hi before anything is computed.
"""
from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from backtest.accounting import DEFAULT_BAND
from backtest.envs._book import check_window, prices
from backtest.envs._core import Core
from backtest.envs.base import BatchedEnv, SingleEnv
from backtest.envs.features import price_features, windows

__all__ = ["ACTIONS", "BatchedTradingEnv", "TradingEnv"]

ACTIONS = ("discrete", "continuous")


class _TradingCore(Core):
    def __init__(self, bars: Any, *, window: Any = None, asset: str | None = None, lookback: int = 16,
                 actions: str = "discrete", max_exposure: float = 1.0, episode_bars: int = 256,
                 fees: float = 0.001, slippage: float = 0.0, band: float = DEFAULT_BAND, borrow: float = 0.0,
                 execution: str = "next_open", reward: str = "simple", reward_scale: float = 1.0,
                 features: np.ndarray | None = None, clip: float = 10.0, n_envs: int = 1,
                 autoreset: bool = False, seed: int | None = None) -> None:
        import markets
        from markets.frames import assets as asset_names

        names = asset_names(bars)
        asset = asset or names[0]
        if asset not in names:
            raise ValueError(f"asset {asset!r} is not in the bars; assets: {', '.join(names)}")
        if actions not in ACTIONS:
            raise ValueError(f"actions must be one of {ACTIONS}, got {actions!r}")
        if not (np.isfinite(max_exposure) and max_exposure > 0):
            raise ValueError(f"max_exposure must be a positive weight (1.0 = 100% of equity), got {max_exposure}")
        if int(lookback) < 1:
            raise ValueError(f"lookback must be >= 1 bar, got {lookback}")
        lo, hi = check_window(len(bars), window)
        ex, close = prices(bars, [asset], hi, execution)
        if features is None:
            get = markets.fields
            features = price_features(*(get(bars, f)[asset].to_numpy(np.float64)[:hi]
                                        for f in ("open", "high", "low", "close")))
        feats = np.asarray(features, dtype=np.float64)
        feats = feats.reshape(feats.shape[0], -1)[:hi]
        if feats.shape[0] != hi:
            raise ValueError(f"features must have one row per bar (T={len(bars)}), got {np.shape(features)}")
        self.lookback, self.clip = int(lookback), float(clip)
        self.obs_window = windows(feats, self.lookback)  # (hi, lookback * F)
        finite = np.flatnonzero(np.isfinite(self.obs_window).all(axis=1))
        if finite.size == 0:
            raise ValueError(f"no bar before the window's end has {lookback} bars of finite features")
        self.obs_window = np.clip(np.nan_to_num(self.obs_window), -self.clip, self.clip).astype(np.float32)
        self.actions, self.max_exposure = actions, float(max_exposure)
        self.obs_dim, self.n_assets = self.obs_window.shape[1] + 1, 1
        costs = {"fees": fees, "slippage": slippage, "band": band, "borrow": borrow}
        super().__init__(ex, close, first=max(lo, int(finite[0])), n_envs=n_envs, episode_bars=episode_bars,
                         costs=costs, reward=reward, reward_scale=reward_scale, autoreset=autoreset, seed=seed)

    def _targets(self, actions: np.ndarray) -> np.ndarray:
        if self.actions == "discrete":
            a = actions.reshape(self.n_envs)
            if not np.issubdtype(a.dtype, np.integer) or a.min() < 0 or a.max() > 2:
                raise ValueError(f"discrete actions are 0 (short), 1 (flat), 2 (long); got {a}")
            return ((a - 1) * self.max_exposure).astype(np.float64)[:, None]
        a = np.asarray(actions, dtype=np.float64).reshape(self.n_envs, 1)
        return np.clip(a, -1.0, 1.0) * self.max_exposure

    def observe(self) -> np.ndarray:
        pos = self.book.weights(self.close[self.t])  # (B, 1) drifted weight at the close of row t
        lim = 2.0 * self.max_exposure
        return np.concatenate([self.obs_window[self.t], np.clip(pos, -lim, lim).astype(np.float32)], axis=1)


def _spaces(core: _TradingCore) -> tuple[gym.Space, gym.Space]:
    lim = 2.0 * core.max_exposure
    low = np.r_[np.full(core.obs_dim - 1, -core.clip), -lim].astype(np.float32)
    obs = gym.spaces.Box(low=low, high=-low, dtype=np.float32)
    act = gym.spaces.Discrete(3) if core.actions == "discrete" else gym.spaces.Box(-1.0, 1.0, (1,), np.float32)
    return obs, act


class TradingEnv(SingleEnv):
    """One-asset trading environment (gymnasium). Options as ``BatchedTradingEnv`` without ``n_envs``.

    bars: canonical bars (one asset, or several with ``asset=``). window: ``(lo, hi)`` training window.
    lookback: feature rows per observation. actions: ``"discrete"`` | ``"continuous"``. max_exposure: the
    weight of a full long/short. episode_bars: steps per episode. fees, slippage, band, borrow, execution: as
    ``backtest.run``. reward: ``"simple"`` | ``"log"`` net return per bar, times ``reward_scale``. features:
    optional (T, F) causal features instead of the default. seed: the first reset's seed.
    """

    def __init__(self, bars: Any, *, seed: int | None = None, **options: Any) -> None:
        core = _TradingCore(bars, n_envs=1, autoreset=False, seed=seed, **options)
        super().__init__(core, *_spaces(core), seed=seed)


class BatchedTradingEnv(BatchedEnv):
    """``n_envs`` one-asset trading episodes stepped together in numpy (autoreset); options as ``TradingEnv``."""

    def __init__(self, bars: Any, *, n_envs: int = 256, seed: int | None = None, **options: Any) -> None:
        core = _TradingCore(bars, n_envs=n_envs, autoreset=True, seed=seed, **options)
        super().__init__(core, *_spaces(core))
