"""Issue #8 "data that is never silently wrong": day-first times, to_csv() files, mixed aware/naive rows.

The day-first files mimic ``FOREX_EURUSD_1H_ASK`` (Dukascopy export: ``Gmt time`` = ``01.01.2017 22:00:00.000``).
A day-first file is either refused (the order cannot be told) or read day-first; it is never reordered.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import markets
from markets import DataError

FMT = "%d.%m.%Y %H:%M:%S.%f"


def forex_csv(tmp_path, hours: int, name: str = "EURUSD_1H.csv"):
    """An hourly day-first EURUSD file from 01.01.2017 22:00 and the true UTC index and closes."""
    index = pd.date_range("2017-01-01 22:00", periods=hours, freq="1h", tz="UTC", name="timestamp")
    index = index.as_unit("ns")
    close = 1.05 + 0.0001 * np.arange(hours)  # strictly rising: any reordering shows
    lines = ["Gmt time,Open,High,Low,Close,Volume"]
    for t, c in zip(index, close, strict=True):
        lines.append(
            f"{t.strftime('%d.%m.%Y %H:%M:%S')}.000,{c:.5f},{c + 0.0002:.5f},{c - 0.0002:.5f},{c:.5f},100"
        )
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n")
    return path, index, np.round(close, 5)


def one_line(err: DataError, *names: str) -> str:
    text = str(err.value)
    assert "\n" not in text
    for name in names:
        assert name in text
    return text


def test_day_first_file_spanning_day_13_is_read_day_first_in_file_order(tmp_path):
    path, index, close = forex_csv(tmp_path, 24 * 40)  # 40 days: "13.01.2017" proves day-first
    for spec in (f"file:{path}", f"file:{path}?dayfirst=true", f"file:{path}?format={FMT}"):
        bars = markets.load(spec)
        pd.testing.assert_index_equal(bars.index, index, check_freq=False)
        np.testing.assert_array_equal(bars["close"].to_numpy(), close)  # never reordered
    assert (
        bars.loc["2017-02-01", "close"].iloc[0] == close[index.get_loc(pd.Timestamp("2017-02-01", tz="UTC"))]
    )


def test_day_first_file_that_cannot_tell_is_refused_naming_the_choice(tmp_path):
    path, index, close = forex_csv(tmp_path, 24 * 10)  # 01.01 .. 11.01: every day <= 12
    for spec in (f"file:{path}", f"file:{path}?repair=true"):
        with pytest.raises(DataError) as err:
            markets.load(spec)
        assert err.value.rule == "ambiguous-date-order"
        one_line(err, "EURUSD_1H.csv", "'01.01.2017 22:00:00.000' (row 0)", "?dayfirst=true", "?format=")
    bars = markets.load(f"file:{path}?dayfirst=true")
    pd.testing.assert_index_equal(bars.index, index, check_freq=False)
    np.testing.assert_array_equal(bars["close"].to_numpy(), close)
    assert markets.load(f"file:{path}?format={FMT}").equals(bars)


def test_order_that_contradicts_a_row_is_refused(tmp_path):
    path, _, _ = forex_csv(tmp_path, 24 * 40)
    with pytest.raises(DataError) as err:
        markets.load(f"file:{path}?dayfirst=false&repair=true")
    assert err.value.rule == "inconsistent-date-order"
    one_line(err, "EURUSD_1H.csv", "'13.01.2017 00:00:00.000'", "can only be day-first", "?dayfirst=true")
    with pytest.raises(DataError, match=r"does not match format '%m\.%d\.%Y") as err:
        markets.load(f"file:{path}?format=%m.%d.%Y %H:%M:%S.%f")
    assert err.value.rule == "bad-timestamp" and "(row 266)" in one_line(err, "EURUSD_1H.csv")


def test_rows_of_both_orders_are_refused(tmp_path):
    text = "date,open,high,low,close,volume\n13/01/2017,1,2,1,2,5\n01/14/2017,2,2,1,1,5\n"
    (tmp_path / "b.csv").write_text(text)
    with pytest.raises(DataError) as err:
        markets.load(f"file:{tmp_path / 'b.csv'}")
    assert err.value.rule == "inconsistent-date-order"
    one_line(err, "b.csv", "row 0 ('13/01/2017') is day-first", "row 1 ('01/14/2017') is month-first")


def test_month_first_us_dates_are_proved_by_a_day_above_12(tmp_path):
    text = (
        "Date,Open,High,Low,Close,Volume\n12/31/2019,1,2,1,2,5\n01/02/2020,2,2,1,1,5\n01/13/2020,2,2,1,1,5\n"
    )
    (tmp_path / "us.csv").write_text(text)
    bars = markets.load(f"file:{tmp_path / 'us.csv'}")
    assert list(bars.index.strftime("%Y-%m-%d")) == ["2019-12-31", "2020-01-02", "2020-01-13"]


def test_iso_dates_ignore_dayfirst(tmp_path):
    # dateutil reads "2024-01-02" as 1 February under dayfirst=True; ISO dates have no order question
    text = "date,open,high,low,close,volume\n2024-01-02,1,2,1,2,5\n2024-01-03,2,2,1,1,5\n"
    (tmp_path / "iso.csv").write_text(text)
    bars = markets.load(f"file:{tmp_path / 'iso.csv'}?dayfirst=true")
    assert bars.index[0] == pd.Timestamp("2024-01-02", tz="UTC")


def test_format_and_dayfirst_together_and_format_mixed_are_refused(tmp_path):
    path, _, _ = forex_csv(tmp_path, 30)
    with pytest.raises(DataError, match="either format= or dayfirst=") as err:
        markets.load(f"file:{path}?dayfirst=true&format={FMT}")
    assert err.value.rule == "bad-option"
    with pytest.raises(DataError, match="format=mixed guesses each row") as err:
        markets.load(f"file:{path}?format=mixed")
    assert err.value.rule == "bad-option" and "EURUSD_1H.csv" in str(err.value)


def test_plain_to_csv_with_unnamed_index_loads(tmp_path):
    bars, _ = markets.synthetic.regimes(50, seed=3)
    path = tmp_path / "plain.csv"
    bars.rename_axis(None).to_csv(path)  # header ",open,high,...": pandas reads it back as 'Unnamed: 0'
    back = markets.load(f"file:{path}")
    pd.testing.assert_frame_equal(back, bars, check_freq=False, rtol=1e-12)
    naive = tmp_path / "naive.csv"
    bars.tz_localize(None).rename_axis(None).to_csv(naive)
    assert markets.load(f"file:{naive}?tz=UTC").index.equals(bars.index)


def test_unnamed_integer_index_column_is_not_read_as_epoch_seconds(tmp_path):
    text = ",open,high,low,close,volume\n0,1,2,1,2,5\n1,2,2,1,1,5\n"
    (tmp_path / "ints.csv").write_text(text)
    with pytest.raises(DataError, match="no time column") as err:
        markets.load(f"file:{tmp_path / 'ints.csv'}")
    assert err.value.rule == "missing-column"


def test_mixed_aware_and_naive_rows_are_refused(tmp_path):
    text = (
        "timestamp,open,high,low,close,volume\n2024-01-01 00:00:00+00:00,1,2,1,2,5\n"
        "2024-01-01 01:00:00+00:00,1,2,1,2,5\n2024-01-01 02:00:00,2,2,1,1,5\n2024-01-01 03:00:00,2,2,1,1,5\n"
    )
    (tmp_path / "mixed.csv").write_text(text)
    for spec in ("", "?tz=America/New_York"):
        with pytest.raises(DataError) as err:
            markets.load(f"file:{tmp_path / 'mixed.csv'}{spec}")
        assert err.value.rule == "mixed-timezones"
        one_line(
            err, "mixed.csv", "row 0 ('2024-01-01 00:00:00+00:00')", "row 2 ('2024-01-01 02:00:00')", "?tz="
        )


def test_mixed_zones_in_an_object_index_need_a_zone_on_every_value():
    from markets.timestamps import parse_times

    values = [pd.Timestamp("2024-01-01", tz="UTC"), pd.Timestamp("2024-01-02 09:00", tz="Asia/Tokyo")]
    out = parse_times(pd.Series(values, dtype=object))
    assert list(out) == [pd.Timestamp("2024-01-01", tz="UTC"), pd.Timestamp("2024-01-02", tz="UTC")]
    with pytest.raises(DataError, match="row 1") as err:
        parse_times(pd.Series([values[1], pd.Timestamp("2024-01-03")], dtype=object), source="x")
    assert err.value.rule == "mixed-timezones"


def test_old_mixed_parse_then_repair_is_refused_not_reordered(tmp_path):
    """The issue's path: format="mixed" read the day-first file month-first where it could, then repair sorted."""
    path, _, _ = forex_csv(tmp_path, 24 * 40)
    table = pd.read_csv(path)
    misread = pd.DatetimeIndex(pd.to_datetime(table["Gmt time"], format="mixed")).tz_localize("UTC")
    assert not misread.is_monotonic_increasing  # what pandas does with it
    bars = pd.DataFrame(
        table[["Open", "High", "Low", "Close", "Volume"]].to_numpy(float),
        index=misread,
        columns=markets.FIELDS,
    )
    bars.attrs["symbol"] = "EURUSD_1H"
    with pytest.raises(DataError) as err:
        markets.repair(bars)
    assert err.value.rule == "reorder-limit"
    one_line(err, "EURUSD_1H", "allow_reorder=True", "?repair=reorder", "?dayfirst=true")
    out, report = markets.repair(bars, allow_reorder=True)  # the explicit flag still sorts
    assert out.index.is_monotonic_increasing and report.count("sorted") > 0
