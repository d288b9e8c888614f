"""markets.validate: one test per rule; each message names the asset, the timestamp and the rule."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import markets
from markets import DataError


def make_bars(n: int = 6, symbol: str = "TEST") -> pd.DataFrame:
    idx = pd.date_range("2024-01-01", periods=n, freq="D", tz="UTC", name="timestamp")
    close = 100.0 + np.arange(n, dtype=float)
    bars = pd.DataFrame(
        {
            "open": close - 0.5,
            "high": close + 1.0,
            "low": close - 1.0,
            "close": close,
            "volume": np.full(n, 1000.0),
        },
        index=idx,
    )
    bars.attrs["symbol"] = symbol
    return bars


def expect(frame, rule: str, *, asset: str = "TEST", timestamp=None, contains: str = "", **kw):
    with pytest.raises(DataError) as info:
        markets.validate(frame, **kw)
    err = info.value
    msg = str(err)
    assert err.rule == rule, msg
    assert f"rule {rule}" in msg
    assert err.asset == asset and f"asset {asset}" in msg
    if timestamp is not None:
        ts = timestamp if isinstance(timestamp, pd.Timestamp) else pd.Timestamp(timestamp, tz="UTC")
        assert err.timestamp == ts and err.timestamp.tz == ts.tz, msg
        assert f"at {ts}" in msg
    assert contains in msg
    return err


def test_valid_frame_passes_and_is_canonical():
    bars = make_bars()
    out = markets.validate(bars[["close", "open", "high", "low", "volume"]].rename_axis("t"))
    assert list(out.columns) == ["open", "high", "low", "close", "volume"]
    assert out.index.name == "timestamp" and out.attrs["symbol"] == "TEST"


def test_not_a_frame():
    with pytest.raises(DataError, match="rule not-a-frame"):
        markets.validate(pd.Series([1.0, 2.0]), asset="X")


def test_empty_and_too_short():
    expect(make_bars().iloc[:0], "empty", contains="0 rows")
    expect(make_bars().iloc[:1], "too-short", contains="need at least 2")
    markets.validate(make_bars().iloc[:1], min_rows=1)


def test_index_not_datetime():
    expect(make_bars().reset_index(drop=True), "index-type", contains="pd.to_datetime")


def test_naive_timezone():
    bars = make_bars().tz_localize(None)
    expect(bars, "naive-timezone", timestamp=pd.Timestamp("2024-01-01"), contains="tz_localize('UTC')")


def test_non_utc_timezone():
    bars = make_bars().tz_convert("America/New_York")
    expect(
        bars,
        "non-utc-timezone",
        timestamp=pd.Timestamp("2023-12-31 19:00", tz="America/New_York"),
        contains="tz_convert('UTC')",
    )


def test_mixed_timezones():
    bars = make_bars(2)
    bars.index = pd.Index(
        [pd.Timestamp("2024-01-01", tz="UTC"), pd.Timestamp("2024-01-02", tz="Asia/Tokyo")], dtype=object
    )
    expect(bars, "mixed-timezones", contains="utc=True")


def test_missing_column():
    expect(make_bars().drop(columns="volume"), "missing-column", contains="'volume'")


def test_extra_column():
    bars = make_bars()
    bars["adj close"] = bars["close"]
    expect(bars, "extra-column", contains="adj close")


def test_integer_or_object_columns():
    bars = make_bars()
    bars["volume"] = bars["volume"].astype("int64")
    expect(bars, "dtype", contains="'volume' is int64")
    bars = make_bars()
    bars["close"] = bars["close"].astype(object)
    expect(bars, "dtype", contains="'close' is object")


def test_nan_names_first_row_and_column():
    bars = make_bars()
    bars.iloc[4, 3] = np.nan  # close of 2024-01-05
    bars.iloc[2, 1] = np.nan  # high of 2024-01-03 comes first
    expect(bars, "nan", timestamp="2024-01-03", contains="column 'high' (row 2)")


def test_inf():
    bars = make_bars()
    bars.iloc[3, 4] = np.inf
    expect(bars, "inf", timestamp="2024-01-04", contains="column 'volume'")


def test_non_positive_price_but_zero_volume_ok():
    bars = make_bars()
    bars.iloc[:, 4] = 0.0
    markets.validate(bars)
    bars.iloc[2, 2] = 0.0
    expect(bars, "non-positive-price", timestamp="2024-01-03", contains="non-positive low")


def test_negative_volume():
    bars = make_bars()
    bars.iloc[5, 4] = -1.0
    expect(bars, "negative-volume", timestamp="2024-01-06")


def test_high_below_low():
    bars = make_bars()
    bars.iloc[1, 1], bars.iloc[1, 2] = 99.0, 102.0  # high 99 < low 102 (open/close inside neither)
    expect(bars, "high<low", timestamp="2024-01-02", contains="high 99.0 < low 102.0")


def test_open_and_close_outside_range():
    bars = make_bars()
    bars.iloc[2, 0] = 200.0
    expect(bars, "open-outside-range", timestamp="2024-01-03", contains="open 200.0")
    bars = make_bars()
    bars.iloc[3, 3] = 1.0
    expect(bars, "close-outside-range", timestamp="2024-01-04", contains="close 1.0")


def test_float_rounding_of_adjusted_prices_is_tolerated():
    bars = make_bars()
    bars.iloc[2, 3] = bars.iloc[2, 1] * (1 + 1e-13)  # close a hair above high
    markets.validate(bars)


def test_duplicate_timestamps():
    bars = make_bars()
    bars = pd.concat([bars.iloc[:3], bars.iloc[2:]])
    bars.attrs["symbol"] = "TEST"
    expect(bars, "duplicate-timestamp", timestamp="2024-01-03", contains="markets.repair(frame)")


def test_unsorted_timestamps():
    bars = make_bars().iloc[[0, 1, 3, 2, 4]]
    expect(bars, "unsorted-timestamps", timestamp="2024-01-03", contains="sort_index()")


def test_asset_argument_overrides_symbol():
    with pytest.raises(DataError, match=r"asset OTHER"):
        markets.validate(make_bars().iloc[:0], asset="OTHER")


def test_multi_asset_names_the_bad_asset():
    a, b = make_bars(symbol="AAA"), make_bars(symbol="BBB")
    b.iloc[4, 1] = 50.0  # high below low on BBB
    multi = pd.concat({"AAA": a, "BBB": b}, axis=1).rename_axis(columns=["asset", "field"])
    expect(multi, "high<low", asset="BBB", timestamp="2024-01-05")


def test_multi_asset_level_names_and_fields():
    a = make_bars()
    multi = pd.concat({"AAA": a, "BBB": a}, axis=1)
    with pytest.raises(DataError, match="rule column-levels"):
        markets.validate(multi)
    multi = pd.concat({"AAA": a, "BBB": a.drop(columns="low")}, axis=1).rename_axis(
        columns=["asset", "field"]
    )
    expect(multi, "missing-column", asset="BBB", contains="'low'")
