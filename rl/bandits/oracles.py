"""Regression oracles: models of the expected reward of each action, fitted on logged bandit data.

Two ways to turn a plain regressor (anything with ``fit(X, y[, sample_weight])`` and ``predict(X)``, e.g.
scikit-learn's ``GradientBoostingRegressor`` as at Adyen, or the torch :class:`MLPRegressor` here) into a
reward model over K actions:

* :class:`JointModel` -- ONE regressor on action-dependent inputs ``[context, one-hot(a), features(a)]``
  (:func:`joint_inputs`): it shares what it learns across actions and handles per-round action features.
* :class:`PerActionModel` -- one regressor per action on ``[context, features(a)]``, each fitted on the
  rounds where its action was chosen (Adyen's and mabwiser's layout).

:class:`RidgeRegressor` is a numpy ridge regression (scikit-learn's ``Ridge`` with an intercept and sample
weights, cross-checked in the tests) for a fast, dependency-free linear oracle.

Both implement the :class:`RewardModel` protocol: ``fit(data, sample_weight=None)`` and
``predict(contexts, action_features=None, n_actions=None) -> (N, K)``. An unfitted model predicts 0
everywhere (so SquareCB starts uniform). torch is imported only when an :class:`MLPRegressor` is built.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np

from rl.bandits.log import LoggedData

__all__ = [
    "JointModel",
    "MLPRegressor",
    "PerActionModel",
    "Regressor",
    "RewardModel",
    "RidgeRegressor",
    "default_oracle",
    "joint_inputs",
]


@runtime_checkable
class Regressor(Protocol):
    """scikit-learn's regressor interface (only what the oracles use)."""

    def fit(self, X: np.ndarray, y: np.ndarray, *args: Any, **kwargs: Any) -> Any: ...
    def predict(self, X: np.ndarray) -> np.ndarray: ...


class RewardModel(Protocol):
    """Predicts the expected reward of every action; fitted on logged data."""

    def fit(self, data: LoggedData, *, sample_weight: np.ndarray | None = None) -> None: ...
    def predict(
        self, contexts: np.ndarray, *, action_features: np.ndarray | None = None, n_actions: int | None = None
    ) -> np.ndarray: ...


def joint_inputs(
    contexts: np.ndarray,
    n_actions: int,
    action_features: np.ndarray | None = None,
    *,
    one_hot: bool = True,
    interactions: bool = False,
) -> np.ndarray:
    """The action-dependent inputs of every (round, action) pair.

    ``[x, one-hot(a), f_a]``, and with ``interactions`` also every context feature times every action column,
    ``x (outer) [one-hot(a), f_a]`` -- the feature map of vowpalwabbit's ``-q sa`` (shared x action
    namespaces), with which a linear regressor can fit a separate linear model per action.

    Args:
        contexts: (N, D).
        n_actions: K.
        action_features: optional (N, K, F) per-round features of each action.
        one_hot: include the one-hot action id (K columns).
        interactions: append the D * (K*one_hot + F) products.

    Returns:
        (N, K, D + A + D*A*interactions) float64 with A = K*one_hot + F.
    """
    x = np.asarray(contexts, dtype=np.float64)
    n, d = x.shape
    act = []
    if one_hot:
        act.append(np.broadcast_to(np.eye(n_actions), (n, n_actions, n_actions)))
    if action_features is not None:
        af = np.asarray(action_features, dtype=np.float64)
        if af.shape[:2] != (n, n_actions):
            raise ValueError(f"action_features must be ({n}, {n_actions}, F), got {af.shape}")
        act.append(af)
    a = np.concatenate(act, axis=-1) if act else np.zeros((n, n_actions, 0))  # (N, K, A)
    parts = [np.broadcast_to(x[:, None, :], (n, n_actions, d)), a]
    if interactions:
        parts.append((x[:, None, :, None] * a[:, :, None, :]).reshape(n, n_actions, -1))  # (N, K, D*A)
    return np.concatenate(parts, axis=-1)


def _fit(reg: Regressor, x: np.ndarray, y: np.ndarray, w: np.ndarray | None) -> None:
    if w is None:
        reg.fit(x, y)
    else:
        reg.fit(x, y, sample_weight=w)


def _clone(prototype: Regressor) -> Regressor:
    """A fresh unfitted copy: sklearn.base.clone for scikit-learn estimators, else a deep copy."""
    if hasattr(prototype, "get_params"):
        from sklearn.base import clone

        return clone(prototype)
    return copy.deepcopy(prototype)


