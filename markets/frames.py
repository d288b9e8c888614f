"""The canonical bars format and the helpers that move between one-asset and many-asset frames.

Single asset: flat frame, UTC ``DatetimeIndex`` named ``timestamp``, float64 ``open, high, low, close,
volume``.
Several assets: ONE frame with column ``MultiIndex`` ``(asset, field)`` (level names ``asset``, ``field``).
"""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd

from markets.errors import DataError

__all__ = ["FIELDS", "assets", "combine", "fields", "is_multi"]

FIELDS: tuple[str, ...] = ("open", "high", "low", "close", "volume")
"""Canonical field order of every bars frame."""


def is_multi(bars: pd.DataFrame) -> bool:
    """True when ``bars`` is a multi-asset frame (column ``MultiIndex`` ``(asset, field)``)."""
    return isinstance(bars.columns, pd.MultiIndex)


def assets(bars: pd.DataFrame) -> list[str]:
    """Asset names of ``bars`` in column order.

    A single-asset frame gives ``[attrs["symbol"]]`` (or ``["asset"]`` when it has no symbol).
    """
    if is_multi(bars):
        return [str(a) for a in bars.columns.get_level_values(0).unique()]
    return [str(bars.attrs.get("symbol") or "asset")]


def fields(bars: pd.DataFrame, field: str) -> pd.DataFrame:
    """The same ``field`` of every asset as a ``(T, N)`` frame whose columns are the asset names.

    Args:
        bars: single-asset ``(T, 5)`` or multi-asset ``(T, 5N)`` bars.
        field: one of ``open, high, low, close, volume``.

    Returns:
        ``(T, N)`` float64 frame (a single-asset frame gives one column named after ``attrs["symbol"]``).
    """
    if field not in FIELDS:
        raise DataError(f"unknown field {field!r}; valid fields: {', '.join(FIELDS)}", rule="unknown-field")
    if is_multi(bars):
        out = bars.xs(field, axis=1, level=1)
        out.columns = pd.Index([str(c) for c in out.columns], name="asset")
        return out
    if field not in bars.columns:
        raise DataError(
            f"bars have no {field!r} column (columns: {list(bars.columns)})",
            asset=bars.attrs.get("symbol"),
            rule="missing-column",
        )
    return bars[[field]].set_axis(pd.Index(assets(bars), name="asset"), axis=1)


def combine(frames: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """Join single-asset frames into one multi-asset frame, keeping only timestamps common to all.

    Args:
        frames: ``{asset: (T_i, 5) bars}`` in the column order wanted; each is validated first.

    Returns:
        ``(T, 5N)`` frame with column ``MultiIndex`` ``(asset, field)``, inner-joined on timestamps and
        validated. Raises ``DataError`` when nothing overlaps.
    """
    from markets.validation import validate

    if not frames:
        raise DataError("combine() needs at least one {asset: frame} entry", rule="empty")
    parts = {}
    for name, frame in frames.items():
        if is_multi(frame):
            raise DataError(
                "combine() takes single-asset frames; this one is already multi-asset",
                asset=name,
                rule="multi-asset-input",
            )
        parts[str(name)] = validate(frame, asset=str(name), min_rows=1)
    common = None
    for frame in parts.values():
        common = frame.index if common is None else common.intersection(frame.index)
    if len(common) == 0:
        spans = ", ".join(f"{a}: {f.index[0]}..{f.index[-1]}" for a, f in parts.items())
        raise DataError(
            f"the assets share no timestamp ({spans}); pick assets with overlapping history",
            asset=",".join(parts),
            rule="no-overlap",
        )
    out = pd.concat({a: f.loc[common, list(FIELDS)] for a, f in parts.items()}, axis=1)
    out.columns = out.columns.set_names(["asset", "field"])
    out.index.name = "timestamp"
    out.attrs = {}
    return validate(out)
