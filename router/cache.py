"""The router's on-disk output cache: routing log-weights and regime probabilities per (router, input).

``$DREX_HOME/cache/router/router.sqlite`` (SQLite, WAL). Key = blake2b(router identity, device, micro-batch,
the bar's chart bytes, chunk tokens and now features); value = the float64 vector ``[log weights (K),
regime probabilities (P)]``. Row t's inputs are built from bars ``0..t`` only, so bars after t can never change
row t's key: the cache is look-ahead safe by construction (as the experts' decision cache). A repeated backtest
in a new process, or a paper tick that needs every row (``turnover_penalty > 0``), only routes bars it has not
seen. Writes are one transaction per call (atomic).
"""
from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from markets.kvstore import KeyValueStore

__all__ = ["RouterCache", "router_identity"]


def router_identity(folder: str | Path) -> str:
    """A content hash of a router folder (``config.json`` and ``model.safetensors``; an ``adapter/`` too)."""
    folder = Path(folder)
    h = hashlib.blake2b(digest_size=16)
    for f in sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix in (".json", ".safetensors")):
        h.update(str(f.relative_to(folder)).encode() + b"\0" + f.read_bytes())
    return h.hexdigest()


class RouterCache:
    """Router outputs by key in one SQLite file (default ``$DREX_HOME/cache/router/router.sqlite``); a value is
    the float64 vector's bytes."""

    def __init__(self, path: str | Path | None = None) -> None:
        if path is None:
            from markets.home import data_home

            path = Path(data_home("cache")) / "router" / "router.sqlite"
        self.store = KeyValueStore(path, "outputs")
        self.path = self.store.path

    def get_many(self, keys: Sequence[bytes]) -> dict[bytes, np.ndarray]:
        """The cached vectors among ``keys`` (missing keys are absent from the result)."""
        return {k: np.frombuffer(v, dtype=np.float64).copy() for k, v in self.store.get_many(keys).items()}

    def put_many(self, items: Mapping[bytes, np.ndarray]) -> None:
        """Store vectors by key in one transaction."""
        self.store.put_many((k, np.ascontiguousarray(v, dtype=np.float64).tobytes()) for k, v in items.items())
