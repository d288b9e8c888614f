"""Look-ahead analysis for any registered decision-maker: truncation, perturbation and warm-up dependence.

A decision at bar t may use bars up to t's close only. ``analyze(name_or_dm, bars)`` checks it empirically
(freqtrade's lookahead-analysis and recursive-analysis, for every kind of decision-maker):

* truncation: at each cut t, deciding on ``bars[: t + 1]`` must give exactly the full-history weights and
  trace of rows ``0..t``;
* perturbation: replacing every bar after t with random, large (valid) OHLCV values must leave rows ``0..t``
  bit-identical;
* newest-bar decisions: ``decide(bars, start=k)`` must equal rows ``k..`` of the full-history decision (this is
  what paper trading calls every tick);
* warm-up dependence (reported, not a violation): the decisions of the last rows recomputed with less history
  loaded (``bars[s:]`` for several s); rows that change show how much history the decision-maker needs
  (exponential smoothing, Wilder's RSI ...).

EVERY bar that differs is reported: one ``Finding`` per (check, cut, bar) with all its differing columns and
the size of the change. ``tests/test_lookahead_registry.py`` runs ``analyze`` over EVERY registered
decision-maker, so a new one is covered the moment it registers; ``drex lookahead`` runs it from the command
line (exit code 1 when look-ahead is found).
"""
from __future__ import annotations

import math
from typing import Any, NamedTuple

import numpy as np

__all__ = ["Finding", "LookaheadReport", "analyze", "default_cuts", "perturb_after"]


class Finding(NamedTuple):
    """One bar whose decision or trace differs: ``check`` (truncated | perturbed | newest | warmup), the cut
    (or the history start for warmup), the bar (row and timestamp), the first differing ``column``
    (``weight:ASSET`` or a trace column), ``columns``: every differing column at that bar, and ``delta``: the
    largest absolute difference among its numeric columns (inf when a value appeared or vanished; NaN when
    only non-numeric columns differ)."""

    check: str
    cut: int
    row: int
    timestamp: Any
    column: str
    columns: tuple[str, ...] = ()
    delta: float = math.nan


class LookaheadReport(NamedTuple):
    """``violations``: look-ahead findings, one per (check, cut, bar) (must be empty); ``warmup``: warm-up
    dependence findings, one per (history start, bar) among the last bars (information, not a violation)."""

    name: str
    n_bars: int
    cuts: list[int]
    violations: list[Finding]
    warmup: list[Finding]

    @property
    def ok(self) -> bool:
        return not self.violations

    @property
    def bars(self) -> list[int]:
        """Every bar (row) whose decision or trace changed in some look-ahead check, sorted."""
        return sorted({f.row for f in self.violations})

    def summary(self) -> str:
        """One line: OK, or how many bars changed at how many cuts and where the first one is."""
        if self.ok:
            starts = len({f.cut for f in self.warmup})
            w = f"; warm-up dependent at {starts} history length(s)" if starts else ""
            return f"{self.name}: no look-ahead at {len(self.cuts)} cut points over {self.n_bars} bars{w}"
        f = self.violations[0]
        cuts = len({v.cut for v in self.violations})
        return (f"{self.name}: LOOK-AHEAD: {len(self.bars)} bar(s) changed at {cuts} of {len(self.cuts)} cut "
                f"points; first: {f.check} cut at row {f.cut}, row {f.row} ({f.timestamp}) column {f.column!r}")


def default_cuts(n_bars: int, n: int = 8) -> list[int]:
    """``n`` cut points spread over the history, the first and last bars included."""
    if n_bars < 2:
        return [0] if n_bars else []
    return sorted({0, *np.linspace(1, n_bars - 2, max(n - 1, 1)).round().astype(int).tolist()})


def perturb_after(bars: Any, t: int, seed: int = 0) -> Any:
    """A copy of ``bars`` whose rows after ``t`` get random, large but valid OHLCV values (every asset)."""
    import pandas as pd

    rng = np.random.default_rng(seed)
    out = bars.copy()
    n = len(bars) - t - 1
    if n <= 0:
        return out
    multi = isinstance(bars.columns, pd.MultiIndex)
    assets = list(dict.fromkeys(bars.columns.get_level_values(0))) if multi else [None]
    for a in assets:
        def col(f: str, a: Any = a) -> Any:
            return (a, f) if multi else f

        level = float(out[col("close")].to_numpy()[t])
        close = level * np.exp(rng.normal(0, 0.5, n).cumsum())
        open_ = close * np.exp(rng.normal(0, 0.2, n))
        high = np.maximum(open_, close) * np.exp(np.abs(rng.normal(0, 0.2, n)))
        low = np.minimum(open_, close) * np.exp(-np.abs(rng.normal(0, 0.2, n)))
        volume = rng.uniform(0, 1e9, n)
        for f, v in zip(("open", "high", "low", "close", "volume"), (open_, high, low, close, volume)):
            out.iloc[t + 1:, out.columns.get_loc(col(f))] = v
    return out


