"""A key -> bytes store in one SQLite file: the on-disk caches of the learned decision-makers.

WAL journal (readers never block the writer), a 30 s busy timeout (several processes may share one file),
reads chunked under SQLite's limit on bound parameters, each ``put_many`` one transaction (all or nothing).
Keys are ``str`` or ``bytes``, as the caller chooses; values are bytes. What a value means, and why its key is
look-ahead safe, is the caller's business (``experts.cache``, ``router.cache``).
"""
from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

__all__ = ["KeyValueStore"]

_CHUNK = 900  # SQLite's default limit on bound parameters is 999


class KeyValueStore:
    """``get_many`` / ``put_many`` over one table ``(key PRIMARY KEY, value BLOB)`` of the SQLite file ``path``
    (its folder is created)."""

    def __init__(self, path: str | Path, table: str) -> None:
        if not table.isidentifier():
            raise ValueError(f"table must be an identifier, got {table!r}")
        self.path, self.table = Path(path), table
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as con:
            con.execute("PRAGMA journal_mode=WAL")
            con.execute(f"CREATE TABLE IF NOT EXISTS {table} (key PRIMARY KEY, value BLOB NOT NULL)")

    def _connect(self) -> sqlite3.Connection:
        return sqlite3.connect(self.path, timeout=30)

    def get_many(self, keys: Sequence[Any]) -> dict[Any, bytes]:
        """The stored values among ``keys`` (missing keys are absent from the result)."""
        out: dict[Any, bytes] = {}
        uniq = list(dict.fromkeys(keys))
        con = self._connect()
        try:
            for i in range(0, len(uniq), _CHUNK):
                part = uniq[i:i + _CHUNK]
                rows = con.execute(f"SELECT key, value FROM {self.table} WHERE key IN ({','.join('?' * len(part))})",
                                   part).fetchall()
                out.update((bytes(k) if isinstance(k, memoryview) else k, bytes(v)) for k, v in rows)
        finally:
            con.close()
        return out

    def put_many(self, items: Iterable[tuple[Any, bytes]]) -> None:
        """Insert (or replace) ``(key, value)`` pairs in one transaction."""
        data = list(items)
        if not data:
            return
        con = self._connect()
        try:
            with con:
                con.executemany(f"INSERT OR REPLACE INTO {self.table} (key, value) VALUES (?, ?)", data)
        finally:
            con.close()

    def __len__(self) -> int:
        con = self._connect()
        try:
            return int(con.execute(f"SELECT COUNT(*) FROM {self.table}").fetchone()[0])
        finally:
            con.close()
