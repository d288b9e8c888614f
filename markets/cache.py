"""Parquet cache of network bars: incremental updates, atomic writes, offline fallback.

Layout: ``data_home("cache")/<source>/<safe-symbol>_<interval>.parquet``. Each update fetches only what the
cache lacks (plus a two-bar overlap that refreshes a possibly still-forming last bar and detects re-adjusted
history), merges, de-duplicates (new rows win) and replaces the file atomically (temp file + ``os.replace``)
under a file lock, so a crash or network error never loses or corrupts cached bars.
"""

from __future__ import annotations

import os
import re
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from markets.errors import DataError, OfflineFallback
from markets.frames import FIELDS
from markets.home import data_home

__all__ = ["SourceUnavailable", "cache_path", "cached_fetch", "read_cache", "write_cache"]

_OVERLAP = 2
_ADJUST_RTOL = 1e-6


class SourceUnavailable(Exception):
    """Raised by a fetch function when the network source failed (after its own retries)."""


Fetch = Callable[[pd.Timestamp | None, pd.Timestamp | None], pd.DataFrame]
"""``fetch(start, end) -> canonical single-asset bars`` (possibly empty); raises SourceUnavailable."""


def cache_path(source: str, symbol: str, interval: str) -> Path:
    """``data_home("cache")/<source>/<safe-symbol>_<interval>.parquet`` (unsafe characters become ``-``)."""
    safe = re.sub(r"[^A-Za-z0-9._=^-]+", "-", symbol).strip("-") or "symbol"
    return data_home("cache", source) / f"{safe}_{re.sub(r'[^A-Za-z0-9]+', '-', interval)}.parquet"


def _read(path: Path) -> tuple[pd.DataFrame | None, str | None]:
    """``(bars, None)``, ``(None, None)`` when absent or empty, ``(None, why)`` when unreadable."""
    if not path.exists():
        return None, None
    try:
        bars = pd.read_parquet(path)
    except Exception as exc:  # noqa: BLE001 - any parquet/IO failure means "no usable cache"
        return None, f"{type(exc).__name__}: {' '.join(str(exc).split())[:200]}"
    return (bars if len(bars) else None), None


def read_cache(path: Path) -> pd.DataFrame | None:
    """The cached bars at ``path``, or None when absent; an unreadable file warns and counts as absent."""
    bars, why = _read(path)
    if why is not None:
        warnings.warn(
            f"ignoring unreadable cache file {path} ({why}); it will be rewritten on the next successful download",
            UserWarning,
            stacklevel=3,
        )
    return bars


def write_cache(path: Path, bars: pd.DataFrame) -> None:
    """Write ``bars`` to ``path`` atomically: a temp file in the same folder, then ``os.replace``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.stem + ".", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        frame = bars.copy()
        frame.attrs = {}
        frame.to_parquet(tmp, engine="pyarrow")
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _merge(*parts: pd.DataFrame | None) -> pd.DataFrame | None:
    frames = [p[list(FIELDS)] for p in parts if p is not None and len(p)]
    if not frames:
        return None
    out = pd.concat(frames)
    out = out[~out.index.duplicated(keep="last")].sort_index()
    out.index.name = "timestamp"
    return out


def _readjusted(cached: pd.DataFrame, fresh: pd.DataFrame) -> bool:
    """True when the overlap (all but the last cached bar) disagrees: the source re-adjusted its history."""
    common = cached.index[:-1].intersection(fresh.index)
    if len(common) == 0:
        return False
    old, new = cached.loc[common, "close"].to_numpy(), fresh.loc[common, "close"].to_numpy()
    return not np.allclose(old, new, rtol=_ADJUST_RTOL, atol=0.0)


def cached_fetch(
    fetch: Fetch,
    *,
    source: str,
    symbol: str,
    interval: str,
    start: pd.Timestamp | None,
    end: pd.Timestamp | None,
    offline: bool,
) -> pd.DataFrame:
    """Bars for ``symbol`` from the cache, updated from ``fetch`` unless ``offline``.

    Network failure (``SourceUnavailable``) with a cache returns the cache and warns ``OfflineFallback``;
    without a cache it raises ``DataError``. Other errors (bad symbol, bad data) propagate.
    """
    from filelock import FileLock

    path = cache_path(source, symbol, interval)
    label = f"{source}:{symbol} ({interval})"
    with FileLock(str(path) + ".lock"):
        if offline:
            cached, why = _read(path)
            if why is not None:
                raise DataError(
                    f"offline and the cache file {path} is unreadable ({why}); delete it and run once with "
                    "the network, or use bundled data (sample:NAME) or your own file (file:PATH)",
                    asset=symbol,
                    rule="bad-cache",
                )
            if cached is None:
                raise DataError(
                    f"offline and no cached bars for {label} at {path}; run once with the network, "
                    "or use bundled data (sample:NAME) or your own file (file:PATH)",
                    asset=symbol,
                    rule="no-cache",
                )
            return cached
        cached = read_cache(path)
        try:
            merged = _update(fetch, cached, start, end, label)
        except SourceUnavailable as exc:
            reason = " ".join(str(exc).split()) or type(exc).__name__
            if cached is None:
                raise DataError(
                    f"{label} failed ({reason}) and there is no cache at {path}; to work offline "
                    "use bundled data (sample:NAME) or your own file (file:PATH)",
                    asset=symbol,
                    rule="network-no-cache",
                ) from exc
            warnings.warn(
                f"{label} failed ({reason}); using cached bars {cached.index[0]} .. "
                f"{cached.index[-1]} ({len(cached)} rows) from {path}",
                OfflineFallback,
                stacklevel=4,
            )
            return cached
        if cached is None or not merged.equals(cached):
            write_cache(path, merged)
        return merged


def _update(fetch: Fetch, cached: pd.DataFrame | None, start, end, label: str) -> pd.DataFrame:
    if cached is None:
        fresh = fetch(start, end)
        if fresh is None or len(fresh) == 0:
            raise SourceUnavailable(f"no rows returned for {start or 'the beginning'} .. {end or 'now'}")
        return _merge(fresh)
    parts: list[pd.DataFrame | None] = [cached]
    if start is not None and start < cached.index[0]:
        parts.insert(0, fetch(start, cached.index[0]))  # may be empty: no earlier history exists
    if end is None or end > cached.index[-1]:
        since = cached.index[-min(_OVERLAP, len(cached))]
        fresh = fetch(since, end)
        if fresh is None or len(fresh) == 0:
            raise SourceUnavailable(f"no rows returned from {since} although the cache has bars there")
        if _readjusted(cached, fresh):
            # dividends/splits re-adjusted the whole history: replace the cache instead of mixing bases
            whole = fetch(min(cached.index[0], start) if start is not None else cached.index[0], end)
            if whole is None or len(whole) == 0:
                raise SourceUnavailable("re-adjusted history could not be downloaded again")
            return _merge(whole)
        parts.append(fresh)
    return _merge(*parts)
