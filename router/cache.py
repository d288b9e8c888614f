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
import sqlite3
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

__all__ = ["RouterCache", "router_identity"]

_SCHEMA = "CREATE TABLE IF NOT EXISTS outputs (key BLOB PRIMARY KEY, value BLOB NOT NULL)"


def router_identity(folder: str | Path) -> str:
    """A content hash of a router folder (``config.json`` and ``model.safetensors``; an ``adapter/`` too)."""
    folder = Path(folder)
    h = hashlib.blake2b(digest_size=16)
    for f in sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix in (".json", ".safetensors")):
        h.update(str(f.relative_to(folder)).encode() + b"\0" + f.read_bytes())
    return h.hexdigest()


class RouterCache:
    """Router outputs by key in one SQLite file (default ``$DREX_HOME/cache/router/router.sqlite``)."""

    def __init__(self, path: str | Path | None = None) -> None:
        if path is None:
            from markets.home import data_home

            path = Path(data_home("cache")) / "router" / "router.sqlite"
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as con:
            con.execute("PRAGMA journal_mode=WAL")
            con.execute(_SCHEMA)

    def _connect(self) -> sqlite3.Connection:
        return sqlite3.connect(self.path, timeout=30)

    def get_many(self, keys: Sequence[bytes]) -> dict[bytes, np.ndarray]:
        """The cached vectors among ``keys`` (missing keys are absent from the result)."""
        out: dict[bytes, np.ndarray] = {}
        uniq = list(dict.fromkeys(keys))
        con = self._connect()
        try:
            for i in range(0, len(uniq), 900):  # SQLite's default limit on bound parameters
                part = uniq[i:i + 900]
                rows = con.execute(f"SELECT key, value FROM outputs WHERE key IN ({','.join('?' * len(part))})",
                                   part).fetchall()
                out.update({bytes(k): np.frombuffer(v, dtype=np.float64).copy() for k, v in rows})
        finally:
            con.close()
        return out

    def put_many(self, items: Mapping[bytes, np.ndarray]) -> None:
        """Store vectors by key in one transaction."""
        if not items:
            return
        con = self._connect()
        try:
            with con:
                con.executemany("INSERT OR REPLACE INTO outputs (key, value) VALUES (?, ?)",
                                [(k, np.ascontiguousarray(v, dtype=np.float64).tobytes()) for k, v in items.items()])
        finally:
            con.close()
