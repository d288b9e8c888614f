"""Off-policy evaluation of a target policy from logged bandit data, with bootstrap confidence intervals.

Notation for N logged rounds: chosen action a_i with logging propensity mu_i = mu(a_i | x_i), reward r_i,
target probabilities pi(. | x_i) (N, K), importance weight w_i = pi(a_i | x_i) / mu_i and a reward model
q(x_i, .) (N, K). Every estimator is a ratio of sums of per-round terms, V = sum(num_i) / sum(den_i):

* ``dm``   (direct method):   num_i = sum_a pi(a|x_i) q(x_i, a),                    den_i = 1
* ``ips``  (inverse propensity): num_i = w_i r_i,                                    den_i = 1
* ``snips`` (self-normalised IPS): num_i = w_i r_i,                                  den_i = w_i
* ``dr``   (doubly robust, Dudik et al. 2011): num_i = dm_i + w_i (r_i - q(x_i, a_i)),  den_i = 1
* ``switch_dr`` (Wang, Agarwal & Dudik 2017): num_i = dm_i + 1{w_i <= tau} w_i (r_i - q(x_i, a_i)),
  den_i = 1 -- the DR correction only where the weight is at most tau (tau = inf is DR; tau = 0 is DM),
  as in Open Bandit Pipeline's ``SwitchDoublyRobust``.

Bootstrap intervals resample the N rounds with replacement (paired across estimators), recompute each
ratio of sums and take the percentile interval; a seeded generator gives the same intervals every time.
Pure numpy.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

__all__ = [
    "ESTIMATORS",
    "OPEResult",
    "bootstrap_intervals",
    "estimate",
    "evaluate",
    "evaluate_policy",
    "ope_terms",
]

ESTIMATORS = ("dm", "ips", "snips", "dr", "switch_dr")


class OPEResult(NamedTuple):
    """One estimate with its bootstrap percentile interval."""

    estimate: float
    low: float
    high: float
    std_error: float  # standard deviation of the bootstrap estimates
    n: int  # logged rounds used


def _inputs(rewards, actions, propensities, target_probabilities, predicted_rewards):
    r = np.asarray(rewards, dtype=np.float64)
    a = np.asarray(actions)
    mu = np.asarray(propensities, dtype=np.float64)
    pi = np.asarray(target_probabilities, dtype=np.float64)
    n = r.shape[0]
    if r.ndim != 1 or a.shape != (n,) or mu.shape != (n,):
        raise ValueError(f"rewards {r.shape}, actions {a.shape} and propensities {mu.shape} must all be (N,)")
    if pi.ndim != 2 or pi.shape[0] != n:
        raise ValueError(f"target_probabilities must be ({n}, K), got {pi.shape}")
    if n and (a.min() < 0 or a.max() >= pi.shape[1]):
        raise ValueError(f"actions must lie in [0, {pi.shape[1]})")
    if np.any(~(mu > 0)) or np.any(mu > 1):
        raise ValueError("logging propensities must lie in (0, 1]")
    q = None
    if predicted_rewards is not None:
        q = np.asarray(predicted_rewards, dtype=np.float64)
        if q.shape != pi.shape:
            raise ValueError(
                f"predicted_rewards must have the shape of target_probabilities {pi.shape}, got {q.shape}"
            )
        q = np.where(
            pi > 0, q, 0.0
        )  # predictions of actions the target never takes do not matter (may be NaN)
    return r, a.astype(np.int64), mu, pi, q


def ope_terms(
    name: str,
    *,
    rewards: np.ndarray,
    actions: np.ndarray,
    propensities: np.ndarray,
    target_probabilities: np.ndarray,
    predicted_rewards: np.ndarray | None = None,
    tau: float = np.inf,
) -> tuple[np.ndarray, np.ndarray]:
    """Per-round (numerator (N,), denominator (N,)) of estimator ``name``; V = sum(num) / sum(den).

    Args:
        name: one of :data:`ESTIMATORS`.
        rewards: (N,) logged rewards.
        actions: (N,) logged actions.
        propensities: (N,) logging probabilities of the logged actions.
        target_probabilities: (N, K) the target policy's probabilities on the logged contexts.
        predicted_rewards: (N, K) reward model q (needed by dm, dr, switch_dr).
        tau: switch_dr's weight threshold.
    """
    r, a, mu, pi, q = _inputs(rewards, actions, propensities, target_probabilities, predicted_rewards)
    n = r.shape[0]
    w = pi[np.arange(n), a] / mu  # (N,) importance weights
    ones = np.ones(n)
    if name in ("ips", "snips"):
        return w * r, (w if name == "snips" else ones)
    if name not in ESTIMATORS:
        raise KeyError(f"unknown estimator {name!r}; valid: {', '.join(ESTIMATORS)}")
    if q is None:
        raise ValueError(f"estimator {name!r} needs predicted_rewards (N, K) from a reward model")
    dm = (pi * q).sum(axis=1)  # (N,)
    if name == "dm":
        return dm, ones
    if tau < 0:
        raise ValueError(f"tau must be >= 0, got {tau}")
    keep = w <= tau if name == "switch_dr" else np.ones(n, dtype=bool)
    return dm + np.where(keep, w * (r - q[np.arange(n), a]), 0.0), ones


def estimate(name: str, **inputs) -> float:
    """The point estimate of estimator ``name`` (keyword inputs of :func:`ope_terms`)."""
    num, den = ope_terms(name, **inputs)
    return float(num.sum() / den.sum())


def bootstrap_intervals(
    terms: dict[str, tuple[np.ndarray, np.ndarray]],
    *,
    n_bootstrap: int = 1000,
    level: float = 0.95,
    seed: int = 0,
    chunk: int = 100,
) -> dict[str, OPEResult]:
    """Percentile-bootstrap intervals of ratio-of-sums estimators sharing the same resampled rounds.

    Args:
        terms: name -> (num (N,), den (N,)) from :func:`ope_terms`.
        n_bootstrap: resamples.
        level: two-sided confidence level, e.g. 0.95.
        seed: seeds the resampling.
        chunk: resamples drawn at once (bounds memory at chunk x N counts).
    """
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level}")
    if n_bootstrap < 2:
        raise ValueError(f"n_bootstrap must be >= 2, got {n_bootstrap}")
    names = list(terms)
    num = np.stack([terms[k][0] for k in names], axis=1)  # (N, E)
    den = np.stack([terms[k][1] for k in names], axis=1)  # (N, E)
    n = num.shape[0]
    if n == 0:
        raise ValueError("no logged rounds to evaluate on")
    rng = np.random.default_rng(seed)
    boots = np.empty((n_bootstrap, len(names)))
    for start in range(0, n_bootstrap, chunk):
        b = min(chunk, n_bootstrap - start)
        idx = rng.integers(0, n, size=(b, n))  # (b, N) resampled rounds
        counts = np.bincount((idx + n * np.arange(b)[:, None]).ravel(), minlength=b * n).reshape(b, n)
        boots[start : start + b] = (counts @ num) / (counts @ den)
    lo, hi = np.quantile(boots, [(1 - level) / 2, (1 + level) / 2], axis=0)
    point = num.sum(0) / den.sum(0)
    sd = boots.std(axis=0, ddof=1)
    return {
        k: OPEResult(float(point[j]), float(lo[j]), float(hi[j]), float(sd[j]), n)
        for j, k in enumerate(names)
    }


def evaluate(
    *,
    rewards: np.ndarray,
    actions: np.ndarray,
    propensities: np.ndarray,
    target_probabilities: np.ndarray,
    predicted_rewards: np.ndarray | None = None,
    estimators: tuple[str, ...] | None = None,
    tau: float = np.inf,
    n_bootstrap: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> dict[str, OPEResult]:
    """Estimates with bootstrap intervals for several estimators at once (paired resamples).

    Shapes as in :func:`ope_terms`. ``estimators`` defaults to all of :data:`ESTIMATORS` when
    ``predicted_rewards`` is given, else ("ips", "snips").
    """
    if estimators is None:
        estimators = ESTIMATORS if predicted_rewards is not None else ("ips", "snips")
    inputs = {
        "rewards": rewards,
        "actions": actions,
        "propensities": propensities,
        "target_probabilities": target_probabilities,
        "predicted_rewards": predicted_rewards,
        "tau": tau,
    }
    terms = {name: ope_terms(name, **inputs) for name in estimators}
    return bootstrap_intervals(terms, n_bootstrap=n_bootstrap, level=level, seed=seed)


def evaluate_policy(policy, data, *, reward_model=None, **options) -> dict[str, OPEResult]:
    """Off-policy estimates of ``policy`` on logged ``data`` (a :class:`~rl.bandits.log.LoggedData`).

    ``policy`` is anything with ``probabilities(contexts, available=, action_features=) -> (N, K)``;
    ``reward_model`` (optional) anything with ``predict(contexts, action_features=, n_actions=) -> (N, K)``
    -- fit it on other rounds than ``data`` (cross-fitting), else DM and DR reuse the rewards they evaluate.
    ``options`` go to :func:`evaluate` (``estimators``, ``tau``, ``n_bootstrap``, ``level``, ``seed``).
    """
    kw = {"available": data.available, "action_features": data.action_features}
    target = policy.probabilities(data.contexts, **kw)
    q = None
    if reward_model is not None:
        q = reward_model.predict(
            data.contexts, action_features=data.action_features, n_actions=data.n_actions
        )
    return evaluate(
        rewards=data.rewards,
        actions=data.actions,
        propensities=data.propensities,
        target_probabilities=target,
        predicted_rewards=q,
        **options,
    )
