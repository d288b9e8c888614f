"""yf: specs with ``yf.download`` replaced by a fake returning frames in yfinance 1.7's real shape.

yfinance 1.7 ``download`` returns columns ``MultiIndex`` ``(Price, Ticker)`` even for one ticker, sorted by
price name, a tz-naive ``Date`` index for daily bars, adjusted OHLC by default (no ``Adj Close``) and the raw
OHLC plus ``Adj Close`` with ``auto_adjust=False``; its ``end`` is exclusive. vcrpy cannot intercept its
curl_cffi transport, hence the fake.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
import yfinance as yf

import markets
from markets import DataError, OfflineFallback
from markets.cache import cache_path

DAYS = pd.bdate_range("2024-01-02", "2024-03-29", name="Date")  # tz-naive, as yfinance gives daily bars


def raw_bars(ticker: str = "AAPL") -> pd.DataFrame:
    close = 100.0 + np.arange(len(DAYS), dtype=float)
    return pd.DataFrame(
        {
            "Open": close - 0.5,
            "High": close + 1.0,
            "Low": close - 1.0,
            "Close": close,
            "Volume": np.arange(len(DAYS)) * 10 + 1000,
        },
        index=DAYS,
    )


def yf_shape(frame: pd.DataFrame, ticker: str) -> pd.DataFrame:
    out = pd.concat({ticker: frame}, axis=1, names=["Ticker", "Price"])
    out.columns = out.columns.swaplevel(0, 1)
    return out.sort_index(level=0, axis=1)


class FakeYahoo:
    """Stands in for ``yf.download``: serves a fixed history, records every call, can fail on demand."""

    def __init__(self, factor: float = 0.5):
        self.calls: list[dict] = []
        self.factor = factor  # adjustment factor (dividends/splits) applied when auto_adjust=True
        self.fail: Exception | None = None
        self.empty = False

    def __call__(self, tickers, **kw):
        self.calls.append({"tickers": tickers, **kw})
        if self.fail is not None:
            raise self.fail
        raw = raw_bars(tickers)
        if self.empty:
            raw = raw.iloc[:0]
        if "start" in kw:
            raw = raw.loc[pd.Timestamp(kw["start"]) :]
        if "end" in kw:
            raw = raw.loc[: pd.Timestamp(kw["end"]) - pd.Timedelta(1, "ns")]  # end is exclusive
        if kw.get("auto_adjust", True):
            raw = raw.copy()
            raw[["Open", "High", "Low", "Close"]] *= self.factor
        else:
            raw = raw.assign(**{"Adj Close": raw["Close"] * self.factor})
        return yf_shape(raw, tickers)


@pytest.fixture
def fake(monkeypatch):
    f = FakeYahoo()
    monkeypatch.setattr(yf, "download", f)
    return f


def test_real_shape_becomes_canonical(fake):
    bars = markets.load("yf:aapl", "2024-01-02", "2024-01-31")
    assert bars.attrs["symbol"] == "AAPL" and str(bars.index.tz) == "UTC"
    assert bars.index[0] == pd.Timestamp("2024-01-02", tz="UTC") and bars.index[-1] == pd.Timestamp(
        "2024-01-31", tz="UTC"
    )
    assert bars["close"].iloc[0] == 50.0 and bars["volume"].iloc[1] == 1010.0  # adjusted by default
    call = fake.calls[0]
    assert call["tickers"] == "AAPL" and call["auto_adjust"] is True and call["progress"] is False
    assert (call["start"], call["end"]) == ("2024-01-02", "2024-02-01")  # end asked one day later (exclusive)


def test_auto_adjust_false_uses_raw_close_and_own_cache(fake):
    raw = markets.load("yf:AAPL?auto_adjust=false", "2024-01-02", "2024-01-10")
    adj = markets.load("yf:AAPL", "2024-01-02", "2024-01-10")
    assert raw["close"].iloc[0] == 100.0 and adj["close"].iloc[0] == 50.0
    assert fake.calls[0]["auto_adjust"] is False
    assert cache_path("yf", "AAPL-raw", "1d").exists() and cache_path("yf", "AAPL", "1d").exists()


def test_incremental_update_asks_only_for_the_new_range(fake):
    first = markets.load("yf:AAPL", "2024-01-02", "2024-01-31")
    second = markets.load("yf:AAPL", "2024-01-02", "2024-02-29")
    assert len(fake.calls) == 2
    # the update starts at the second-to-last cached bar (a 2-bar overlap checks for re-adjusted history)
    assert fake.calls[1]["start"] == "2024-01-30" and fake.calls[1]["end"] == "2024-03-01"
    assert second.loc[:"2024-01-31"].equals(first)
    assert second.index[-1] == pd.Timestamp("2024-02-29", tz="UTC")
    cached = pd.read_parquet(cache_path("yf", "AAPL", "1d"))
    assert cached.index[0] == pd.Timestamp("2024-01-02", tz="UTC") and len(cached) == len(second)
    # a range inside the cache does not touch the network
    markets.load("yf:AAPL", "2024-01-10", "2024-02-10")
    assert len(fake.calls) == 2


def test_readjusted_history_is_downloaded_again(fake):
    markets.load("yf:AAPL", "2024-01-02", "2024-01-31")
    fake.factor = 0.25  # a split: every past adjusted price changes
    bars = markets.load("yf:AAPL", "2024-01-02", "2024-02-29")
    assert fake.calls[-1]["start"] == "2024-01-02"  # full re-download, not a mix of two bases
    assert bars["close"].iloc[0] == 25.0 and bars["close"].iloc[-1] == pytest.approx(
        0.25 * (100 + len(pd.bdate_range("2024-01-02", "2024-02-29")) - 1)
    )


def test_offline_uses_cache_only(fake):
    with pytest.raises(DataError) as info:
        markets.load("yf:AAPL", offline=True)
    assert info.value.rule == "no-cache" and "sample:NAME" in str(info.value)
    markets.load("yf:AAPL", "2024-01-02", "2024-01-31")
    n = len(fake.calls)
    bars = markets.load("yf:AAPL", "2024-01-10", offline=True)
    assert len(fake.calls) == n and bars.index[0] == pd.Timestamp("2024-01-10", tz="UTC")


def test_env_offline(fake, monkeypatch):
    monkeypatch.setenv("DREX_OFFLINE", "1")
    with pytest.raises(DataError, match="rule no-cache"):
        markets.load("yf:AAPL")
    assert fake.calls == []


def test_network_failure_falls_back_to_cache_with_warning(fake):
    markets.load("yf:AAPL", "2024-01-02", "2024-01-31")
    fake.fail = ConnectionError("curl: (6) Could not resolve host: query2.finance.yahoo.com")
    with pytest.warns(OfflineFallback) as rec:
        bars = markets.load("yf:AAPL", "2024-01-02", "2024-02-29")
    msg = str(rec[0].message)
    assert "yf:AAPL" in msg and "Could not resolve host" in msg
    assert "2024-01-02 00:00:00+00:00 .. 2024-01-31 00:00:00+00:00" in msg
    assert bars.index[-1] == pd.Timestamp("2024-01-31", tz="UTC")


def test_empty_update_counts_as_failure(fake):
    markets.load("yf:AAPL", "2024-01-02", "2024-01-31")
    fake.empty = True  # yfinance logs the error and returns an empty frame
    with pytest.warns(OfflineFallback, match="no rows returned"):
        markets.load("yf:AAPL", "2024-01-02", "2024-02-29")


def test_network_failure_without_cache_is_an_error(fake):
    fake.fail = TimeoutError("timed out")
    with pytest.raises(DataError) as info:
        markets.load("yf:AAPL")
    assert info.value.rule == "network-no-cache" and "timed out" in str(info.value)
    assert "sample:NAME" in str(info.value) and "file:PATH" in str(info.value)
    fake.fail, fake.empty = None, True
    with pytest.raises(DataError, match="no rows returned"):
        markets.load("yf:NOSUCHTICKER")


def test_failed_write_keeps_the_old_cache(fake, monkeypatch):
    markets.load("yf:AAPL", "2024-01-02", "2024-01-31")
    path = cache_path("yf", "AAPL", "1d")
    before = path.read_bytes()

    def crash(self, *a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(pd.DataFrame, "to_parquet", crash)
    with pytest.raises(OSError, match="disk full"):
        markets.load("yf:AAPL", "2024-01-02", "2024-02-29")
    assert path.read_bytes() == before
    assert [p.name for p in path.parent.iterdir() if p.suffix == ".tmp"] == []


def test_intraday_tz_aware_index_is_converted(fake, monkeypatch):
    idx = pd.date_range("2024-07-01 09:30", periods=3, freq="1h", tz="America/New_York", name="Datetime")
    frame = pd.DataFrame(
        {
            "Open": [1.0, 2, 3],
            "High": [2.0, 3, 4],
            "Low": [0.5, 1, 2],
            "Close": [1.5, 2.5, 3.5],
            "Volume": [1, 2, 3],
        },
        index=idx,
    )
    monkeypatch.setattr(yf, "download", lambda t, **kw: yf_shape(frame, t))
    bars = markets.load("yf:SPY?interval=1h", "2024-07-01")
    assert bars.index[0] == pd.Timestamp("2024-07-01 13:30", tz="UTC")
    assert cache_path("yf", "SPY", "1h").exists()


def test_bad_options():
    with pytest.raises(DataError, match="interval '7m'"):
        markets.load("yf:AAPL?interval=7m")
    with pytest.raises(DataError, match="auto_adjust=true or auto_adjust=false"):
        markets.load("yf:AAPL?auto_adjust=maybe")
    with pytest.raises(DataError, match="one ticker"):
        markets.load("yf:AAPL,MSFT")


def test_no_warning_when_network_works(fake):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        markets.load("yf:AAPL", "2024-01-02", "2024-01-31")
        markets.load("yf:AAPL", "2024-01-02", "2024-02-29")


def test_corrupt_cache_file_is_ignored_and_rewritten(fake):
    path = cache_path("yf", "AAPL", "1d")
    path.write_bytes(b"not parquet")
    with pytest.warns(UserWarning, match="ignoring unreadable cache file"):
        bars = markets.load("yf:AAPL", "2024-01-02", "2024-01-31")
    assert len(bars) == 22 and len(pd.read_parquet(path)) == 22


def test_logged_failure_becomes_the_one_line_cause(monkeypatch, capsys):
    """yfinance logs a failed download (several lines) and returns an empty frame: the DataError carries the
    logged reason, and nothing of yfinance's own output reaches the terminal."""
    import logging

    def failing(tickers, **kw):
        log = logging.getLogger("yfinance")
        log.error("Failed to get ticker 'AAPL' reason: curl: (6) Could not resolve host")
        log.error("\n1 Failed download:\n['AAPL']: DNSError('Could not resolve host')")
        return pd.DataFrame()

    monkeypatch.setattr(yf, "download", failing)
    with pytest.raises(markets.DataError) as info:
        markets.load("yf:AAPL")
    assert info.value.rule == "network-no-cache"
    assert "DNSError('Could not resolve host')" in str(info.value)
    captured = capsys.readouterr()
    assert "Failed" not in captured.err + captured.out
    assert logging.getLogger("yfinance").propagate  # restored
