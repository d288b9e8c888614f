"""Validation of bars frames: the first broken rule raises a ``DataError`` naming asset, row, rule, fix.

Rules (``DataError.rule``): ``not-a-frame``, ``empty``, ``too-short``, ``index-type``, ``mixed-timezones``,
``naive-timezone``, ``non-utc-timezone``, ``column-levels``, ``missing-column``, ``extra-column``, ``dtype``,
``duplicate-timestamp``, ``unsorted-timestamps``, ``nan``, ``inf``, ``non-positive-price``,
``negative-volume``, ``high<low``, ``open-outside-range``, ``close-outside-range``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from markets.errors import DataError
from markets.frames import FIELDS, is_multi

__all__ = ["RULES", "validate"]

RULES: tuple[str, ...] = (
    "not-a-frame",
    "empty",
    "too-short",
    "index-type",
    "mixed-timezones",
    "naive-timezone",
    "non-utc-timezone",
    "column-levels",
    "missing-column",
    "extra-column",
    "dtype",
    "duplicate-timestamp",
    "unsorted-timestamps",
    "nan",
    "inf",
    "non-positive-price",
    "negative-volume",
    "high<low",
    "open-outside-range",
    "close-outside-range",
)

_REL_TOL = 1e-9
"""Relative slack for the OHLC ordering rules: adjusted prices carry float rounding of ~1e-15."""

_REPAIR = "call markets.repair(frame)"


def validate(frame: pd.DataFrame, *, asset: str | None = None, min_rows: int = 2) -> pd.DataFrame:
    """Check that ``frame`` is canonical bars and return it (columns in canonical order, index named).

    Args:
        frame: single-asset ``(T, 5)`` bars or multi-asset ``(T, 5N)`` bars with ``(asset, field)`` columns.
        asset: name used in error messages (default ``frame.attrs["symbol"]``; multi-asset frames name the
            offending asset themselves).
        min_rows: fewest rows accepted.

    Raises:
        DataError: the first broken rule, with ``asset``, ``timestamp`` (first offending row) and ``rule``.
    """
    if not isinstance(frame, pd.DataFrame):
        raise DataError(
            f"expected a pandas DataFrame of bars, got {type(frame).__name__}",
            asset=asset,
            rule="not-a-frame",
        )
    name = asset or frame.attrs.get("symbol")
    if len(frame) < min_rows:
        rule = "empty" if len(frame) == 0 else "too-short"
        raise DataError(
            f"{len(frame)} rows, need at least {min_rows}; widen the start/end range or pick another source",
            asset=name,
            rule=rule,
        )
    _check_index(frame.index, name)
    if is_multi(frame):
        out = _validate_multi(frame, name)
    else:
        _check_columns(list(frame.columns), name)
        out = frame if list(frame.columns) == list(FIELDS) else frame[list(FIELDS)]
        _check_values(out, name)
    _check_order(frame.index, name)
    if out.index.name != "timestamp":
        out = out.rename_axis("timestamp")
    if out is not frame:
        out.attrs = dict(frame.attrs)
    return out


def _validate_multi(frame: pd.DataFrame, name: str | None) -> pd.DataFrame:
    cols = frame.columns
    if cols.nlevels != 2 or list(cols.names) != ["asset", "field"]:
        raise DataError(
            f"multi-asset columns must have 2 levels named ('asset', 'field'), got "
            f"{list(cols.names)}; fix: frame.columns = frame.columns.set_names(['asset', 'field'])",
            asset=name,
            rule="column-levels",
        )
    names = list(dict.fromkeys(cols.get_level_values(0)))
    for a in names:
        _check_columns(list(frame[a].columns), str(a))
    expected = pd.MultiIndex.from_product([names, list(FIELDS)], names=["asset", "field"])
    out = frame if cols.equals(expected) else frame.reindex(columns=expected)
    for a in names:
        _check_values(out[a], str(a))
    return out


def _check_index(index: pd.Index, name: str | None) -> None:
    if not isinstance(index, pd.DatetimeIndex):
        zones = {str(getattr(v, "tz", None)) for v in index[:100_000] if isinstance(v, pd.Timestamp)}
        if len(zones) > 1:
            raise DataError(
                f"index mixes time zones ({', '.join(sorted(zones))}); fix: "
                "frame.index = pd.to_datetime(frame.index, utc=True), or markets.repair(frame)",
                asset=name,
                timestamp=index[0],
                rule="mixed-timezones",
            )
        raise DataError(
            f"index is a {type(index).__name__} ({index.dtype}), not a DatetimeIndex; fix: "
            "frame.set_index(pd.to_datetime(frame['timestamp'], utc=True))",
            asset=name,
            rule="index-type",
        )
    if index.tz is None:
        raise DataError(
            "index has no time zone (naive timestamps); fix: frame.tz_localize('UTC'), or "
            "frame.tz_localize('<exchange tz>').tz_convert('UTC') if the times are local",
            asset=name,
            timestamp=index[0],
            rule="naive-timezone",
        )
    if str(index.tz) != "UTC":
        raise DataError(
            f"index is in time zone {index.tz}, bars must be UTC; fix: frame.tz_convert('UTC')",
            asset=name,
            timestamp=index[0],
            rule="non-utc-timezone",
        )


def _check_order(index: pd.DatetimeIndex, name: str | None) -> None:
    dup = index.duplicated()
    if dup.any():
        i = int(np.argmax(dup))
        raise DataError(
            f"{int(dup.sum())} duplicate timestamp(s); {_REPAIR} to drop duplicates (keeps the last)",
            asset=name,
            timestamp=index[i],
            rule="duplicate-timestamp",
        )
    if not index.is_monotonic_increasing:
        values = index.asi8
        i = int(np.argmax(values[1:] < values[:-1])) + 1
        raise DataError(
            f"timestamps are not increasing (row {i} comes before row {i - 1}); fix: "
            f"frame.sort_index(), or {_REPAIR}",
            asset=name,
            timestamp=index[i],
            rule="unsorted-timestamps",
        )


def _check_columns(columns: list, name: str | None) -> None:
    missing = [f for f in FIELDS if f not in columns]
    if missing:
        raise DataError(
            f"missing column(s) {missing} (have {columns}); bars need lower-case "
            f"{', '.join(FIELDS)}: rename them (file: specs match names case-insensitively)",
            asset=name,
            rule="missing-column",
        )
    extra = [c for c in columns if c not in FIELDS]
    if extra:
        raise DataError(
            f"extra column(s) {extra}; bars hold exactly {', '.join(FIELDS)}; fix: "
            "frame[list(markets.FIELDS)]",
            asset=name,
            rule="extra-column",
        )


def _first(mask: np.ndarray) -> tuple[int, int]:
    """(row, column) of the first True of a (T, K) mask, scanning row by row."""
    flat = int(np.argmax(mask.ravel()))
    return divmod(flat, mask.shape[1])


def _check_values(bars: pd.DataFrame, name: str | None) -> None:
    for col, dtype in bars.dtypes.items():
        if dtype != np.float64:
            raise DataError(
                f"column {col!r} is {dtype}, bars must be float64; fix: "
                f"frame[{col!r}] = pd.to_numeric(frame[{col!r}]).astype('float64')",
                asset=name,
                rule="dtype",
            )
    x = bars.to_numpy()  # (T, 5) in FIELDS order
    index = bars.index
    for rule, mask, fix in (
        (
            "nan",
            np.isnan(x),
            ("markets.repair(frame, max_gap=N) fills short gaps, or frame.dropna() drops the rows"),
        ),
        ("inf", np.isinf(x), "replace it, or drop the row"),
    ):
        if mask.any():
            r, c = _first(mask)
            raise DataError(
                f"{int(mask.sum())} {rule.upper()} value(s), first in column {FIELDS[c]!r} (row {r}); {fix}",
                asset=name,
                timestamp=index[r],
                rule=rule,
            )
    o, h, lo, c, v = x.T
    prices = x[:, :4]
    bad = prices <= 0
    if bad.any():
        r, k = _first(bad)
        raise DataError(
            f"non-positive {FIELDS[k]} {float(prices[r, k])!r} (row {r}); prices must be > 0 - drop "
            "or correct the row",
            asset=name,
            timestamp=index[r],
            rule="non-positive-price",
        )
    checks = (
        ("negative-volume", v < 0, lambda r: f"volume {float(v[r])!r} < 0"),
        ("high<low", h < lo, lambda r: f"high {float(h[r])!r} < low {float(lo[r])!r}"),
        (
            "open-outside-range",
            _outside(o, lo, h),
            lambda r: f"open {float(o[r])!r} outside [low {float(lo[r])!r}, high {float(h[r])!r}]",
        ),
        (
            "close-outside-range",
            _outside(c, lo, h),
            lambda r: f"close {float(c[r])!r} outside [low {float(lo[r])!r}, high {float(h[r])!r}]",
        ),
    )
    for rule, mask, describe in checks:
        if mask.any():
            r = int(np.argmax(mask))
            raise DataError(
                f"{describe(r)} (row {r}, {int(mask.sum())} such row(s)); drop or correct the row(s)",
                asset=name,
                timestamp=index[r],
                rule=rule,
            )


def _outside(p: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    slack = _REL_TOL * hi
    return (p < lo - slack) | (p > hi + slack)
