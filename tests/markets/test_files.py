"""file: specs: CSV/parquet with odd column case, time zones, naive->UTC, missing columns, bad cells."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import markets
from markets import DataError

CSV = """Date,OPEN,High,low,Close,Adj Close,Volume
2024-01-02,10,11,9,10.5,5.25,100
2024-01-03,10.5,12,10,11,5.5,200
2024-01-04,11,11.5,10.5,11.2,5.6,0
"""


def write(tmp_path, text: str, name: str = "bars.csv"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_csv_odd_case_naive_is_utc(tmp_path):
    bars = markets.load(f"file:{write(tmp_path, CSV)}")
    assert list(bars.columns) == ["open", "high", "low", "close", "volume"]
    assert bars.index[0] == pd.Timestamp("2024-01-02", tz="UTC") and bars.attrs["symbol"] == "bars"
    assert bars["close"].tolist() == [10.5, 11.0, 11.2]  # Adj Close ignored unless asked


def test_adjusted_uses_adj_close_and_scales_ohl(tmp_path):
    bars = markets.load(f"file:{write(tmp_path, CSV)}?adjusted=true")
    assert bars["close"].tolist() == [5.25, 5.5, 5.6]
    assert bars["open"].iloc[0] == pytest.approx(10 * 0.5) and bars["high"].iloc[1] == pytest.approx(6.0)


def test_tz_option_for_local_times(tmp_path):
    text = "datetime,open,high,low,close,volume\n2024-07-01 09:30,1,2,1,2,5\n2024-07-01 09:31,2,2,1,1,5\n"
    bars = markets.load(f"file:{write(tmp_path, text)}?tz=America/New_York")
    assert bars.index[0] == pd.Timestamp("2024-07-01 13:30", tz="UTC")  # EDT = UTC-4


def test_aware_and_mixed_offsets_convert_to_utc(tmp_path):
    text = (
        "timestamp,open,high,low,close,volume\n2024-03-08T09:30:00-05:00,1,2,1,2,5\n"
        "2024-03-11T09:30:00-04:00,2,2,1,1,5\n"
    )
    bars = markets.load(f"file:{write(tmp_path, text)}")
    assert list(bars.index) == [
        pd.Timestamp("2024-03-08 14:30", tz="UTC"),
        pd.Timestamp("2024-03-11 13:30", tz="UTC"),
    ]


def test_epoch_milliseconds(tmp_path):
    text = "timestamp,open,high,low,close,volume\n1704067200000,1,2,1,2,5\n1704070800000,2,2,1,1,5\n"
    bars = markets.load(f"file:{write(tmp_path, text)}")
    assert bars.index[1] == pd.Timestamp("2024-01-01 01:00", tz="UTC")


def test_parquet_with_datetime_index(tmp_path):
    idx = pd.date_range("2024-01-01", periods=3, freq="D", name="Date")  # naive
    frame = pd.DataFrame(
        {
            "Open": [1.0, 2, 3],
            "HIGH": [2.0, 3, 4],
            "Low": [0.5, 1, 2],
            "close": [1.5, 2.5, 3.5],
            "Volume": [1, 2, 3],
        },
        index=idx,
    )
    path = tmp_path / "x.parquet"
    frame.to_parquet(path)
    bars = markets.load(f"file:{path}")
    assert bars.index[0] == pd.Timestamp("2024-01-01", tz="UTC") and bars["volume"].dtype == np.float64


def test_missing_volume_errors_unless_asked(tmp_path):
    text = "date,open,high,low,close\n2024-01-02,1,2,1,2\n2024-01-03,2,2,1,1\n"
    path = write(tmp_path, text)
    with pytest.raises(DataError, match=r"no 'volume' column.*\?volume=0") as info:
        markets.load(f"file:{path}")
    assert info.value.rule == "missing-column"
    assert (markets.load(f"file:{path}?volume=0")["volume"] == 0.0).all()


def test_bad_cells_and_times_are_named(tmp_path):
    text = "date,open,high,low,close,volume\n2024-01-02,1,2,1,2,5\n2024-01-03,2,abc,1,1,5\n"
    with pytest.raises(DataError, match=r"column 'high' has a non-number 'abc' \(row 1\)") as info:
        markets.load(f"file:{write(tmp_path, text)}")
    assert info.value.timestamp == pd.Timestamp("2024-01-03", tz="UTC")
    text = "date,open,high,low,close,volume\n2024-01-02,1,2,1,2,5\nnot a date,2,2,1,1,5\n"
    with pytest.raises(DataError, match="cannot read time 'not a date' \\(row 1\\)"):
        markets.load(f"file:{write(tmp_path, text, 'b.csv')}")
    no_time = write(tmp_path, "open,high,low,close,volume\n1,2,1,2,5\n", "c.csv")
    with pytest.raises(DataError, match="no time column"):
        markets.load(f"file:{no_time}")


def test_invalid_rows_fail_validation_and_repair_option(tmp_path):
    text = (
        "date,open,high,low,close,volume\n2024-01-03,2,2,1,1,5\n2024-01-02,1,2,1,2,5\n2024-01-02,1,2,1,2,6\n"
    )
    path = write(tmp_path, text)
    with pytest.raises(DataError, match="rule duplicate-timestamp"):
        markets.load(f"file:{path}")
    with pytest.warns(UserWarning, match="duplicates-dropped: 1"):
        bars = markets.load(f"file:{path}?repair=true")
    assert bars["volume"].tolist() == [6.0, 5.0]


def test_missing_file_and_bad_options(tmp_path):
    with pytest.raises(DataError, match="no such file") as info:
        markets.load(f"file:{tmp_path / 'nope.csv'}")
    assert info.value.rule == "file-not-found"
    path = write(tmp_path, CSV)
    with pytest.raises(DataError, match="options are tz, format, dayfirst, volume"):
        markets.load(f"file:{path}?timezone=UTC")
    with pytest.raises(DataError, match="bad-timezone"):
        markets.load(f"file:{path}?tz=Mars/Olympus")
