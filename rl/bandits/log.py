"""Batch-logged, delayed bandit feedback: the decision log and the logged data policies train on.

A :class:`DecisionLog` records every decision when it is made (context, action set, action features, the
full probability vector, the chosen action and its propensity) and receives rewards later, in any order,
keyed by the round id :meth:`DecisionLog.record` returned (a trading router learns a bar's reward H bars
later). :meth:`DecisionLog.data` returns the rounds whose reward is known as :class:`LoggedData`, always
sorted by round id, so the order in which rewards arrived never changes what a policy is trained on.
The log is written to parquet atomically and read back (pyarrow is imported only there).
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import NamedTuple

import numpy as np

from rl.bandits.probabilities import check_available

__all__ = ["LOG_FORMAT", "DecisionLog", "Decisions", "LoggedData", "logged_data"]

LOG_FORMAT = "drex.bandit_log/1"


class Decisions(NamedTuple):
    """What a policy chose for a batch of N rounds over K actions."""

    actions: np.ndarray  # (N,) int64 chosen actions
    propensities: np.ndarray  # (N,) float64 probability with which each chosen action was drawn
    probabilities: np.ndarray  # (N, K) float64 the full distributions the actions were drawn from


class LoggedData(NamedTuple):
    """N logged rounds with known rewards, over a universe of K actions (unavailable ones masked)."""

    contexts: np.ndarray  # (N, D) float64
    actions: np.ndarray  # (N,) int64
    rewards: np.ndarray  # (N,) float64
    propensities: np.ndarray  # (N,) float64 logging probability of the chosen action
    available: np.ndarray  # (N, K) bool action set of each round
    probabilities: np.ndarray  # (N, K) float64 full logging distribution (NaN where unknown)
    action_features: np.ndarray | None  # (N, K, F) float64 or None
    rounds: np.ndarray  # (N,) int64 round ids
    generations: np.ndarray  # (N,) int64 policy generation that chose the action

    @property
    def n_actions(self) -> int:
        return int(self.available.shape[1])

    @property
    def n_rounds(self) -> int:
        return int(self.actions.shape[0])

    def take(self, index: np.ndarray) -> LoggedData:
        """The rows ``index`` (an int array or a boolean mask over the N rounds)."""
        return LoggedData(*(None if a is None else a[index] for a in self))


def logged_data(
    contexts: np.ndarray,
    actions: np.ndarray,
    rewards: np.ndarray,
    propensities: np.ndarray,
    *,
    n_actions: int | None = None,
    available: np.ndarray | None = None,
    probabilities: np.ndarray | None = None,
    action_features: np.ndarray | None = None,
    rounds: np.ndarray | None = None,
    generations: np.ndarray | None = None,
) -> LoggedData:
    """Validate arrays (shapes as in :class:`LoggedData`) into a :class:`LoggedData`.

    ``n_actions`` (K) is taken from ``available``, ``probabilities`` or ``action_features`` when not given;
    ``rounds`` default to 0..N-1 and ``generations`` to 0.
    """
    x = np.asarray(contexts, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"contexts must be (rounds, features), got shape {x.shape}")
    n = x.shape[0]
    for name, shaped in (("available", available), ("probabilities", probabilities)):
        if shaped is not None and n_actions is None:
            n_actions = np.shape(shaped)[1]
    if n_actions is None and action_features is not None:
        n_actions = np.shape(action_features)[1]
    if n_actions is None:
        raise ValueError("give n_actions (or available/probabilities/action_features) to fix K")
    a = np.asarray(actions)
    if a.shape != (n,) or not np.issubdtype(a.dtype, np.integer):
        raise ValueError(f"actions must be ({n},) integers, got shape {a.shape} dtype {a.dtype}")
    if n and (a.min() < 0 or a.max() >= n_actions):
        raise ValueError(f"actions must lie in [0, {n_actions}), got range [{a.min()}, {a.max()}]")
    r = np.asarray(rewards, dtype=np.float64)
    p = np.asarray(propensities, dtype=np.float64)
    if r.shape != (n,) or p.shape != (n,):
        raise ValueError(f"rewards {r.shape} and propensities {p.shape} must both be ({n},)")
    if not np.all(np.isfinite(r)):
        raise ValueError("rewards must be finite; keep rounds whose reward is unknown out of LoggedData")
    if np.any(~(p > 0) | (p > 1)):
        raise ValueError(
            "propensities must lie in (0, 1]: a logged action must have had positive probability"
        )
    avail = check_available(available, (n, n_actions))
    if not avail[np.arange(n), a].all():
        raise ValueError("a logged action was not in its round's action set (available is False there)")
    probs = (
        np.full((n, n_actions), np.nan) if probabilities is None else np.asarray(probabilities, np.float64)
    )
    if probs.shape != (n, n_actions):
        raise ValueError(f"probabilities must be ({n}, {n_actions}), got {probs.shape}")
    af = None
    if action_features is not None:
        af = np.asarray(action_features, dtype=np.float64)
        if af.ndim != 3 or af.shape[:2] != (n, n_actions):
            raise ValueError(f"action_features must be ({n}, {n_actions}, F), got {af.shape}")
    rid = np.arange(n, dtype=np.int64) if rounds is None else np.asarray(rounds, dtype=np.int64)
    gen = np.zeros(n, dtype=np.int64) if generations is None else np.asarray(generations, dtype=np.int64)
    if rid.shape != (n,) or gen.shape != (n,):
        raise ValueError(f"rounds {rid.shape} and generations {gen.shape} must both be ({n},)")
    return LoggedData(x, a.astype(np.int64), r, p, avail, probs, af, rid, gen)


class DecisionLog:
    """Every decision, recorded when made; rewards added later in any order.

    Args:
        n_actions: K, the universe of actions (each round offers a subset through ``available``).
        context_dim: D, the context width.
        action_feature_dim: F, the width of per-round action features (0: none).
    """

    _GROW = ("contexts", "available", "probabilities", "actions", "propensities", "rewards", "generations")

    def __init__(self, n_actions: int, context_dim: int, *, action_feature_dim: int = 0) -> None:
        if n_actions < 1 or context_dim < 0 or action_feature_dim < 0:
            raise ValueError(
                f"need n_actions >= 1, context_dim >= 0, action_feature_dim >= 0; "
                f"got {n_actions}, {context_dim}, {action_feature_dim}"
            )
        self.n_actions, self.context_dim, self.action_feature_dim = n_actions, context_dim, action_feature_dim
        self._n = 0
        k, d, f = n_actions, context_dim, action_feature_dim
        self._cols: dict[str, np.ndarray] = {
            "contexts": np.empty((0, d)),
            "available": np.empty((0, k), dtype=bool),
            "probabilities": np.empty((0, k)),
            "actions": np.empty(0, dtype=np.int64),
            "propensities": np.empty(0),
            "rewards": np.empty(0),
            "generations": np.empty(0, dtype=np.int64),
        }
        if f:
            self._cols["action_features"] = np.empty((0, k, f))

    def __len__(self) -> int:
        return self._n

    def _reserve(self, extra: int) -> None:
        need = self._n + extra
        cap = self._cols["actions"].shape[0]
        if need <= cap:
            return
        new_cap = max(need, 2 * cap, 64)
        for name, arr in self._cols.items():
            grown = np.empty((new_cap, *arr.shape[1:]), dtype=arr.dtype)
            grown[: self._n] = arr[: self._n]
            self._cols[name] = grown

    def record(
        self,
        contexts: np.ndarray,
        decisions: Decisions,
        *,
        available: np.ndarray | None = None,
        action_features: np.ndarray | None = None,
        generation: int = 0,
    ) -> np.ndarray:
        """Append N decisions (rewards unknown for now) and return their (N,) int64 round ids.

        Args:
            contexts: (N, D) contexts the decisions were made on.
            decisions: the policy's :class:`Decisions` (actions, propensities, (N, K) probabilities).
            available: optional (N, K) action sets (default: all K).
            action_features: (N, K, F) per-round action features; required iff the log has F > 0.
            generation: the policy generation that decided.
        """
        x = np.asarray(contexts, dtype=np.float64)
        n = x.shape[0]
        if x.shape != (n, self.context_dim):
            raise ValueError(f"contexts must be (N, {self.context_dim}), got {x.shape}")
        probs = np.asarray(decisions.probabilities, dtype=np.float64)
        if probs.shape != (n, self.n_actions):
            raise ValueError(f"decision probabilities must be ({n}, {self.n_actions}), got {probs.shape}")
        actions = np.asarray(decisions.actions, dtype=np.int64)
        prop = np.asarray(decisions.propensities, dtype=np.float64)
        avail = check_available(available, (n, self.n_actions))
        if actions.shape != (n,) or prop.shape != (n,):
            raise ValueError(f"decision actions {actions.shape} and propensities {prop.shape} must be ({n},)")
        if n and not np.allclose(probs[np.arange(n), actions], prop, rtol=0, atol=1e-12):
            raise ValueError("decision propensities differ from the probabilities of the chosen actions")
        if np.any(probs[~avail] != 0):
            raise ValueError("decision probabilities put mass on unavailable actions")
        f = self.action_feature_dim
        if f and (action_features is None or np.shape(action_features) != (n, self.n_actions, f)):
            got = None if action_features is None else np.shape(action_features)
            raise ValueError(
                f"pass action_features of shape {(n, self.n_actions, f)} (the log stores them), not {got}"
            )
        if not f and action_features is not None:
            raise ValueError(
                "this log was created with action_feature_dim=0; create it with the features' width F"
            )
        self._reserve(n)
        s = slice(self._n, self._n + n)
        c = self._cols
        c["contexts"][s], c["available"][s], c["probabilities"][s] = x, avail, probs
        c["actions"][s], c["propensities"][s], c["rewards"][s] = actions, prop, np.nan
        c["generations"][s] = generation
        if f:
            c["action_features"][s] = action_features
        self._n += n
        return np.arange(s.start, s.stop, dtype=np.int64)

    def add_rewards(self, rounds: np.ndarray, rewards: np.ndarray) -> None:
        """Set the rewards of earlier rounds (any order, any subset); each round's reward is set once.

        Args:
            rounds: (M,) round ids returned by :meth:`record`.
            rewards: (M,) finite rewards.
        """
        rid = np.asarray(rounds, dtype=np.int64).reshape(-1)
        r = np.asarray(rewards, dtype=np.float64).reshape(-1)
        if rid.shape != r.shape:
            raise ValueError(f"{rid.size} rounds but {r.size} rewards")
        if rid.size and (rid.min() < 0 or rid.max() >= self._n):
            raise KeyError(
                f"unknown round id in [{rid.min()}, {rid.max()}]; the log has rounds 0..{self._n - 1}"
            )
        if np.unique(rid).size != rid.size:
            raise ValueError("a round id appears twice in one add_rewards call")
        if not np.all(np.isfinite(r)):
            raise ValueError("rewards must be finite")
        have = ~np.isnan(self._cols["rewards"][rid])
        if have.any():
            raise ValueError(f"round {int(rid[have][0])} already has a reward; rewards are set once")
        self._cols["rewards"][rid] = r

    def pending(self) -> np.ndarray:
        """(M,) round ids still waiting for their reward."""
        return np.flatnonzero(np.isnan(self._cols["rewards"][: self._n])).astype(np.int64)

    def data(self, *, generations: int | list[int] | None = None) -> LoggedData:
        """The rounds with known rewards (optionally only of the given generations), sorted by round id."""
        c = {k: v[: self._n] for k, v in self._cols.items()}
        keep = ~np.isnan(c["rewards"])
        if generations is not None:
            keep &= np.isin(c["generations"], np.atleast_1d(generations))
        idx = np.flatnonzero(keep)
        af = c["action_features"][idx] if self.action_feature_dim else None
        return LoggedData(
            c["contexts"][idx],
            c["actions"][idx],
            c["rewards"][idx],
            c["propensities"][idx],
            c["available"][idx],
            c["probabilities"][idx],
            af,
            idx.astype(np.int64),
            c["generations"][idx],
        )

    # ---- parquet ---------------------------------------------------------------------------------------

    def to_parquet(self, path: str | os.PathLike) -> Path:
        """Write the whole log (pending rewards as nulls) to ``path`` atomically (temp file + os.replace)."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        n, k, d, f = self._n, self.n_actions, self.context_dim, self.action_feature_dim
        c = {name: arr[:n] for name, arr in self._cols.items()}

        def fixed(values: np.ndarray, width: int, typ: pa.DataType) -> pa.Array:
            return pa.FixedSizeListArray.from_arrays(pa.array(values.reshape(-1), type=typ), width)

        reward = c["rewards"]
        cols = {
            "round": pa.array(np.arange(n, dtype=np.int64)),
            "generation": pa.array(c["generations"]),
            "action": pa.array(c["actions"]),
            "propensity": pa.array(c["propensities"]),
            "reward": pa.array(reward, mask=np.isnan(reward)),
            "context": fixed(c["contexts"], d, pa.float64()),
            "available": fixed(c["available"], k, pa.bool_()),
            "probabilities": fixed(c["probabilities"], k, pa.float64()),
        }
        if f:
            cols["action_features"] = fixed(c["action_features"], k * f, pa.float64())
        meta = {"format": LOG_FORMAT, "n_actions": k, "context_dim": d, "action_feature_dim": f}
        table = pa.table(cols).replace_schema_metadata({"drex": json.dumps(meta)})
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
        os.close(fd)
        try:
            pq.write_table(table, tmp)
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return target

    @classmethod
    def read_parquet(cls, path: str | os.PathLike) -> DecisionLog:
        """Read a log written by :meth:`to_parquet` (other parquet files are refused)."""
        import pyarrow.parquet as pq

        table = pq.read_table(path)
        raw = (table.schema.metadata or {}).get(b"drex")
        meta = json.loads(raw) if raw else {}
        if meta.get("format") != LOG_FORMAT:
            raise ValueError(f"{path} is not a DREX bandit decision log (format {meta.get('format')!r})")
        k, d, f = int(meta["n_actions"]), int(meta["context_dim"]), int(meta["action_feature_dim"])
        log = cls(k, d, action_feature_dim=f)
        n = table.num_rows

        def flat(name: str, dtype) -> np.ndarray:
            return table.column(name).combine_chunks().flatten().to_numpy(zero_copy_only=False).astype(dtype)

        if not np.array_equal(table.column("round").to_numpy(), np.arange(n)):
            raise ValueError(
                f"{path}: round ids are not 0..{n - 1} in order; the file was not written by DREX"
            )
        log._reserve(n)
        c = log._cols
        c["contexts"][:n] = flat("context", np.float64).reshape(n, d)
        c["available"][:n] = flat("available", bool).reshape(n, k)
        c["probabilities"][:n] = flat("probabilities", np.float64).reshape(n, k)
        c["actions"][:n] = table.column("action").to_numpy()
        c["propensities"][:n] = table.column("propensity").to_numpy()
        c["rewards"][:n] = table.column("reward").to_numpy(zero_copy_only=False)
        c["generations"][:n] = table.column("generation").to_numpy()
        if f:
            c["action_features"][:n] = flat("action_features", np.float64).reshape(n, k, f)
        log._n = n
        return log
