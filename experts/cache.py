"""The on-disk decision cache: one row per (checkpoint, decoding settings, prompt text).

``$DREX_HOME/cache/decisions/decisions.sqlite`` (SQLite, WAL). The key is
``sha256(checkpoint identity, decoding settings, prompt text)``; the value the answer text, the parsed
exposure and the malformed flag. Since a prompt at row t is built from bars ``0..t`` only, truncating or
changing bars after t cannot change row t's prompt, hence its key, hence its cached answer: the cache is
look-ahead safe by construction. A second backtest over the same history is a lookup; a paper tick only
generates the new rows. Writes are one transaction per batch (atomic).
"""
from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import NamedTuple

__all__ = ["CachedAnswer", "DecisionCache", "decision_key"]

_SCHEMA = """CREATE TABLE IF NOT EXISTS answers (
    key TEXT PRIMARY KEY, answer TEXT NOT NULL, exposure REAL NOT NULL, malformed INTEGER NOT NULL)"""


class CachedAnswer(NamedTuple):
    answer: str
    exposure: float
    malformed: bool


def decision_key(identity: str, settings: dict, prompt: str) -> str:
    """The cache key of one prompt under a checkpoint identity and decoding settings."""
    head = identity + "\x00" + json.dumps(settings, sort_keys=True) + "\x00"
    return hashlib.sha256((head + prompt).encode()).hexdigest()


class DecisionCache:
    """Answers by key in one SQLite file (default ``$DREX_HOME/cache/decisions/decisions.sqlite``)."""

    def __init__(self, path: str | Path | None = None) -> None:
        if path is None:
            from markets.home import data_home

            path = Path(data_home("cache")) / "decisions" / "decisions.sqlite"
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as con:
            con.execute("PRAGMA journal_mode=WAL")
            con.execute(_SCHEMA)

    def _connect(self) -> sqlite3.Connection:
        return sqlite3.connect(self.path, timeout=30)

    def get_many(self, keys: Sequence[str]) -> dict[str, CachedAnswer]:
        """The cached answers among ``keys`` (missing keys are absent from the result)."""
        out: dict[str, CachedAnswer] = {}
        uniq = list(dict.fromkeys(keys))
        con = self._connect()
        try:
            for i in range(0, len(uniq), 900):  # SQLite's default limit on bound parameters
                chunk = uniq[i: i + 900]
                rows = con.execute(
                    f"SELECT key, answer, exposure, malformed FROM answers WHERE key IN ({','.join('?' * len(chunk))})",
                    chunk,
                ).fetchall()
                for key, answer, exposure, malformed in rows:
                    out[key] = CachedAnswer(answer, float(exposure), bool(malformed))
        finally:
            con.close()
        return out

    def put_many(self, rows: Iterable[tuple[str, CachedAnswer]]) -> None:
        """Insert (or replace) answers in one transaction."""
        data = [(k, a.answer, float(a.exposure), int(a.malformed)) for k, a in rows]
        if not data:
            return
        con = self._connect()
        try:
            with con:
                con.executemany("INSERT OR REPLACE INTO answers VALUES (?, ?, ?, ?)", data)
        finally:
            con.close()

    def __len__(self) -> int:
        con = self._connect()
        try:
            return int(con.execute("SELECT COUNT(*) FROM answers").fetchone()[0])
        finally:
            con.close()
