"""``file:PATH[?tz=America/New_York&volume=0&adjusted=true&repair=true]``: your own CSV or parquet bars.

Column names match case-insensitively, ignoring spaces and underscores (``Open``, ``CLOSE``, ``Adj Close``);
the time comes from a ``timestamp``/``date``/``datetime``/``time`` column or a datetime index. Naive times are
taken as UTC unless ``tz=`` names their zone; epoch numbers are read as seconds (or ms when > 1e11).
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from markets.errors import DataError
from markets.frames import FIELDS

__all__ = ["load_file", "to_bars"]

_TIME_NAMES = ("timestamp", "datetime", "date", "time")


def _key(name: object) -> str:
    return re.sub(r"[\s_]+", "", str(name).strip().lower())


def _flag(params: dict[str, str], name: str) -> bool:
    value = params.get(name, "false").strip().lower()
    if value not in ("1", "true", "yes", "0", "false", "no"):
        raise DataError(f"option {name}={value!r} must be true or false", rule="bad-option")
    return value in ("1", "true", "yes")


def load_file(
    body: str, params: dict[str, str], *, start=None, end=None, offline: bool = False
) -> pd.DataFrame:
    """Read ``body`` (a .csv/.txt/.tsv or .parquet/.pq path) into canonical bars."""
    unknown = set(params) - {"tz", "volume", "adjusted", "repair"}
    if unknown:
        raise DataError(
            f"file: options are tz, volume, adjusted, repair; got {sorted(unknown)}", rule="bad-option"
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
        fill_volume=0.0 if volume == "0" else None,
        adjusted=_flag(params, "adjusted"),
        symbol=path.stem,
    )
    if _flag(params, "repair"):
        from markets.cleaning import repair

        bars, report = repair(bars)
        if report.changed:
            warnings.warn(f"{path.name}: {report}", UserWarning, stacklevel=3)
    return bars


def to_bars(
    table: pd.DataFrame,
    *,
    tz: str | None = None,
    fill_volume: float | None = None,
    adjusted: bool = False,
    symbol: str | None = None,
) -> pd.DataFrame:
    """Canonical bars from a loosely formatted table (not yet validated; ``markets.load`` validates).

    Args:
        table: columns named like open/high/low/close/volume in any case, plus a time column or index.
        tz: zone of naive times (default UTC); aware times are only converted to UTC.
        fill_volume: volume to use when the table has none (default: error naming the column).
        adjusted: use ``Adj Close`` as close and scale open/high/low by ``adj_close / close``.
        symbol: stored in ``attrs["symbol"]`` and used in messages.
    """
    cols = {}
    for c in table.columns:
        cols.setdefault(_key(c), c)
    stamps = _timestamps(table, cols, tz, symbol)
    out = {}
    for f in FIELDS:
        if f in cols:
            out[f] = _numeric(table[cols[f]], f, stamps, symbol)
        elif f == "volume" and fill_volume is not None:
            out[f] = np.full(len(table), float(fill_volume))
        else:
            fix = "; add ?volume=0 to the spec to use 0.0" if f == "volume" else ""
            raise DataError(
                f"no {f!r} column (have {list(table.columns)}){fix}", asset=symbol, rule="missing-column"
            )
    if adjusted:
        if "adjclose" not in cols:
            raise DataError(
                f"adjusted=true needs an 'Adj Close' column (have {list(table.columns)})",
                asset=symbol,
                rule="missing-column",
            )
        adj = _numeric(table[cols["adjclose"]], "adj close", stamps, symbol)
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


def _timestamps(
    table: pd.DataFrame, cols: dict[str, object], tz: str | None, symbol: str | None
) -> pd.DatetimeIndex:
    name = next((cols[n] for n in _TIME_NAMES if n in cols), None)
    if name is not None:
        raw = table[name]
    elif isinstance(table.index, pd.DatetimeIndex) or _key(table.index.name) in _TIME_NAMES:
        raw = pd.Series(table.index, index=range(len(table)))
    else:
        raise DataError(
            f"no time column: name one of {', '.join(_TIME_NAMES)} (have {list(table.columns)})",
            asset=symbol,
            rule="missing-column",
        )
    raw = pd.Series(raw).reset_index(drop=True)
    if pd.api.types.is_numeric_dtype(raw) and not pd.api.types.is_bool_dtype(raw):
        unit = "ms" if float(np.nanmax(np.abs(raw.to_numpy(dtype="float64")))) > 1e11 else "s"
        stamps = pd.to_datetime(raw, unit=unit, utc=True)
    else:
        try:
            stamps = (
                pd.to_datetime(raw, format="mixed")
                if raw.dtype == object or pd.api.types.is_string_dtype(raw)
                else pd.to_datetime(raw)
            )
        except (ValueError, TypeError):  # mixed UTC offsets: pandas needs utc=True
            stamps = pd.to_datetime(raw, utc=True, format="mixed", errors="coerce")
        if not isinstance(stamps.dtype, pd.DatetimeTZDtype) and stamps.dtype == object:
            stamps = pd.to_datetime(raw, utc=True, format="mixed", errors="coerce")
    if stamps.isna().any():
        r = int(np.argmax(stamps.isna().to_numpy()))
        raise DataError(f"cannot read time {raw.iloc[r]!r} (row {r})", asset=symbol, rule="bad-timestamp")
    index = pd.DatetimeIndex(stamps)
    if index.tz is None:
        try:
            index = index.tz_localize(tz or "UTC", ambiguous="raise", nonexistent="raise")
        except Exception as exc:
            raise DataError(
                f"cannot place naive times in zone {tz!r}: {exc}", asset=symbol, rule="bad-timezone"
            ) from exc
    return index.tz_convert("UTC").as_unit("ns").rename("timestamp")
