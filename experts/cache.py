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
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import NamedTuple

from markets.kvstore import KeyValueStore

__all__ = ["CachedAnswer", "DecisionCache", "decision_key"]


class CachedAnswer(NamedTuple):
    answer: str
    exposure: float
    malformed: bool


def decision_key(identity: str, settings: dict, prompt: str) -> str:
    """The cache key of one prompt under a checkpoint identity and decoding settings."""
    head = identity + "\x00" + json.dumps(settings, sort_keys=True) + "\x00"
    return hashlib.sha256((head + prompt).encode()).hexdigest()


class DecisionCache:
    """Answers by key in one SQLite file (default ``$DREX_HOME/cache/decisions/decisions.sqlite``); a value is
    the JSON ``[answer, exposure, malformed]``."""

    def __init__(self, path: str | Path | None = None) -> None:
        if path is None:
            from markets.home import data_home

            path = Path(data_home("cache")) / "decisions" / "decisions.sqlite"
        self.store = KeyValueStore(path, "answers_v2")
        self.path = self.store.path

    def get_many(self, keys: Sequence[str]) -> dict[str, CachedAnswer]:
        """The cached answers among ``keys`` (missing keys are absent from the result)."""
        out = {}
        for key, value in self.store.get_many(keys).items():
            answer, exposure, malformed = json.loads(value)
            out[key] = CachedAnswer(answer, float(exposure), bool(malformed))
        return out

    def put_many(self, rows: Iterable[tuple[str, CachedAnswer]]) -> None:
        """Insert (or replace) answers in one transaction."""
        self.store.put_many((k, json.dumps([a.answer, float(a.exposure), bool(a.malformed)]).encode())
                            for k, a in rows)

    def __len__(self) -> int:
        return len(self.store)
