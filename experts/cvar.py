"""CVaR action selection with stock augmentation (numpy; the training twin is ``experts.cvar_qrdqn``).

For a return G and level alpha, Rockafellar-Uryasev: ``CVaR_alpha(G) = max_b [b + E[min(G - b, 0)] / alpha]``
(the maximiser is the alpha-quantile). For a fixed threshold b, ``E[min(G - b, 0)]`` is an expected utility
of the return, which dynamic programming optimises exactly once the state carries the *stock*: with
``c_0 = -b`` and ``c_{t+1} = (c_t + r_t) / gamma``, ``c_t + Z_t = (G - b) / gamma^t`` where ``Z_t`` is the
return-to-go, so acting greedily on ``E[min(c_t + Z_t(s_t, c_t, a), 0)]`` at every step maximises
``E[min(G - b, 0)]`` (Bauerle & Ott 2011; "Optimizing Return Distributions with Distributional Dynamic
Programming", stock augmentation). The pairs environment carries the stock (``PairsCore(stock=True)``,
the observation's last component); QR-DQN learns ``Z_t``'s quantiles ``theta_1..theta_Q``, so

* ``stock_scores``: ``mean_j min(c + theta_j(a), 0) + tie * mean_j theta_j(a)`` per action (the tie term
  decides, by the mean, between actions whose quantiles are all above the threshold);
* ``choose_threshold``: at an episode's start, ``b* = argmax_b [b + V(s_0, -b) / alpha]`` over a grid of the
  thresholds the agent was trained on, ``V(s, c) = max_a mean_j min(c + theta_j(s, c, a), 0)``: the CVaR
  estimate and the stock ``c_0 = -b*`` to start from.
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np

__all__ = ["TIE", "choose_threshold", "stock_scores"]

TIE = 1e-3


def stock_scores(quantiles: np.ndarray, stock: np.ndarray | float, *, tie: float = TIE) -> np.ndarray:
    """(..., A) scores of actions from quantiles (..., Q, A) of the return-to-go and the stock (...,)."""
    q = np.asarray(quantiles, dtype=np.float64)
    c = np.asarray(stock, dtype=np.float64)[..., None, None]
    return np.minimum(c + q, 0.0).mean(axis=-2) + tie * q.mean(axis=-2)


def choose_threshold(quantiles_at: Callable[[float], np.ndarray], thresholds: np.ndarray, alpha: float
                     ) -> tuple[float, float]:
    """``(b*, CVaR estimate)``: ``quantiles_at(c)`` gives the (Q, A) quantiles at the start state with stock c;
    ``thresholds`` (K,) the candidate b (the training range)."""
    if not 0.0 < alpha <= 1.0:
        raise ValueError(f"alpha must be in (0, 1], got {alpha}")
    best_b, best = float(thresholds[0]), -np.inf
    for b in np.asarray(thresholds, dtype=np.float64):
        q = quantiles_at(-float(b))
        v = float(np.minimum(-b + q, 0.0).mean(axis=0).max())
        value = float(b) + v / alpha
        if value > best:
            best_b, best = float(b), value
    return best_b, best
