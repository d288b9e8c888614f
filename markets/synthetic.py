"""Synthetic bars with known market regimes (the ground truth the router's supervised stage learns from).

``regimes()`` runs a Markov chain over four regimes and draws daily log-returns whose statistical signature
depends on the regime: ``trend_up``/``trend_down`` have a positive/negative drift, ``mean_reversion`` has a
strongly negative lag-1 autocorrelation and pulls the price back to where the episode began, ``breakout`` has
two to three times the volatility and a drift whose sign is drawn per episode. Shocks are Student-t (fat
tails). OHLC bars are built around the latent close path so that low <= open, close <= high always holds.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from markets.errors import DataError

__all__ = ["DEFAULT_PARAMS", "REGIMES", "RegimeParams", "load_synth", "regimes"]

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
    try:
        index = pd.date_range(pd.Timestamp(start, tz="UTC"), periods=n_bars, freq=freq, name="timestamp")
        index = index.as_unit("ns")
    except (ValueError, OverflowError) as exc:  # OutOfBoundsDatetime is a ValueError
        raise DataError(
            f"cannot index {n_bars} bars of {freq} from {start} ({exc}); use a shorter freq or fewer bars",
            rule="bad-parameter",
        ) from exc
    rng = np.random.default_rng(seed)
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


def load_synth(
    body: str, params: dict[str, str], *, start=None, end=None, offline: bool = False
) -> pd.DataFrame:
    """``synth:regimes?seed=1&n=2520[&start=2010-01-01&freq=1D]`` -> the bars of :func:`regimes`."""
    if body != "regimes":
        raise DataError(
            f"unknown synthetic generator {body!r}; valid: synth:regimes?seed=1&n=2520", rule="bad-spec"
        )
    unknown = set(params) - {"seed", "n", "start", "freq"}
    if unknown:
        raise DataError(
            f"synth:regimes options are seed, n, start, freq; got {sorted(unknown)}", rule="bad-option"
        )
    try:
        seed, n = int(params.get("seed", 0)), int(params.get("n", 2520))
    except ValueError as exc:
        raise DataError(f"synth:regimes seed and n must be integers ({exc})", rule="bad-option") from exc
    bars, _ = regimes(n, seed, start=params.get("start", "2010-01-01"), freq=params.get("freq", "1D"))
    return bars
