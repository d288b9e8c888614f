"""Bundled sample data: every name loads, validates and spans the documented dates."""

from __future__ import annotations

import pandas as pd
import pytest

import markets
from markets.bundled import _manifest

SPANS = {  # documented in markets/data/README.md
    "SP500": ("1999-01-04", "2018-12-31", 5031),
    "NASDAQ": ("1999-01-04", "2018-12-31", 5031),
    "MSFT": ("1986-03-13", "2017-11-10", 7983),
    "SP20": ("1990-01-02", "2022-12-28", 8313),
}


@pytest.mark.parametrize("name", list(SPANS))
def test_dataset_spans(name):
    start, end, rows = SPANS[name]
    bars = markets.load(f"sample:{name}")
    assert bars.index[0] == pd.Timestamp(start, tz="UTC") and bars.index[-1] == pd.Timestamp(end, tz="UTC")
    assert len(bars) == rows
    assert all(dt == "float64" for dt in bars.dtypes)


def test_every_listed_sample_loads():
    table = markets.samples()
    assert {"SP500", "NASDAQ", "MSFT", "SP20", "SPY", "QQQ", "AAPL", "JPM", "XOM"} <= set(table.index)
    for name, row in table.iterrows():
        bars = markets.load(f"sample:{name}")
        assert bars.index[0] == pd.Timestamp(row["start"], tz="UTC"), name
        assert bars.index[-1] == pd.Timestamp(row["end"], tz="UTC"), name
        assert len(bars) == row["rows"], name
    assert "NOT the ETF" in table.loc["SPY", "description"]


def test_known_prices():
    # spot values read from the source packages when the files were extracted
    sp = markets.load("sample:SP500", "2018-12-28", "2018-12-31")
    assert sp["close"].iloc[-1] == pytest.approx(2506.850098, rel=1e-9)
    msft = markets.load("sample:MSFT", "2017-11-09", "2017-11-10")
    assert msft.loc["2017-11-10", ["open", "high", "low", "close"]].to_numpy().ravel().tolist() == [
        83.79,
        84.095,
        83.23,
        83.87,
    ]


def test_aliases_are_the_indexes():
    spy, sp = markets.load("sample:SPY"), markets.load("sample:SP500")
    assert spy.equals(sp) and spy.attrs["symbol"] == "SPY"


def test_panel_is_close_only_multi_asset():
    panel = markets.load("sample:SP20")
    assert panel.columns.names == ["asset", "field"]
    assert markets.assets(panel) == _manifest()["SP20"]["assets"] and len(markets.assets(panel)) == 20
    aapl = panel["AAPL"]
    assert (aapl["open"] == aapl["close"]).all() and (aapl["high"] == aapl["low"]).all()
    assert (aapl["volume"] == 0.0).all()
    close = markets.fields(panel, "close")
    assert close.shape == (8313, 20)


def test_comma_list_and_single_member():
    pair = markets.load("sample:AAPL,JPM", "2020-01-01", "2020-12-31")
    assert markets.assets(pair) == ["AAPL", "JPM"] and len(pair) == 253
    jpm = markets.load("sample:jpm")
    assert jpm.attrs["symbol"] == "JPM"
    assert jpm["close"].equals(markets.fields(markets.load("sample:SP20"), "close")["JPM"].rename("close"))
    # mixing an OHLCV dataset with a panel member inner-joins on common dates
    mixed = markets.load("sample:MSFT,AAPL")
    assert mixed.index[0] == pd.Timestamp("1990-01-02", tz="UTC")
    assert mixed.index[-1] == pd.Timestamp("2017-11-10", tz="UTC")


def test_unknown_sample_lists_valid_names():
    with pytest.raises(markets.DataError, match=r"unknown sample 'NOPE'.*SP500"):
        markets.load("sample:NOPE")


def test_panel_fast_path_equals_combining_members():
    panel = markets.load("sample:SP20")
    names = ["AAPL", "XOM"]
    joined = markets.combine({n: markets.load(f"sample:{n}") for n in names})
    expected = panel.loc[:, names]
    expected.columns = expected.columns.remove_unused_levels()
    pd.testing.assert_frame_equal(joined, expected, check_column_type=False)
