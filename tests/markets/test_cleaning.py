"""markets.repair: each fix is applied and reported exactly (counts and first timestamps)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import markets
from markets import DataError
from tests.markets.test_validation import make_bars


def test_clean_frame_reports_nothing():
    bars = make_bars()
    out, report = markets.repair(bars)
    pd.testing.assert_frame_equal(out, bars)
    assert report.changes == [] and not report.changed
    assert str(report) == "repair: nothing to change"


def test_timezone_sort_and_duplicates():
    bars = make_bars(6).tz_convert("America/New_York")
    shuffled = pd.concat([bars.iloc[[0, 2, 1]], bars.iloc[[3, 3, 4, 5]]])
    shuffled.iloc[4, 3] = 103.5  # second copy of 2024-01-04 differs: "keep last" must keep it
    shuffled.iloc[4, 0] = 103.5
    out, report = markets.repair(shuffled)
    markets.validate(out)
    assert list(out.index) == list(make_bars(6).index)
    assert out.loc["2024-01-04", "close"].item() == 103.5
    kinds = [(c.kind, c.count, c.first) for c in report.changes]
    assert kinds == [
        ("timezone", 7, pd.Timestamp("2023-12-31 19:00", tz="America/New_York")),
        ("sorted", 2, pd.Timestamp("2024-01-02", tz="UTC")),
        ("duplicates-dropped", 1, pd.Timestamp("2024-01-04", tz="UTC")),
    ]
    text = str(report)
    assert "converted from America/New_York to UTC" in text and "duplicates-dropped: 1" in text


def test_naive_and_mixed_zone_indexes_become_utc():
    out, report = markets.repair(make_bars().tz_localize(None))
    assert str(out.index.tz) == "UTC" and report.changes[0].detail == "naive timestamps localized as UTC"
    mixed = make_bars(2)
    mixed.index = pd.Index(
        [pd.Timestamp("2024-01-01", tz="UTC"), pd.Timestamp("2024-01-02 09:00", tz="Asia/Tokyo")],
        dtype=object,
    )
    out, report = markets.repair(mixed)
    assert list(out.index) == [pd.Timestamp("2024-01-01", tz="UTC"), pd.Timestamp("2024-01-02", tz="UTC")]


def test_short_gaps_filled_long_gaps_left():
    bars = make_bars(12)
    bars.iloc[2:4] = np.nan  # a 2-bar hole: filled with the close of row 1 (101), volume 0
    bars.iloc[6:10] = np.nan  # a 4-bar hole: longer than max_gap=3, left
    bars.iloc[11, 4] = np.nan  # one missing volume
    out, report = markets.repair(bars, max_gap=3)
    assert (out.iloc[2:4, :4] == 101.0).all().all() and (out.iloc[2:4, 4] == 0.0).all()
    assert out.iloc[6:10].isna().all().all()
    assert out.iloc[11, 4] == 0.0 and out.iloc[11, 3] == 111.0
    filled = next(c for c in report.changes if c.kind == "gaps-filled")
    left = next(c for c in report.changes if c.kind == "gaps-left")
    assert (filled.count, filled.first) == (3, pd.Timestamp("2024-01-03", tz="UTC"))
    assert (left.count, left.first) == (1, pd.Timestamp("2024-01-07", tz="UTC"))
    with pytest.raises(DataError, match=r"at 2024-01-07.*rule nan"):
        markets.validate(out)


def test_partial_nan_keeps_bar_consistent():
    bars = make_bars(5)
    bars.iloc[2, 1] = np.nan  # high missing; prev close 101 < this bar's close 102
    out, _ = markets.repair(bars)
    markets.validate(out)
    assert out.iloc[2, 1] == 102.0  # widened to the bar's own close


def test_inf_becomes_nan_then_filled():
    bars = make_bars()
    bars.iloc[3, 3] = np.inf
    out, report = markets.repair(bars, max_gap=1)
    assert report.count("inf-to-nan") == 1
    assert out.iloc[3, 3] == bars.iloc[2, 3]


def test_multi_asset_repair_names_assets():
    a, b = make_bars(symbol="A"), make_bars(symbol="B")
    b.iloc[2, 3] = np.nan
    multi = pd.concat({"A": a, "B": b}, axis=1).rename_axis(columns=["asset", "field"])
    out, report = markets.repair(multi)
    markets.validate(out)
    assert [(c.kind, c.asset) for c in report.changes] == [("gaps-filled", "B")]


def test_bad_max_gap():
    with pytest.raises(DataError, match="max_gap"):
        markets.repair(make_bars(), max_gap=-1)


def test_input_not_modified():
    bars = make_bars().tz_localize(None)
    before = bars.copy()
    markets.repair(bars)
    pd.testing.assert_frame_equal(bars, before)