def _check_weight(w: np.ndarray | None, n: int) -> np.ndarray | None:
    if w is None:
        return None
    w = np.asarray(w, dtype=np.float64)
    if w.shape != (n,) or np.any(~np.isfinite(w)) or np.any(w < 0):
        raise ValueError(f"sample_weight must be ({n},) finite and >= 0, got shape {w.shape}")
    return w


class JointModel:
    """One regressor on ``joint_inputs(context, a, features)`` for all actions.

    Args:
        regressor: the regressor (fitted in place; default :class:`MLPRegressor`).
        one_hot: include the one-hot action id in the inputs (turn off only when action features identify
            the actions).
        interactions: add the context x action products of :func:`joint_inputs` (for linear regressors).
    """

    def __init__(
        self, regressor: Regressor | None = None, *, one_hot: bool = True, interactions: bool = False
    ) -> None:
        self.regressor = MLPRegressor() if regressor is None else regressor
        self.one_hot, self.interactions = one_hot, interactions
        self.n_actions: int | None = None

    def fit(self, data: LoggedData, *, sample_weight: np.ndarray | None = None) -> None:
        """Fit on the chosen (round, action) pairs of ``data`` (N rows)."""
        if data.n_rounds == 0:
            return
        self.n_actions = data.n_actions
        x = joint_inputs(
            data.contexts,
            data.n_actions,
            data.action_features,
            one_hot=self.one_hot,
            interactions=self.interactions,
        )
        x = x[np.arange(data.n_rounds), data.actions]  # (N, F_in)
        _fit(self.regressor, x, data.rewards, _check_weight(sample_weight, data.n_rounds))

    def predict(
        self, contexts: np.ndarray, *, action_features: np.ndarray | None = None, n_actions: int | None = None
    ) -> np.ndarray:
        """(N, D) contexts [+ (N, K, F) features] -> (N, K) predicted rewards (0 before the first fit)."""
        k = self.n_actions or n_actions or (None if action_features is None else np.shape(action_features)[1])
        if self.n_actions is None:
            if k is None:
                raise ValueError("an unfitted JointModel needs n_actions (or action_features) to predict")
            return np.zeros((np.shape(contexts)[0], k))
        x = joint_inputs(contexts, k, action_features, one_hot=self.one_hot, interactions=self.interactions)
        n = x.shape[0]
        return np.asarray(self.regressor.predict(x.reshape(n * k, -1)), dtype=np.float64).reshape(n, k)


class PerActionModel:
    """One regressor per action, fitted on the rounds where that action was chosen.

    Args:
        regressor: the prototype, cloned per action (``sklearn.base.clone`` or a deep copy).
        n_actions: K (else learned from the first fit).
        action_features: include the action's own per-round features in its inputs.
    An action never chosen yet predicts the mean logged reward (0 before any data).
    """

    def __init__(self, regressor: Regressor, *, n_actions: int | None = None, action_features: bool = True):
        self.prototype = regressor
        self.n_actions = n_actions
        self.use_features = action_features
        self.models: dict[int, Regressor] = {}
        self.prior = 0.0

    def _inputs(self, contexts: np.ndarray, action_features: np.ndarray | None, a: int) -> np.ndarray:
        x = np.asarray(contexts, dtype=np.float64)
        if self.use_features and action_features is not None:
            return np.concatenate([x, np.asarray(action_features, dtype=np.float64)[:, a]], axis=1)
        return x

    def fit(self, data: LoggedData, *, sample_weight: np.ndarray | None = None) -> None:
        """Refit every action that has data (models of actions without data in ``data`` are dropped)."""
        if data.n_rounds == 0:
            return
        self.n_actions = data.n_actions
        w = _check_weight(sample_weight, data.n_rounds)
        self.prior = float(np.mean(data.rewards))
        self.models = {}
        for a in range(data.n_actions):
            rows = np.flatnonzero(data.actions == a)
            if rows.size == 0:
                continue
            af = None if data.action_features is None else data.action_features[rows]
            reg = _clone(self.prototype)
            _fit(
                reg,
                self._inputs(data.contexts[rows], af, a),
                data.rewards[rows],
                None if w is None else w[rows],
            )
            self.models[a] = reg

    def predict(
        self, contexts: np.ndarray, *, action_features: np.ndarray | None = None, n_actions: int | None = None
    ) -> np.ndarray:
        """(N, D) contexts [+ (N, K, F) features] -> (N, K) predicted rewards."""
        k = self.n_actions or n_actions or (None if action_features is None else np.shape(action_features)[1])
        if k is None:
            raise ValueError("an unfitted PerActionModel needs n_actions (or action_features) to predict")
        out = np.full((np.shape(contexts)[0], k), self.prior)
        for a, reg in self.models.items():
            out[:, a] = np.asarray(reg.predict(self._inputs(contexts, action_features, a)), dtype=np.float64)
        return out


