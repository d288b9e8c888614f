"""``PairsTradingEnv``: the spread of a cointegrated pair, traded bar by bar with the backtester's accounting.

Features (``features.pair_features``, causal): a rolling regression ``log y = a + b log x`` over the last
``hedge_window`` bars gives the hedge ratio ``b_t`` and the z-score of bar t's residual (the spread).

Actions: 0 = short the spread, 1 = flat, 2 = long the spread. Long the spread holds ``+g / (1 + |b|)`` of y and
``-g b / (1 + |b|)`` of x (weights, fractions of equity; ``g = exposure`` is the gross), with ``b`` frozen at
entry (the hedge is not re-estimated during a trade). The targets are filled at bar t+1 by
``backtest.accounting.step`` (both legs, fees and slippage on each); the reward is the portfolio's net return
of bar t+1 (``backtest.envs._core``). An open trade is closed, whatever the action, when its return since
entry (costs included) is at or below ``-stop_loss`` (the stop-loss) or it has been held ``max_hold`` bars
(the timeout); ``info["forced"]`` marks those steps. A new position needs a finite hedge ratio.

Observation (float32): the last ``lookback`` z-scores (oldest first, clipped to +-``clip``), the side
(-1 / 0 / +1), bars held / ``max_hold``, the trade's return since entry / ``stop_loss``; with ``stock=True``
also the stock ``c_t`` of stock-augmented distributional RL (Bauerle & Ott; "Optimizing Return Distributions
with Distributional Dynamic Programming"): ``c_{t+1} = (c_t + r_t) / stock_gamma``, starting from
``c_0 = -b`` for a threshold ``b`` drawn uniformly in ``stock_range`` per episode (``reset(options={"stock":
c0})`` pins it). Maximising ``E[min(c_t + Z_t, 0)]`` at every step then maximises ``E[min(G - b, 0)]``, and
``CVaR_alpha = max_b [b + E[min(G - b, 0)] / alpha]`` (Rockafellar-Uryasev): see ``experts.cvar``.

``PairsTradingEnv`` (gymnasium, one episode) and ``BatchedPairsEnv`` (B episodes in numpy, autoreset) share one
core; ``PairsCore`` is also what the ``dqn_pairs`` decision-maker replays bar by bar.
"""
from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from backtest.accounting import DEFAULT_BAND
from backtest.envs._book import check_window, prices
from backtest.envs._core import Core
from backtest.envs.base import BatchedEnv, SingleEnv
from backtest.envs.features import pair_features, pair_names, spread_weights, windows

__all__ = ["BatchedPairsEnv", "PairsCore", "PairsTradingEnv"]


