"""Causal features for the environments and the pairs decision-makers: row t uses bars up to t only.

* ``price_features(open, high, low, close) -> (T, 3)``: percent log return, percent log range and percent
  distance of the close to its ``window``-bar mean (``TradingEnv``'s default).
* ``pair_features(log_y, log_x, window) -> PairFeatures``: a rolling Engle-Granger regression
  ``log y = a + b log x + e`` over the last ``window`` bars (rows t-window+1 .. t): hedge ratio ``b_t``,
  intercept ``a_t``, the residual of bar t (the spread) and its z-score (residual / residual std of the
  window; OLS residuals have mean 0). Every window is computed on its own (a sliding-window view, no running
  sums), so a row's value does not depend on how many bars follow it, bit for bit.
* ``windows(values (T, F), lookback) -> (T, lookback * F)``: row t holds rows t-lookback+1 .. t (NaN before).
* ``spread_weights(side, hedge, gross)``: the two legs' weights of a spread position; ``pair_names``: the pair.

numpy only.
"""
from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

__all__ = ["PairFeatures", "pair_features", "pair_names", "price_features", "spread_weights", "windows"]


class PairFeatures(NamedTuple):
    """Rolling regression of ``log y`` on ``log x``, each (T,) float64, NaN for the first ``window - 1`` rows
    (and where ``log x`` is constant over the window). spread: the residual of bar t; z: spread / std."""

    hedge: np.ndarray
    intercept: np.ndarray
    spread: np.ndarray
    z: np.ndarray


def pair_features(log_y: np.ndarray, log_x: np.ndarray, window: int, *, chunk: int = 4096) -> PairFeatures:
    """Rolling OLS hedge ratio, spread and z-score of two log-price series (T,) over ``window`` bars."""
    y = np.ascontiguousarray(log_y, dtype=np.float64)
    x = np.ascontiguousarray(log_x, dtype=np.float64)
    T, W = y.shape[0], int(window)
    if x.shape != (T,):
        raise ValueError(f"log_y and log_x must both be (T,), got {y.shape} and {x.shape}")
    if W < 3:
        raise ValueError(f"window must be >= 3 bars (a regression needs residual degrees of freedom), got {W}")
    out = [np.full(T, np.nan) for _ in range(4)]
    if T < W:
        return PairFeatures(*out)
    xv, yv = sliding_window_view(x, W), sliding_window_view(y, W)  # (T - W + 1, W), row i ends at bar i + W - 1
    for s in range(0, xv.shape[0], chunk):  # chunks bound the (chunk, W) temporaries
        xs, ys = xv[s:s + chunk], yv[s:s + chunk]
        xm, ym = xs.mean(axis=1), ys.mean(axis=1)
        dx, dy = xs - xm[:, None], ys - ym[:, None]
        sxx = (dx * dx).sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            b = np.where(sxx > 0, (dx * dy).sum(axis=1) / sxx, np.nan)
            resid = dy - b[:, None] * dx  # (n, W)
            sd = np.sqrt((resid * resid).sum(axis=1) / (W - 2))
            e = resid[:, -1]
            z = np.where(sd > 0, e / sd, np.nan)
        rows = slice(s + W - 1, s + W - 1 + xs.shape[0])
        out[0][rows], out[1][rows], out[2][rows], out[3][rows] = b, ym - b * xm, e, z
    return PairFeatures(*out)


def price_features(open_: np.ndarray, high: np.ndarray, low: np.ndarray, close: np.ndarray, *,
                   window: int = 20) -> np.ndarray:
    """(T, 3) float64: 100 log(c_t / c_{t-1}), 100 log(h_t / l_t), 100 log(c_t / mean(c_{t-window+1..t}));
    NaN where the history is too short. Inputs (T,) positive prices."""
    c = np.asarray(close, dtype=np.float64)
    T = c.shape[0]
    ret = np.full(T, np.nan)
    ret[1:] = 100.0 * np.diff(np.log(c))
    rng = 100.0 * np.log(np.asarray(high, dtype=np.float64) / np.asarray(low, dtype=np.float64))
    dist = np.full(T, np.nan)
    if T >= window:
        dist[window - 1:] = 100.0 * np.log(c[window - 1:] / sliding_window_view(c, window).mean(axis=1))
    return np.column_stack([ret, rng, dist])


def windows(values: np.ndarray, lookback: int) -> np.ndarray:
    """(T, lookback * F) float64: row t is ``values[t - lookback + 1 : t + 1]`` flattened oldest first
    (rows before ``lookback - 1`` are NaN). ``values`` (T,) or (T, F)."""
    v = np.asarray(values, dtype=np.float64)
    v = v.reshape(v.shape[0], -1)
    T, F = v.shape
    out = np.full((T, lookback * F), np.nan)
    if T >= lookback:
        view = sliding_window_view(v, lookback, axis=0)  # (T - L + 1, F, L)
        out[lookback - 1:] = view.transpose(0, 2, 1).reshape(-1, lookback * F)
    return out


def pair_names(bars: Any, pair: Any = None) -> tuple[str, str]:
    """``(y, x)`` asset names: ``pair`` given as ``"Y,X"`` or a 2-sequence, else the first two assets."""
    from markets.frames import assets

    names = assets(bars)
    if pair is None or pair == "":
        if len(names) < 2:
            raise ValueError(f"pairs trading needs bars of at least two assets, got {names}")
        return names[0], names[1]
    y, x = (p.strip() for p in pair.split(",")) if isinstance(pair, str) else pair
    missing = [a for a in (y, x) if a not in names]
    if missing or y == x:
        raise ValueError(f"pair ({y}, {x}) must be two different assets of the bars; assets: {', '.join(names)}")
    return str(y), str(x)


def spread_weights(side: np.ndarray, hedge: np.ndarray, gross: float) -> np.ndarray:
    """(B, 2) weights of (y, x) for ``side`` (B,) in {-1, 0, 1} and hedge ratios ``hedge`` (B,):
    ``side * gross * (1, -b) / (1 + |b|)`` (0 where ``side`` is 0)."""
    s = np.asarray(side, dtype=np.float64)
    b = np.where(s != 0, np.asarray(hedge, dtype=np.float64), 0.0)
    scale = s * gross / (1.0 + np.abs(b))
    return np.stack([scale, -scale * b], axis=1)
