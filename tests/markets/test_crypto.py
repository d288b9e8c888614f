"""ccxt: specs with a real ``ccxt.binance()`` whose HTTP ``fetch`` serves Binance-shaped JSON from a fixture.

ccxt's own code signs the requests, parses ``exchangeInfo`` into markets and klines into candles; only the
transport is replaced (as in ccxt's static tests). The fixture holds the raw Binance response shapes.
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import ccxt
import pandas as pd
import pytest

import markets
from markets import DataError, OfflineFallback, crypto
from markets.cache import cache_path

FIXTURE = json.loads((Path(__file__).parent / "fixtures" / "binance_btcusdt_1h.json").read_text())
KLINES = FIXTURE["klines"]  # 300 hourly candles from 2024-01-01 00:00 UTC
HOUR = 3_600_000
T0 = KLINES[0][0]
NOW = T0 + 299 * HOUR + 20 * 60_000  # 20 minutes into the last candle: it is still forming


class FakeBinance:
    """The HTTP layer of a ccxt binance object: public GET endpoints from the fixture, anything else fails."""

    def __init__(self, now: int = NOW):
        self.urls: list[str] = []
        self.headers: list[dict] = []
        self.now = now
        self.failures = 0  # raise NetworkError on this many upcoming klines requests
        self.error: Exception | None = None

    def __call__(self, url, method="GET", headers=None, body=None):
        self.urls.append(url)
        self.headers.append(dict(headers or {}))
        parsed = urlparse(url)
        assert method == "GET" and parsed.netloc == "api.binance.com", url
        if parsed.path == "/api/v3/exchangeInfo":
            return FIXTURE["exchangeInfo"]
        assert parsed.path == "/api/v3/klines", f"unexpected endpoint {url}"
        if self.error is not None:
            raise self.error
        if self.failures:
            self.failures -= 1
            raise ccxt.RequestTimeout("binance GET https://api.binance.com/api/v3/klines request timed out")
        q = {k: v[0] for k, v in parse_qs(parsed.query).items()}
        assert q["symbol"] == "BTCUSDT" and q["interval"] == "1h"
        start, limit = int(q.get("startTime", 0)), int(q["limit"])
        rows = [k for k in KLINES if k[0] >= start and k[0] <= self.now]
        return rows[:limit]


@pytest.fixture
def exchange(monkeypatch):
    """A real ccxt.binance() restricted to spot markets, with the fixture transport and a frozen clock."""
    ex = ccxt.binance({"enableRateLimit": True, "options": {"fetchMarkets": {"types": ["spot"]}}})
    ex.fetch = FakeBinance()
    ex.milliseconds = lambda: ex.fetch.now
    monkeypatch.setattr(crypto, "_make_exchange", lambda exchange_id: ex)
    sleeps: list[float] = []
    monkeypatch.setattr(crypto, "_sleep", sleeps.append)
    ex.backoff_sleeps = sleeps
    throttle: list[float] = []
    monkeypatch.setattr(
        importlib.import_module("ccxt.base.exchange").time, "sleep", throttle.append
    )  # ccxt's rate limiter waits here
    ex.throttle_sleeps = throttle
    return ex


def klines_urls(ex) -> list[dict]:
    return [{k: v[0] for k, v in parse_qs(urlparse(u).query).items()} for u in ex.fetch.urls if "klines" in u]


def test_parses_real_shape_and_drops_forming_candle(exchange):
    bars = markets.load("ccxt:binance:BTC/USDT:1h", "2024-01-01")
    assert len(bars) == 299  # the 300th candle opened 20 minutes ago: dropped
    assert bars.index[0] == pd.Timestamp("2024-01-01", tz="UTC")
    assert bars.index[-1] == pd.Timestamp(T0 + 298 * HOUR, unit="ms", tz="UTC")
    first = KLINES[0]
    assert bars.iloc[0].tolist() == [
        float(first[1]),
        float(first[2]),
        float(first[3]),
        float(first[4]),
        float(first[5]),
    ]
    assert bars.attrs["symbol"] == "BTC/USDT"
    assert cache_path("ccxt", "binance_BTC/USDT", "1h").name == "binance_BTC-USDT_1h.parquet"
    assert cache_path("ccxt", "binance_BTC/USDT", "1h").exists()


def test_pagination_loops_on_since_and_dedupes(exchange, monkeypatch):
    monkeypatch.setattr(crypto, "PAGE_LIMIT", 100)
    bars = markets.load("ccxt:binance:BTC/USDT:1h", "2024-01-01")
    starts = [int(q["startTime"]) for q in klines_urls(exchange)]
    assert starts == [T0, T0 + 100 * HOUR, T0 + 200 * HOUR]  # each page starts after the last candle seen
    assert len(bars) == 299 and bars.index.is_unique


def test_paged_helper_stops_at_until_and_skips_overlaps(exchange):
    exchange.load_markets()
    rows = crypto.fetch_ohlcv_paged(
        exchange, "BTC/USDT", "1h", since_ms=T0 + 10 * HOUR, until_ms=T0 + 140 * HOUR, limit=50
    )
    assert [r[0] for r in rows] == [T0 + h * HOUR for h in range(10, 141)]
    assert len(klines_urls(exchange)) == 3


def test_rate_limiter_is_on(exchange):
    markets.load("ccxt:binance:BTC/USDT:1h", "2024-01-01")
    assert exchange.enableRateLimit is True
    # with the clock frozen, ccxt's throttle must wait before every request after the first
    assert len(exchange.throttle_sleeps) >= len(exchange.fetch.urls) - 1
    assert exchange.throttle_sleeps and all(s > 0 for s in exchange.throttle_sleeps)


def test_retries_network_errors_with_exponential_backoff(exchange):
    exchange.fetch.failures = 3
    bars = markets.load("ccxt:binance:BTC/USDT:1h", "2024-01-01")
    assert len(bars) == 299
    assert exchange.backoff_sleeps == [1.0, 2.0, 4.0]


def test_exhausted_retries_fall_back_to_cache(exchange):
    markets.load("ccxt:binance:BTC/USDT:1h", "2024-01-01", "2024-01-05")
    exchange.fetch.failures = 99
    with pytest.warns(
        OfflineFallback,
        match=r"ccxt:binance_BTC/USDT \(1h\) failed \(binance BTC/USDT: "
        r"RequestTimeout.*using cached bars 2024-01-01",
    ):
        bars = markets.load("ccxt:binance:BTC/USDT:1h", "2024-01-01")
    assert bars.index[-1] == pd.Timestamp(
        "2024-01-05 23:00", tz="UTC"
    )  # the cached range (date-only end = whole day)
    assert exchange.backoff_sleeps[:5] == [1.0, 2.0, 4.0, 8.0]


def test_exhausted_retries_without_cache_is_an_error(exchange):
    exchange.fetch.failures = 99
    with pytest.raises(DataError, match="no cache") as info:
        markets.load("ccxt:binance:BTC/USDT:1h", "2024-01-01")
    assert info.value.rule == "network-no-cache"


def test_bad_symbol_is_a_clear_error_without_retry(exchange):
    with pytest.raises(DataError, match="binance has no market BTC/USDX; did you mean BTC/USDT") as info:
        markets.load("ccxt:binance:BTC/USDX:1h")
    assert info.value.rule == "bad-symbol" and exchange.backoff_sleeps == []
    exchange.fetch.error = ccxt.BadSymbol('binance {"code":-1121,"msg":"Invalid symbol."}')
    with pytest.raises(DataError, match="BadSymbol") as info:
        markets.load("ccxt:binance:BTC/USDT:1h", "2024-01-01")
    assert info.value.rule == "exchange-error" and exchange.backoff_sleeps == []
    with pytest.raises(DataError, match="no timeframe '7h'"):
        markets.load("ccxt:binance:BTC/USDT:7h")


def test_incremental_update_and_only_public_endpoints(exchange):
    markets.load("ccxt:binance:BTC/USDT:1h", "2024-01-01")
    exchange.fetch.now = NOW + 5 * HOUR  # five hours later (the fixture has no newer candles)
    n_before = len(klines_urls(exchange))
    markets.load("ccxt:binance:BTC/USDT:1h", "2024-01-01")
    update = klines_urls(exchange)[n_before:]
    assert int(update[0]["startTime"]) == T0 + 297 * HOUR  # from the second-to-last cached candle only
    for url, headers in zip(exchange.fetch.urls, exchange.fetch.headers, strict=True):
        path = urlparse(url).path
        assert path in ("/api/v3/exchangeInfo", "/api/v3/klines"), url  # never sapi/order/account endpoints
        assert "signature" not in url and "X-MBX-APIKEY" not in headers


def test_spec_errors():
    with pytest.raises(DataError, match="ccxt:binance:BTC/USDT:1h"):
        markets.load("ccxt:binance:BTCUSDT")
    with pytest.raises(DataError, match="unknown ccxt exchange 'binanse'; did you mean binance"):
        markets.load("ccxt:binanse:BTC/USDT:1h")
