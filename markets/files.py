"""``file:PATH[?tz=ZONE&format=FMT&dayfirst=true&volume=0&adjusted=true&repair=true|reorder]``: your bars.

Column names match case-insensitively, ignoring spaces and underscores (``Open``, ``CLOSE``, ``Adj Close``);
the time comes from a ``timestamp``/``date``/``datetime``/``time``/``gmt time`` column, a datetime index, or
the unnamed first column that ``DataFrame.to_csv()`` writes for the index. Naive times are taken as UTC
unless ``tz=`` names their zone; epoch numbers are read as seconds (or ms when > 1e11). How text times are
read (day/month order, mixed aware/naive rows) is in :mod:`markets.timestamps`: ``format=`` gives an exact
``strftime`` format (write a literal ``+`` as ``%2B``), ``dayfirst=`` the order of ``01.02.2017``-style
dates; ambiguous files are refused, never guessed.

``repair=true`` applies :func:`markets.repair` (which refuses to reorder more than a small fraction of rows);
``repair=reorder`` also allows it to sort a file whose rows are really shuffled.
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from markets.errors import DataError
from markets.frames import FIELDS
from markets.timestamps import parse_times

__all__ = ["load_file", "to_bars"]

_TIME_NAMES = ("timestamp", "datetime", "date", "time", "gmttime", "utctime")
_OPTIONS = ("tz", "format", "dayfirst", "volume", "adjusted", "repair")


def _key(name: object) -> str:
    return re.sub(r"[\s_]+", "", str(name).strip().lower())


def _flag(params: dict[str, str], name: str, source: str | None = None) -> bool:
    value = params.get(name, "false").strip().lower()
    if value not in ("1", "true", "yes", "0", "false", "no"):
        raise DataError(f"option {name}={value!r} must be true or false", asset=source, rule="bad-option")
    return value in ("1", "true", "yes")


def load_file(
    body: str, params: dict[str, str], *, start=None, end=None, offline: bool = False
) -> pd.DataFrame:
    """Read ``body`` (a .csv/.txt/.tsv or .parquet/.pq path) into canonical bars."""
    unknown = set(params) - set(_OPTIONS)
    if unknown:
        raise DataError(
            f"file: options are {', '.join(_OPTIONS)}; got {sorted(unknown)}", asset=body, rule="bad-option"
        )
    repair_mode = params.get("repair", "false").strip().lower()
    if repair_mode not in ("1", "true", "yes", "0", "false", "no", "reorder"):
        raise DataError(
            f"option repair={repair_mode!r} must be true, false or reorder", asset=body, rule="bad-option"
        )
    path = Path(body).expanduser()
    if not path.is_file():
        raise DataError(f"no such file {str(path)!r}", asset=str(path), rule="file-not-found")
    suffix = path.suffix.lower()
    try:
        if suffix in (".parquet", ".pq"):
            table = pd.read_parquet(path)
        elif suffix in (".csv", ".txt", ".tsv"):
            table = pd.read_csv(
                path, sep=None if suffix != ".csv" else ",", engine="python" if suffix != ".csv" else "c"
            )
        else:
            raise DataError(
                f"unsupported file type {suffix!r}; use .csv or .parquet", asset=str(path), rule="file-type"
            )
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        if isinstance(exc, DataError):
            raise
        raise DataError(f"cannot read {path}: {exc}", asset=str(path), rule="file-unreadable") from exc
    volume = params.get("volume")
    if volume not in (None, "0"):
        raise DataError(
            f"volume={volume!r}: the only accepted value is volume=0 (use 0.0 when the file has "
            "no volume column)",
            asset=str(path),
            rule="bad-option",
        )
    bars = to_bars(
        table,
        tz=params.get("tz"),
        time_format=params.get("format") or None,
        dayfirst=_flag(params, "dayfirst", path.name) if "dayfirst" in params else None,
        fill_volume=0.0 if volume == "0" else None,
        adjusted=_flag(params, "adjusted", path.name),
        symbol=path.stem,
        source=path.name,
    )
    if repair_mode in ("1", "true", "yes", "reorder"):
        from markets.cleaning import repair

        bars, report = repair(bars, allow_reorder=repair_mode == "reorder")
        if report.changed:
            warnings.warn(f"{path.name}: {report}", UserWarning, stacklevel=3)
    return bars


def to_bars(
    table: pd.DataFrame,
    *,
    tz: str | None = None,
    time_format: str | None = None,
    dayfirst: bool | None = None,
    fill_volume: float | None = None,
    adjusted: bool = False,
    symbol: str | None = None,
    source: str | None = None,
) -> pd.DataFrame:
    """Canonical bars from a loosely formatted table (not yet validated; ``markets.load`` validates).

    Args:
        table: columns named like open/high/low/close/volume in any case, plus a time column or index.
        tz: zone of naive times (default UTC); aware times are only converted to UTC.
        time_format: exact ``strftime`` format of text times (default: detected, see
            :func:`markets.timestamps.parse_times`).
        dayfirst: day/month order of ``01.02.2017``-style dates (default: proved from the data or refused).
        fill_volume: volume to use when the table has none (default: error naming the column).
        adjusted: use ``Adj Close`` as close and scale open/high/low by ``adj_close / close``.
        symbol: stored in ``attrs["symbol"]``.
        source: name used in messages (the file name; default ``symbol``).
    """
    source = source or symbol
    cols: dict[str, object] = {}
    for c in table.columns:
        key = _key(c)
        if key in cols and key in (*FIELDS, *_TIME_NAMES, "adjclose"):
            raise DataError(
                f"columns {cols[key]!r} and {c!r} both name {key!r} (names match ignoring case, spaces and "
                "underscores): drop or rename one",
                asset=source,
                rule="ambiguous-column",
            )
        cols.setdefault(key, c)
    stamps = parse_times(
        _time_column(table, cols, source), tz=tz, fmt=time_format, dayfirst=dayfirst, source=source
    )
    out = {}
    for f in FIELDS:
        if f in cols:
            out[f] = _numeric(table[cols[f]], f, stamps, source)
        elif f == "volume" and fill_volume is not None:
            out[f] = np.full(len(table), float(fill_volume))
        else:
            fix = "; add ?volume=0 to the spec to use 0.0" if f == "volume" else ""
            raise DataError(
                f"no {f!r} column (have {list(table.columns)}){fix}", asset=source, rule="missing-column"
            )
    if adjusted:
        if "adjclose" not in cols:
            raise DataError(
                f"adjusted=true needs an 'Adj Close' column (have {list(table.columns)})",
                asset=source,
                rule="missing-column",
            )
        adj = _numeric(table[cols["adjclose"]], "adj close", stamps, source)
        ratio = adj / out["close"]
        for f in ("open", "high", "low"):
            out[f] = out[f] * ratio
        out["close"] = adj
    bars = pd.DataFrame(out, index=stamps)
    bars.attrs = {"symbol": symbol} if symbol else {}
    return bars


def _numeric(col: pd.Series, name: str, stamps: pd.DatetimeIndex, symbol: str | None) -> np.ndarray:
    values = pd.to_numeric(col, errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
    bad = np.isnan(values) & col.notna().to_numpy()
    if bad.any():
        r = int(np.argmax(bad))
        raise DataError(
            f"column {name!r} has a non-number {col.iloc[r]!r} (row {r})",
            asset=symbol,
            timestamp=stamps[r],
            rule="dtype",
        )
    return values


def _time_column(table: pd.DataFrame, cols: dict[str, object], source: str | None) -> pd.Series:
    name = next((cols[n] for n in _TIME_NAMES if n in cols), None)
    if name is not None:
        return table[name]
    if isinstance(table.index, pd.DatetimeIndex) or _key(table.index.name) in _TIME_NAMES:
        return pd.Series(table.index, index=range(len(table)))
    first = table.columns[0] if len(table.columns) else None
    if first is not None and (str(first).startswith("Unnamed: 0") or not str(first).strip()):
        col = table[first]  # the index column of a plain DataFrame.to_csv(): only text times count
        if not (pd.api.types.is_numeric_dtype(col) or pd.api.types.is_bool_dtype(col)):
            return col
    raise DataError(
        f"no time column: name one of {', '.join(_TIME_NAMES)} (have {list(table.columns)})",
        asset=source,
        rule="missing-column",
    )
