"""Pairs trading without learning: Engle-Granger pair selection and the classic z-score threshold rule.

* ``rank_pairs(bars, formation=(lo, hi))``: every pair of assets tested for cointegration on the formation
  window only (``statsmodels.tsa.stattools.coint`` on log closes, both orderings; the ordering with the lower
  p-value names ``y`` and ``x``; a one-lag screen of all pairs, then the best ``top`` with AIC-chosen lags),
  sorted by p-value. ``select_pair`` takes the best one.
* ``pairs_zscore`` (a registered decision-maker): the spread's rolling z-score (``backtest.envs.features``,
  the same features the DQN agent sees) opens a spread position when ``|z| >= entry_z`` (short the spread above,
  long below), closes it when z comes back within ``exit_z`` of 0 (``side * z >= -exit_z``), at the stop
  (``|z| >= stop_z``) or after ``max_hold`` bars (0: never); after a stop or a timeout no new entry until
  ``|z| < entry_z``. The legs are ``backtest.envs.features.spread_weights`` with the hedge ratio frozen at
  entry, as in the environment.

numpy/pandas at import; statsmodels inside ``rank_pairs``.
"""
from __future__ import annotations

import math
from itertools import combinations
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from backtest.decisions import Decision, Param, ParamSpace, register
from backtest.envs.features import pair_features, pair_names, spread_weights

__all__ = ["PairChoice", "rank_pairs", "select_pair", "zscore_positions"]


class PairChoice(NamedTuple):
    """A cointegrated pair: ``y`` regressed on ``x`` over the formation window; ``pvalue`` of the Engle-Granger
    test, ``hedge`` the OLS slope of log y on log x, ``half_life`` of the residual in bars (AR(1) fit; inf if
    it does not revert)."""

    y: str
    x: str
    pvalue: float
    hedge: float
    half_life: float


def _half_life(resid: np.ndarray) -> float:
    e0, e1 = resid[:-1] - resid[:-1].mean(), resid[1:] - resid[1:].mean()
    phi = float((e0 * e1).sum() / (e0 * e0).sum())
    return float(np.log(0.5) / np.log(phi)) if 0.0 < phi < 1.0 else float("inf")


def rank_pairs(bars: Any, *, formation: tuple[int, int] | None = None, assets: list[str] | None = None,
               min_bars: int = 60, top: int = 10) -> pd.DataFrame:
    """Engle-Granger test of every pair on ``bars[lo:hi]`` (module docstring).

    Two stages, both ``statsmodels.tsa.stattools.coint``: every pair and ordering with one lag of the ADF
    regression (fast), then the ``top`` best pairs again with the lag chosen by AIC (statsmodels' default,
    up to 12 (n/100)^(1/4) lags, slow on long windows); their final p-values rank them first. Returns a
    DataFrame with columns ``y, x, pvalue, hedge, half_life, stage`` sorted by p-value (best first).
    """
    import markets

    lo, hi = formation if formation is not None else (0, len(bars))
    close = markets.fields(bars, "close").iloc[lo:hi]
    names = list(assets) if assets else list(close.columns)
    if len(names) < 2:
        raise ValueError(f"pair selection needs at least two assets, got {names}")
    if len(close) < min_bars:
        raise ValueError(f"the formation window has {len(close)} bars; Engle-Granger needs at least {min_bars}")
    logp = {n: np.log(close[n].to_numpy(np.float64)) for n in names}
    with _one_blas_thread():
        quick = [r for a, b in combinations(names, 2) if (r := _best_order(logp, a, b, fast=True))]
        quick.sort(key=lambda r: (r[2], r[0], r[1]))
        final = [_best_order(logp, y, x, fast=False) for y, x, *_ in quick[:top]]
    rows = [(*r, "aic") for r in final if r] + [(*r, "lag1") for r in quick[top:]]
    frame = pd.DataFrame(rows, columns=[*PairChoice._fields, "stage"])
    order = np.lexsort((frame["x"], frame["y"], frame["pvalue"], frame["stage"] != "aic"))
    return frame.iloc[order].reset_index(drop=True)


def _best_order(logp: dict[str, np.ndarray], a: str, b: str, *, fast: bool) -> tuple | None:
    """(y, x, pvalue, hedge, half_life) of the ordering of (a, b) with the lower Engle-Granger p-value."""
    from statsmodels.tsa.stattools import coint

    best = None
    for y, x in ((a, b), (b, a)):
        yy, xx = logp[y], logp[x]
        if np.ptp(xx) == 0 or np.ptp(yy) == 0:
            continue
        kw = {"maxlag": 1, "autolag": None} if fast else {"autolag": "aic"}
        p = float(coint(yy, xx, trend="c", **kw)[1])
        if best is None or p < best[2]:
            beta = float(np.polyfit(xx, yy, 1)[0])
            best = (y, x, p, beta, _half_life(yy - beta * xx))
    return best


