"""``yf:TICKER[?interval=1d&auto_adjust=true]``: Yahoo Finance bars through ``yfinance.download``, cached.

yfinance 1.7 returns ``(Price, Ticker)`` MultiIndex columns even for one ticker, adjusts prices by default
(``auto_adjust=True``: no ``Adj Close``), gives tz-naive daily indexes (taken here as UTC midnight of the
trading day) and tz-aware intraday ones (converted to UTC). It logs failures instead of raising and returns an
empty frame; an empty answer where bars must exist counts as a network failure (see ``markets.cache``).
"""

from __future__ import annotations

import contextlib
import logging
from functools import partial

import pandas as pd

from markets.cache import SourceUnavailable, cached_fetch
from markets.errors import DataError
from markets.frames import FIELDS

__all__ = ["INTERVALS", "canonical_yahoo", "load_yahoo"]

INTERVALS = ("1m", "2m", "5m", "15m", "30m", "60m", "90m", "1h", "1d", "5d", "1wk", "1mo", "3mo")


def _bool(value: str, name: str) -> bool:
    v = value.strip().lower()
    if v in ("1", "true", "yes", "on"):
        return True
    if v in ("0", "false", "no", "off"):
        return False
    raise DataError(
        f"option {name}={value!r} is not a boolean; use {name}=true or {name}=false", rule="bad-option"
    )


def load_yahoo(
    body: str, params: dict[str, str], *, start: pd.Timestamp | None, end: pd.Timestamp | None, offline: bool
) -> pd.DataFrame:
    """Load one Yahoo ticker (``body``); ``params``: ``interval`` (default ``1d``), ``auto_adjust``."""
    ticker = body.strip().upper()
    if not ticker or any(ch in ticker for ch in " ,/"):
        raise DataError(f"yf: takes one ticker such as yf:AAPL or yf:^GSPC, got {body!r}", rule="bad-spec")
    interval = params.get("interval", "1d")
    if interval not in INTERVALS:
        raise DataError(
            f"yf interval {interval!r} is not one of {', '.join(INTERVALS)}", asset=ticker, rule="bad-option"
        )
    adjust = _bool(params.get("auto_adjust", "true"), "auto_adjust")
    key = ticker if adjust else f"{ticker}-raw"
    bars = cached_fetch(
        partial(_download, ticker, interval, adjust),
        source="yf",
        symbol=key,
        interval=interval,
        start=start,
        end=end,
        offline=offline,
    )
    bars.attrs = {"symbol": ticker}
    return bars


@contextlib.contextmanager
def _quiet_yfinance():
    """Collect yfinance's log records (it logs download failures, often several lines per ticker, instead
    of raising) so the CLI can print one clear line; yields the list of collected messages."""
    messages: list[str] = []

    class _Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if record.levelno >= logging.WARNING:
                messages.append(record.getMessage())

    logger = logging.getLogger("yfinance")
    handler, propagate = _Collect(), logger.propagate
    logger.addHandler(handler)
    logger.propagate = False
    try:
        yield messages
    finally:
        logger.removeHandler(handler)
        logger.propagate = propagate


def _download(
    ticker: str, interval: str, adjust: bool, start: pd.Timestamp | None, end: pd.Timestamp | None
) -> pd.DataFrame:
    import yfinance as yf

    kwargs: dict = {
        "interval": interval,
        "auto_adjust": adjust,
        "progress": False,
        "threads": False,
        "multi_level_index": True,
    }
    if start is None:
        kwargs["period"] = "max"
    else:
        kwargs["start"] = start.tz_convert("UTC").strftime("%Y-%m-%d")
    if end is not None:  # yfinance's end is exclusive and date-granular: ask one day more, clip later
        kwargs["end"] = (end.tz_convert("UTC") + pd.Timedelta(days=1)).strftime("%Y-%m-%d")
    with _quiet_yfinance() as errors:
        try:
            raw = yf.download(ticker, **kwargs)
        except Exception as exc:
            raise SourceUnavailable(f"yfinance.download raised {type(exc).__name__}: {exc}") from exc
    if (raw is None or raw.empty) and errors:
        # yfinance logs failures instead of raising: report its last message as the cause, in one line
        lines = [line.strip() for msg in errors for line in msg.splitlines() if line.strip()]
        raise SourceUnavailable(lines[-1][:300] if lines else "yfinance reported a failed download")
    if raw is None or raw.empty:
        return pd.DataFrame(columns=list(FIELDS), dtype="float64")
    return canonical_yahoo(raw, ticker)


def canonical_yahoo(raw: pd.DataFrame, ticker: str) -> pd.DataFrame:
    """Turn a ``yf.download`` frame (flat or ``(Price, Ticker)`` columns) into canonical UTC bars.

    Rows with no price at all (yfinance's union index across tickers) are dropped; ``Adj Close`` is ignored.
    """
    frame = raw
    if isinstance(frame.columns, pd.MultiIndex):
        names = list(frame.columns.names)
        level = names.index("Ticker") if "Ticker" in names else None
        if level is None:  # find the level that is not the price names
            level = next(
                i
                for i in range(frame.columns.nlevels)
                if "Close" not in set(frame.columns.get_level_values(i))
            )
        tickers = list(dict.fromkeys(frame.columns.get_level_values(level)))
        pick = ticker if ticker in tickers else (tickers[0] if len(tickers) == 1 else None)
        if pick is None:
            raise DataError(
                f"yfinance answer has tickers {tickers}, not {ticker}", asset=ticker, rule="bad-response"
            )
        frame = frame.xs(pick, axis=1, level=level)
    frame = frame.rename(columns=lambda c: str(c).strip().lower())
    missing = [f for f in FIELDS if f not in frame.columns]
    if missing:
        raise DataError(
            f"yfinance answer lacks {missing} (columns {list(frame.columns)})",
            asset=ticker,
            rule="missing-column",
        )
    bars = frame[list(FIELDS)].astype("float64")
    bars = bars[bars[list(FIELDS[:4])].notna().any(axis=1)]
    index = pd.DatetimeIndex(bars.index)
    index = index.tz_localize("UTC") if index.tz is None else index.tz_convert("UTC")
    bars.index = index.as_unit("ns").rename("timestamp")
    bars.columns.name = None
    bars.attrs = {"symbol": ticker}
    return bars