class MLPRegressor:
    """A seeded torch MLP regressor with scikit-learn's ``fit``/``predict`` (squared error).

    Inputs and targets are standardised with the statistics of each fit. ``warm_start`` keeps the weights
    between fits (the next generation continues training) instead of re-initialising them.

    Args:
        hidden: widths of the hidden layers (ReLU).
        epochs: passes over the data per fit (more if needed to reach ``min_steps``).
        batch_size: minibatch size.
        lr: Adam learning rate.
        weight_decay: AdamW weight decay.
        min_steps: at least this many optimizer steps per fit (small data sets get more passes).
        max_steps: optional cap on optimizer steps per fit (bounds the cost of refitting on a growing log).
        warm_start: continue from the previous fit's weights.
        seed: seeds the initialisation and the minibatch order (the same data => the same model).
        device: "cpu", "cuda" or "auto" (cuda when available).
    """

    def __init__(
        self,
        hidden: Sequence[int] = (64, 64),
        *,
        epochs: int = 30,
        batch_size: int = 128,
        lr: float = 3e-3,
        weight_decay: float = 1e-4,
        min_steps: int = 200,
        max_steps: int | None = None,
        warm_start: bool = False,
        seed: int = 0,
        device: str = "cpu",
    ) -> None:
        if epochs < 1 or batch_size < 1 or lr <= 0:
            raise ValueError(f"need epochs >= 1, batch_size >= 1, lr > 0; got {epochs}, {batch_size}, {lr}")
        self.hidden, self.epochs, self.batch_size = tuple(hidden), epochs, batch_size
        self.lr, self.weight_decay, self.min_steps, self.max_steps = lr, weight_decay, min_steps, max_steps
        self.warm_start, self.seed, self.device = warm_start, seed, device
        self.net: Any = None
        self._fits = 0

    def _device(self):
        import torch

        if self.device == "auto":
            return torch.device("cuda" if torch.cuda.is_available() else "cpu")
        return torch.device(self.device)

    def _build(self, n_in: int, gen) -> Any:
        import torch
        from torch import nn

        layers: list[nn.Module] = []
        width = n_in
        for h in self.hidden:
            layers += [nn.Linear(width, h), nn.ReLU()]
            width = h
        layers.append(nn.Linear(width, 1))
        net = nn.Sequential(*layers)
        with torch.no_grad():
            for m in net:
                if isinstance(m, nn.Linear):  # torch's default bounds, drawn from our generator
                    bound = 1.0 / m.in_features**0.5
                    m.weight.uniform_(-bound, bound, generator=gen)
                    m.bias.uniform_(-bound, bound, generator=gen)
        return net.to(self._device())

    def fit(self, X: np.ndarray, y: np.ndarray, sample_weight: np.ndarray | None = None) -> MLPRegressor:
        """Fit on X (N, F) and y (N,), optionally weighting rows by ``sample_weight`` (N,)."""
        import torch

        x = np.asarray(X, dtype=np.float64)
        t = np.asarray(y, dtype=np.float64).reshape(-1)
        if x.ndim != 2 or x.shape[0] != t.shape[0]:
            raise ValueError(f"X must be (N, F) and y (N,), got {x.shape} and {t.shape}")
        gen = torch.Generator().manual_seed(self.seed + 1_000_003 * self._fits)
        self._fits += 1
        if self.net is None or not self.warm_start or self.net[0].in_features != x.shape[1]:
            self.net = self._build(x.shape[1], gen)
            self.optimizer = torch.optim.AdamW(
                self.net.parameters(), lr=self.lr, weight_decay=self.weight_decay
            )
        self.x_mean, self.x_std = x.mean(0), np.maximum(x.std(0), 1e-6)
        self.y_mean, self.y_std = float(t.mean()), max(float(t.std()), 1e-6)
        dev = self._device()
        xt = torch.as_tensor((x - self.x_mean) / self.x_std, dtype=torch.float32, device=dev)  # (N, F)
        yt = torch.as_tensor((t - self.y_mean) / self.y_std, dtype=torch.float32, device=dev)  # (N,)
        wt = None
        if sample_weight is not None:
            w = np.asarray(sample_weight, dtype=np.float64)
            wt = torch.as_tensor(w / max(w.mean(), 1e-12), dtype=torch.float32, device=dev)  # mean 1
        n, steps, epoch = x.shape[0], 0, 0
        self.net.train()
        while epoch < self.epochs or steps < self.min_steps:
            epoch += 1
            order = torch.randperm(n, generator=gen).to(dev)
            for i in range(0, n, self.batch_size):
                idx = order[i : i + self.batch_size]
                err = (self.net(xt[idx]).squeeze(-1) - yt[idx]) ** 2  # (B,)
                loss = err.mean() if wt is None else (err * wt[idx]).mean()
                self.optimizer.zero_grad(set_to_none=True)
                loss.backward()
                self.optimizer.step()
                steps += 1
                if self.max_steps is not None and steps >= self.max_steps:
                    return self
        return self

    def predict(self, X: np.ndarray) -> np.ndarray:
        """(M, F) -> (M,) float64 predictions (0 before the first fit)."""
        import torch

        x = np.asarray(X, dtype=np.float64)
        if self.net is None:
            return np.zeros(x.shape[0])
        self.net.eval()
        with torch.no_grad():
            xt = torch.as_tensor((x - self.x_mean) / self.x_std, dtype=torch.float32, device=self._device())
            out = self.net(xt).squeeze(-1).double().cpu().numpy()
        return out * self.y_std + self.y_mean