def _one_blas_thread() -> Any:
    """statsmodels' many small least-squares fits: a multi-threaded BLAS only slows them down (badly, on a
    busy machine). A no-op without threadpoolctl."""
    import contextlib

    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - threadpoolctl comes with scikit-learn
        return contextlib.nullcontext()
    return threadpool_limits(1, user_api="blas")


def select_pair(bars: Any, *, formation: tuple[int, int] | None = None, assets: list[str] | None = None) -> PairChoice:
    """The pair with the lowest Engle-Granger p-value on the formation window (``rank_pairs``'s first row)."""
    ranked = rank_pairs(bars, formation=formation, assets=assets)
    if ranked.empty:
        raise ValueError("no pair of assets could be tested (constant prices in the formation window?)")
    return PairChoice(*ranked.iloc[0].tolist()[:5])


def zscore_positions(z: np.ndarray, *, entry: float, exit: float, stop: float, max_hold: int) -> np.ndarray:
    """(T,) sides in {-1, 0, 1} of the threshold rule on z-scores ``z`` (T,) (NaN: flat, no entry)."""
    side = np.zeros(z.shape[0], dtype=np.int64)
    s, held, blocked = 0, 0, False
    for t, v in enumerate(z.tolist()):
        if math.isnan(v):
            s, held = 0, 0
        else:
            if s != 0:
                held += 1
                timeout = bool(max_hold) and held >= max_hold
                if s * v >= -exit or abs(v) >= stop or timeout:
                    blocked = abs(v) >= stop or timeout  # no re-entry until |z| < entry
                    s, held = 0, 0
            if s == 0:
                blocked = blocked and abs(v) >= entry
                if not blocked and abs(v) >= entry and abs(v) < stop:
                    s, held = (-1 if v > 0 else 1), 0
        side[t] = s
    return side


def _check(p: dict[str, Any]) -> None:
    if not 0.0 <= p["exit_z"] < p["entry_z"] < p["stop_z"]:
        raise ValueError(f"pairs_zscore needs 0 <= exit_z < entry_z < stop_z, got exit_z={p['exit_z']}, "
                         f"entry_z={p['entry_z']}, stop_z={p['stop_z']}")


_PARAMS = ParamSpace({
    "pair": Param("", doc="'Y,X' asset names (default: the first two assets of the bars)"),
    "hedge_window": Param(120, low=3, doc="bars of the rolling hedge regression"),
    "entry_z": Param(2.0, low=0.0, low_open=True, doc="open a spread position at |z| >= entry_z"),
    "exit_z": Param(0.5, low=0.0, doc="close when z is back within exit_z of 0"),
    "stop_z": Param(4.0, low=0.0, low_open=True, doc="close (and wait for |z| < entry_z) at |z| >= stop_z"),
    "max_hold": Param(0, low=0, doc="close after this many bars (0: no timeout)"),
    "exposure": Param(1.0, low=0.0, low_open=True, doc="gross weight of an open spread"),
}, _check, owner="pairs_zscore")


@register("pairs_zscore", params=_PARAMS, example_spec="synth:pairs?seed=1&n=2000",
          warmup=lambda p: int(p["hedge_window"]))
def pairs_zscore(bars: Any, *, pair: str, hedge_window: int, entry_z: float, exit_z: float, stop_z: float,
                 max_hold: int, exposure: float) -> Decision:
    """Classic pairs rule: trade the spread's rolling z-score against thresholds (the DQN's baseline)."""
    import markets
    from markets.frames import assets

    y, x = pair_names(bars, pair or None)
    close = markets.fields(bars, "close")
    f = pair_features(np.log(close[y].to_numpy(np.float64)), np.log(close[x].to_numpy(np.float64)), hedge_window)
    side = zscore_positions(f.z, entry=entry_z, exit=exit_z, stop=stop_z, max_hold=max_hold)
    entered = (side != 0) & (np.r_[0, side[:-1]] != side)
    hedge = pd.Series(np.where(entered, f.hedge, np.nan)).ffill().to_numpy()  # frozen at entry
    legs = spread_weights(side, hedge, exposure)  # (T, 2)
    names = assets(bars)
    weights = pd.DataFrame(0.0, index=bars.index, columns=pd.Index(names, name="asset"))
    weights[y], weights[x] = legs[:, 0], legs[:, 1]
    trace = pd.DataFrame({"z": f.z, "hedge": f.hedge, "spread": f.spread, "side": side.astype(float),
                          f"weight_{y}": legs[:, 0], f"weight_{x}": legs[:, 1]}, index=bars.index)
    return Decision(weights, trace)
