"""Action probabilities of the exploration rules, on dynamic action sets, and sampling from them.

Every function works on a batch of rounds: rows are rounds, columns are actions. ``available`` is an
optional (N, K) boolean mask of the actions offered in each round (``None``: all K); an unavailable action
always gets probability exactly 0 and its predicted reward is ignored (it may be NaN). Every round needs at
least one available action. Pure numpy.

Ties. An action is *best* when its predicted reward equals the row maximum over available actions exactly.
When several are best they share the greedy mass equally, so the probabilities never depend on the order
of the columns (vowpalwabbit gives the whole remainder to the first best action instead; the two agree
whenever the maximum is unique).
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "check_available",
    "epsilon_greedy_probabilities",
    "gamma_schedule",
    "greedy_probabilities",
    "mix_probabilities",
    "sample_actions",
    "squarecb_probabilities",
    "with_floor",
]


def check_available(available: np.ndarray | None, shape: tuple[int, int]) -> np.ndarray:
    """The (N, K) boolean availability mask for ``shape`` = (N, K); ``None`` means every action everywhere.

    Raises ValueError naming the first round without any available action.
    """
    if available is None:
        return np.ones(shape, dtype=bool)
    avail = np.asarray(available)
    if avail.shape != tuple(shape):
        raise ValueError(f"available has shape {avail.shape}, expected (rounds, actions) = {tuple(shape)}")
    if avail.dtype != bool:
        raise ValueError(
            f"available must be a boolean mask, got dtype {avail.dtype}; pass `mask.astype(bool)`"
        )
    empty = np.flatnonzero(~avail.any(axis=1))
    if empty.size:
        raise ValueError(
            f"round {int(empty[0])} has no available action ({empty.size} such rounds); each needs >= 1"
        )
    return avail


def _scores(predicted: np.ndarray, available: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """(N, K) predictions -> (float64 predictions with -inf where unavailable, (N, K) mask)."""
    pred = np.asarray(predicted, dtype=np.float64)
    if pred.ndim != 2:
        raise ValueError(f"predicted rewards must be (rounds, actions), got shape {pred.shape}")
    avail = check_available(available, pred.shape)
    bad = avail & ~np.isfinite(pred)
    if bad.any():
        n, a = np.argwhere(bad)[0]
        raise ValueError(
            f"predicted reward of available action {a} in round {n} is {pred[n, a]}; must be finite"
        )
    return np.where(avail, pred, -np.inf), avail


def _best(scores: np.ndarray) -> np.ndarray:
    """(N, K) scores (-inf = unavailable) -> (N, K) bool: the actions equal to the row maximum."""
    return scores == scores.max(axis=1, keepdims=True)


def squarecb_probabilities(
    predicted_rewards: np.ndarray,
    gamma: float | np.ndarray,
    available: np.ndarray | None = None,
) -> np.ndarray:
    """SquareCB's inverse-gap weighting (Foster & Rakhlin 2020; Abe & Long 1999) over the available actions.

    For a round with K available actions (K counts AVAILABLE actions only), predicted rewards yhat and best
    predicted reward yhat* = max over available a of yhat(a):

        p(a) = 1 / (K + gamma * (yhat* - yhat(a)))      for available a with yhat(a) < yhat*
        p(a) = (1 - sum of the above) / n_best          for each of the n_best actions with yhat(a) = yhat*
        p(a) = 0                                        for unavailable a

    Each best action gets at least 1/K; gamma = 0 is uniform over the available actions and a larger gamma
    is greedier. This is vowpalwabbit's ``--squarecb`` rule (``cb_explore_adf_squarecb.cc``) written for
    rewards instead of costs; see the module docstring for ties.

    Args:
        predicted_rewards: (N, K) predicted rewards (higher is better); ignored where unavailable.
        gamma: the greediness gamma >= 0, a scalar or (N,) one per round.
        available: optional (N, K) boolean mask of the actions offered in each round.

    Returns:
        (N, K) float64 probabilities; rows sum to 1.
    """
    scores, avail = _scores(predicted_rewards, available)
    g = np.asarray(gamma, dtype=np.float64)
    if g.ndim == 1:
        if g.shape[0] != scores.shape[0]:
            raise ValueError(f"gamma has {g.shape[0]} entries but there are {scores.shape[0]} rounds")
        g = g[:, None]
    elif g.ndim != 0:
        raise ValueError(f"gamma must be a scalar or (rounds,), got shape {g.shape}")
    if not np.all(np.isfinite(g)) or np.any(g < 0):
        raise ValueError(f"gamma must be finite and >= 0, got {gamma!r}")
    k = avail.sum(axis=1, keepdims=True).astype(np.float64)  # (N, 1) available actions
    best = _best(scores)
    gap = np.where(avail, scores.max(axis=1, keepdims=True) - np.where(avail, scores, 0.0), 0.0)  # (N, K)
    p = np.where(avail & ~best, 1.0 / (k + g * gap), 0.0)
    rest = 1.0 - p.sum(axis=1, keepdims=True)  # >= n_best / K
    return np.where(best, rest / best.sum(axis=1, keepdims=True), p)


def epsilon_greedy_probabilities(
    predicted_rewards: np.ndarray, epsilon: float, available: np.ndarray | None = None
) -> np.ndarray:
    """epsilon spread uniformly over the available actions, 1 - epsilon shared by the best ones.

    Args:
        predicted_rewards: (N, K) predicted rewards; ignored where unavailable.
        epsilon: exploration probability in [0, 1].
        available: optional (N, K) boolean mask.

    Returns:
        (N, K) float64 probabilities.
    """
    if not 0.0 <= epsilon <= 1.0:
        raise ValueError(f"epsilon must be in [0, 1], got {epsilon}")
    scores, avail = _scores(predicted_rewards, available)
    best = _best(scores)
    uniform = avail / avail.sum(axis=1, keepdims=True)
    greedy = best / best.sum(axis=1, keepdims=True)
    return epsilon * uniform + (1.0 - epsilon) * greedy


def greedy_probabilities(predicted_rewards: np.ndarray, available: np.ndarray | None = None) -> np.ndarray:
    """(N, K) -> (N, K): probability 1 on the best available action (shared equally among exact ties)."""
    return epsilon_greedy_probabilities(predicted_rewards, 0.0, available)


def with_floor(probabilities: np.ndarray, floor: float, available: np.ndarray | None = None) -> np.ndarray:
    """An exploration floor: (1 - floor) p + floor * uniform over the available actions.

    Every available action then has probability >= floor / K_available, which bounds the importance weights
    of off-policy training and evaluation by K_available / floor.

    Args:
        probabilities: (N, K) probabilities (0 where unavailable).
        floor: the mixing weight in [0, 1] of the uniform distribution.
        available: optional (N, K) boolean mask (default: all K actions are available).
    """
    if not 0.0 <= floor <= 1.0:
        raise ValueError(f"floor must be in [0, 1], got {floor}")
    p = np.asarray(probabilities, dtype=np.float64)
    avail = check_available(available, p.shape)
    return (1.0 - floor) * p + floor * avail / avail.sum(axis=1, keepdims=True)


def mix_probabilities(probabilities: np.ndarray, other: np.ndarray, weight: float) -> np.ndarray:
    """(1 - weight) p + weight q, e.g. mixing the previous (logging) policy into a new one.

    Args:
        probabilities: (N, K) the new policy's probabilities.
        other: (N, K) the policy mixed in.
        weight: the weight of ``other`` in [0, 1].
    """
    if not 0.0 <= weight <= 1.0:
        raise ValueError(f"mixing weight must be in [0, 1], got {weight}")
    p, q = np.asarray(probabilities, dtype=np.float64), np.asarray(other, dtype=np.float64)
    if p.shape != q.shape:
        raise ValueError(f"cannot mix probabilities of shapes {p.shape} and {q.shape}")
    return (1.0 - weight) * p + weight * q


def sample_actions(probabilities: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One action per round drawn from each row of ``probabilities`` (N, K) -> (N,) int64.

    Inverse-CDF sampling with one uniform per round (so a seeded ``rng`` gives the same actions); an action
    with probability 0 is never drawn.
    """
    p = np.asarray(probabilities, dtype=np.float64)
    if p.ndim != 2 or p.shape[1] == 0:
        raise ValueError(f"probabilities must be (rounds, actions), got shape {p.shape}")
    if np.any(p < 0) or not np.allclose(p.sum(axis=1), 1.0, atol=1e-6):
        raise ValueError("each row of probabilities must be >= 0 and sum to 1")
    cdf = np.cumsum(p, axis=1)  # (N, K)
    u = rng.random(p.shape[0]) * cdf[:, -1]  # (N,), strictly below the row total
    actions = (cdf <= u[:, None]).sum(axis=1)  # first index with cdf > u
    return np.minimum(actions, p.shape[1] - 1).astype(np.int64)


def gamma_schedule(t: int | np.ndarray, *, scale: float = 10.0, exponent: float = 0.5) -> np.ndarray | float:
    """SquareCB greediness gamma_t = scale * t ** exponent (vowpalwabbit's defaults: scale 10, exponent 0.5).

    ``t`` is the number of rounds learned from so far (vowpalwabbit's example counter), so the first
    round (t = 0) is uniform.
    """
    if scale < 0 or exponent < 0:
        raise ValueError(f"gamma scale and exponent must be >= 0, got {scale} and {exponent}")
    t_arr = np.asarray(t, dtype=np.float64)
    if np.any(t_arr < 0):
        raise ValueError(f"t (rounds learned from) must be >= 0, got {t}")
    out = scale * t_arr**exponent
    return float(out) if out.ndim == 0 else out