class PairsCore(Core):
    """The pairs environment's core (module docstring); options as ``PairsTradingEnv``."""

    def __init__(self, bars: Any, *, pair: Any = None, window: Any = None, hedge_window: int = 120,
                 lookback: int = 8, exposure: float = 1.0, stop_loss: float = 0.02, max_hold: int = 240,
                 episode_bars: int = 512, fees: float = 0.001, slippage: float = 0.0, band: float = DEFAULT_BAND,
                 borrow: float = 0.0, execution: str = "next_open", reward: str = "simple",
                 reward_scale: float = 1.0, stock: bool = False, stock_gamma: float = 0.99,
                 stock_range: tuple[float, float] = (-1.0, 1.0), clip: float = 5.0, n_envs: int = 1,
                 autoreset: bool = False, seed: int | None = None) -> None:
        self.pair = pair_names(bars, pair)
        lo, hi = check_window(len(bars), window)
        for name, v in (("exposure", exposure), ("stop_loss", stop_loss)):
            if not (np.isfinite(v) and v > 0):
                raise ValueError(f"{name} must be a positive fraction of equity, got {v}")
        if int(max_hold) < 1 or int(lookback) < 1:
            raise ValueError(f"max_hold and lookback must be >= 1 bar, got {max_hold} and {lookback}")
        if not 0.0 < stock_gamma <= 1.0:
            raise ValueError(f"stock_gamma must be in (0, 1] (the agent's discount), got {stock_gamma}")
        ex, close = prices(bars, list(self.pair), hi, execution)
        f = pair_features(np.log(close[:, 0]), np.log(close[:, 1]), int(hedge_window))
        self.features = f
        self.z_window = windows(f.z, int(lookback))  # (hi, lookback)
        self.z_obs = np.clip(np.nan_to_num(self.z_window), -clip, clip).astype(np.float32)
        finite = np.flatnonzero(np.isfinite(self.z_window).all(axis=1) & np.isfinite(f.hedge))
        if finite.size == 0 and episode_bars:
            raise ValueError(f"no bar before the window's end has {hedge_window + lookback - 1} bars of history "
                             "for the hedge regression; use more bars or a shorter hedge_window")
        self.gross, self.stop_loss, self.max_hold, self.clip = float(exposure), float(stop_loss), int(max_hold), clip
        self.stock_on, self.stock_gamma = bool(stock), float(stock_gamma)
        self.stock_range = (float(stock_range[0]), float(stock_range[1]))
        self.obs_dim, self.n_assets = int(lookback) + 3 + int(self.stock_on), 2
        B = int(n_envs)
        self.side = np.zeros(B, dtype=np.int64)
        self.hedge = np.zeros(B)
        self.hold = np.zeros(B, dtype=np.int64)
        self.entry = np.ones(B)
        self.stock = np.zeros(B)
        self.forced = np.zeros(B, dtype=bool)
        costs = {"fees": fees, "slippage": slippage, "band": band, "borrow": borrow}
        first = max(lo, int(finite[0])) if finite.size and episode_bars else lo
        super().__init__(ex, close, first=first, n_envs=B, episode_bars=episode_bars, costs=costs, reward=reward,
                         reward_scale=reward_scale, autoreset=autoreset, seed=seed)

    def _start(self, rows: np.ndarray, options: dict[str, Any]) -> None:
        self.side[rows], self.hedge[rows], self.hold[rows], self.entry[rows] = 0, 0.0, 0, 1.0
        self.forced[rows] = False
        if "stock" in options:
            self.stock[rows] = float(options["stock"])
        elif self.stock_on:
            lo, hi = self.stock_range
            self.stock[rows] = -self.rng.uniform(lo, hi, size=rows.size)
        else:
            self.stock[rows] = 0.0

    def trade_return(self) -> np.ndarray:
        """(B,) return of the open trade since entry (costs included); 0 when flat."""
        r = np.divide(self.book.equity, self.entry, out=np.zeros(self.n_envs), where=self.entry > 0) - 1.0
        return np.where(self.side != 0, r, 0.0)

    def _targets(self, actions: np.ndarray) -> np.ndarray:
        a = actions.reshape(self.n_envs)
        if not np.issubdtype(a.dtype, np.integer) or a.min() < 0 or a.max() > 2:
            raise ValueError(f"pairs actions are 0 (short spread), 1 (flat), 2 (long spread); got {a}")
        want = a - 1
        held = self.side != 0
        self.forced = held & ((self.trade_return() <= -self.stop_loss) | (self.hold >= self.max_hold))
        want = np.where(self.forced, 0, want)
        b_now = self.features.hedge[self.t]
        new = want != self.side
        want = np.where(new & (want != 0) & ~np.isfinite(b_now), 0, want)  # no hedge ratio: cannot open
        new = want != self.side
        opening = new & (want != 0)
        self.hedge = np.where(opening, b_now, self.hedge)
        self.entry = np.where(opening, self.book.equity, self.entry)
        self.hold = np.where(want == 0, 0, np.where(new, 1, self.hold + 1))
        self.side = want
        return spread_weights(self.side, self.hedge, self.gross)

    def _after(self, reward: np.ndarray) -> None:
        if self.stock_on:
            self.stock = (self.stock + reward) / self.stock_gamma

    def observe(self) -> np.ndarray:
        tail = [self.side.astype(np.float32)[:, None], (self.hold / self.max_hold).astype(np.float32)[:, None],
                np.clip(self.trade_return() / self.stop_loss, -self.clip, self.clip).astype(np.float32)[:, None]]
        if self.stock_on:
            tail.append(np.clip(self.stock, -1e6, 1e6).astype(np.float32)[:, None])
        return np.concatenate([self.z_obs[self.t], *tail], axis=1)


def _spaces(core: PairsCore) -> tuple[gym.Space, gym.Space]:
    lk = core.obs_dim - 3 - int(core.stock_on)
    low = [-core.clip] * lk + [-1.0, 0.0, -core.clip] + ([-1e6] if core.stock_on else [])
    high = [core.clip] * lk + [1.0, 1.0, core.clip] + ([1e6] if core.stock_on else [])
    obs = gym.spaces.Box(np.array(low, np.float32), np.array(high, np.float32), dtype=np.float32)
    return obs, gym.spaces.Discrete(3)


class PairsTradingEnv(SingleEnv):
    """Pairs-trading environment (gymnasium, module docstring).

    bars: canonical multi-asset bars. pair: ``"Y,X"`` (default the first two assets). window: ``(lo, hi)``
    training window. hedge_window: bars of the rolling regression. lookback: z-scores per observation.
    exposure: gross weight of an open spread. stop_loss: close a trade at this loss (fraction of equity at
    entry). max_hold: close a trade after this many bars. episode_bars: steps per episode. fees, slippage,
    band, borrow, execution: as ``backtest.run``. reward, reward_scale: as ``TradingEnv``. stock,
    stock_gamma, stock_range: the stock augmentation. seed: the first reset's seed.
    """

    def __init__(self, bars: Any, *, seed: int | None = None, **options: Any) -> None:
        core = PairsCore(bars, n_envs=1, autoreset=False, seed=seed, **options)
        super().__init__(core, *_spaces(core), seed=seed)


class BatchedPairsEnv(BatchedEnv):
    """``n_envs`` pairs-trading episodes stepped together in numpy (autoreset); options as ``PairsTradingEnv``."""

    def __init__(self, bars: Any, *, n_envs: int = 64, seed: int | None = None, **options: Any) -> None:
        core = PairsCore(bars, n_envs=n_envs, autoreset=True, seed=seed, **options)
        super().__init__(core, *_spaces(core))
