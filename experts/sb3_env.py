"""A batched DREX environment (``backtest.envs.BatchedPairsEnv`` ...) as an SB3 ``VecEnv``.

SB3's ``DummyVecEnv`` steps N gymnasium environments one after the other in Python; this adapter hands SB3
the B episodes a batched environment steps in one numpy call (one ``accounting.step`` over (B, N) per bar).
It follows the ``VecEnv`` conventions: finished episodes restart at once, their last observation is in
``info["terminal_observation"]``, ``info["TimeLimit.truncated"]`` marks time limits (so SB3 bootstraps them)
and ``info["episode"]`` = ``{"r": return, "l": length}`` feeds SB3's episode statistics (as ``Monitor`` does).
Imports SB3: only the training code imports this module.
"""
from __future__ import annotations

from typing import Any

import numpy as np
from stable_baselines3.common.vec_env import VecEnv

__all__ = ["BatchedVecEnv"]


class BatchedVecEnv(VecEnv):
    """``env``: a ``backtest.envs.base.BatchedEnv`` (B episodes, autoreset)."""

    def __init__(self, env: Any) -> None:
        self.env = env  # before VecEnv.__init__, which reads render_mode through get_attr
        super().__init__(env.num_envs, env.observation_space, env.action_space)
        self._actions: np.ndarray | None = None
        self._ret = np.zeros(env.num_envs)
        self._len = np.zeros(env.num_envs, dtype=np.int64)

    def reset(self) -> np.ndarray:
        seed = self._seeds[0]
        obs, _ = self.env.reset(seed=seed)
        self._ret[:] = 0.0
        self._len[:] = 0
        self._reset_seeds()
        self._reset_options()
        return obs

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = np.asarray(actions)

    def step_wait(self):
        obs, reward, terminated, truncated, info = self.env.step(self._actions)
        done = terminated | truncated
        self._ret += reward
        self._len += 1
        infos: list[dict[str, Any]] = [{} for _ in range(self.num_envs)]
        for i in np.flatnonzero(done):
            infos[i] = {"terminal_observation": info["final_obs"][i],
                        "TimeLimit.truncated": bool(truncated[i] and not terminated[i]),
                        "episode": {"r": float(self._ret[i]), "l": int(self._len[i]), "t": 0.0},
                        "equity": float(info["equity"][i])}
            self._ret[i], self._len[i] = 0.0, 0
        return obs, reward.astype(np.float32), done, infos

    def close(self) -> None:
        pass

    def get_attr(self, attr_name: str, indices: Any = None) -> list[Any]:
        return [getattr(self.env, attr_name) for _ in self._get_indices(indices)]

    def set_attr(self, attr_name: str, value: Any, indices: Any = None) -> None:
        setattr(self.env, attr_name, value)

    def env_method(self, method_name: str, *args: Any, indices: Any = None, **kwargs: Any) -> list[Any]:
        return [getattr(self.env, method_name)(*args, **kwargs) for _ in self._get_indices(indices)]

    def env_is_wrapped(self, wrapper_class: Any, indices: Any = None) -> list[bool]:
        return [False for _ in self._get_indices(indices)]
