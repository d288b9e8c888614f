"""The two faces of a ``Core``: a gymnasium ``Env`` (one episode) and a batched numpy environment (B episodes).

``SingleEnv`` is a ``gymnasium.Env`` over a core with one episode and no autoreset: ``reset(seed=, options=)``
(``options={"start": row}`` pins the episode's first decision row) and ``step(action)``. ``BatchedEnv`` steps
B episodes at once with autoreset (``reset(options={"starts": rows (B,)})``, ``step(actions (B,))``); the
spaces it reports are those of one episode, as SB3's ``VecEnv`` expects. Both use the same core, so a batched
episode and a single one started at the same row with the same actions give the same numbers (tested).
"""
from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from backtest.envs._core import Core

__all__ = ["BatchedEnv", "SingleEnv"]


class SingleEnv(gym.Env):
    """A gymnasium environment over a one-episode ``Core`` (subclasses build the core and the spaces)."""

    metadata: dict[str, Any] = {"render_modes": []}  # noqa: RUF012 - gymnasium's class attribute

    def __init__(self, core: Core, observation_space: gym.Space, action_space: gym.Space,
                 seed: int | None) -> None:
        super().__init__()
        self.core, self.observation_space, self.action_space = core, observation_space, action_space
        self._seed, self._started = seed, False

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        if seed is None and not self._started:
            seed = self._seed
        super().reset(seed=seed)
        self._started = True
        self.core.rng = self.np_random  # the episode's start is drawn from gymnasium's seeded generator
        opts = dict(options or {})
        self.core.reset_rows(np.array([0]), opts.pop("start", None), opts)
        return self.core.observe()[0], {"t": int(self.core.t[0])}

    def step(self, action: Any):
        a = np.asarray(action)
        obs, reward, terminated, truncated, info = self.core.step(a.reshape(1, *a.shape))
        out = {k: (v[0] if np.ndim(v) == 1 else np.asarray(v)[0]) for k, v in info.items()}
        out["t"] = int(self.core.t[0])
        return obs[0], float(reward[0]), bool(terminated[0]), bool(truncated[0]), out


class BatchedEnv:
    """B episodes in numpy with autoreset (subclasses build the core and the one-episode spaces)."""

    render_mode = None

    def __init__(self, core: Core, observation_space: gym.Space, action_space: gym.Space) -> None:
        self.core, self.observation_space, self.action_space = core, observation_space, action_space

    @property
    def num_envs(self) -> int:
        return self.core.n_envs

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        """Start all B episodes (``options={"starts": rows}`` pins them; a seed reseeds the start draws).
        Returns ``(obs (B, D), info)``."""
        if seed is not None:
            self.core.rng = np.random.default_rng(seed)
        opts = dict(options or {})
        self.core.reset_rows(np.arange(self.num_envs), opts.pop("starts", None), opts)
        return self.core.observe(), {"t": self.core.t.copy()}

    def step(self, actions: Any):
        """``actions`` (B,) ints (discrete) or (B, 1) floats (continuous) -> ``(obs (B, D), reward (B,),
        terminated (B,), truncated (B,), info)``; finished episodes restart at once (``info["final_obs"]``)."""
        return self.core.step(actions)
