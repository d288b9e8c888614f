"""Training data of the router: per (bar, asset) inputs, regime labels and expert-reward targets, split in time.

``build_series(spec, experts, ...)`` turns one data spec into :class:`Series` (one per asset): the OHLCV array
(charts are rendered per minibatch, never stored), the temporal inputs, the experts' weights ``h (T, K)``,
the regime label of every bar and the reward of following each expert for the next H bars after costs:

    r_k(t) = horizon_rewards(open, close, t, h_k(t), H, fees, slippage, start_exposure=h_k(t-1))

(the one accounting, ``backtest.accounting.horizon_rewards``: holding expert k's exposure from t's decision, executed at t+1,
marked at t+H's close, starting from what expert k held), normalized ``z_k(t) = r_k(t) / (sigma_t sqrt(H))``
with ``sigma_t`` the 20-bar realized volatility at t, so that assets and periods weigh alike. The supervised
routing target is "which expert did best over the next H bars": the router regresses ``z`` (its weights are
``softmax(z_hat / route_tau)``), or, with ``route_loss="ce"``, the soft targets ``softmax(z / tau)``.

Regime labels (classes ``up, down, sideways, breakout``):

* ``synth:regimes`` specs: EXACT, from ``markets.synthetic.regimes`` (trend_up -> up, trend_down -> down,
  mean_reversion -> sideways, breakout -> breakout);
* other data: hindsight over the next ``label_horizon`` bars (not available at t; labels only): breakout
  when the realized volatility of bars t+1..t+H is at least 1.5x the trailing 60-bar volatility, else up /
  down when the log return over them is above / below +-0.5 sigma_60 sqrt(H), else sideways.

Splits (:func:`time_split`): the first ``1 - val_frac`` of each series trains, the rest validates, with the
last H train rows purged (``backtest.splits.walk_forward``): no train label window reaches a validation bar.
"""
from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from backtest.accounting import horizon_rewards
from router.experts import ExpertSpec, exposures
from router.features import DEFAULT_SPEC, TemporalSpec, temporal_inputs

__all__ = ["SYNTH_REGIME_MAP", "Series", "build_series", "hindsight_regimes", "normalized_rewards", "realized_sigma",
           "soft_targets", "time_split"]

SYNTH_REGIME_MAP: dict[str, str] = {"trend_up": "up", "trend_down": "down", "mean_reversion": "sideways",
                                    "breakout": "breakout"}
"""``markets.synthetic.REGIMES`` -> the regime head's classes."""

_MIN_HISTORY = 60  # rows before this have too little history for the indicators: not trained on


class Series(NamedTuple):
    """One asset's training material (``T`` bars, ``K`` experts).

    name: ``spec`` or ``spec/asset``. index: the bars' timestamps. ohlcv: ``(T, 5)`` float64.
    chunks: ``(T, L, 5)`` and now: ``(T, F)`` float32 temporal inputs. h: ``(T, K)`` expert weights.
    answers: ``(T, K)`` answer texts or None. regime: ``(T,)`` int class (-1 unknown). rewards: ``(T, K)``
    float64 r_k(t) (NaN where t + H is past the end). synthetic: exact labels (True) or hindsight.
    true_regime: ``(T,)`` the generator's own regime names (synthetic data) or None.
    """

    name: str
    index: Any
    ohlcv: np.ndarray
    chunks: np.ndarray
    now: np.ndarray
    h: np.ndarray
    answers: np.ndarray | None
    regime: np.ndarray
    rewards: np.ndarray
    synthetic: bool
    true_regime: np.ndarray | None

    @property
    def n_bars(self) -> int:
        return len(self.ohlcv)

    def trainable(self, horizon: int) -> np.ndarray:
        """``(T,)`` bool: rows with enough history and a complete reward window."""
        t = np.arange(self.n_bars)
        return (t >= _MIN_HISTORY) & (t + horizon <= self.n_bars - 1)


def _synthetic_labels(spec: str, index) -> np.ndarray | None:
    """The generator's regime names on ``index`` for ``synth:regimes`` specs, else None."""
    from markets.sources import parse_spec
    from markets.synthetic import regimes

    scheme, body, params = parse_spec(spec)
    if scheme != "synth" or body != "regimes":
        return None
    _, labels = regimes(int(params.get("n", 2520)), int(params.get("seed", 0)),
                        start=params.get("start", "2010-01-01"), freq=params.get("freq", "1D"))
    return labels.reindex(index).to_numpy(dtype=object)


