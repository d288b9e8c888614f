"""Synthetic bars with known ground truth: market regimes (for the router) and cointegrated pairs (stat-arb).

``regimes()`` runs a Markov chain over four regimes and draws daily log-returns whose statistical signature
depends on the regime: ``trend_up``/``trend_down`` have a positive/negative drift, ``mean_reversion`` has a
strongly negative lag-1 autocorrelation and pulls the price back to where the episode began, ``breakout`` has
two to three times the volatility and a drift whose sign is drawn per episode. Shocks are Student-t (fat
tails). OHLC bars are built around the latent close path so that low <= open, close <= high always holds.

``pairs()`` makes minute bars of two or more assets that share one random-walk trend: each asset after the
first is ``log p_k = a_k + b_k log p_0 + s_k`` with a mean-reverting (Ornstein-Uhlenbeck) spread ``s_k``,
except during regime breaks, where the spread is a random walk and cointegration fails. The hedge ratios,
the break segments and the spread itself come back as :class:`PairsTruth`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from markets.errors import DataError

__all__ = ["DEFAULT_PARAMS", "REGIMES", "PairsTruth", "RegimeParams", "load_synth", "pairs", "regimes"]

REGIMES: tuple[str, ...] = ("trend_up", "trend_down", "mean_reversion", "breakout")


@dataclass(frozen=True)
class RegimeParams:
    """Return process of one regime (per bar).

    drift: mean log-return; vol: standard deviation of log-returns; ar: lag-1 autocorrelation of the
    de-meaned returns; pull: fraction of the distance to the episode's starting log-price closed each bar;
    volume: relative volume level.
    """

    drift: float
    vol: float
    ar: float = 0.0
    pull: float = 0.0
    volume: float = 1.0


DEFAULT_PARAMS: dict[str, RegimeParams] = {
    "trend_up": RegimeParams(drift=0.0015, vol=0.010, ar=0.05, volume=1.0),
    "trend_down": RegimeParams(drift=-0.0015, vol=0.012, ar=0.05, volume=1.2),
    "mean_reversion": RegimeParams(drift=0.0, vol=0.008, ar=-0.45, pull=0.05, volume=0.8),
    "breakout": RegimeParams(drift=0.002, vol=0.025, ar=0.10, volume=2.0),  # drift sign drawn per episode
}

_T_DOF = 5.0


def regimes(
    n_bars: int = 2520,
    seed: int = 0,
    *,
    start: str = "2010-01-01",
    freq: str = "1D",
    mean_duration: float = 60.0,
    start_price: float = 100.0,
    params: Mapping[str, RegimeParams] | None = None,
) -> tuple[pd.DataFrame, pd.Series]:
    """Regime-switching OHLCV bars and the true regime of every bar.

    Args:
        n_bars: number of bars T.
        seed: seed of the only random generator used; same arguments and seed give identical output.
        start, freq: first timestamp (UTC) and bar spacing of the index.
        mean_duration: expected bars per regime episode (stay probability ``1 - 1/mean_duration``; on a
            switch the next regime is uniform over the other three).
        start_price: open of the first bar.
        params: per-regime :class:`RegimeParams` overriding ``DEFAULT_PARAMS``.

    Returns:
        ``(bars, labels)``: canonical ``(T, 5)`` bars (``attrs["symbol"] = "SYNTH"``) and a ``(T,)`` string
        Series named ``regime`` with values in ``REGIMES``, on the same index.
    """
    if not isinstance(n_bars, int | np.integer) or n_bars < 2:
        raise DataError(f"n_bars must be an int >= 2, got {n_bars!r}", rule="bad-parameter")
    if mean_duration < 1:
        raise DataError(f"mean_duration must be >= 1 bar, got {mean_duration!r}", rule="bad-parameter")
    table = {**DEFAULT_PARAMS, **(params or {})}
    unknown = set(table) - set(REGIMES)
    if unknown:
        raise DataError(
            f"unknown regime(s) {sorted(unknown)}; valid: {', '.join(REGIMES)}", rule="bad-parameter"
        )
    index = _index(start, n_bars, freq)
    rng = np.random.default_rng(_seed(seed))
    state = _chain(n_bars, mean_duration, rng)  # (T,) regime ids
    p = [table[r] for r in REGIMES]
    drift = np.array([q.drift for q in p])[state]
    vol = np.array([q.vol for q in p])[state]
    ar = np.array([q.ar for q in p])[state]
    pull = np.array([q.pull for q in p])[state]
    new_episode = np.r_[True, state[1:] != state[:-1]]
    sign = np.where(rng.random(n_bars) < 0.5, -1.0, 1.0)
    episode_sign = sign[np.maximum.accumulate(np.where(new_episode, np.arange(n_bars), 0))]
    drift = np.where(state == REGIMES.index("breakout"), np.abs(drift) * episode_sign, drift)
    shocks = rng.standard_t(_T_DOF, n_bars) / np.sqrt(_T_DOF / (_T_DOF - 2.0))  # unit variance
    log_close = _returns_path(shocks, drift, vol, ar, pull, new_episode, np.log(start_price))
    bars = _ohlcv(log_close, vol, np.array([q.volume for q in p])[state], start_price, rng)
    bars.index = index
    bars.attrs = {"symbol": "SYNTH"}
    labels = pd.Series(np.array(REGIMES, dtype=object)[state], index=index, name="regime")
    return bars, labels


def _chain(n: int, mean_duration: float, rng: np.random.Generator) -> np.ndarray:
    stay = 1.0 - 1.0 / mean_duration
    switch = rng.random(n) >= stay
    step = rng.integers(1, len(REGIMES), n)  # move to one of the other regimes
    state = np.empty(n, dtype=np.int64)
    state[0] = rng.integers(len(REGIMES))
    for t in range(1, n):
        state[t] = (state[t - 1] + step[t]) % len(REGIMES) if switch[t] else state[t - 1]
    return state


def _returns_path(shocks, drift, vol, ar, pull, new_episode, x0: float) -> np.ndarray:
    """Log-close path: de-meaned AR(1) returns with stationary std ``vol``, plus the pull to the anchor."""
    n = len(shocks)
    x = np.empty(n)
    dev, prev, anchor = 0.0, x0, x0
    scale = vol * np.sqrt(1.0 - ar**2)
    for t in range(n):
        if new_episode[t]:
            anchor, dev = prev, 0.0
        dev = ar[t] * dev + scale[t] * shocks[t]
        prev = prev + drift[t] + dev - pull[t] * (prev - anchor)
        x[t] = prev
    return x


def _ohlcv(log_close, vol, volume_level, start_price: float, rng: np.random.Generator) -> pd.DataFrame:
    n = len(log_close)
    close = np.exp(log_close)
    prev_close = np.r_[start_price, close[:-1]]
    open_ = prev_close * np.exp(rng.normal(0.0, 0.2, n) * vol)  # small overnight gap
    body_hi, body_lo = np.maximum(open_, close), np.minimum(open_, close)
    high = body_hi * np.exp(np.abs(rng.normal(0.0, 0.5, n)) * vol)
    low = body_lo * np.exp(-np.abs(rng.normal(0.0, 0.5, n)) * vol)
    ret = np.abs(np.diff(np.log(np.r_[start_price, close])))
    volume = np.round(1e6 * volume_level * np.exp(rng.normal(0.0, 0.3, n)) * (1.0 + 20.0 * ret))
    return pd.DataFrame({"open": open_, "high": high, "low": low, "close": close, "volume": volume})


@dataclass(frozen=True)
class PairsTruth:
    """Ground truth of :func:`pairs` (assets ``0..N-1``; asset 0 carries the common trend).

    hedge_ratio: ``(N-1,)`` Series ``b_k`` of ``log p_k`` on ``log p_0`` (index: the assets after the first).
        In price terms, one unit of asset k is hedged by ``b_k * p_k / p_0`` units of asset 0.
    intercept: ``(N-1,)`` Series ``a_k``.
    spread: ``(T, N-1)`` frame ``s_k = log close_k - a_k - b_k log close_0`` (to float precision).
    spread_mean: ``(T, N-1)`` level each spread reverts to; NaN during breaks (after a break it reverts to
        where the break left it: a permanent shift, as after a real structural break).
    cointegrated: ``(T,)`` bool Series, False on the bars of a break.
    breaks: ``(first, last)`` timestamps of each break segment, in order.
    half_life: bars for a spread deviation to halve in the cointegrated segments.
    """

    hedge_ratio: pd.Series
    intercept: pd.Series
    spread: pd.DataFrame
    spread_mean: pd.DataFrame
    cointegrated: pd.Series
    breaks: tuple[tuple[pd.Timestamp, pd.Timestamp], ...]
    half_life: float


def pairs(
    n_bars: int = 20_000,
    seed: int = 0,
    *,
    n_assets: int = 2,
    start: str = "2024-01-01",
    freq: str = "1min",
    hedge_ratio: float | Sequence[float] | None = None,
    half_life: float = 60.0,
    spread_vol: float = 0.002,
    trend_vol: float = 0.0005,
    mean_coint: float = 6000.0,
    mean_break: float = 1500.0,
    break_scale: float = 2.0,
    start_price: float = 100.0,
) -> tuple[pd.DataFrame, PairsTruth]:
    """Cointegrated minute bars with regime breaks, and their ground truth.

    Segments alternate, cointegrated first: a cointegrated segment lasts ``U(0.5, 1.5) * mean_coint`` bars, a
    break ``U(0.5, 1.5) * mean_break`` bars (``mean_break=0``: no breaks). In a cointegrated segment each
    spread is an AR(1) ``s_t = m + phi (s_{t-1} - m) + e_t`` with ``phi = 2**(-1/half_life)`` and stationary
    std ``spread_vol``; during a break ``s_t = s_{t-1} + break_scale * e_t`` (a random walk), and the next
    segment reverts to the level the break ended at. Bars are 24/7 (no sessions).

    Args:
        n_bars: number of bars T.
        seed: seed of the only random generator; same arguments and seed give identical output.
        n_assets: N >= 2 assets named ``A``, ``B``, ``C``...; every asset after the first is cointegrated with
            the first (so all pairs are cointegrated outside breaks).
        start, freq: first timestamp (UTC) and bar spacing.
        hedge_ratio: ``b_k`` (one float, or N-1 floats); default drawn ``U(0.5, 1.5)`` per asset.
        half_life: mean-reversion half-life of the spread, in bars.
        spread_vol: stationary std of each spread (log units) in cointegrated segments.
        trend_vol: per-bar std of the common random-walk trend (log units).
        mean_coint, mean_break: mean lengths (bars) of cointegrated and break segments.
        break_scale: shock size during a break relative to the cointegrated segments' shocks.
        start_price: first close of asset 0 (the others start at prices drawn in [20, 200]).

    Returns:
        ``(bars, truth)``: canonical ``(T, 5N)`` bars with ``(asset, field)`` columns on a UTC index, and
        :class:`PairsTruth` on the same index.
    """
    n_bars, n_assets = _count(n_bars, "n_bars", 2), _count(n_assets, "n_assets", 2)
    k = n_assets - 1
    positive = {"half_life": half_life, "spread_vol": spread_vol, "trend_vol": trend_vol}
    positive |= {"break_scale": break_scale, "start_price": start_price}
    bad = {k: v for k, v in positive.items() if not v > 0} | (
        {} if mean_coint >= 1 else {"mean_coint": mean_coint}
    )
    if mean_break < 0 or bad:
        bad |= {"mean_break": mean_break} if mean_break < 0 else {}
        raise DataError(
            f"bad pairs() parameter(s) {bad}: volatilities, half_life, break_scale, start_price must be > 0, "
            "mean_coint >= 1, mean_break >= 0",
            rule="bad-parameter",
        )
    index = _index(start, n_bars, freq)
    rng = np.random.default_rng(_seed(seed))
    beta = _hedge(hedge_ratio, k, rng)
    in_break = _break_mask(n_bars, mean_coint, mean_break, rng)  # (T,)
    phi = 2.0 ** (-1.0 / half_life)
    shocks = rng.standard_normal((n_bars, k)) * spread_vol * np.sqrt(1.0 - phi**2)  # (T, K)
    shocks[in_break] *= break_scale
    s0 = rng.standard_normal(k) * spread_vol
    spread, mean = _spread_path(shocks, s0, phi, in_break)  # (T, K) each
    trend = np.log(start_price) + np.cumsum(rng.standard_normal(n_bars) * trend_vol)  # (T,)
    prices0 = np.exp(rng.uniform(np.log(20.0), np.log(200.0), k))  # (K,) start levels of the others
    alpha = np.log(prices0) - beta * np.log(start_price)
    log_close = np.column_stack([trend, alpha + beta * trend[:, None] + spread])  # (T, N)
    spread_step = spread_vol * np.sqrt(1.0 - phi**2) * np.where(in_break, break_scale, 1.0)  # (T,)
    bar_vol = np.column_stack(  # (T, N) per-bar std of log-returns: sets the wicks and the open gap
        [np.full(n_bars, trend_vol), np.sqrt((beta * trend_vol) ** 2 + spread_step[:, None] ** 2)]
    )
    names = [_asset_name(i) for i in range(n_assets)]
    frames = {}
    for i, name in enumerate(names):
        first = float(np.exp(log_close[0, i] - rng.normal(0.0, bar_vol[0, i])))
        frames[name] = _ohlcv(log_close[:, i], bar_vol[:, i], np.ones(n_bars), first, rng)
        frames[name].index = index
    bars = pd.concat(frames, axis=1)
    bars.columns = bars.columns.set_names(["asset", "field"])
    others = pd.Index(names[1:], name="asset")
    starts = np.flatnonzero(np.diff(np.r_[0, in_break.astype(np.int8)]) == 1)
    ends = np.flatnonzero(np.diff(np.r_[in_break.astype(np.int8), 0]) == -1)
    truth = PairsTruth(
        hedge_ratio=pd.Series(beta, index=others, name="hedge_ratio"),
        intercept=pd.Series(alpha, index=others, name="intercept"),
        spread=pd.DataFrame(spread, index=index, columns=others),
        spread_mean=pd.DataFrame(mean, index=index, columns=others),
        cointegrated=pd.Series(~in_break, index=index, name="cointegrated"),
        breaks=tuple((index[a], index[b]) for a, b in zip(starts, ends, strict=True)),
        half_life=float(half_life),
    )
    return bars, truth


def _count(value, name: str, least: int) -> int:
    if not isinstance(value, int | np.integer) or isinstance(value, bool) or value < least:
        raise DataError(f"{name} must be an int >= {least}, got {value!r}", rule="bad-parameter")
    return int(value)


def _seed(seed) -> int:
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise DataError(f"seed must be an integer >= 0, got {seed!r} (e.g. seed=1)", rule="bad-parameter")
    return int(seed)


MAX_SPEC_BARS = 10_000_000
"""Most bars a ``synth:`` spec generates (about 0.4 GB of bars per asset; call the functions for more)."""


def _spec_size(n: int, spec: str) -> None:
    if n > MAX_SPEC_BARS:
        raise DataError(
            f"{spec}: n={n:,} bars is more than {MAX_SPEC_BARS:,} (about {n * 40 / 1e9:.0f} GB per asset); "
            "use a smaller n",
            rule="bad-option",
        )


def _index(start: str, n_bars: int, freq: str) -> pd.DatetimeIndex:
    try:
        index = pd.date_range(pd.Timestamp(start, tz="UTC"), periods=n_bars, freq=freq, name="timestamp")
        return index.as_unit("ns")
    except (ValueError, OverflowError) as exc:  # OutOfBoundsDatetime is a ValueError
        raise DataError(
            f"cannot index {n_bars} bars of {freq} from {start} ({exc}); use a shorter freq or fewer bars",
            rule="bad-parameter",
        ) from exc


def _hedge(hedge_ratio, k: int, rng: np.random.Generator) -> np.ndarray:
    drawn = rng.uniform(0.5, 1.5, k)  # drawn either way, so the other draws do not depend on it
    if hedge_ratio is None:
        return drawn
    beta = np.atleast_1d(np.asarray(hedge_ratio, dtype=float))
    if beta.shape == (1,):
        beta = np.full(k, beta[0])
    if beta.shape != (k,) or not np.isfinite(beta).all() or (beta == 0).any():
        raise DataError(
            f"hedge_ratio must be one or {k} finite non-zero floats, got {hedge_ratio!r}",
            rule="bad-parameter",
        )
    return beta


def _break_mask(n: int, mean_coint: float, mean_break: float, rng: np.random.Generator) -> np.ndarray:
    """``(T,)`` bool, True on break bars: alternating segments of ``U(0.5, 1.5) * mean`` bars."""
    mask = np.zeros(n, dtype=bool)
    t, broken = 0, False
    while t < n and mean_break > 0:
        length = max(1, round(rng.uniform(0.5, 1.5) * (mean_break if broken else mean_coint)))
        mask[t : t + length] = broken
        t, broken = t + length, not broken
    return mask


def _spread_path(shocks: np.ndarray, s0: np.ndarray, phi: float, in_break: np.ndarray):
    """``(T, K)`` spreads and the ``(T, K)`` level they revert to (NaN during breaks)."""
    n, k = shocks.shape
    spread, mean = np.empty((n, k)), np.empty((n, k))
    restart = np.r_[False, in_break[:-1] & ~in_break[1:]].tolist()  # first bar after a break
    broken = in_break.tolist()
    for j in range(k):  # scalar loop over Python floats: ~10x faster than per-bar numpy ops
        e, s, m = shocks[:, j].tolist(), float(s0[j]), 0.0
        out, lvl = [0.0] * n, [0.0] * n
        for t in range(n):
            if broken[t]:
                s += e[t]
                lvl[t] = np.nan
                out[t] = s
                continue
            if restart[t]:
                m = s  # the equilibrium moved to where the break left the spread
            s = m + phi * (s - m) + e[t]
            out[t], lvl[t] = s, m
        spread[:, j], mean[:, j] = out, lvl
    return spread, mean


def _asset_name(i: int) -> str:
    return chr(ord("A") + i) if i < 26 else f"A{i}"


def load_synth(
    body: str, params: dict[str, str], *, start=None, end=None, offline: bool = False
) -> pd.DataFrame:
    """``synth:regimes?...`` -> the bars of :func:`regimes`; ``synth:pairs?...`` -> the bars of :func:`pairs`."""
    loaders = {"regimes": _load_regimes, "pairs": _load_pairs}
    if body not in loaders:
        raise DataError(
            f"unknown synthetic generator {body!r}; valid: synth:regimes?seed=1&n=2520, "
            "synth:pairs?seed=1&n=20000",
            rule="bad-spec",
        )
    return loaders[body](params)


_PAIRS_OPTIONS = {
    "seed": int,
    "n": int,
    "start": str,
    "freq": str,
    "assets": int,
    "hedge": str,
    "half_life": float,
    "spread_vol": float,
    "trend_vol": float,
    "mean_coint": float,
    "mean_break": float,
    "break_scale": float,
}


def _load_pairs(params: dict[str, str]) -> pd.DataFrame:
    unknown = set(params) - set(_PAIRS_OPTIONS)
    if unknown:
        raise DataError(
            f"synth:pairs options are {', '.join(_PAIRS_OPTIONS)}; got {sorted(unknown)}", rule="bad-option"
        )
    try:
        opts = {name: _PAIRS_OPTIONS[name](value) for name, value in params.items()}
        hedge = [float(x) for x in opts.pop("hedge").split(",")] if "hedge" in opts else None
    except ValueError as exc:
        raise DataError(
            f"synth:pairs option has the wrong type ({exc}); seed, n, assets are integers, hedge is "
            "comma-separated floats",
            rule="bad-option",
        ) from exc
    seed, n = opts.pop("seed", 0), opts.pop("n", 20_000)
    _spec_size(n, "synth:pairs")
    if "assets" in opts:
        opts["n_assets"] = opts.pop("assets")
    bars, _ = pairs(n, seed, hedge_ratio=hedge, **opts)
    return bars


def _load_regimes(params: dict[str, str]) -> pd.DataFrame:
    """``synth:regimes?seed=1&n=2520[&start=2010-01-01&freq=1D]`` -> the bars of :func:`regimes`."""
    unknown = set(params) - {"seed", "n", "start", "freq"}
    if unknown:
        raise DataError(
            f"synth:regimes options are seed, n, start, freq; got {sorted(unknown)}", rule="bad-option"
        )
    try:
        seed, n = int(params.get("seed", 0)), int(params.get("n", 2520))
    except ValueError as exc:
        raise DataError(f"synth:regimes seed and n must be integers ({exc})", rule="bad-option") from exc
    _spec_size(n, "synth:regimes")
    bars, _ = regimes(n, seed, start=params.get("start", "2010-01-01"), freq=params.get("freq", "1D"))
    return bars
