"""DREX market data: load, validate and repair canonical bars; features; synthetic regimes.

Cheap to import: pandas and the sources load on first use of a name below (``drex --help`` imports this).

    >>> import markets
    >>> bars = markets.load("sample:SP500", "2018-01-01", "2018-12-31")
    >>> close = markets.fields(markets.load("sample:AAPL,JPM"), "close")   # (T, 2)
"""

from __future__ import annotations

import importlib

from markets.errors import DataError, OfflineFallback
from markets.home import data_home

__all__ = [
    "FIELDS",
    "DataError",
    "OfflineFallback",
    "RepairReport",
    "assets",
    "combine",
    "data_home",
    "features",
    "fields",
    "list_sources",
    "load",
    "register_source",
    "repair",
    "samples",
    "synthetic",
    "validate",
]

_LAZY = {
    "load": "markets.sources",
    "list_sources": "markets.sources",
    "register_source": "markets.sources",
    "validate": "markets.validation",
    "repair": "markets.cleaning",
    "RepairReport": "markets.cleaning",
    "fields": "markets.frames",
    "assets": "markets.frames",
    "combine": "markets.frames",
    "FIELDS": "markets.frames",
    "samples": "markets.bundled",
}
_SUBMODULES = {
    "features",
    "synthetic",
    "sources",
    "validation",
    "frames",
    "cache",
    "yahoo",
    "crypto",
    "files",
    "cleaning",
    "bundled",
    "timestamps",
}


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    if name in _SUBMODULES:
        return importlib.import_module(f"markets.{name}")
    raise AttributeError(f"module 'markets' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(__all__) | set(globals()))
