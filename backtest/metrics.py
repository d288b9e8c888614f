"""Performance metrics of period returns, vectorized over a leading parameter axis.

``compute(returns, periods_per_year, positions, *, turnover, trades)`` returns a dict of floats for one return
series ``(T,)`` or a dict of ``(P,)`` arrays for ``P`` series ``(P, T)`` (no loop over columns). With
``r`` the period returns, ``n = T`` their count, ``a`` = periods per year and ``E_t = prod_{s<=t} (1 + r_s)``:

* ``total_return`` = ``E_{n-1} - 1``; ``cagr`` = ``(1 + total_return) ** (a / n) - 1`` (compounded).
* ``ann_volatility`` = ``std(r, ddof=1) * sqrt(a)``.
* ``sharpe`` = ``mean(r) / std(r, ddof=1) * sqrt(a)`` (risk-free rate 0).
* ``sortino`` = ``mean(r) * a / (sqrt(mean(min(r, 0) ** 2)) * sqrt(a))`` (vectorbt's formula).
* ``max_drawdown`` = ``min_t (E_t / max(1, max_{s<=t} E_s) - 1)``, a negative fraction (0 if never below a
  peak). The starting capital counts as the first peak, so a loss on the very first bar is a drawdown
  (vectorbt starts its running peak at ``E_0`` instead; the engine's first return is always 0, so both agree
  on backtests). ``max_drawdown_duration``: bars from that drawdown's peak (-1 = the starting capital) to its
  recovery (first bar back at the peak), or to the last bar if it never recovers.
* ``calmar`` = ``cagr / |max_drawdown|``.
* ``cvar_5`` = historical expected shortfall at 5 %: with ``k = 0.05 n`` and the returns sorted ascending
  ``r_(1) <= r_(2) <= ...``, ``(sum_{i <= floor(k)} r_(i) + (k - floor(k)) r_(floor(k)+1)) / k``, i.e. the mean
  of the worst ``k`` returns with the boundary return weighted by its fraction. Same sign as returns (a loss
  is negative).
* ``turnover_mean`` = mean per-bar turnover (traded notional / equity); ``turnover_annual`` = that times ``a``.
* ``exposure`` = fraction of bars whose close position is non-zero; ``gross_exposure`` = mean of
  ``sum_i |position_i|`` at the close.
* ``hit_rate`` = fraction of bars with ``r > 0`` among bars with a position at the previous or this close
  (NaN if there is none).
* ``n_trades`` = number of executed orders.
* ``flat`` = 1.0 when every return is the same (zero volatility, e.g. a strategy that never trades), else 0.0.

Edge cases: zero volatility (``flat``) gives ``sharpe = sortino = nan``, and no losing bar (zero downside
deviation) gives ``sortino = nan``: the ratio is undefined, and a NaN never ranks first
(``backtest.sweep.rank``). vectorbt returns ``inf`` in both cases (so a combination that never trades would
top a Sharpe ranking). Zero drawdown gives ``calmar = nan`` (as vectorbt); fewer than 2 returns give NaN for
volatility, Sharpe, Sortino, CVaR and ``flat``. Metrics needing an input that was not given (positions,
turnover, trades) are NaN.

``infer_periods_per_year(index)`` guesses ``a`` from a DatetimeIndex (see its docstring); every caller may
override it.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

__all__ = ["METRIC_NAMES", "compute", "infer_periods_per_year", "periods_per_year_series"]

METRIC_NAMES: tuple[str, ...] = (
    "total_return", "cagr", "ann_volatility", "sharpe", "sortino", "calmar", "max_drawdown",
    "max_drawdown_duration", "cvar_5", "turnover_mean", "turnover_annual", "exposure", "gross_exposure",
    "hit_rate", "n_trades", "flat",
)

_DAY = 86400.0


def _as_2d(name: str, x: Any, single: bool, T: int, *, allow_assets: bool) -> np.ndarray:
    """``x`` as float64 ``(P, T)`` (summing |x| over a trailing asset axis when ``allow_assets``)."""
    arr = np.asarray(x, dtype=np.float64)
    if single:
        arr = arr[None]
    if allow_assets and arr.ndim == 3:
        arr = np.abs(arr).sum(axis=-1)
    elif allow_assets:
        arr = np.abs(arr)
    if arr.ndim != 2 or arr.shape[1] != T:
        want = "(T,) or (T, N)" if single else "(P, T) or (P, T, N)"
        raise ValueError(f"{name} has shape {np.shape(x)}; expected {want} matching returns with T={T}")
    return np.nan_to_num(arr, nan=0.0)


def _trade_counts(trades: Any, P: int) -> np.ndarray:
    """Number of trades per parameter row from a trades DataFrame, an int or a ``(P,)`` array."""
    if hasattr(trades, "columns"):
        if "param" in trades.columns:
            return np.bincount(trades["param"].to_numpy(dtype=np.int64), minlength=P).astype(np.float64)
        return np.full(P, float(len(trades)))
    counts = np.asarray(trades, dtype=np.float64).reshape(-1)
    if counts.size not in (1, P):
        raise ValueError(f"trades must be a DataFrame, an int or a (P,) array with P={P}; got {counts.size} counts")
    return np.broadcast_to(counts, (P,)).copy()


def _drawdown(equity: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Max drawdown ``(P,)`` (<= 0) and its duration in bars ``(P,)`` of relative equity ``(P, T)``."""
    P, T = equity.shape
    peak = np.maximum.accumulate(equity, axis=1)
    np.maximum(peak, 1.0, out=peak)  # the starting capital is the first peak
    dd = equity / peak
    trough = np.argmin(dd, axis=1)  # (P,)
    mdd = dd[np.arange(P), trough] - 1.0
    peak_val = peak[np.arange(P), trough][:, None]  # (P, 1)
    tt = np.arange(T)
    at_peak = equity >= peak_val  # (P, T)
    before = at_peak & (tt <= trough[:, None])
    has_peak = before.any(axis=1)
    peak_idx = np.where(has_peak, T - 1 - np.argmax(before[:, ::-1], axis=1), -1)
    after = at_peak & (tt > trough[:, None])
    recovered = after.any(axis=1)
    end_idx = np.where(recovered, np.argmax(after, axis=1), T - 1)
    duration = np.where(mdd < 0.0, end_idx - peak_idx, 0).astype(np.float64)
    return mdd, duration


