"""Synthetic bandit problems with known expected rewards, the generation loop, and two experiments.

* :class:`SyntheticProblem` -- seeded contexts, dynamic action sets, per-round action features, and a known
  expected reward of every (round, action) (linear or a random tanh network; Gaussian or Bernoulli rewards).
* :func:`run_generations` -- Adyen's deployment loop: each generation acts on a batch of rounds, its
  rewards arrive later and out of order into a :class:`~rl.bandits.log.DecisionLog`, and the policy is
  retrained on the last generation's logs (short-term memory) or on all of them. Optional mitigations of
  the oscillation effect: mixing the previous generation's policy into the new one (``mix_previous``);
  the exploration floor and importance-weighted oracle training are options of the policies themselves.
* :func:`generation_curves` -- the per-generation data of a plot (mean and spread over seeds).
* :func:`coverage_experiment` -- how often the bootstrap intervals of :mod:`rl.bandits.ope` contain the
  true value of a target policy on a problem whose value is known exactly.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

from rl.bandits.log import DecisionLog
from rl.bandits.ope import ESTIMATORS, bootstrap_intervals, ope_terms
from rl.bandits.policies import BanditPolicy, decide
from rl.bandits.probabilities import mix_probabilities

__all__ = [
    "CoverageResult",
    "GenerationStats",
    "Rounds",
    "SyntheticProblem",
    "coverage_experiment",
    "generation_curves",
    "run_generations",
]


class Rounds(NamedTuple):
    """A batch of N rounds of a synthetic problem with K actions."""

    contexts: np.ndarray  # (N, D)
    available: np.ndarray  # (N, K) bool
    action_features: np.ndarray | None  # (N, K, F) or None
    mean_rewards: np.ndarray  # (N, K) expected reward of each action (NaN where unavailable)


@dataclass(frozen=True)
class SyntheticProblem:
    """A contextual bandit with known expected rewards (the parameters are drawn from ``seed``).

    score(x, a) = linear:    x . W_a + b_a + f_a . (M x)
                  nonlinear: V_a . tanh(U x + c) + b_a + f_a . (M x)       (16 hidden units)
    with x ~ N(0, I_D), f_a the round's features of action a ~ N(0, I_F) (F = 0: no term).
    Expected reward = ``scale`` * score (Gaussian rewards with sd ``noise``) or
    sigmoid(``scale`` * score + ``offset``) (Bernoulli rewards; ``offset`` sets the base rate).
    Each action is available with probability ``p_available`` (at least one per round).
    """

    n_actions: int = 5
    context_dim: int = 5
    action_feature_dim: int = 0
    kind: str = "linear"
    reward: str = "gaussian"
    scale: float = 1.0
    offset: float = 0.0
    noise: float = 0.5
    p_available: float = 1.0
    seed: int = 0
    _params: dict = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.kind not in ("linear", "nonlinear") or self.reward not in ("gaussian", "bernoulli"):
            raise ValueError(
                f"kind must be 'linear' or 'nonlinear' and reward 'gaussian' or 'bernoulli'; got "
                f"{self.kind!r}, {self.reward!r}"
            )
        if self.n_actions < 2 or self.context_dim < 1 or not 0 < self.p_available <= 1:
            raise ValueError("need n_actions >= 2, context_dim >= 1 and p_available in (0, 1]")
        rng = np.random.default_rng([self.seed, 7919])
        d, k, f, h = self.context_dim, self.n_actions, self.action_feature_dim, 16
        params = {
            "W": rng.normal(0, 1 / np.sqrt(d), (k, d)),
            "b": rng.normal(0, 0.1, k),
            "U": rng.normal(0, 1.5 / np.sqrt(d), (h, d)),
            "c": rng.normal(0, 0.5, h),
            "V": rng.normal(0, 1.5 / np.sqrt(h), (k, h)),
            "M": rng.normal(0, 0.5 / np.sqrt(d), (f, d)),
        }
        object.__setattr__(self, "_params", params)

    def sample(self, n: int, rng: np.random.Generator) -> Rounds:
        """N fresh rounds drawn with ``rng``."""
        p, k = self._params, self.n_actions
        x = rng.standard_normal((n, self.context_dim))
        avail = rng.random((n, k)) < self.p_available
        empty = ~avail.any(axis=1)
        avail[np.flatnonzero(empty), rng.integers(0, k, int(empty.sum()))] = True
        af = rng.standard_normal((n, k, self.action_feature_dim)) if self.action_feature_dim else None
        if self.kind == "linear":
            s = x @ p["W"].T + p["b"]  # (N, K)
        else:
            s = np.tanh(x @ p["U"].T + p["c"]) @ p["V"].T + p["b"]
        if af is not None:
            s = s + np.einsum("nkf,nf->nk", af, x @ p["M"].T)
        mean = (
            self.scale * s if self.reward == "gaussian" else 1 / (1 + np.exp(-(self.scale * s + self.offset)))
        )
        return Rounds(x, avail, af, np.where(avail, mean, np.nan))

    def draw_rewards(self, rounds: Rounds, actions: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """(N,) rewards of the chosen actions."""
        mu = rounds.mean_rewards[np.arange(len(actions)), actions]
        if np.any(np.isnan(mu)):
            raise ValueError("an action outside its round's action set was chosen")
        if self.reward == "gaussian":
            return mu + self.noise * rng.standard_normal(mu.shape)
        return (rng.random(mu.shape) < mu).astype(np.float64)


class GenerationStats(NamedTuple):
    """What one generation of a policy achieved on its batch of rounds."""

    generation: int
    reward: float  # mean realised reward
    value: float  # mean expected reward of the behaviour policy, sum_a p(a) mu(a) (less noisy)
    optimal: float  # mean expected reward of the best available action
    p_best: float  # mean probability of the best available action
    min_propensity: float  # smallest logged propensity


def run_generations(
    policy: BanditPolicy,
    problem: SyntheticProblem,
    *,
    n_generations: int = 10,
    rounds_per_generation: int = 2000,
    memory: str = "last",
    mix_previous: float = 0.0,
    shuffle_feedback: bool = True,
    seed: int = 0,
    log: DecisionLog | None = None,
) -> list[GenerationStats]:
    """Deploy ``policy`` for successive generations, each retrained on logged, delayed feedback.

    Generation g acts on ``rounds_per_generation`` fresh rounds (recorded in the decision log); the
    rewards arrive in a random order (``shuffle_feedback``) in four deliveries; once all have arrived the
    policy is retrained on generation g's logs (``memory="last"``, Adyen's short-term memory) or on all logs
    (``"all"``). With ``mix_previous`` = lambda > 0, generation g acts with (1 - lambda) pi_g +
    lambda pi_{g-1} (pi_{g-1} = the previous generation's unmixed policy), mixing in the logging policy.

    Args:
        policy: any :class:`~rl.bandits.policies.BanditPolicy`; it is trained in place.
        problem: the synthetic problem.
        seed: seeds the rounds, the rewards and the arrival order (three separate streams).
        log: an optional :class:`DecisionLog` to record into (for inspection or parquet).

    Returns:
        One :class:`GenerationStats` per generation.
    """
    if memory not in ("last", "all"):
        raise ValueError(f"memory must be 'last' or 'all', got {memory!r}")
    rng_rounds, rng_rewards, rng_delay, rng_mix = (np.random.default_rng([seed, i]) for i in range(4))
    if log is None:
        log = DecisionLog(
            problem.n_actions, problem.context_dim, action_feature_dim=problem.action_feature_dim
        )
    previous = None
    stats = []
    for g in range(n_generations):
        rounds = problem.sample(rounds_per_generation, rng_rounds)
        kw = {"available": rounds.available, "action_features": rounds.action_features}
        if mix_previous and previous is not None:
            p = mix_probabilities(
                policy.probabilities(rounds.contexts, **kw),
                previous.probabilities(rounds.contexts, **kw),
                mix_previous,
            )
            decisions = decide(p, rng_mix)
        else:
            decisions = policy.act(rounds.contexts, **kw)
        ids = log.record(rounds.contexts, decisions, generation=g, **kw)
        rewards = problem.draw_rewards(rounds, decisions.actions, rng_rewards)
        order = rng_delay.permutation(len(ids)) if shuffle_feedback else np.arange(len(ids))
        for part in np.array_split(order, 4):  # deliveries, each out of order
            log.add_rewards(ids[part], rewards[part])
        mu = np.nan_to_num(rounds.mean_rewards, nan=-np.inf)
        best = mu == mu.max(axis=1, keepdims=True)
        stats.append(
            GenerationStats(
                generation=g,
                reward=float(rewards.mean()),
                value=float(np.nansum(decisions.probabilities * rounds.mean_rewards, axis=1).mean()),
                optimal=float(mu.max(axis=1).mean()),
                p_best=float((decisions.probabilities * best).sum(axis=1).mean()),
                min_propensity=float(decisions.propensities.min()),
            )
        )
        if mix_previous:
            previous = copy.deepcopy(policy)
        policy.fit(log.data(generations=g) if memory == "last" else log.data())
    return stats


def generation_curves(runs: dict[str, list[list[GenerationStats]]], *, field_name: str = "value") -> dict:
    """Plot data: for each label, the mean and std over seeds of ``field_name`` per generation.

    Args:
        runs: label -> one list of :class:`GenerationStats` per seed (all of the same length).

    Returns:
        ``{"generation": [0, 1, ...], "series": {label: {"mean": [...], "std": [...]}}}``.
    """
    series = {}
    n_gen = None
    for label, seeds in runs.items():
        vals = np.array([[getattr(s, field_name) for s in run] for run in seeds])  # (S, G)
        n_gen = vals.shape[1]
        series[label] = {"mean": vals.mean(0).tolist(), "std": vals.std(0).tolist()}
    return {"generation": list(range(n_gen or 0)), "field": field_name, "series": series}


class CoverageResult(NamedTuple):
    """Interval coverage of the OPE estimators over independent replications with a known truth."""

    truth: float
    level: float
    n_replications: int
    coverage: dict[str, float]  # fraction of intervals containing the truth
    mean_width: dict[str, float]
    bias: dict[str, float]  # mean estimate - truth


def coverage_experiment(
    *,
    n_replications: int = 200,
    n_rounds: int = 1000,
    n_contexts: int = 20,
    n_actions: int = 4,
    n_bootstrap: int = 400,
    level: float = 0.9,
    model_bias: float = 0.05,
    tau: float = 5.0,
    estimators: tuple[str, ...] = ESTIMATORS,
    seed: int = 0,
) -> CoverageResult:
    """Bootstrap-interval coverage on a finite-context problem whose target value is known exactly.

    Contexts are uniform over ``n_contexts``; the expected rewards mu(c, a) are drawn uniform in
    [0.1, 0.9] and rewards are Bernoulli. The logging policy is a softmax of random logits mixed with 20%
    uniform (propensities >= 0.05), the target a softmax of 5 mu (a good policy). The truth is
    V = mean_c sum_a pi(a|c) mu(c, a). The reward model overestimates every action by ``model_bias``, so
    DM is biased by exactly ``model_bias`` and DR / switch-DR must correct it (switch-DR only partly: rounds
    whose weight exceeds ``tau`` keep the biased DM term).
    """
    rng = np.random.default_rng([seed, 104729])
    c, k = n_contexts, n_actions
    mu = rng.uniform(0.1, 0.9, (c, k))
    logits = rng.normal(0, 1, (c, k))
    logging = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    logging = 0.8 * logging + 0.2 / k
    target = np.exp(5 * mu) / np.exp(5 * mu).sum(1, keepdims=True)
    truth = float((target * mu).sum(1).mean())
    q = mu + model_bias
    hits = {e: 0 for e in estimators}
    width = {e: 0.0 for e in estimators}
    est = {e: 0.0 for e in estimators}
    for rep in range(n_replications):
        rr = np.random.default_rng([seed, rep])
        ctx = rr.integers(0, c, n_rounds)
        cdf = np.cumsum(logging[ctx], axis=1)
        a = np.minimum((cdf <= rr.random(n_rounds)[:, None] * cdf[:, -1:]).sum(1), k - 1)
        r = (rr.random(n_rounds) < mu[ctx, a]).astype(np.float64)
        inputs = {
            "rewards": r,
            "actions": a,
            "propensities": logging[ctx, a],
            "target_probabilities": target[ctx],
            "predicted_rewards": q[ctx],
            "tau": tau,
        }
        terms = {e: ope_terms(e, **inputs) for e in estimators}
        res = bootstrap_intervals(terms, n_bootstrap=n_bootstrap, level=level, seed=seed * 1_000_003 + rep)
        for e, o in res.items():
            hits[e] += o.low <= truth <= o.high
            width[e] += o.high - o.low
            est[e] += o.estimate
    n = n_replications
    return CoverageResult(
        truth,
        level,
        n,
        {e: hits[e] / n for e in estimators},
        {e: width[e] / n for e in estimators},
        {e: est[e] / n - truth for e in estimators},
    )
