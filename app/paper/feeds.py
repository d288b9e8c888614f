"""Where a paper run's bars come from, and which of them are complete at a given time.

* ``ReplayFeed``: bars loaded once (bundled samples, cached downloads or ``file:PATH`` through
  ``markets.load(..., offline=True)``) and revealed by a simulated clock.
* ``LiveFeed``: ``markets.load(spec, start, now, offline=False)`` on every tick (ccxt public OHLCV or
  yfinance, with the data layer's cache fallback). Only public market-data endpoints are ever called.

A bar stamped ``ts`` is complete when ``now >= ts + interval``; a still-forming bar is never returned.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    import pandas as pd

    from app.paper.config import PaperConfig

__all__ = ["BarFeed", "LiveFeed", "ReplayFeed", "completed", "feed_for", "load_bars"]


class BarFeed(Protocol):
    """``completed_bars(now)``: every complete bar up to ``now``, canonical bars ``(T, 5)`` or ``(T, 5N)``."""

    def completed_bars(self, now: datetime) -> pd.DataFrame: ...


def completed(bars: pd.DataFrame, now: datetime, interval_s: int) -> pd.DataFrame:
    """The rows of ``bars`` complete at ``now``: ``ts + interval <= now`` (a view; attrs kept)."""
    import pandas as pd

    cutoff = pd.Timestamp(now) - pd.Timedelta(seconds=interval_s)
    out = bars.loc[bars.index <= cutoff]
    out.attrs = dict(bars.attrs)
    return out


def load_bars(spec: str, *, start: datetime | None, end: datetime | None, offline: bool) -> pd.DataFrame:
    """Canonical, validated bars for a ``markets`` spec between ``start`` and ``end`` (inclusive)."""
    try:
        from markets import load
    except ImportError as exc:  # the data layer's sources are missing from this install
        raise ValueError(f"data spec {spec!r} needs markets.load, which failed to import: {exc}") from None
    return load(spec, start=start, end=end, offline=offline)


@dataclass
class ReplayFeed:
    """Stored bars revealed by a simulated clock (``completed_bars(now)``)."""

    bars: pd.DataFrame
    interval_s: int

    def completed_bars(self, now: datetime) -> pd.DataFrame:
        return completed(self.bars, now, self.interval_s)

    def next_close(self, *, after: datetime | None, start: datetime | None) -> datetime | None:
        """The simulated ``now`` of the next replay tick: the close of the first bar after ``after`` (or the
        first bar at/after ``start``); None once the data is exhausted."""
        idx = self.bars.index
        if after is not None:
            idx = idx[idx > after]
        if start is not None:
            idx = idx[idx >= start]
        if len(idx) == 0:
            return None
        return idx[0].to_pydatetime() + timedelta(seconds=self.interval_s)


@dataclass
class LiveFeed:
    """Bars fetched from the public market-data source on every call."""

    spec: str
    start: datetime | None
    interval_s: int
    calls: list[datetime] = field(default_factory=list)

    def completed_bars(self, now: datetime) -> pd.DataFrame:
        self.calls.append(now)
        bars = load_bars(self.spec, start=self.start, end=now, offline=False)
        return completed(bars, now, self.interval_s)


def feed_for(config: PaperConfig) -> ReplayFeed | LiveFeed:
    """The feed a config asks for (replay loads its bars now, offline)."""
    if config.mode == "live":
        return LiveFeed(config.data, config.history_start, config.interval_seconds)
    bars = load_bars(config.data, start=config.history_start, end=config.end, offline=True)
    return ReplayFeed(bars, config.interval_seconds)