def _cvar(r: np.ndarray, level: float = 0.05) -> np.ndarray:
    """Historical expected shortfall ``(P,)`` of returns ``(P, T)`` with a fractional boundary weight."""
    T = r.shape[1]
    k = level * T
    m = math.floor(k)
    part = np.partition(r, m, axis=1) if m < T else np.sort(r, axis=1)
    return (part[:, :m].sum(axis=1) + (k - m) * part[:, m]) / k


def _compute_arrays(r: np.ndarray, ppy: float, *, gross: np.ndarray | None = None,
                    turnover: np.ndarray | None = None, n_trades: np.ndarray | None = None,
                    equity: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """All metrics of returns ``r (P, T)`` as ``(P,)`` arrays. ``gross (P, T)``: sum |position| at the close;
    ``turnover (P, T)``; ``n_trades (P,)``; ``equity (P, T)``: ``cumprod(1 + r)`` if already known."""
    P, T = r.shape
    nan = np.full(P, np.nan)
    eq = np.cumprod(1.0 + r, axis=1) if equity is None else equity
    out: dict[str, np.ndarray] = {}
    if T == 0:
        return {k: nan.copy() for k in METRIC_NAMES}
    total = eq[:, -1] - 1.0
    out["total_return"] = total
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        out["cagr"] = np.power(1.0 + total, ppy / T) - 1.0
        mean = r.mean(axis=1)
        if T >= 2:
            dev = r - mean[:, None]
            std = np.sqrt(np.einsum("pt,pt->p", dev, dev) / (T - 1))
            neg = np.minimum(r, 0.0)
            downside = np.sqrt(np.einsum("pt,pt->p", neg, neg) / T)
            flat = r.min(axis=1) == r.max(axis=1)  # (P,) zero volatility, exactly
            out["ann_volatility"] = std * math.sqrt(ppy)
            out["sharpe"] = np.where((std == 0.0) | flat, np.nan, mean / std * math.sqrt(ppy))
            out["sortino"] = np.where((downside == 0.0) | flat, np.nan, mean * ppy / (downside * math.sqrt(ppy)))
            out["cvar_5"] = _cvar(r)
            out["flat"] = flat.astype(np.float64)
        else:
            out["ann_volatility"] = out["sharpe"] = out["sortino"] = out["cvar_5"] = nan.copy()
            out["flat"] = nan.copy()
        mdd, duration = _drawdown(eq)
        out["max_drawdown"] = mdd
        out["max_drawdown_duration"] = duration
        out["calmar"] = np.where(mdd == 0.0, np.nan, out["cagr"] / np.abs(mdd))
    if turnover is not None:
        out["turnover_mean"] = turnover.mean(axis=1)
        out["turnover_annual"] = out["turnover_mean"] * ppy
    else:
        out["turnover_mean"] = out["turnover_annual"] = nan.copy()
    if gross is not None:
        held = gross > 0.0
        out["exposure"] = held.mean(axis=1)
        out["gross_exposure"] = gross.mean(axis=1)
        in_market = held.copy()
        in_market[:, 1:] |= held[:, :-1]
        n_in = in_market.sum(axis=1)
        wins = np.count_nonzero(in_market & (r > 0.0), axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            out["hit_rate"] = np.where(n_in > 0, wins / n_in, np.nan)
    else:
        out["exposure"] = out["gross_exposure"] = out["hit_rate"] = nan.copy()
    out["n_trades"] = nan.copy() if n_trades is None else np.asarray(n_trades, dtype=np.float64)
    return {k: out[k] for k in METRIC_NAMES}


def compute(returns: Any, periods_per_year: float, positions: Any = None, *, turnover: Any = None,
            trades: Any = None) -> dict[str, Any]:
    """Metrics of period returns (formulas in the module docstring).

    returns: ``(T,)`` (Series or array) -> a dict of floats; ``(P, T)`` array -> a dict of ``(P,)`` arrays
    (a pandas DataFrame is read as ``(T, P)``, one column per series). No NaN allowed.
    periods_per_year: annualization factor ``a`` (252 daily equities, 365 daily crypto; see
    ``infer_periods_per_year``).
    positions: weights held at each close, ``(T,)``/``(T, N)`` (or ``(P, T)``/``(P, T, N)``); enables
    exposure and hit rate. turnover: ``(T,)`` or ``(P, T)``. trades: the engine's trades DataFrame (a
    ``param`` column counts per parameter row), an int or a ``(P,)`` array of counts.
    """
    if not (isinstance(periods_per_year, (int, float, np.floating, np.integer)) and periods_per_year > 0):
        raise ValueError(f"periods_per_year must be a positive number (e.g. 252 or 365), got {periods_per_year!r}")
    if hasattr(returns, "columns"):  # DataFrame (T, P)
        r = returns.to_numpy(dtype=np.float64).T
    else:
        r = np.asarray(returns, dtype=np.float64)
    single = r.ndim == 1
    if single:
        r = r[None]
    if r.ndim != 2:
        raise ValueError(f"returns must be (T,) or (P, T), got shape {r.shape}")
    P, T = r.shape
    if np.isnan(r).any():
        p, t = np.argwhere(np.isnan(r))[0]
        where = f"row {t}" if single else f"series {p}, row {t}"
        raise ValueError(f"returns contain NaN at {where}; drop or fill missing periods first (e.g. .fillna(0.0))")
    gross = None if positions is None else _as_2d("positions", positions, single, T, allow_assets=True)
    turn = None if turnover is None else _as_2d("turnover", turnover, single, T, allow_assets=False)
    n_trades = None if trades is None else _trade_counts(trades, P)
    res = _compute_arrays(r, float(periods_per_year), gross=gross, turnover=turn, n_trades=n_trades)
    if single:
        return {k: float(v[0]) for k, v in res.items()}
    return res


def infer_periods_per_year(index: Any) -> float:
    """Periods per year implied by a DatetimeIndex's bar spacing (override it whenever you know better).

    The median spacing ``dt`` decides the kind of bars: about a month -> 12, a quarter -> 4, a year -> 1,
    a week -> 52. Daily bars (``dt`` of a day, gaps allowed) -> 365 when weekend bars are present (at least
    10 % of bars on Saturday/Sunday, UTC: 24/7 markets such as crypto) else 252 (exchange calendar).
    Intraday bars: 24/7 data -> ``365 * (1 day / dt)`` (1h crypto = 8760); session data -> ``252 *`` the median
    number of bars per calendar day (1h US equities, 7 bars a session -> 1764).
    """
    import pandas as pd

    if not isinstance(index, pd.DatetimeIndex):
        raise TypeError(f"infer_periods_per_year needs a DatetimeIndex, got {type(index).__name__}; "
                         "pass periods_per_year explicitly")
    if len(index) < 3:
        raise ValueError(f"cannot infer the bar frequency from {len(index)} timestamps; pass periods_per_year "
                         "explicitly (e.g. 252 for daily equities, 365 for daily crypto)")
    per_second = {"s": 1.0, "ms": 1e3, "us": 1e6, "ns": 1e9}[getattr(index, "unit", "ns")]
    steps = np.diff(index.asi8) / per_second  # seconds (asi8 counts the index's unit)
    dt = float(np.median(steps))
    if dt <= 0:
        raise ValueError("timestamps must be strictly increasing to infer periods_per_year")
    weekend = float(np.mean(index.day_of_week >= 5)) >= 0.10
    per_day = pd.Series(1, index=index).groupby(index.normalize()).size()
    return float(_classify(np.array([dt]), np.array([weekend]), np.array([np.median(per_day.to_numpy())]))[0])


def _classify(dt: np.ndarray, weekend: np.ndarray, per_day: np.ndarray) -> np.ndarray:
    """Periods per year for median spacings ``dt`` (seconds), weekend bars present, median bars per day
    (arrays of one shape): the rules of ``infer_periods_per_year``."""
    days = dt / _DAY
    with np.errstate(divide="ignore", invalid="ignore"):
        intraday = np.where(weekend, 365.0 * _DAY / dt, 252.0 * per_day)
    return np.select([days >= 300, days >= 80, days >= 25, days >= 5, days >= 0.9],
                     [1.0, 4.0, 12.0, 52.0, np.where(weekend, 365.0, 252.0)], intraday)


def periods_per_year_series(index: Any) -> np.ndarray:
    """``infer_periods_per_year`` computed causally: entry t uses timestamps up to t only -> ``(T,)``.

    The same rules on expanding statistics: median spacing, weekend share and median bars per calendar day
    over the days completed so far (a day counts as completed at the first bar of the next day; before any,
    the current day's count so far). NaN for the first two bars (no spacing to read yet). Decision-makers
    that annualize use this, so their decision at t never depends on the spacing of later bars.
    """
    import pandas as pd

    T = len(index)
    out = np.full(T, np.nan)
    if T < 3:
        return out
    per_second = {"s": 1.0, "ms": 1e3, "us": 1e6, "ns": 1e9}[getattr(index, "unit", "ns")]
    dt = pd.Series(np.diff(index.asi8) / per_second).expanding().median().to_numpy()  # (T-1,)
    weekend = pd.Series(index.day_of_week >= 5).expanding().mean().to_numpy() >= 0.10
    day = pd.Series(index.normalize())
    count_today = day.groupby(day).cumcount().to_numpy() + 1.0  # bars of the current day so far
    new_day = day.ne(day.shift(1)).to_numpy()
    done = np.full(T, np.nan)  # the previous day's full count, known at the first bar of the next day
    done[1:][new_day[1:]] = count_today[:-1][new_day[1:]]
    per_day = pd.Series(done).expanding().median().to_numpy()
    per_day = np.where(np.isnan(per_day), count_today, per_day)
    out[2:] = _classify(dt[1:], weekend[2:], per_day[2:])
    return out
    per_second = {"s": 1.0, "ms": 1e3, "us": 1e6, "ns": 1e9}[getattr(index, "unit", "ns")]
    steps = pd.Series(np.diff(index.asi8) / per_second)
    dt = steps.expanding().median().to_numpy()  # (T-1,) median of the steps up to bar k+1
    weekend = (pd.Series(index.day_of_week >= 5).expanding().mean().to_numpy() >= 0.10)
    day = pd.Series(index.normalize())
    count_today = day.groupby(day).cumcount().to_numpy() + 1  # bars of the current day so far
    per_day = pd.Series(np.where(day.ne(day.shift(-1)).to_numpy(), count_today, np.nan))
    per_day = per_day.expanding().median().to_numpy()  # completed days so far (the last one counts as done)
    per_day = np.where(np.isnan(per_day), count_today, per_day)
    for t in range(2, T):  # a handful of comparisons per bar
        out[t] = _classify(float(dt[t - 1]), bool(weekend[t]), float(per_day[t]))
    return out
