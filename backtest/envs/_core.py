"""What both environments share: B episodes stepped together over a training window, in numpy.

An episode of ``episode_bars`` steps starts at a random decision row ``t0`` of the window (flat, equity 1).
A step at decision row t (the observation uses bars up to t's close) turns the actions into target weights,
trades them at bar t+1 (``Book.trade``: ``accounting.step`` at the open, or the close for ``next_close``) and
marks equity at bar t+1's close. The reward is the net return of that bar, ``E_{t+1} / E_t - 1`` (``"simple"``)
or ``log(E_{t+1} / E_t)`` (``"log"``), times ``reward_scale``. The last reward of an episode needs bar
``t0 + episode_bars <= hi - 1``: nothing at or after the window's end ``hi`` is ever read (the environments cut
the bars at ``hi`` before computing anything). ``terminated``: the account is ruined (equity 0);
``truncated``: the episode reached ``episode_bars`` steps (a time limit, not a terminal state).
``episode_bars=0`` is one open-ended episode from row ``first`` (a decision-maker's replay: ``decide`` the
weights, then ``advance`` while a next bar exists).

With ``autoreset`` (the batched environments), a finished episode restarts at once at a new random row; its
last observation is returned in ``info["final_obs"]`` (SB3's and gymnasium's convention).
"""
from __future__ import annotations

from typing import Any

import numpy as np

from backtest.envs._book import Book

__all__ = ["REWARDS", "Core"]

REWARDS = ("simple", "log")
_LOG_FLOOR = 1e-12  # log reward of a ruined account: log(1e-12), not -inf


class Core:
    """Batched episode bookkeeping (subclasses add observations and the action -> weights map).

    exec_price, close: (hi, N) prices of the traded assets (bars cut at the window's end). first: the
    first decision row an episode may start at (``>= lo``, after the features' warm-up).
    """

    obs_dim: int
    n_assets: int

    def __init__(self, exec_price: np.ndarray, close: np.ndarray, *, first: int, n_envs: int, episode_bars: int,
                 costs: dict[str, float], reward: str, reward_scale: float, autoreset: bool,
                 seed: int | None) -> None:
        if reward not in REWARDS:
            raise ValueError(f"reward must be one of {REWARDS}, got {reward!r}")
        if not (np.isfinite(reward_scale) and reward_scale > 0):
            raise ValueError(f"reward_scale must be a positive number, got {reward_scale!r}")
        if int(n_envs) < 1 or int(episode_bars) < 0:
            raise ValueError(f"n_envs must be >= 1 and episode_bars >= 0, got {n_envs} and {episode_bars}")
        self.exec_price, self.close = exec_price, close
        self.n_envs, self.episode_bars = int(n_envs), int(episode_bars)
        self.first, self.last = int(first), exec_price.shape[0] - 1 - self.episode_bars  # start rows, inclusive
        if self.episode_bars == 0:
            self.last = self.first
        elif self.last < self.first:
            raise ValueError(f"the window leaves {exec_price.shape[0] - 1 - self.first} bars after the warm-up, "
                             f"fewer than episode_bars={self.episode_bars}; widen the window or shorten episodes")
        self.reward_kind, self.reward_scale, self.autoreset = reward, float(reward_scale), bool(autoreset)
        self.book = Book(self.n_envs, close.shape[1], **costs)
        self.rng = np.random.default_rng(seed)
        self.t = np.full(self.n_envs, self.first, dtype=np.int64)  # current decision row
        self.n = np.zeros(self.n_envs, dtype=np.int64)  # steps taken in the episode

    # -- hooks -------------------------------------------------------------------------------------------
    def _start(self, rows: np.ndarray, options: dict[str, Any]) -> None:
        """Reset the subclass's per-episode state of ``rows`` (int indices)."""

    def _targets(self, actions: np.ndarray) -> np.ndarray:
        """(B, N) target weights for ``actions``; may update per-episode state (position, holding time)."""
        raise NotImplementedError

    def _after(self, reward: np.ndarray) -> None:
        """Called with the (B,) rewards after each step (the stock of the risk-sensitive pairs agent)."""

    def observe(self) -> np.ndarray:
        """(B, obs_dim) float32 observations at the current decision rows."""
        raise NotImplementedError

    # -- episodes ----------------------------------------------------------------------------------------
    def starts(self, k: int) -> np.ndarray:
        """``k`` random start rows in ``[first, last]``."""
        return self.rng.integers(self.first, self.last + 1, size=k)

    def reset_rows(self, rows: np.ndarray, starts: Any = None, options: dict[str, Any] | None = None) -> None:
        """Start new episodes in ``rows`` (int indices) at ``starts`` (default: random rows)."""
        rows = np.asarray(rows, dtype=np.int64)
        if starts is None:
            s = self.starts(rows.size)
        else:
            s = np.broadcast_to(np.asarray(starts, dtype=np.int64), rows.shape)
            bad = (s < self.first) | (s > self.last)
            if bad.any():
                raise ValueError(f"episode start {int(s[bad][0])} is outside [{self.first}, {self.last}]: the "
                                 "first row after the warm-up .. the last row leaving a full episode in the window")
        self.t[rows], self.n[rows] = s, 0
        self.book.reset(rows)
        self._start(rows, options or {})

    def decide(self, actions: Any) -> np.ndarray:
        """(B, N) target weights of ``actions`` at the current decision rows (updates positions, holding
        times and forced exits; nothing is traded yet)."""
        return self._targets(np.asarray(actions))

    def advance(self, targets: np.ndarray) -> tuple[np.ndarray, Any]:
        """Trade ``targets`` (B, N) at bar t+1, mark at its close, move to row t+1. Returns the (B,) rewards
        and the ``accounting.Step``."""
        t1 = self.t + 1
        before = self.book.equity.copy()
        s = self.book.trade(targets, self.exec_price[t1], self.close[t1])
        after = self.book.equity
        ratio = np.divide(after, before, out=np.zeros_like(after), where=before > 0)
        if self.reward_kind == "simple":
            reward = ratio - 1.0
        else:
            reward = np.log(np.maximum(ratio, _LOG_FLOOR))
        reward = reward * self.reward_scale
        self.t, self.n = t1, self.n + 1
        self._after(reward)
        return reward, s

    def step(self, actions: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        """One bar for every episode: ``(obs (B, D), reward (B,), terminated (B,), truncated (B,), info)``.

        info: ``equity`` (B,) after the step, ``weights`` (B, N) the targets traded, ``fees`` (B,) paid,
        ``turnover`` (B,); with autoreset, ``final_obs`` (B, D) (rows that did not finish hold their next
        observation) and ``done`` (B,).
        """
        targets = self.decide(actions)
        reward, s = self.advance(targets)
        after = self.book.equity
        terminated = after <= 0.0
        truncated = (self.n >= self.episode_bars) & ~terminated if self.episode_bars else np.zeros_like(terminated)
        info: dict[str, Any] = {"equity": after.copy(), "weights": targets, "fees": s.fees.sum(axis=1),
                                "turnover": s.turnover}
        obs = self.observe()
        if self.autoreset:
            done = terminated | truncated
            info["done"], info["final_obs"] = done, obs
            if done.any():
                rows = np.flatnonzero(done)
                self.reset_rows(rows)
                obs = obs.copy()
                obs[rows] = self.observe()[rows]
        return obs, reward, terminated, truncated, info
