"""Contextual bandits in the spirit of Adyen's payment-processing work (arXiv 2412.00569, 2501.10470):
regression oracles with non-uniform exploration, batch-logged delayed feedback, dynamic action sets, and
off-policy evaluation.

Modules (numpy at import time; torch only when a torch model is built, pyarrow only for parquet,
scikit-learn only when a scikit-learn regressor is cloned):

* ``rl.bandits.probabilities`` -- :func:`squarecb_probabilities` (inverse-gap weighting), epsilon-greedy,
  the exploration floor, mixing, sampling, the gamma schedule;
* ``rl.bandits.oracles`` -- reward models: :class:`JointModel` / :class:`PerActionModel` over a torch
  :class:`MLPRegressor` or any scikit-learn-style regressor;
* ``rl.bandits.policies`` -- :class:`SquareCB`, :class:`EpsilonGreedy`, :class:`LinUCB`, :class:`LinearTS`;
* ``rl.bandits.softmax`` -- :class:`SoftmaxPolicy` (trained with :mod:`rl.losses`);
* ``rl.bandits.log`` -- :class:`DecisionLog` (rewards arrive later, in any order; parquet) and
  :class:`LoggedData`;
* ``rl.bandits.ope`` -- DM, IPS, SNIPS, DR, switch-DR with bootstrap intervals;
* ``rl.bandits.simulate`` -- synthetic problems, the generation loop (oscillation effect), coverage.

Shapes: N rounds, K actions (the universe; ``available`` (N, K) masks each round's action set), D context
features, F per-round action features.
"""

from rl.bandits.log import DecisionLog, Decisions, LoggedData, logged_data
from rl.bandits.ope import (
    ESTIMATORS,
    OPEResult,
    bootstrap_intervals,
    estimate,
    evaluate,
    evaluate_policy,
    ope_terms,
)
from rl.bandits.oracles import (
    JointModel,
    MLPRegressor,
    PerActionModel,
    RewardModel,
    RidgeRegressor,
    default_oracle,
    joint_inputs,
)
from rl.bandits.policies import BanditPolicy, BasePolicy, EpsilonGreedy, LinearTS, LinUCB, SquareCB, decide
from rl.bandits.probabilities import (
    epsilon_greedy_probabilities,
    gamma_schedule,
    greedy_probabilities,
    mix_probabilities,
    sample_actions,
    squarecb_probabilities,
    with_floor,
)
from rl.bandits.simulate import (
    CoverageResult,
    GenerationStats,
    Rounds,
    SyntheticProblem,
    coverage_experiment,
    generation_curves,
    run_generations,
)
from rl.bandits.softmax import SoftmaxPolicy

__all__ = [
    "ESTIMATORS",
    "BanditPolicy",
    "BasePolicy",
    "CoverageResult",
    "DecisionLog",
    "Decisions",
    "EpsilonGreedy",
    "GenerationStats",
    "JointModel",
    "LinUCB",
    "LinearTS",
    "LoggedData",
    "MLPRegressor",
    "OPEResult",
    "PerActionModel",
    "RewardModel",
    "RidgeRegressor",
    "Rounds",
    "SoftmaxPolicy",
    "SquareCB",
    "SyntheticProblem",
    "bootstrap_intervals",
    "coverage_experiment",
    "decide",
    "default_oracle",
    "epsilon_greedy_probabilities",
    "estimate",
    "evaluate",
    "evaluate_policy",
    "gamma_schedule",
    "generation_curves",
    "greedy_probabilities",
    "joint_inputs",
    "logged_data",
    "mix_probabilities",
    "ope_terms",
    "run_generations",
    "sample_actions",
    "squarecb_probabilities",
    "with_floor",
]
