"""QR-DQN (sb3-contrib) acting greedily on the stock-augmented CVaR objective of ``experts.cvar``.

Two changes to ``sb3_contrib.QRDQN``, both using ``experts.cvar.stock_scores``'s rule
``mean_j min(c + theta_j(a), 0) + tie * mean_j theta_j(a)`` with the stock ``c`` read from the observation's
last component (``PairsCore(stock=True)``): the greedy action (``CVaRQuantileNetwork._predict``, used when
acting and by ``predict``), and the action at the next state in the distributional Bellman target
(``CVaRQRDQN.train``; QR-DQN uses the mean there). Everything else is sb3-contrib's QR-DQN.
Imports torch and sb3-contrib: only the training code imports this module.
"""
from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import torch as th
from sb3_contrib import QRDQN
from sb3_contrib.common.utils import quantile_huber_loss
from sb3_contrib.qrdqn.policies import QRDQNPolicy, QuantileNetwork

from experts.cvar import TIE

__all__ = ["CVaRQRDQN", "CVaRQRDQNPolicy", "stock_scores_torch"]


def stock_scores_torch(quantiles: th.Tensor, stock: th.Tensor, tie: float = TIE) -> th.Tensor:
    """(B, A) scores from quantiles (B, Q, A) and the stock (B,) (``experts.cvar.stock_scores``)."""
    return th.clamp(stock[:, None, None] + quantiles, max=0.0).mean(dim=1) + tie * quantiles.mean(dim=1)


class CVaRQuantileNetwork(QuantileNetwork):
    def _predict(self, observation: th.Tensor, deterministic: bool = True) -> th.Tensor:
        return stock_scores_torch(self(observation), observation[:, -1].float()).argmax(dim=1).reshape(-1)


class CVaRQRDQNPolicy(QRDQNPolicy):
    def make_quantile_net(self) -> QuantileNetwork:
        net_args = self._update_features_extractor(self.net_args, features_extractor=None)
        return CVaRQuantileNetwork(**net_args).to(self.device)


class CVaRQRDQN(QRDQN):
    """``QRDQN`` with the stock-augmented CVaR greedy rule (module docstring); ``"MlpPolicy"`` is
    ``CVaRQRDQNPolicy``."""

    policy_aliases: ClassVar[dict[str, Any]] = {"MlpPolicy": CVaRQRDQNPolicy}

    def train(self, gradient_steps: int, batch_size: int = 100) -> None:
        self.policy.set_training_mode(True)
        self._update_learning_rate(self.policy.optimizer)
        losses = []
        for _ in range(gradient_steps):
            data = self.replay_buffer.sample(batch_size, env=self._vec_normalize_env)  # type: ignore[union-attr]
            discounts = data.discounts if data.discounts is not None else self.gamma
            with th.no_grad():
                nxt = self.quantile_net_target(data.next_observations)  # (B, Q, A)
                stock = data.next_observations[:, -1].float()
                greedy = stock_scores_torch(nxt, stock).argmax(dim=1)  # (B,): the CVaR rule, not the mean
                idx = greedy[:, None, None].expand(batch_size, self.n_quantiles, 1)
                nxt = nxt.gather(dim=2, index=idx).squeeze(dim=2)  # (B, Q)
                target = data.rewards + (1 - data.dones) * discounts * nxt
            current = self.quantile_net(data.observations)
            actions = data.actions[..., None].long().expand(batch_size, self.n_quantiles, 1)
            current = th.gather(current, dim=2, index=actions).squeeze(dim=2)
            loss = quantile_huber_loss(current, target, sum_over_quantiles=True)
            losses.append(loss.item())
            self.policy.optimizer.zero_grad()
            loss.backward()
            if self.max_grad_norm is not None:
                th.nn.utils.clip_grad_norm_(self.policy.parameters(), self.max_grad_norm)
            self.policy.optimizer.step()
        self._n_updates += gradient_steps
        self.logger.record("train/n_updates", self._n_updates, exclude="tensorboard")
        self.logger.record("train/loss", float(np.mean(losses)))