def _table(decision: Any) -> Any:
    """Weights and trace side by side as one frame (weight columns named ``weight:ASSET``)."""
    import pandas as pd

    w = decision.weights
    w = w.to_frame("weight:" + str(w.name)) if isinstance(w, pd.Series) else w.add_prefix("weight:")
    return pd.concat([w, decision.trace], axis=1)


def _diffs(a: Any, b: Any, rtol: float = 0.0) -> list[tuple[int, tuple[str, ...], float]]:
    """Every row where two frames of the same shape differ: ``(row, differing columns, max |numeric diff|)``
    (NaN equals NaN; numbers exactly, or within ``rtol`` relative when given)."""
    if a.shape != b.shape or list(a.columns) != list(b.columns):
        return [(0, ("<columns or length differ>",), math.inf)]
    n = a.shape[0]
    differ = np.zeros((n, a.shape[1]), dtype=bool)
    delta = np.full(n, -np.inf)
    for j in range(a.shape[1]):
        x, y = a.iloc[:, j].to_numpy(), b.iloc[:, j].to_numpy()
        if x.dtype.kind in "fcbiu" and y.dtype.kind in "fcbiu":
            x, y = x.astype(np.float64), y.astype(np.float64)
            with np.errstate(invalid="ignore"):
                same = (x == y) | (np.isnan(x) & np.isnan(y)) | (np.abs(x - y) <= rtol * np.abs(y))
                d = np.where(same, -np.inf, np.where(np.isnan(x) | np.isnan(y), np.inf, np.abs(x - y)))
            delta = np.maximum(delta, d)
        else:
            same = np.array([u == v or (_isnan(u) and _isnan(v)) for u, v in zip(x, y)], dtype=bool)
        differ[:, j] = ~same
    cols = [str(c) for c in a.columns]
    return [(int(r), tuple(c for c, on in zip(cols, differ[r]) if on), float(delta[r]) if delta[r] > -np.inf
             else math.nan) for r in np.flatnonzero(differ.any(axis=1))]


def _isnan(x: Any) -> bool:
    return x is None or (isinstance(x, float) and math.isnan(x))


def analyze(dm: Any, bars: Any, *, params: dict[str, Any] | None = None, cuts: list[int] | None = None,
            seed: int = 0, warmup_starts: list[int] | None = None, newest: bool = True) -> LookaheadReport:
    """Check a decision-maker (a registered name, built with ``params``, or an instance) on ``bars``.

    cuts: bar indices t to cut at (default ``default_cuts``). warmup_starts: history starts s for the warm-up
    dependence check (default: 25%, 50%, 75% of the bars); [] skips it. newest: also check
    ``decide(bars, start=k)`` at the cuts. Returns a ``LookaheadReport``.
    """
    from backtest.decisions import build, decide

    if isinstance(dm, str):
        name, dm = dm, build(dm, params)
    else:
        name = getattr(dm, "name", type(dm).__name__)
    T = len(bars)
    cuts = default_cuts(T) if cuts is None else [int(c) for c in cuts if 0 <= c < T]
    full = _table(decide(dm, bars))
    index = bars.index
    violations: list[Finding] = []

    def record(check: str, cut: int, got: Any, want: Any, offset: int = 0) -> None:
        for r, cols, delta in _diffs(got, want):
            row = offset + r
            violations.append(Finding(check, cut, row, index[min(row, T - 1)], cols[0], cols, delta))

    for k, t in enumerate(cuts):
        record("truncated", t, _table(decide(dm, bars.iloc[: t + 1])), full.iloc[: t + 1])
        perturbed = _table(decide(dm, perturb_after(bars, t, seed=seed + k)))
        record("perturbed", t, perturbed.iloc[: t + 1], full.iloc[: t + 1])
        if newest and t > 0:
            record("newest", t, _table(decide(dm, bars, start=t)), full.iloc[t:], offset=t)
    starts = [T // 4, T // 2, 3 * T // 4] if warmup_starts is None else warmup_starts
    warm: list[Finding] = []
    tail = max(1, T // 8)
    for s in (s for s in starts if 0 < s < T - tail):
        got = _table(decide(dm, bars.iloc[s:])).iloc[-tail:]
        for r, cols, delta in _diffs(got, full.iloc[-tail:], rtol=1e-9):  # float rounding is not memory
            row = T - tail + r
            warm.append(Finding("warmup", s, row, index[row], cols[0], cols, delta))
    return LookaheadReport(name, T, cuts, violations, warm)