def default_oracle(*, seed: int = 0, device: str = "cpu", **mlp: Any) -> JointModel:
    """The default reward model: a :class:`JointModel` over a seeded :class:`MLPRegressor`."""
    return JointModel(MLPRegressor(seed=seed, device=device, **mlp))


class RidgeRegressor:
    """Ridge regression with an intercept, in numpy: scikit-learn's ``Ridge(alpha, fit_intercept=True)``.

    ``fit(X (N, F), y (N,), sample_weight=None)`` centres X and y on their (weighted) means and solves
    ``(Xc^T W Xc + alpha I) coef = Xc^T W yc``; ``intercept = mean(y) - mean(X) coef``. Before the first fit
    ``predict`` returns 0. Deterministic: the same data gives the same coefficients bit for bit, and a row's
    prediction does not depend on the other rows predicted with it (a row-wise sum, not a BLAS product), so
    predicting rows one at a time or in blocks gives identical numbers (what a causal replay needs).
    """

    def __init__(self, alpha: float = 1.0) -> None:
        if not alpha >= 0:
            raise ValueError(f"alpha must be >= 0, got {alpha}")
        self.alpha = float(alpha)
        self.coef_: np.ndarray | None = None
        self.intercept_ = 0.0

    def fit(self, X: np.ndarray, y: np.ndarray, sample_weight: np.ndarray | None = None) -> RidgeRegressor:
        x = np.asarray(X, dtype=np.float64)
        t = np.asarray(y, dtype=np.float64)
        w = np.ones(len(t)) if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
        if x.ndim != 2 or t.shape != (x.shape[0],) or w.shape != t.shape:
            raise ValueError(f"fit needs X (N, F), y (N,), sample_weight (N,); got {x.shape}, {t.shape}, {w.shape}")
        sw = w.sum()
        if not sw > 0:
            raise ValueError("sample weights must not all be 0")
        xm, ym = (w @ x) / sw, float(w @ t) / sw
        xc, yc = x - xm, t - ym
        a = (xc * w[:, None]).T @ xc + self.alpha * np.eye(x.shape[1])
        self.coef_ = np.linalg.solve(a, (xc * w[:, None]).T @ yc)
        self.intercept_ = ym - float(xm @ self.coef_)
        return self

    def predict(self, X: np.ndarray) -> np.ndarray:
        x = np.asarray(X, dtype=np.float64)
        if self.coef_ is None:
            return np.zeros(x.shape[0])
        return (x * self.coef_).sum(axis=1) + self.intercept_
