"""markets.load: spec parsing, the source registry, start/end handling, and the light import."""

from __future__ import annotations

import subprocess
import sys
from datetime import date, datetime

import pandas as pd
import pytest

import markets
from markets import DataError
from markets.sources import parse_spec, register_source


def test_parse_spec():
    assert parse_spec("yf:AAPL?interval=1h&auto_adjust=false") == (
        "yf",
        "AAPL",
        {"interval": "1h", "auto_adjust": "false"},
    )
    assert parse_spec("ccxt:binance:BTC/USDT:1h") == ("ccxt", "binance:BTC/USDT:1h", {})
    assert parse_spec("FILE:/tmp/x.csv") == ("file", "/tmp/x.csv", {})


@pytest.mark.parametrize("spec", ["SP500", "nope:SP500", "sample:", ":x", "synth:regimes?seed"])
def test_bad_specs_list_valid_forms(spec):
    with pytest.raises(DataError) as info:
        markets.load(spec)
    assert info.value.rule == "bad-spec"
    if "valid forms" in str(info.value):
        for form in (
            "sample:NAME",
            "yf:TICKER",
            "ccxt:EXCHANGE:BASE/QUOTE:TIMEFRAME",
            "file:PATH",
            "synth:regimes",
        ):
            assert form in str(info.value)


def test_list_sources_and_duplicate_registration():
    schemes = [s.scheme for s in markets.list_sources()]
    assert schemes == ["sample", "yf", "ccxt", "file", "synth"]
    assert {s.scheme for s in markets.list_sources() if s.network} == {"yf", "ccxt"}
    with pytest.raises(ValueError, match="already registered"):
        register_source("yf", lambda *a, **k: None, form="yf:X", example="yf:X", description="dup")


def test_start_end_inclusive_and_naive_is_utc():
    bars = markets.load("sample:SP500", "2018-12-24", "2018-12-31")
    assert bars.index[0] == pd.Timestamp("2018-12-24", tz="UTC")
    assert bars.index[-1] == pd.Timestamp("2018-12-31", tz="UTC")
    same = markets.load("sample:SP500", datetime(2018, 12, 24), date(2018, 12, 31))
    assert same.equals(bars)
    aware = markets.load(
        "sample:SP500",
        pd.Timestamp("2018-12-23 19:00", tz="America/New_York"),
        pd.Timestamp("2018-12-31", tz="UTC"),
    )
    assert aware.index[0] == pd.Timestamp("2018-12-24", tz="UTC")


def test_date_only_end_covers_the_whole_day():
    hourly = markets.load("synth:regimes?n=72&freq=1h&start=2021-01-01")
    assert markets.load("synth:regimes?n=72&freq=1h&start=2021-01-01", end="2021-01-02").index[
        -1
    ] == pd.Timestamp("2021-01-02 23:00", tz="UTC")
    assert len(hourly) == 72


@pytest.mark.parametrize(
    "kw, rule",
    [
        ({"start": "2018-13-45"}, "bad-start"),
        ({"end": "yesterdayish"}, "bad-end"),
        ({"start": "2018-02-01", "end": "2018-01-01"}, "bad-range"),
        ({"start": "2030-01-01"}, "too-short"),
    ],
)
def test_bad_dates(kw, rule):
    with pytest.raises(DataError) as info:
        markets.load("sample:SP500", **kw)
    assert info.value.rule == rule


def test_result_attrs_and_validation():
    bars = markets.load("sample:NASDAQ", "2018-01-01")
    assert bars.attrs == {"symbol": "NASDAQ", "spec": "sample:NASDAQ"}
    assert bars.index.name == "timestamp" and str(bars.index.tz) == "UTC"


def test_fields_assets_combine():
    a = markets.load("sample:SP500", "2018-01-01", "2018-03-31")
    with pytest.raises(DataError, match=r"only 0 bar\(s\).*data spans 1986-03-13"):  # MSFT ends 2017-11
        markets.load("sample:MSFT", "2018-01-01", "2018-03-31")
    b = markets.load("sample:NASDAQ", "2018-02-01", "2018-03-31")
    multi = markets.combine({"SP": a, "NQ": b})
    assert markets.assets(multi) == ["SP", "NQ"]
    assert multi.index[0] == pd.Timestamp("2018-02-01", tz="UTC")
    close = markets.fields(multi, "close")
    assert list(close.columns) == ["SP", "NQ"] and close.shape == (len(multi), 2)
    single = markets.fields(a, "close")
    assert list(single.columns) == ["SP500"]
    assert markets.assets(a) == ["SP500"]
    with pytest.raises(DataError, match="unknown field"):
        markets.fields(a, "price")
    with pytest.raises(DataError, match="share no timestamp"):
        markets.combine({"A": a.loc[:"2018-01-31"], "B": b})


def test_import_is_light():
    code = (
        "import sys, markets; print(sorted(m for m in ('pandas', 'numpy', 'pyarrow', 'ccxt', 'yfinance') "
        "if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
