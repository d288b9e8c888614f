"""``ccxt:EXCHANGE:BASE/QUOTE:TIMEFRAME``: exchange OHLCV through ccxt's public ``fetch_ohlcv``, cached.

Only public market-data endpoints are used (``load_markets``, ``fetch_ohlcv``); no API keys are read or sent.
Pagination loops on ``since`` until caught up (duplicates dropped), ccxt's own rate limiter is on
(``enableRateLimit``; it waits ``exchange.rateLimit`` ms between calls), transient failures
(``ccxt.NetworkError`` and its subclasses ``RequestTimeout``, ``ExchangeNotAvailable``, ``DDoSProtection``)
are retried with exponential backoff, and the still-forming last candle is dropped.
"""

from __future__ import annotations

import difflib
import time
from collections.abc import Callable
from functools import partial

import pandas as pd

from markets.cache import SourceUnavailable, cached_fetch
from markets.errors import DataError
from markets.frames import FIELDS

__all__ = ["DEFAULT_BARS", "PAGE_LIMIT", "fetch_ohlcv_paged", "load_ccxt"]

DEFAULT_BARS = 1000
"""Bars fetched on a first download when no ``start`` is given."""

PAGE_LIMIT = 1000
"""Candles asked per request (Binance spot serves at most 1000; exchanges with lower caps return fewer)."""

_sleep: Callable[[float], None] = time.sleep  # patched in tests


def _make_exchange(exchange_id: str):
    """A public (key-less) ccxt exchange with the rate limiter on."""
    import ccxt

    if exchange_id not in ccxt.exchanges:
        close = difflib.get_close_matches(exchange_id, ccxt.exchanges, n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else "; see ccxt.exchanges for valid ids"
        raise DataError(f"unknown ccxt exchange {exchange_id!r}{hint}", asset=exchange_id, rule="bad-spec")
    return getattr(ccxt, exchange_id)({"enableRateLimit": True})


def load_ccxt(
    body: str, params: dict[str, str], *, start: pd.Timestamp | None, end: pd.Timestamp | None, offline: bool
) -> pd.DataFrame:
    """Load ``EXCHANGE:BASE/QUOTE[:SETTLE]:TIMEFRAME`` (``body``), e.g. ``binance:BTC/USDT:1h``."""
    parts = body.split(":")
    if len(parts) < 3 or "/" not in parts[1] or not all(parts):
        raise DataError(
            f"ccxt spec must look like ccxt:binance:BTC/USDT:1h, got ccxt:{body}", rule="bad-spec"
        )
    if params:
        raise DataError(f"ccxt: takes no options, got {sorted(params)}", rule="bad-option")
    exchange_id, timeframe, symbol = parts[0].lower(), parts[-1], ":".join(parts[1:-1]).upper()
    bars = cached_fetch(
        partial(_fetch, exchange_id, symbol, timeframe),
        source="ccxt",
        symbol=f"{exchange_id}_{symbol}",
        interval=timeframe,
        start=start,
        end=end,
        offline=offline,
    )
    bars.attrs = {"symbol": symbol}
    return bars


def _fetch(
    exchange_id: str, symbol: str, timeframe: str, start: pd.Timestamp | None, end: pd.Timestamp | None
) -> pd.DataFrame:
    import ccxt

    exchange = _make_exchange(exchange_id)
    label = f"{exchange_id} {symbol}"
    try:
        _retry(exchange.load_markets)
        if symbol not in exchange.markets:
            close = difflib.get_close_matches(symbol, list(exchange.markets), n=3)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise DataError(f"{exchange_id} has no market {symbol}{hint}", asset=symbol, rule="bad-symbol")
        if exchange.timeframes and timeframe not in exchange.timeframes:
            raise DataError(
                f"{exchange_id} has no timeframe {timeframe!r}; valid: {', '.join(exchange.timeframes)}",
                asset=symbol,
                rule="bad-timeframe",
            )
        tf_ms = exchange.parse_timeframe(timeframe) * 1000
        now = exchange.milliseconds()
        since = _ms(start) if start is not None else now - DEFAULT_BARS * tf_ms
        until = _ms(end) if end is not None else None
        rows = fetch_ohlcv_paged(
            exchange, symbol, timeframe, since_ms=since, until_ms=until, limit=PAGE_LIMIT
        )
    except ccxt.NetworkError as exc:
        raise SourceUnavailable(f"{label}: {type(exc).__name__}: {str(exc)[:200]}") from exc
    except ccxt.BaseError as exc:  # BadSymbol, BadRequest, ExchangeError...: not worth a retry
        raise DataError(
            f"{label}: {type(exc).__name__}: {str(exc)[:300]}", asset=symbol, rule="exchange-error"
        ) from exc
    frame = pd.DataFrame(rows, columns=["timestamp", *FIELDS], dtype="float64")
    frame.index = pd.to_datetime(frame.pop("timestamp").astype("int64"), unit="ms", utc=True).rename(
        "timestamp"
    )
    frame.index = pd.DatetimeIndex(frame.index).as_unit("ns")
    frame.attrs = {"symbol": symbol}
    return frame


def _ms(ts: pd.Timestamp) -> int:
    """Milliseconds since the epoch, floored exactly (float ``timestamp()`` rounds 23:59:59.999999999 up)."""
    return int((ts - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(1, "ms"))


def _retry(call: Callable, *args, retries: int = 4, backoff_s: float = 1.0, **kwargs):
    """``call(*args, **kwargs)``, retried on ``ccxt.NetworkError`` after 1, 2, 4, ... x ``backoff_s`` s."""
    import ccxt

    for attempt in range(retries + 1):
        try:
            return call(*args, **kwargs)
        except ccxt.NetworkError:
            if attempt == retries:
                raise
            _sleep(backoff_s * 2**attempt)
    raise AssertionError("unreachable")


def fetch_ohlcv_paged(
    exchange,
    symbol: str,
    timeframe: str,
    *,
    since_ms: int,
    until_ms: int | None = None,
    limit: int = 1000,
    max_pages: int = 100_000,
    retries: int = 4,
    backoff_s: float = 1.0,
) -> list[list[float]]:
    """All complete candles from ``since_ms`` up to ``until_ms`` (default: now), page by page.

    Args:
        exchange: a ccxt exchange object (public; ``enableRateLimit`` is forced on).
        symbol: unified symbol, e.g. ``"BTC/USDT"``; timeframe: e.g. ``"1h"``.
        since_ms, until_ms: inclusive range of candle open times in ms since the epoch.

    Returns:
        ``[[ms, open, high, low, close, volume], ...]`` sorted, unique, without the still-forming candle
        (open time + timeframe > now).
    """
    exchange.enableRateLimit = True
    tf_ms = exchange.parse_timeframe(timeframe) * 1000
    now = exchange.milliseconds()
    stop = now if until_ms is None else min(until_ms, now)
    rows: dict[int, list] = {}
    since = since_ms
    for _ in range(max_pages):
        batch = _retry(
            exchange.fetch_ohlcv,
            symbol,
            timeframe,
            since=since,
            limit=limit,
            retries=retries,
            backoff_s=backoff_s,
        )
        if not batch:
            break
        for row in batch:
            rows[int(row[0])] = row
        last = int(batch[-1][0])
        if last < since:  # the exchange ignored `since`: nothing more to page through
            break
        since = last + tf_ms
        if since > stop:
            break
    return [
        rows[t]
        for t in sorted(rows)
        if t >= since_ms and t + tf_ms <= now and (until_ms is None or t <= until_ms)
    ]
