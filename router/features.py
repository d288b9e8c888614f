"""The router's numeric inputs: long-horizon temporal tokens per bar, causal, for one asset at a time.

For every bar t the router reads (besides the chart, :mod:`router.charts`):

* **chunk tokens** ``(L, 5)``: the last ``L * C`` bars (default 21 x 12 = 252, a trading year) cut into ``L``
  chunks of ``C`` bars, oldest first; per chunk: the log return, the log of the realized volatility (std of
  log returns), the mean log volume minus a long baseline, the log high/low range and the lag-1
  autocorrelation ratio ``sum r_i r_{i-1} / sum r_i^2``. Chunk ``L - 1`` ends at bar t.
* **the now token** ``(F,)`` (:data:`NOW_FEATURES`): multi-window summaries at bar t (returns, volatility,
  volume, autocorrelation and range over 5..60 bars) and indicators from :mod:`markets.features` (RSI,
  Bollinger z, ADX, the position in the Donchian channel, moving-average gaps).

Volume is compared with a long baseline: the mean log volume of the last ``baseline`` bars (default 2,520,
ten years; at least 60), so a regime's volume level is visible against the asset's own history. Assets
without volume (close-only data, volume 0) get 0 for every volume feature.

Everything at row t uses bars ``0..t`` only (rolling windows that end at t; tests truncate and perturb the
bars after t). Values in warm-up are NaN; :func:`standardize` maps them to 0 after scaling with the
training set's mean and std (stored in the router checkpoint).

    >>> import markets
    >>> bars = markets.load("synth:regimes?seed=1&n=300")
    >>> chunks, now = temporal_inputs(bars)
    >>> chunks.shape, now.shape
    ((300, 21, 5), (300, 28))
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

__all__ = ["CHUNK_FEATURES", "DEFAULT_SPEC", "NOW_FEATURES", "TemporalSpec", "standardize", "temporal_inputs"]

CHUNK_FEATURES: tuple[str, ...] = ("ret", "log_vol", "volume", "range", "autocorr")
"""Features of each chunk token."""

_WINDOWS = (5, 10, 20, 40, 60)
NOW_FEATURES: tuple[str, ...] = (
    *(f"ret{w}" for w in _WINDOWS),
    *(f"log_vol{w}" for w in _WINDOWS),
    *(f"volume{w}" for w in _WINDOWS),
    *(f"autocorr{w}" for w in _WINDOWS[1:]),
    *(f"range{w}" for w in (5, 20, 60)),
    "rsi14", "bollinger_z20", "adx14", "donchian20", "ma_gap20", "ma_gap50",
)
"""Features of the now token, in order."""


class TemporalSpec(NamedTuple):
    """Shape of the temporal inputs: ``chunks`` tokens of ``chunk`` bars, volume ``baseline`` in bars."""

    chunks: int = 21
    chunk: int = 12
    baseline: int = 2520

    @property
    def span(self) -> int:
        """Bars covered by the chunk tokens (the router's long horizon)."""
        return self.chunks * self.chunk


def _rolling_sum(x: np.ndarray, w: int) -> np.ndarray:
    """Trailing sums over ``w`` rows of ``x (T,)``; NaN for the first ``w - 1`` rows or where a NaN is inside.

    Each sum is taken directly over its own window (a strided view), so a value never depends on rows
    outside its window (no cumulative-sum drift: the perturbation test demands bit-identical rows).
    """
    out = np.full(x.shape, np.nan)
    if len(x) >= w:
        out[w - 1:] = np.lib.stride_tricks.sliding_window_view(x, w).sum(axis=-1)
    return out


def _rolling(x: np.ndarray, w: int, fn: str) -> np.ndarray:
    out = np.full(x.shape, np.nan)
    if len(x) >= w:
        view = np.lib.stride_tricks.sliding_window_view(x, w)
        out[w - 1:] = getattr(view, fn)(axis=-1) if fn != "std" else view.std(axis=-1, ddof=1)
    return out


def _window_features(o, h, lo, c, v, w: int) -> dict[str, np.ndarray]:
    """Per-bar features of the ``w`` bars ending at each bar ``(T,)`` each."""
    r = np.r_[np.nan, np.diff(np.log(c))]
    lv = np.where(v > 0, np.log(np.where(v > 0, v, 1.0)), np.nan)
    prod = np.r_[np.nan, r[1:] * r[:-1]]
    sq = r * r
    num, den = _rolling_sum(prod, w), _rolling_sum(sq, w)
    with np.errstate(divide="ignore", invalid="ignore"):
        ac = np.where(den > 0, num / den, 0.0)
        ac = np.where(np.isnan(num) | np.isnan(den), np.nan, ac)
        vol = _rolling(r, w, "std")
        log_vol = np.log(np.maximum(vol, 1e-8))
        log_vol = np.where(np.isnan(vol), np.nan, log_vol)
        rng = np.log(_rolling(h, w, "max") / _rolling(lo, w, "min"))
    ret = np.full(c.shape, np.nan)
    ret[w:] = np.log(c[w:] / c[:-w])
    return {"ret": ret, "log_vol": log_vol, "volume": _rolling(lv, w, "mean"), "range": rng, "autocorr": ac}


def _baseline(v: np.ndarray, n: int) -> np.ndarray:
    """Mean log volume of the last ``n`` bars (at least 60 with volume), per bar ``(T,)``; NaN otherwise."""
    has = v > 0
    lv = np.where(has, np.log(np.where(has, v, 1.0)), 0.0)
    T = len(v)
    out = np.full(T, np.nan)
    # prefix sums from bar 0: the value at t reads rows <= t only (causal, and identical under truncation)
    csum = np.concatenate([[0.0], np.cumsum(lv)])
    ccnt = np.concatenate([[0], np.cumsum(has)])
    t = np.arange(T)
    a = np.maximum(0, t - n + 1)
    cnt = ccnt[t + 1] - ccnt[a]
    ok = cnt >= 60
    out[ok] = (csum[t + 1] - csum[a])[ok] / cnt[ok]
    return out


DEFAULT_SPEC = TemporalSpec()


def temporal_inputs(bars, *, spec: TemporalSpec = DEFAULT_SPEC, rows=None) -> tuple[np.ndarray, np.ndarray]:
    """Chunk tokens and now features of one asset (module docstring).

    Args:
        bars: single-asset canonical bars ``(T, 5)`` (DataFrame) or a ``(T, 5)`` OHLCV array.
        spec: token layout.
        rows: ``(R,)`` bar positions to return (default all ``T``).

    Returns:
        ``chunks (R, L, 5)`` and ``now (R, F)`` float32 arrays, NaN in warm-up.
    """
    from markets import features as mf

    x = bars[["open", "high", "low", "close", "volume"]].to_numpy(np.float64) if hasattr(bars, "columns") \
        else np.asarray(bars, dtype=np.float64)
    o, h, lo, c, v = x.T
    T = len(c)
    rows = np.arange(T) if rows is None else np.asarray(rows, dtype=np.int64)
    base = _baseline(v, spec.baseline)  # (T,)
    has_volume = bool((v > 0).any())

    chunk = _window_features(o, h, lo, c, v, spec.chunk)  # each (T,)
    ends = rows[:, None] - spec.chunk * np.arange(spec.chunks - 1, -1, -1)[None, :]  # (R, L) chunk end bars
    valid = ends >= 0
    safe = np.maximum(ends, 0)
    cols = []
    for name in CHUNK_FEATURES:
        val = chunk[name][safe]
        if name == "volume":
            val = val - base[rows][:, None] if has_volume else np.zeros_like(val)
        cols.append(np.where(valid, val, np.nan))
    chunks = np.stack(cols, axis=-1).astype(np.float32)  # (R, L, 5)

    import pandas as pd

    now: dict[str, np.ndarray] = {}
    per_w = {w: _window_features(o, h, lo, c, v, w) for w in _WINDOWS}
    for w in _WINDOWS:
        now[f"ret{w}"] = per_w[w]["ret"]
    for w in _WINDOWS:
        now[f"log_vol{w}"] = per_w[w]["log_vol"]
    for w in _WINDOWS:
        now[f"volume{w}"] = per_w[w]["volume"] - base if has_volume else np.zeros(T)
    for w in _WINDOWS[1:]:
        now[f"autocorr{w}"] = per_w[w]["autocorr"]
    for w in (5, 20, 60):
        now[f"range{w}"] = per_w[w]["range"]
    close, high, low = pd.Series(c), pd.Series(h), pd.Series(lo)
    now["rsi14"] = mf.rsi(close, 14).to_numpy() / 100.0
    now["bollinger_z20"] = mf.bollinger_z(close, 20).to_numpy()
    now["adx14"] = mf.adx(high, low, close, 14).to_numpy() / 100.0
    upper, lower, _ = mf.donchian(high, low, 20)
    with np.errstate(divide="ignore", invalid="ignore"):
        span = (upper - lower).to_numpy()
        now["donchian20"] = np.where(span > 0, (c - lower.to_numpy()) / span, 0.5)
        now["donchian20"] = np.where(np.isnan(span), np.nan, now["donchian20"])
        now["ma_gap20"] = np.log(c / _rolling(c, 20, "mean"))
        now["ma_gap50"] = np.log(c / _rolling(c, 50, "mean"))
    assert tuple(now) == NOW_FEATURES
    now_arr = np.stack([now[k][rows] for k in NOW_FEATURES], axis=-1).astype(np.float32)  # (R, F)
    return chunks, now_arr


def standardize(x: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """``(x - mean) / std`` over the last axis, NaN (warm-up) -> 0, clipped to [-8, 8]; float32."""
    z = (np.asarray(x, np.float32) - mean) / np.where(std > 0, std, 1.0)
    return np.clip(np.nan_to_num(z, nan=0.0, posinf=8.0, neginf=-8.0), -8.0, 8.0).astype(np.float32)
