"""Explicit, reported repairs of bars frames (never applied silently by ``markets.load``)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from markets.errors import DataError
from markets.frames import FIELDS, is_multi

__all__ = ["MAX_REORDER_FRACTION", "RepairChange", "RepairReport", "repair"]

_PRICES = list(FIELDS[:4])

MAX_REORDER_FRACTION = 0.01
"""Most rows :func:`repair` moves into time order on its own: ``max(1, floor(0.01 * T))`` rows out of place
(the fewest rows whose removal leaves the rest in order). More means the times were probably misread
(day/month order, wrong format or zone); sorting would silently move prices to other dates."""


@dataclass(frozen=True)
class RepairChange:
    """One kind of change made by :func:`repair`.

    ``kind`` is one of ``timezone``, ``sorted``, ``duplicates-dropped``, ``inf-to-nan``, ``gaps-filled``,
    ``gaps-left``; ``count`` rows (or NaN runs for the gap kinds); ``first`` the first affected timestamp.
    """

    kind: str
    count: int
    first: pd.Timestamp | None
    asset: str | None = None
    detail: str = ""

    def __str__(self) -> str:
        where = f" [{self.asset}]" if self.asset else ""
        first = f", first at {self.first}" if self.first is not None else ""
        detail = f" ({self.detail})" if self.detail else ""
        return f"{self.kind}{where}: {self.count}{first}{detail}"


@dataclass
class RepairReport:
    """Everything :func:`repair` changed, in the order it did it; ``str()`` gives one line per change."""

    changes: list[RepairChange] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        """True when the repaired frame differs from the input (``gaps-left`` alone changes nothing)."""
        return any(c.kind != "gaps-left" for c in self.changes)

    def count(self, kind: str) -> int:
        """Total ``count`` over changes of ``kind`` (all assets)."""
        return sum(c.count for c in self.changes if c.kind == kind)

    def __str__(self) -> str:
        if not self.changes:
            return "repair: nothing to change"
        return "repair:\n" + "\n".join(f"  - {c}" for c in self.changes)


def repair(
    frame: pd.DataFrame, *, max_gap: int = 3, allow_reorder: bool = False
) -> tuple[pd.DataFrame, RepairReport]:
    """Fix what can be fixed without inventing information, and report each change.

    Steps, in order: convert the index to UTC (naive timestamps are taken as UTC; mixed zones converted),
    sort by time (refused when more than ``MAX_REORDER_FRACTION`` of the rows are out of place, unless
    ``allow_reorder``), drop duplicate timestamps (keep the last), turn +-inf into NaN, then fill NaN runs of at
    most ``max_gap`` consecutive bars: a missing price becomes the last known close (a flat, no-trade bar;
    high/low widened to stay consistent) and a missing volume becomes 0. Longer runs stay NaN so that
    :func:`markets.validate` names them.

    Args:
        frame: single-asset ``(T, 5)`` or multi-asset ``(T, 5N)`` bars (columns must already be canonical).
        max_gap: longest NaN run (in bars) to fill; 0 fills nothing.
        allow_reorder: sort however many rows are out of place (for files whose rows really are shuffled).

    Returns:
        ``(repaired_frame, report)``; the input is not modified.
    """
    if not isinstance(max_gap, int | np.integer) or max_gap < 0:
        raise DataError(f"max_gap must be an int >= 0, got {max_gap!r}", rule="bad-parameter")
    if not isinstance(frame, pd.DataFrame):
        raise DataError(
            f"expected a pandas DataFrame of bars, got {type(frame).__name__}", rule="not-a-frame"
        )
    report = RepairReport()
    out = frame.copy()
    out.attrs = dict(frame.attrs)
    out.index = _utc_index(out.index, report)
    if not out.index.is_monotonic_increasing:
        values = out.index.asi8
        moved = int((np.sort(values, kind="stable") != values).sum())
        first = out.index[int(np.argmax(values[1:] < values[:-1])) + 1]
        misplaced = len(values) - _longest_sorted_run(values)
        limit = max(1, int(MAX_REORDER_FRACTION * len(values)))
        if misplaced > limit and not allow_reorder:
            raise DataError(
                f"{misplaced} of {len(values)} rows are out of time order ({misplaced / len(values):.1%}); "
                f"repair() sorts at most {limit} on its own, as more usually means misread times (day/month "
                "order: file: specs take ?dayfirst=true or ?format=...); if the rows really are shuffled "
                "pass repair(frame, allow_reorder=True) (file: specs: ?repair=reorder)",
                asset=frame.attrs.get("symbol"),
                timestamp=first,
                rule="reorder-limit",
            )
        out = out.sort_index(kind="stable")
        report.changes.append(
            RepairChange(
                "sorted", moved, first, detail=f"rows moved into time order; {misplaced} out of place"
            )
        )
    dup = out.index.duplicated(keep="last")
    if dup.any():
        report.changes.append(
            RepairChange(
                "duplicates-dropped",
                int(dup.sum()),
                out.index[int(np.argmax(dup))],
                detail="kept the last row of each timestamp",
            )
        )
        out = out[~dup]
    out.index.name = "timestamp"
    if is_multi(out):
        for a in dict.fromkeys(out.columns.get_level_values(0)):
            out[a] = _fill_gaps(out[a], max_gap, report, str(a))
    else:
        missing = [f for f in FIELDS if f not in out.columns]
        if missing:
            raise DataError(
                f"repair() needs the canonical columns; missing {missing}",
                asset=frame.attrs.get("symbol"),
                rule="missing-column",
            )
        out = _fill_gaps(out, max_gap, report, None)
    return out, report


def _utc_index(index: pd.Index, report: RepairReport) -> pd.DatetimeIndex:
    if isinstance(index, pd.DatetimeIndex):
        if index.tz is None:
            report.changes.append(
                RepairChange(
                    "timezone",
                    len(index),
                    index[0] if len(index) else None,
                    detail="naive timestamps localized as UTC",
                )
            )
            return index.tz_localize("UTC")
        if str(index.tz) != "UTC":
            report.changes.append(
                RepairChange(
                    "timezone",
                    len(index),
                    index[0] if len(index) else None,
                    detail=f"converted from {index.tz} to UTC",
                )
            )
            return index.tz_convert("UTC")
        return index
    try:
        converted = pd.DatetimeIndex(pd.to_datetime(index, utc=True))
    except (TypeError, ValueError) as exc:
        raise DataError(
            f"cannot read the index as timestamps ({exc}); set a datetime index first", rule="index-type"
        ) from exc
    report.changes.append(
        RepairChange(
            "timezone",
            len(index),
            converted[0] if len(index) else None,
            detail="object/mixed-zone index converted to UTC",
        )
    )
    return converted


def _fill_gaps(bars: pd.DataFrame, max_gap: int, report: RepairReport, asset: str | None) -> pd.DataFrame:
    bars = bars.astype("float64")
    x = bars.to_numpy(copy=True)  # (T, 5) in FIELDS order once reindexed below
    inf = np.isinf(x)
    if inf.any():
        report.changes.append(
            RepairChange("inf-to-nan", int(inf.sum()), bars.index[int(np.argmax(inf.any(1)))], asset, "cells")
        )
        x[inf] = np.nan
    nan_row = np.isnan(x).any(axis=1)
    if not nan_row.any():
        return pd.DataFrame(x, index=bars.index, columns=bars.columns)
    starts, lengths = _runs(nan_row)
    fillable = np.zeros(len(x), dtype=bool)
    left = []
    for s, n in zip(starts, lengths, strict=True):
        if s > 0 and n <= max_gap:
            fillable[s : s + n] = True
        else:
            left.append(s)
    cols = list(bars.columns)
    ci = {f: cols.index(f) for f in FIELDS}
    rows = np.flatnonzero(fillable)
    if rows.size:
        # every row of a run takes the close of the complete row just before the run
        prev_close = pd.Series(np.where(fillable, np.nan, x[:, ci["close"]])).ffill().to_numpy()[rows]
        for f in _PRICES:
            col = x[rows, ci[f]]
            x[rows, ci[f]] = np.where(np.isnan(col), prev_close, col)
        vol = x[rows, ci["volume"]]
        x[rows, ci["volume"]] = np.where(np.isnan(vol), 0.0, vol)
        o, c = x[rows, ci["open"]], x[rows, ci["close"]]
        x[rows, ci["high"]] = np.maximum.reduce([x[rows, ci["high"]], o, c])
        x[rows, ci["low"]] = np.minimum.reduce([x[rows, ci["low"]], o, c])
        n_runs = sum(1 for s, n in zip(starts, lengths, strict=True) if fillable[s])
        report.changes.append(
            RepairChange(
                "gaps-filled",
                int(rows.size),
                bars.index[rows[0]],
                asset,
                f"{n_runs} run(s) of <= {max_gap} bar(s) set to the last close",
            )
        )
    if left:
        report.changes.append(
            RepairChange(
                "gaps-left",
                len(left),
                bars.index[left[0]],
                asset,
                f"NaN runs longer than max_gap={max_gap} or at the start",
            )
        )
    return pd.DataFrame(x, index=bars.index, columns=bars.columns)


def _longest_sorted_run(values: np.ndarray) -> int:
    """Length of the longest non-decreasing subsequence of ``(T,)`` values (patience sorting, O(T log T))."""
    from bisect import bisect_right

    tails: list[int] = []
    for v in values.tolist():
        k = bisect_right(tails, v)
        if k == len(tails):
            tails.append(v)
        else:
            tails[k] = v
    return len(tails)


def _runs(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Start positions and lengths of the True runs of a 1-D bool mask."""
    padded = np.concatenate([[False], mask, [False]]).astype(np.int8)
    edges = np.diff(padded)
    starts = np.flatnonzero(edges == 1)
    ends = np.flatnonzero(edges == -1)
    return starts, ends - starts
