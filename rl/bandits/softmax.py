"""A softmax policy over a torch scorer, trained from bandit logs with the :mod:`rl.losses` registry.

The action-level use of DREX's policy losses (tensors (B, 1), T = 1): the logged action's log-probability,
the logging propensity as the old log-probability and the standardised reward as the advantage, so the
PPO-family clip and the entropy-balanced losses (clip_cov, kl_cov, steer, bapo, ...) apply to bandits as
they do to tokens. torch is imported when the policy is first used.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import Any

import numpy as np

from rl.bandits.log import LoggedData
from rl.bandits.oracles import joint_inputs
from rl.bandits.policies import BasePolicy
from rl.bandits.probabilities import check_available

__all__ = ["SoftmaxPolicy"]


class SoftmaxPolicy(BasePolicy):
    """pi(a | x) = softmax over the available actions of a torch scorer s(x, a), trained from the logs with a
    registered :mod:`rl.losses` policy loss at the action level (tensors (B, 1), T = 1).

    Each :meth:`fit` runs ``epochs`` passes of minibatch updates over the logged rounds with
    logp = log pi(a_logged | x), old_logp = log(propensity of the logging policy) and the advantage
    A = (r - mean r) / std r of the batch of logs, so the PPO-family clip keeps each generation within
    a trust region of the policy that logged the data, and the entropy-balanced losses (clip_cov, kl_cov,
    steer, bapo, ...) apply as they do to tokens. The scorer's last layer starts at zero: the first
    generation is uniform.

    Args:
        n_actions: K.
        hidden: hidden widths of the scorer on ``joint_inputs(x, a, features)`` (``()`` = linear).
        loss: a name of :data:`rl.losses.POLICY_LOSSES`.
        loss_cfg: options of that loss (e.g. ``clip_low``, ``clip_cov_ratio``).
        epochs, batch_size, lr: Adam training per fit.
        entropy_coef: weight of an entropy bonus (0 = none).
        normalize_advantages: divide the centred rewards by their std.
        seed: seeds the scorer, the minibatch order, the loss's generator and the action draws.
        device: torch device ("cpu", "cuda", "auto").
    """

    def __init__(
        self,
        n_actions: int,
        *,
        hidden: Sequence[int] = (),
        loss: str = "vanilla",
        loss_cfg: dict[str, Any] | None = None,
        epochs: int = 10,
        batch_size: int = 128,
        lr: float = 0.05,
        entropy_coef: float = 0.0,
        normalize_advantages: bool = True,
        seed: int = 0,
        device: str = "cpu",
    ) -> None:
        super().__init__(n_actions, seed)
        from rl.losses import POLICY_LOSSES

        if loss not in POLICY_LOSSES:
            raise KeyError(f"unknown policy loss {loss!r}; registered: {', '.join(sorted(POLICY_LOSSES))}")
        if epochs < 1 or batch_size < 1 or lr <= 0:
            raise ValueError(f"need epochs >= 1, batch_size >= 1, lr > 0; got {epochs}, {batch_size}, {lr}")
        self.hidden, self.loss, self.loss_cfg = tuple(hidden), loss, dict(loss_cfg or {})
        self.epochs, self.batch_size, self.lr = epochs, batch_size, lr
        self.entropy_coef, self.normalize_advantages, self.device = entropy_coef, normalize_advantages, device
        accepted = {
            p.name
            for p in inspect.signature(POLICY_LOSSES[loss]).parameters.values()
            if p.kind is p.KEYWORD_ONLY
        }
        self._inputs = accepted
        self.net: Any = None
        self.metrics: list[dict[str, float]] = []  # one entry per optimizer step of the last fit

    def _torch_device(self):
        import torch

        if self.device == "auto":
            return torch.device("cuda" if torch.cuda.is_available() else "cpu")
        return torch.device(self.device)

    def _build(self, n_in: int) -> None:
        import torch
        from torch import nn

        gen = torch.Generator().manual_seed(self.seed)
        layers: list[nn.Module] = []
        width = n_in
        for h in self.hidden:
            layers += [nn.Linear(width, h), nn.Tanh()]
            width = h
        layers.append(nn.Linear(width, 1))
        net = nn.Sequential(*layers)
        with torch.no_grad():
            for m in net:
                if isinstance(m, nn.Linear):
                    bound = 1.0 / m.in_features**0.5
                    m.weight.uniform_(-bound, bound, generator=gen)
                    m.bias.zero_()
            net[-1].weight.zero_()  # uniform first generation
        self.net = net.to(self._torch_device())
        self.optimizer = torch.optim.Adam(self.net.parameters(), lr=self.lr)
        self._gen = gen

    def _logits(self, inputs, avail):
        """(B, K, F_in) inputs and (B, K) mask -> (B, K) logits, -1e9 where unavailable."""
        import torch

        z = self.net(inputs).squeeze(-1)  # (B, K)
        return torch.where(avail, z, torch.full_like(z, -1e9))

    def _tensors(self, contexts, available, action_features):
        import torch

        x = self._contexts(contexts)
        avail = check_available(available, (x.shape[0], self.n_actions))
        inputs = joint_inputs(x, self.n_actions, action_features)  # (N, K, F_in)
        if self.net is None:
            self._build(inputs.shape[-1])
        dev = self._torch_device()
        return (
            torch.as_tensor(inputs, dtype=torch.float32, device=dev),
            torch.as_tensor(avail, device=dev),
        )

    def probabilities(
        self,
        contexts: np.ndarray,
        *,
        available: np.ndarray | None = None,
        action_features: np.ndarray | None = None,
    ) -> np.ndarray:
        """(N, K) softmax over the available actions."""
        import torch

        inputs, avail = self._tensors(contexts, available, action_features)
        with torch.no_grad():
            p = torch.softmax(self._logits(inputs, avail).double(), dim=-1).cpu().numpy()
        p = np.where(avail.cpu().numpy(), p, 0.0)
        return p / p.sum(axis=1, keepdims=True)

    def fit(self, data: LoggedData) -> None:
        """``epochs`` passes of policy-loss minibatch updates on the logged rounds (continues training)."""
        import torch

        from rl.losses import policy_loss

        if data.n_actions != self.n_actions:
            raise ValueError(f"data has {data.n_actions} actions, the policy {self.n_actions}")
        if data.n_rounds == 0:
            return
        inputs, avail = self._tensors(data.contexts, data.available, data.action_features)
        dev = inputs.device
        r = data.rewards - data.rewards.mean()
        if self.normalize_advantages:
            r = r / (data.rewards.std() + 1e-8)
        adv = torch.as_tensor(r, dtype=torch.float32, device=dev)[:, None]  # (N, 1)
        old_logp = torch.as_tensor(np.log(data.propensities), dtype=torch.float32, device=dev)[:, None]
        actions = torch.as_tensor(data.actions, device=dev)
        self.metrics = []
        n = data.n_rounds
        for _ in range(self.epochs):
            order = torch.randperm(n, generator=self._gen).to(dev)
            for i in range(0, n, self.batch_size):
                idx = order[i : i + self.batch_size]
                logits = self._logits(inputs[idx], avail[idx])  # (B, K)
                logp_all = torch.log_softmax(logits, dim=-1)
                logp = logp_all.gather(1, actions[idx, None])  # (B, 1)
                probs = logp_all.exp()
                ent = -(torch.where(avail[idx], probs * logp_all, torch.zeros_like(probs))).sum(
                    -1, keepdim=True
                )
                extra: dict[str, Any] = {}
                if "entropy" in self._inputs:
                    extra["entropy"] = ent
                if "generator" in self._inputs:
                    extra["generator"] = self._gen
                if "logits" in self._inputs:
                    extra["logits"] = logits[:, None, :]  # (B, 1, K)
                if "tokens" in self._inputs:
                    extra["tokens"] = actions[idx, None]
                mask = torch.ones_like(logp)
                loss, metrics = policy_loss(
                    self.loss, logp, old_logp[idx], adv[idx], mask, **extra, **self.loss_cfg
                )
                if self.entropy_coef:
                    loss = loss - self.entropy_coef * ent.mean()
                self.optimizer.zero_grad(set_to_none=True)
                loss.backward()
                self.optimizer.step()
                step = {"loss": float(loss.detach()), "entropy": float(ent.detach().mean())}
                self.metrics.append({**step, **metrics})
