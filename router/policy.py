"""The router as an action-level policy for ``rl.trainer.GRPOTrainer``: a categorical over the K experts.

A batch is a ``(B,)`` long tensor of pool rows (bars); ``sample`` draws ``n`` experts per row from
``softmax(logits)`` (one token per rollout row, ``T = 1``), ``logprobs`` re-scores them with grad. Rollout
rows carry their pool row in ``extras["item"]`` so any row subset can be re-scored. The reward of choosing
expert k at row t is the precomputed ``R[t, k]``: the net return of holding expert k's exposure for the next
H bars after costs (``backtest.accounting.horizon_rewards``), from the position the starting router held at t-1
(``router.training.ExpertRewards``).
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from rl.policy import Rollouts
from router.model import RouterNet
from router.pool import Pool

__all__ = ["RouterPolicy", "reward_fn"]


class RouterPolicy(nn.Module):
    """``pi(k | bar) = softmax(RouterNet(inputs).logits)``; :class:`rl.policy.Policy`."""

    def __init__(self, net: RouterNet, pool: Pool, *, device: str = "cpu") -> None:
        super().__init__()
        self.net = net
        self.pool = pool
        self.device = torch.device(device)

    def _logits(self, items: torch.Tensor) -> torch.Tensor:
        """``(R,)`` pool rows -> ``(R, K)`` logits; each distinct row goes through the network once."""
        uniq, inverse = torch.unique(items.cpu(), return_inverse=True)
        charts, chunks, now = self.pool.tensors(uniq.numpy(), self.device)
        return self.net(charts, chunks, now).logits[inverse.to(self.device)]

    @torch.no_grad()
    def sample(self, batch: torch.Tensor, n: int, *, generator: torch.Generator | None = None) -> Rollouts:
        """n experts per row of ``batch (B,)`` -> Rollouts of B*n rows (repeat_interleave order)."""
        logits = self._logits(batch).float()  # (B, K)
        logp_all = torch.log_softmax(logits, dim=-1)
        probs = logp_all.exp().repeat_interleave(n, dim=0)  # (B*n, K)
        actions = torch.multinomial(probs, 1, generator=generator)  # (B*n, 1)
        lp = logp_all.repeat_interleave(n, dim=0)
        old_logp = lp.gather(1, actions)  # (B*n, 1)
        entropy = -(probs * lp).sum(-1, keepdim=True)  # (B*n, 1)
        items = batch.repeat_interleave(n)
        return Rollouts(actions, torch.ones_like(old_logp), old_logp, entropy, n, {"item": items})

    def logprobs(self, batch: torch.Tensor, rollouts: Rollouts) -> tuple[torch.Tensor, torch.Tensor]:
        """``(logp, entropy)`` ``(rows, 1)`` of ``rollouts.tokens`` under the current parameters, with grad."""
        logp_all = torch.log_softmax(self._logits(rollouts.extras["item"]).float(), dim=-1)  # (rows, K)
        logp = logp_all.gather(1, rollouts.tokens.to(self.device))
        entropy = -(logp_all.exp() * logp_all).sum(-1, keepdim=True)
        return logp, entropy

    def state_dict(self, *args, **kwargs):  # the network's own names (rl.policy: a wrapper returns its model's)
        return self.net.state_dict(*args, **kwargs)


def reward_fn(rewards):
    """``(batch, rollouts) -> (B*n,)`` scores ``R[item, action]`` from ``rewards(rows (R,)) -> (R, K)`` (a
    callable such as ``router.training.ExpertRewards``, or an ``(N, K)`` table)."""
    lookup = rewards if callable(rewards) else (lambda rows: np.asarray(rewards)[rows])

    def fn(batch: torch.Tensor, rollouts: Rollouts) -> torch.Tensor:
        items = rollouts.extras["item"].cpu().numpy()
        table = lookup(items)  # (rows, K)
        actions = rollouts.tokens[:, 0].cpu().numpy()
        return torch.as_tensor(table[np.arange(len(items)), actions], dtype=torch.float32).to(rollouts.tokens.device)

    return fn