def hindsight_regimes(ohlcv: np.ndarray, horizon: int, regimes: tuple[str, ...]) -> np.ndarray:
    """Hindsight regime class per bar ``(T,)`` int (-1 where the next ``horizon`` bars are not all there).

    See the module docstring; uses FUTURE bars by design (a label, never an input).
    """
    c = ohlcv[:, 3]
    T = len(c)
    r = np.r_[np.nan, np.diff(np.log(c))]
    import pandas as pd

    sigma = pd.Series(r).rolling(60, min_periods=20).std().to_numpy()  # (T,) trailing
    fut_vol = pd.Series(r[::-1]).rolling(horizon, min_periods=horizon).std().to_numpy()[::-1]  # r[t..t+H-1]
    fut_vol = np.r_[fut_vol[1:], np.nan]  # realized vol of r[t+1..t+H]
    fut_ret = np.full(T, np.nan)
    fut_ret[: T - horizon] = np.log(c[horizon:] / c[: T - horizon])
    out = np.full(T, -1, dtype=np.int64)
    ok = np.isfinite(sigma) & np.isfinite(fut_vol) & np.isfinite(fut_ret) & (sigma > 0)
    z = np.where(ok, fut_ret / np.where(ok, sigma, 1.0) / np.sqrt(horizon), 0.0)
    ratio = np.where(ok, fut_vol / np.where(ok, sigma, 1.0), 0.0)
    idx = {name: i for i, name in enumerate(regimes)}
    cls = np.where(ratio >= 1.5, idx["breakout"], np.where(z >= 0.5, idx["up"],
                   np.where(z <= -0.5, idx["down"], idx["sideways"])))
    out[ok] = cls[ok]
    return out


def normalized_rewards(rewards: np.ndarray, sigma: np.ndarray, horizon: int, clip: float = 5.0) -> np.ndarray:
    """``z = r / (sigma sqrt(H))`` ``(B, K)`` from rewards ``(B, K)`` and ``sigma (B,)`` (floored at 1e-4),
    clipped to ``[-clip, clip]``; NaN rewards -> 0."""
    z = np.nan_to_num(rewards) / (np.maximum(np.nan_to_num(sigma, nan=1e-4), 1e-4) * np.sqrt(horizon))[:, None]
    return np.clip(z, -clip, clip)


def soft_targets(z: np.ndarray, tau: float) -> np.ndarray:
    """``(B, K)`` soft targets ``softmax(z / tau)`` of normalized rewards ``z (B, K)``."""
    z = z / tau
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def _single_assets(bars) -> list[tuple[str | None, Any]]:
    import pandas as pd

    if not isinstance(bars.columns, pd.MultiIndex):
        return [(None, bars)]
    from markets.frames import assets

    out = []
    for a in assets(bars):
        one = bars[a].copy()
        one.attrs = {"symbol": a}
        out.append((a, one))
    return out


def build_series(spec: str, experts: tuple[ExpertSpec, ...], *, regimes: tuple[str, ...], horizon: int,
                 label_horizon: int = 20, fees: float = 0.001, slippage: float = 0.0, start: str | None = None,
                 end: str | None = None, temporal: TemporalSpec = DEFAULT_SPEC) -> list[Series]:
    """One :class:`Series` per asset of ``spec`` (module docstring), clipped to ``[start, end]``."""
    import markets

    bars = markets.load(spec, start=start, end=end)
    synth = _synthetic_labels(spec, bars.index)
    out = []
    for asset, one in _single_assets(bars):
        ohlcv = one[["open", "high", "low", "close", "volume"]].to_numpy(np.float64)
        T = len(ohlcv)
        chunks, now = temporal_inputs(ohlcv, spec=temporal)
        ex = exposures(one, experts)
        h = ex.weights[:, 0, :]  # (T, K)
        if synth is not None:
            regime = np.array([regimes.index(SYNTH_REGIME_MAP[s]) if isinstance(s, str) else -1 for s in synth])
        else:
            regime = hindsight_regimes(ohlcv, label_horizon, regimes)
        rewards = np.full(h.shape, np.nan)
        t = np.arange(1, T - horizon)
        if len(t):
            for k in range(h.shape[1]):
                rewards[t, k] = horizon_rewards(ohlcv[:, 0], ohlcv[:, 3], t, h[t, k], horizon, fees=fees,
                                                slippage=slippage, start_exposure=h[t - 1, k])
        name = spec if asset is None else f"{spec}/{asset}"
        out.append(Series(name, one.index, ohlcv, chunks, now, h,
                          None if ex.answers is None else ex.answers[:, 0, :], regime, rewards,
                          synth is not None, synth))
    return out


def time_split(n_bars: int, horizon: int, val_frac: float) -> tuple[np.ndarray, np.ndarray]:
    """``(train rows, validation rows)`` of one series: the last ``val_frac`` validates; train rows end
    ``horizon`` bars before it (purged with ``backtest.splits.walk_forward``)."""
    from backtest.splits import walk_forward

    if not 0.0 < val_frac < 1.0:
        raise ValueError(f"val_frac must be in (0, 1), got {val_frac}")
    test = max(1, round(n_bars * val_frac))
    fold = walk_forward(n_bars, horizon=horizon, folds=1, test_bars=test)[0]
    return fold.train, fold.test


def realized_sigma(ohlcv: np.ndarray, window: int = 20) -> np.ndarray:
    """Trailing std of log returns over ``window`` bars ``(T,)`` (causal; NaN in warm-up)."""
    import pandas as pd

    r = np.r_[np.nan, np.diff(np.log(ohlcv[:, 3]))]
    return pd.Series(r).rolling(window, min_periods=window).std().to_numpy()
