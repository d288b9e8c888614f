"""Reading a column of times from a file into a UTC index without ever guessing silently.

Rules (``DataError.rule``), each raised with the first offending row and the fix:

* ``ambiguous-date-order``: dates written ``a.b.YYYY`` (any of ``. / -`` as separator, 2- or 4-digit year)
  where no row has a first or second number above 12, so ``01.02.2017`` could be 1 February or 2 January.
  Fix: ``?dayfirst=true`` / ``?dayfirst=false``, or ``?format=%d.%m.%Y %H:%M:%S.%f``.
* ``inconsistent-date-order``: some rows can only be day-first (``13.01.2017``) and others only
  month-first (``01.13.2017``), or the order given contradicts a row.
* ``mixed-timezones``: some rows carry a UTC offset (``+00:00``, ``Z``) and others none; ``tz=`` could only
  apply to part of the file. Fix the file so that all or none carry an offset.
* ``bad-timestamp``: a row that cannot be read (or does not match ``format=``).

When the data itself proves the order (a day above 12 in the first position and none in the second), that
order is used: it is the only reading under which every row is a valid date. pandas' ``format="mixed"``
instead decides row by row, month-first wherever it can, which scrambles day-first files.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from markets.errors import DataError

__all__ = ["parse_times"]

_DMY = r"^\s*(?P<a>\d{1,2})[./-](?P<b>\d{1,2})[./-](?P<y>\d{4}|\d{2})(?:\D|$)"
"""A leading ``a.b.year`` date: the day/month order question exists only for these."""

_AWARE = r"\d:\d\d(?::\d\d(?:[.,]\d+)?)?\s*(?:Z|[+-]\d\d(?::?\d\d)?|UTC|GMT)\s*$"
"""A time of day followed by a UTC offset (or Z/UTC/GMT) at the end of the text."""

_FIX_ORDER = "add ?dayfirst=true (or ?dayfirst=false) or ?format=... (e.g. %d.%m.%Y %H:%M:%S.%f) to the spec"


def parse_times(
    raw: pd.Series,
    *,
    tz: str | None = None,
    fmt: str | None = None,
    dayfirst: bool | None = None,
    source: str | None = None,
) -> pd.DatetimeIndex:
    """A ``(T,)`` column of times (text, datetimes or epoch numbers) -> ``(T,)`` UTC index named ``timestamp``.

    Args:
        raw: the time column, positional (row r = the r-th data row).
        tz: zone of naive times (default UTC); aware times are only converted.
        fmt: an exact ``strftime`` format (or pandas' ``"ISO8601"``); every row must match it.
        dayfirst: the day/month order of ``a.b.YYYY`` dates; None detects it from the data and refuses
            when the data cannot tell.
        source: file or asset named in errors.

    Raises:
        DataError: rules ``ambiguous-date-order``, ``inconsistent-date-order``, ``mixed-timezones``,
            ``bad-timestamp``, ``bad-timezone``.
    """
    raw = pd.Series(raw).reset_index(drop=True)
    if fmt is not None and dayfirst is not None:
        raise DataError(
            "give either format= or dayfirst=, not both (format= already fixes the day/month order)",
            asset=source,
            rule="bad-option",
        )
    if fmt is not None and fmt.strip().lower() == "mixed":
        raise DataError(
            "format=mixed guesses each row's format (and day/month order) separately, which is how day-first "
            "files get scrambled; leave format= out (DREX detects and checks the order) or give an exact format",
            asset=source,
            rule="bad-option",
        )
    numeric = pd.api.types.is_numeric_dtype(raw) and not pd.api.types.is_bool_dtype(raw)
    if fmt is not None:
        stamps = _with_format(raw.astype(str) if numeric else raw, fmt, source)
    elif numeric:
        unit = "ms" if float(np.nanmax(np.abs(raw.to_numpy(dtype="float64")))) > 1e11 else "s"
        stamps = pd.to_datetime(raw, unit=unit, utc=True)
    elif pd.api.types.is_datetime64_any_dtype(raw):
        stamps = raw
    elif pd.api.types.infer_dtype(raw, skipna=True) in ("string", "empty"):
        stamps = _parse_text(raw.astype(object), dayfirst, source)
    else:  # Python datetime/Timestamp objects (e.g. an object index)
        stamps = _parse_objects(raw, source)
    if stamps.isna().any():
        r = int(np.argmax(stamps.isna().to_numpy()))
        raise DataError(
            f"cannot read time {raw.iloc[r]!r} (row {r}); fix the row or give ?format=",
            asset=source,
            rule="bad-timestamp",
        )
    index = pd.DatetimeIndex(stamps)
    if index.tz is None:
        try:
            index = index.tz_localize(tz or "UTC", ambiguous="raise", nonexistent="raise")
        except Exception as exc:
            raise DataError(
                f"cannot place naive times in zone {tz!r}: {exc}", asset=source, rule="bad-timezone"
            ) from exc
    return index.tz_convert("UTC").as_unit("ns").rename("timestamp")


def _with_format(raw: pd.Series, fmt: str, source: str | None) -> pd.Series:
    try:
        stamps = pd.to_datetime(raw, format=fmt, errors="coerce")
    except ValueError as exc:  # e.g. %z rows with different offsets
        if "timezone" not in str(exc).lower():
            raise DataError(f"format {fmt!r} is not usable: {exc}", asset=source, rule="bad-option") from exc
        stamps = pd.to_datetime(raw, format=fmt, errors="coerce", utc=True)
    bad = stamps.isna() & raw.notna()
    if bad.any():
        r = int(np.argmax(bad.to_numpy()))
        raise DataError(
            f"time {raw.iloc[r]!r} (row {r}) does not match format {fmt!r}; fix the row or the format",
            asset=source,
            rule="bad-timestamp",
        )
    return stamps


def _parse_text(raw: pd.Series, dayfirst: bool | None, source: str | None) -> pd.Series:
    text = raw.where(raw.notna(), None)
    order = _date_order(text, dayfirst, source)  # None: no a.b.year dates, the question does not arise
    first = next((v for v in text if isinstance(v, str) and v.strip()), None)
    guess = None
    if first is not None:
        from pandas.tseries.api import guess_datetime_format

        guess = guess_datetime_format(first.strip(), dayfirst=bool(order))
    if guess is not None:
        try:  # one exact format: fast, and no per-row guessing
            return pd.to_datetime(text, format=guess)
        except (ValueError, TypeError):
            pass
    try:
        return pd.to_datetime(text, format="mixed", dayfirst=bool(order))
    except (ValueError, TypeError):  # rows with several UTC offsets (fine), or aware and naive rows (not)
        if _check_all_aware(text, source):
            return pd.to_datetime(text, format="mixed", dayfirst=bool(order), utc=True, errors="coerce")
        return pd.to_datetime(text, format="mixed", dayfirst=bool(order), errors="coerce")


def _parse_objects(raw: pd.Series, source: str | None) -> pd.Series:
    try:
        return pd.to_datetime(raw)
    except (ValueError, TypeError):  # several zones: fine if every value has one
        aware = np.array([getattr(v, "tzinfo", None) is not None for v in raw])
        if not aware.any():
            return pd.to_datetime(raw, errors="coerce")
        if not aware.all():
            j = int(np.argmin(aware))
            raise DataError(
                f"mixed aware/naive times: row {j} ({raw.iloc[j]!r}) has no time zone while others do; give "
                "every value a zone, or none and name their zone with ?tz=",
                asset=source,
                timestamp=raw.iloc[j],
                rule="mixed-timezones",
            ) from None
        return pd.to_datetime(raw, utc=True, errors="coerce")


def _extract(text: pd.Series, pattern: str):
    import pyarrow as pa
    import pyarrow.compute as pc

    values = pa.array(text.to_numpy(dtype=object), type=pa.string(), from_pandas=True)
    return pc.extract_regex(values, pattern), pc


def _date_order(text: pd.Series, dayfirst: bool | None, source: str | None) -> bool | None:
    """True/False when the rows are ``a.b.year`` dates in that order (checked against every row), else None."""
    found, pc = _extract(text, _DMY)
    matched = found.is_valid().to_numpy(zero_copy_only=False)
    if not matched.any():
        return None
    a = pc.fill_null(pc.cast(found.field("a"), "int32"), 0).to_numpy(zero_copy_only=False)
    b = pc.fill_null(pc.cast(found.field("b"), "int32"), 0).to_numpy(zero_copy_only=False)
    day_first_rows, month_first_rows = np.flatnonzero(a > 12), np.flatnonzero(b > 12)
    if day_first_rows.size and month_first_rows.size:
        i, j = day_first_rows[0], month_first_rows[0]
        raise DataError(
            f"row {i} ({text.iloc[i]!r}) is day-first but row {j} ({text.iloc[j]!r}) is month-first; "
            "fix the file or give ?format= for the order most rows use",
            asset=source,
            timestamp=text.iloc[i],
            rule="inconsistent-date-order",
        )
    proved = True if day_first_rows.size else False if month_first_rows.size else None
    if dayfirst is not None:
        if proved is not None and proved != dayfirst:
            r = (day_first_rows if proved else month_first_rows)[0]
            order = "day-first" if proved else "month-first"
            raise DataError(
                f"dayfirst={str(dayfirst).lower()} but row {r} ({text.iloc[r]!r}) can only be {order}; "
                f"use ?dayfirst={str(proved).lower()}",
                asset=source,
                timestamp=text.iloc[r],
                rule="inconsistent-date-order",
            )
        return dayfirst
    if proved is None:
        r = int(np.argmax(matched))
        raise DataError(
            f"day/month order of times like {text.iloc[r]!r} (row {r}) is ambiguous: no row has a day "
            f"above 12 to tell; {_FIX_ORDER}",
            asset=source,
            timestamp=text.iloc[r],
            rule="ambiguous-date-order",
        )
    return proved


def _check_all_aware(text: pd.Series, source: str | None) -> bool:
    """True when every row carries a UTC offset, False when none does; DataError when some do."""
    found, _ = _extract(text, _AWARE)
    aware = found.is_valid().to_numpy(zero_copy_only=False)
    naive = np.flatnonzero(~aware & text.notna().to_numpy())
    if not aware.any():
        return False
    if naive.size:
        i = int(np.argmax(aware)) if aware.any() else 0
        j = int(naive[0])
        raise DataError(
            f"mixed aware/naive times: row {i} ({text.iloc[i]!r}) has a UTC offset but row {j} "
            f"({text.iloc[j]!r}) has none, so tz= could only apply to part of the file; give every row an "
            "offset, or none and name their zone with ?tz=",
            asset=source,
            timestamp=text.iloc[j],
            rule="mixed-timezones",
        )
    return True
