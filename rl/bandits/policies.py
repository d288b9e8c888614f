"""Contextual-bandit policies over K actions with dynamic action sets and batch-logged delayed feedback.

Every policy has the same three methods (the :class:`BanditPolicy` protocol):

* ``probabilities(contexts, *, available=None, action_features=None) -> (N, K)``: the distribution each
  round's action is drawn from (0 on unavailable actions);
* ``act(...) -> Decisions``: draws one action per round from those probabilities with the policy's own
  seeded generator and returns them with their propensities (exactly the probabilities used);
* ``fit(data: LoggedData)``: retrains on exactly ``data`` -- the caller chooses the memory (the last
  generation's logs, Adyen's short-term memory, or everything logged so far). LinUCB and linear Thompson
  sampling also have ``partial_fit(data)`` (add ``data`` to what they know).

Policies: :class:`SquareCB` (inverse-gap weighting over a regression oracle, gamma_t = scale * t^exponent),
:class:`EpsilonGreedy` (over a regression oracle), :class:`LinUCB` and :class:`LinearTS` (disjoint ridge
models per action, mabwiser's parameterisation); :class:`rl.bandits.softmax.SoftmaxPolicy` (a softmax over a
torch scorer trained with :mod:`rl.losses`) lives in its own module.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from rl.bandits.log import Decisions, LoggedData
from rl.bandits.oracles import RewardModel, default_oracle
from rl.bandits.probabilities import (
    check_available,
    epsilon_greedy_probabilities,
    gamma_schedule,
    sample_actions,
    squarecb_probabilities,
    with_floor,
)

__all__ = [
    "BanditPolicy",
    "BasePolicy",
    "EpsilonGreedy",
    "LinUCB",
    "LinearTS",
    "SquareCB",
    "decide",
]


class BanditPolicy(Protocol):
    n_actions: int

    def probabilities(
        self,
        contexts: np.ndarray,
        *,
        available: np.ndarray | None = None,
        action_features: np.ndarray | None = None,
    ) -> np.ndarray: ...

    def act(
        self,
        contexts: np.ndarray,
        *,
        available: np.ndarray | None = None,
        action_features: np.ndarray | None = None,
    ) -> Decisions: ...

    def fit(self, data: LoggedData) -> None: ...


def decide(probabilities: np.ndarray, rng: np.random.Generator) -> Decisions:
    """Draw one action per row of ``probabilities`` (N, K) and return it with its propensity."""
    p = np.asarray(probabilities, dtype=np.float64)
    actions = sample_actions(p, rng)
    return Decisions(actions, p[np.arange(p.shape[0]), actions], p)


class BasePolicy:
    """Shared plumbing of the policies: the action count K, the seeded generator ``rng`` and :meth:`act`.

    A custom policy subclasses it and implements ``probabilities`` and ``fit``.
    """

    def __init__(self, n_actions: int, seed: int) -> None:
        if n_actions < 1:
            raise ValueError(f"n_actions must be >= 1, got {n_actions}")
        self.n_actions = n_actions
        self.seed = seed
        self.rng = np.random.default_rng(seed)

    def _contexts(self, contexts: np.ndarray) -> np.ndarray:
        x = np.asarray(contexts, dtype=np.float64)
        if x.ndim != 2:
            raise ValueError(f"contexts must be (rounds, features), got shape {x.shape}")
        return x

    def probabilities(
        self,
        contexts: np.ndarray,
        *,
        available: np.ndarray | None = None,
        action_features: np.ndarray | None = None,
    ) -> np.ndarray:
        raise NotImplementedError

    def act(
        self,
        contexts: np.ndarray,
        *,
        available: np.ndarray | None = None,
        action_features: np.ndarray | None = None,
    ) -> Decisions:
        """Probabilities for the N rounds, then one draw per round (propensity = the probability used)."""
        p = self.probabilities(contexts, available=available, action_features=action_features)
        return decide(p, self.rng)


# ---- regression-oracle policies --------------------------------------------------------------------------


class _OraclePolicy(BasePolicy):
    def __init__(self, n_actions: int, oracle: RewardModel | None, *, importance_weighting: bool, seed: int):
        super().__init__(n_actions, seed)
        self.oracle = default_oracle(seed=seed) if oracle is None else oracle
        self.importance_weighting = importance_weighting
        self.t = 0  # rounds elapsed up to the newest round trained on

    def predict(self, contexts: np.ndarray, *, action_features: np.ndarray | None = None) -> np.ndarray:
        """(N, D) contexts [+ (N, K, F) features] -> (N, K) predicted rewards of the oracle."""
        pred = self.oracle.predict(
            self._contexts(contexts), action_features=action_features, n_actions=self.n_actions
        )
        if pred.shape != (len(contexts), self.n_actions):
            raise ValueError(
                f"oracle predicted shape {pred.shape}, expected ({len(contexts)}, {self.n_actions})"
            )
        return pred

    def fit(self, data: LoggedData) -> None:
        """Refit the oracle on ``data`` (rows weighted by 1/propensity if ``importance_weighting``)."""
        if data.n_actions != self.n_actions:
            raise ValueError(f"data has {data.n_actions} actions, the policy {self.n_actions}")
        if data.n_rounds == 0:
            return
        w = 1.0 / data.propensities if self.importance_weighting else None
        self.oracle.fit(data, sample_weight=w)
        self.t = max(self.t, int(data.rounds.max()) + 1)


class SquareCB(_OraclePolicy):
    """SquareCB (Foster & Rakhlin 2020): inverse-gap weighting over a regression oracle's predictions.

    Args:
        n_actions: K.
        oracle: the reward model (default :func:`rl.bandits.oracles.default_oracle`, a seeded torch MLP).
        gamma_scale, gamma_exponent: gamma_t = gamma_scale * t ** gamma_exponent where t = rounds elapsed up
            to the newest round trained on (vowpalwabbit's defaults 10 and 0.5).
        gamma: a fixed gamma instead of the schedule.
        floor: exploration floor, mixing weight of the uniform distribution (0 = none).
        importance_weighting: weight training rows by 1/propensity, so each generation's oracle is fitted
            as if the actions had been uniform (a fix for the policy-induced covariate shift).
        seed: seeds the action draws (and the default oracle).
    """

    def __init__(
        self,
        n_actions: int,
        oracle: RewardModel | None = None,
        *,
        gamma_scale: float = 10.0,
        gamma_exponent: float = 0.5,
        gamma: float | None = None,
        floor: float = 0.0,
        importance_weighting: bool = False,
        seed: int = 0,
    ) -> None:
        super().__init__(n_actions, oracle, importance_weighting=importance_weighting, seed=seed)
        gamma_schedule(0, scale=gamma_scale, exponent=gamma_exponent)  # validates
        if gamma is not None and not gamma >= 0:
            raise ValueError(f"gamma must be >= 0, got {gamma}")
        if not 0.0 <= floor <= 1.0:
            raise ValueError(f"floor must be in [0, 1], got {floor}")
        self.gamma_scale, self.gamma_exponent, self.fixed_gamma, self.floor = (
            gamma_scale,
            gamma_exponent,
            gamma,
            floor,
        )

    @property
    def gamma(self) -> float:
        """The current greediness: the fixed gamma, else gamma_scale * t ** gamma_exponent."""
        if self.fixed_gamma is not None:
            return float(self.fixed_gamma)
        return float(gamma_schedule(self.t, scale=self.gamma_scale, exponent=self.gamma_exponent))

    def probabilities(
        self,
        contexts: np.ndarray,
        *,
        available: np.ndarray | None = None,
        action_features: np.ndarray | None = None,
    ) -> np.ndarray:
        """(N, K) inverse-gap-weighted probabilities (with the exploration floor mixed in)."""
        pred = self.predict(contexts, action_features=action_features)
        p = squarecb_probabilities(pred, self.gamma, available)
        return with_floor(p, self.floor, available) if self.floor else p


class EpsilonGreedy(_OraclePolicy):
    """Greedy on a regression oracle with probability 1 - epsilon, uniform over the action set otherwise.

    Args:
        n_actions: K.
        oracle: the reward model (default: the seeded torch MLP).
        epsilon: exploration probability.
        importance_weighting: weight training rows by 1/propensity.
        seed: seeds the action draws (and the default oracle).
    """

    def __init__(
        self,
        n_actions: int,
        oracle: RewardModel | None = None,
        *,
        epsilon: float = 0.1,
        importance_weighting: bool = False,
        seed: int = 0,
    ) -> None:
        super().__init__(n_actions, oracle, importance_weighting=importance_weighting, seed=seed)
        if not 0.0 <= epsilon <= 1.0:
            raise ValueError(f"epsilon must be in [0, 1], got {epsilon}")
        self.epsilon = epsilon

    def probabilities(
        self,
        contexts: np.ndarray,
        *,
        available: np.ndarray | None = None,
        action_features: np.ndarray | None = None,
    ) -> np.ndarray:
        """(N, K) epsilon-greedy probabilities on the oracle's predictions."""
        pred = self.predict(contexts, action_features=action_features)
        return epsilon_greedy_probabilities(pred, self.epsilon, available)


# ---- linear policies ---------------------------------------------------------------------------------------


class _Ridge(BasePolicy):
    """Ridge sufficient statistics A = l2 I + sum x x^T, b = sum x r: one model per action (disjoint, on the
    context) or one shared model (on per-round action features)."""

    def __init__(self, n_actions: int, *, alpha: float, l2_lambda: float, shared: bool, seed: int) -> None:
        super().__init__(n_actions, seed)
        if alpha < 0 or l2_lambda <= 0:
            raise ValueError(f"need alpha >= 0 and l2_lambda > 0, got {alpha} and {l2_lambda}")
        self.alpha, self.l2_lambda, self.shared = alpha, l2_lambda, shared
        self.A: np.ndarray | None = None  # (M, d, d), M = K (disjoint) or 1 (shared)
        self.b: np.ndarray | None = None  # (M, d)

    def _features(self, contexts: np.ndarray, action_features: np.ndarray | None) -> np.ndarray:
        """(N, K, d) inputs of each (round, action): the context (disjoint) or action features (shared)."""
        x = self._contexts(contexts)
        if not self.shared:
            return np.broadcast_to(x[:, None, :], (x.shape[0], self.n_actions, x.shape[1]))
        if action_features is None:
            raise ValueError(
                "a shared linear model scores actions by their features: pass action_features (N, K, F)"
            )
        af = np.asarray(action_features, dtype=np.float64)
        if af.shape[:2] != (x.shape[0], self.n_actions):
            raise ValueError(f"action_features must be ({x.shape[0]}, {self.n_actions}, F), got {af.shape}")
        return af

    def _init(self, d: int) -> None:
        m = 1 if self.shared else self.n_actions
        self.A = np.broadcast_to(self.l2_lambda * np.eye(d), (m, d, d)).copy()
        self.b = np.zeros((m, d))

    def partial_fit(self, data: LoggedData) -> None:
        """Add the N rounds of ``data`` to the statistics (order-free: sums)."""
        if data.n_actions != self.n_actions:
            raise ValueError(f"data has {data.n_actions} actions, the policy {self.n_actions}")
        phi = self._features(data.contexts, data.action_features)  # (N, K, d)
        z = phi[np.arange(data.n_rounds), data.actions]  # (N, d) chosen inputs
        if self.A is None:
            self._init(phi.shape[-1])
        model = np.zeros(data.n_rounds, dtype=np.int64) if self.shared else data.actions
        for m in np.unique(model):
            rows = model == m
            self.A[m] += z[rows].T @ z[rows]
            self.b[m] += z[rows].T @ data.rewards[rows]

    def fit(self, data: LoggedData) -> None:
        """Retrain from the prior on exactly ``data``."""
        self.A = self.b = None
        self.partial_fit(data)

    def _posterior(self, phi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(N, K, d) inputs -> (mean (N, K), std (N, K)) of x.theta_a with theta ~ N(A^-1 b, A^-1)."""
        _n, _k, d = phi.shape
        if self.A is None:
            self._init(d)
        a_inv = np.linalg.inv(self.A)  # (M, d, d)
        theta = np.einsum("mij,mj->mi", a_inv, self.b)  # (M, d)
        if self.shared:
            mean = phi @ theta[0]  # (N, K)
            var = np.einsum("nki,ij,nkj->nk", phi, a_inv[0], phi)
        else:
            mean = np.einsum("nki,ki->nk", phi, theta)
            var = np.einsum("nki,kij,nkj->nk", phi, a_inv, phi)
        return mean, np.sqrt(np.maximum(var, 0.0))


def _argmax_first(scores: np.ndarray) -> np.ndarray:
    """(N, K) scores (-inf = unavailable) -> (N, K) one-hot on the FIRST maximum (numpy/mabwiser ties)."""
    out = np.zeros(scores.shape)
    out[np.arange(scores.shape[0]), np.argmax(scores, axis=1)] = 1.0
    return out


class LinUCB(_Ridge):
    """LinUCB with disjoint ridge models (Li et al. 2010; mabwiser's ``LearningPolicy.LinUCB``).

    score(a) = x.theta_a + alpha * sqrt(x^T A_a^-1 x), A_a = l2_lambda I + sum x x^T, theta_a = A_a^-1 b_a;
    the action is the best available score, ties to the lowest index (deterministic, like mabwiser), so
    its propensity is 1. ``shared=True`` uses one model on the per-round action features instead.

    Args:
        n_actions: K.
        alpha: exploration width.
        l2_lambda: ridge regularisation.
        shared: one model on ``action_features`` (N, K, F) instead of one per action on the context.
        seed: unused by the deterministic choice; kept for the common interface.
    """

    def __init__(
        self,
        n_actions: int,
        *,
        alpha: float = 1.0,
        l2_lambda: float = 1.0,
        shared: bool = False,
        seed: int = 0,
    ) -> None:
        super().__init__(n_actions, alpha=alpha, l2_lambda=l2_lambda, shared=shared, seed=seed)

    def scores(self, contexts: np.ndarray, *, action_features: np.ndarray | None = None) -> np.ndarray:
        """(N, K) upper confidence bounds."""
        mean, std = self._posterior(self._features(contexts, action_features))
        return mean + self.alpha * std

    def probabilities(
        self,
        contexts: np.ndarray,
        *,
        available: np.ndarray | None = None,
        action_features: np.ndarray | None = None,
    ) -> np.ndarray:
        """(N, K) one-hot on the best available upper confidence bound."""
        ucb = self.scores(contexts, action_features=action_features)
        avail = check_available(available, ucb.shape)
        return _argmax_first(np.where(avail, ucb, -np.inf))


class LinearTS(_Ridge):
    """Linear Thompson sampling with disjoint ridge posteriors N(theta_a, alpha^2 A_a^-1) (mabwiser's LinTS).

    The probability of each action is the fraction of ``n_draws`` posterior draws in which it is the best
    available one; :meth:`act` draws from that distribution, which is exactly Thompson sampling (picking
    one of the draws at random and acting greedily on it), and logs the frequency as the propensity.

    Args:
        n_actions: K.
        alpha: posterior scale.
        l2_lambda: ridge regularisation.
        n_draws: posterior draws per round for the probabilities.
        shared: one model on ``action_features`` instead of one per action.
        seed: seeds the posterior draws and the action draws.
    """

    def __init__(
        self,
        n_actions: int,
        *,
        alpha: float = 1.0,
        l2_lambda: float = 1.0,
        n_draws: int = 100,
        shared: bool = False,
        seed: int = 0,
    ) -> None:
        super().__init__(n_actions, alpha=alpha, l2_lambda=l2_lambda, shared=shared, seed=seed)
        if n_draws < 1:
            raise ValueError(f"n_draws must be >= 1, got {n_draws}")
        self.n_draws = n_draws

    def probabilities(
        self,
        contexts: np.ndarray,
        *,
        available: np.ndarray | None = None,
        action_features: np.ndarray | None = None,
    ) -> np.ndarray:
        """(N, K) Monte-Carlo Thompson-sampling probabilities (multiples of 1 / n_draws)."""
        phi = self._features(contexts, action_features)
        n, k, d = phi.shape
        avail = check_available(available, (n, k))
        if self.shared:
            if self.A is None:
                self._init(d)
            a_inv = np.linalg.inv(self.A[0])
            theta = a_inv @ self.b[0]
            chol = np.linalg.cholesky(a_inv)
            z = self.rng.standard_normal((n, self.n_draws, d))  # (N, S, d)
            draws = theta + self.alpha * z @ chol.T  # (N, S, d) theta samples
            scores = np.einsum("nsd,nkd->nsk", draws, phi)  # (N, S, K)
        else:  # independent models: each score is a 1-D Gaussian
            mean, std = self._posterior(phi)
            z = self.rng.standard_normal((n, self.n_draws, k))
            scores = mean[:, None, :] + self.alpha * std[:, None, :] * z  # (N, S, K)
        scores = np.where(avail[:, None, :], scores, -np.inf)
        best = np.argmax(scores, axis=2)  # (N, S)
        counts = np.zeros((n, k))
        np.add.at(counts, (np.repeat(np.arange(n), self.n_draws), best.reshape(-1)), 1.0)
        return counts / self.n_draws
