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


def _swapped(bars: pd.DataFrame, pairs: list[int]) -> pd.DataFrame:
    order = np.arange(len(bars))
    for i in pairs:
        order[[i, i + 1]] = order[[i + 1, i]]
    return bars.iloc[order]


def test_reorder_limit_sorts_a_few_misplaced_rows_and_refuses_more():
    bars = make_bars(200)  # limit: max(1, floor(1% of 200)) = 2 rows out of place
    out, report = markets.repair(_swapped(bars, [10, 50]))  # each swap puts 1 row out of place
    pd.testing.assert_frame_equal(out, bars, check_freq=False)
    sorted_change = next(c for c in report.changes if c.kind == "sorted")
    assert (sorted_change.count, sorted_change.first) == (4, bars.index[10])
    assert "2 out of place" in sorted_change.detail
    shuffled = _swapped(bars, [10, 50, 90])
    with pytest.raises(DataError) as err:
        markets.repair(shuffled)
    assert err.value.rule == "reorder-limit" and err.value.timestamp == bars.index[10]
    assert "3 of 200 rows are out of time order (1.5%)" in str(err.value) and "\n" not in str(err.value)
    out, _ = markets.repair(shuffled, allow_reorder=True)
    pd.testing.assert_frame_equal(out, bars, check_freq=False)


def test_out_of_place_count_is_the_longest_sorted_subsequence():
    from markets.cleaning import _longest_sorted_run

    rng = np.random.default_rng(0)
    for _ in range(50):
        values = rng.integers(0, 8, rng.integers(1, 25))
        best = np.ones(len(values), dtype=int)  # O(T^2) reference: longest non-decreasing run ending at i
        for i in range(len(values)):
            for j in range(i):
                if values[j] <= values[i]:
                    best[i] = max(best[i], best[j] + 1)
        assert _longest_sorted_run(values) == best.max()


def test_file_repair_reorder_option(tmp_path):
    rows = [f"2024-01-{d:02d},1,2,1,2,{d}" for d in (3, 1, 2, 5, 4)]  # 2 of 5 out of place > limit 1
    path = tmp_path / "shuffled.csv"
    path.write_text("date,open,high,low,close,volume\n" + "\n".join(rows) + "\n")
    with pytest.raises(DataError, match=r"rule reorder-limit.*\?repair=reorder"):
        markets.load(f"file:{path}?repair=true")
    with pytest.warns(UserWarning, match="sorted: 5"):
        bars = markets.load(f"file:{path}?repair=reorder")
    assert bars["volume"].tolist() == [1.0, 2.0, 3.0, 4.0, 5.0]
    with pytest.raises(DataError, match="repair='sometimes' must be true, false or reorder"):
        markets.load(f"file:{path}?repair=sometimes")
