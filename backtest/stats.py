"""Statistics of backtest returns that account for luck: Sharpe confidence intervals, PSR/DSR and PBO.

All functions take *per-bar* returns: ``(T,)`` for one strategy, ``(T, N)`` (rows = bars, columns = trials or
strategies; a DataFrame is read the same way) for several. ``a = periods_per_year`` only rescales the reported
Sharpe ratios (``SR_annual = SR sqrt(a)``); the inference itself runs on per-bar values, as in the papers.

Notation: ``r_t`` returns, ``T`` their count, ``mu`` their mean, ``sigma`` their standard deviation
(``ddof = 1``), ``SR = mu / sigma`` the per-bar Sharpe ratio (risk-free rate 0, the convention of
``backtest.metrics``), ``g3`` the skewness and ``g4`` the (non-excess, normal = 3) kurtosis of ``r``
(population moments ``m_k / m_2^(k/2)``). ``Phi`` is the standard normal CDF, ``gamma_E = 0.5772...``.

* ``sharpe_ratio``: ``SR sqrt(a)``; **NaN, never inf, when the volatility is zero** (a flat strategy) or
  ``T < 2`` - every function below propagates that NaN.
* ``sharpe_se`` / ``sharpe_ci``: Lo (2002), "The Statistics of Sharpe Ratios", FAJ 58(4). ``"iid"``: iid normal
  returns, ``Var(SR^) = (1 + SR^2 / 2) / T``. ``"hac"``: Lo's GMM estimator for non-iid returns,
  ``Var(SR^) = grad' S grad / T`` with ``grad = (1 / sigma, -mu / (2 sigma^3))`` and ``S`` the Newey-West
  (Bartlett weights ``1 - j / (q + 1)``, ``q`` lags) long-run covariance of
  ``psi_t = (r_t - mu, (r_t - mu)^2 - sigma^2)``; with ``q = 0`` it is the non-normal iid formula
  ``(1 - g3 SR + (g4 - 1) / 4 SR^2) / T`` (Mertens 2002). ``"bootstrap"``: percentile interval of the Sharpe
  ratios of stationary-bootstrap resamples (Politis & Romano 1994, JASA 89(428)): blocks start at uniform
  random bars and have geometric lengths of mean ``b`` (a block continues with probability ``1 - 1/b``, wrapping
  around the end). Index generation draws, per replication, ``T`` uniform start bars then ``T`` uniforms from
  ``numpy.random.default_rng(seed)``, the scheme of ``arch.bootstrap.StationaryBootstrap`` (same seed, same
  resamples). Default ``b = round(T^(1/3))``: the ``T^(1/3)`` growth rate minimises the MSE of block-bootstrap
  variance estimates (Hall, Horowitz & Jing 1995); ~14 for ten years of daily bars.
* ``probabilistic_sharpe_ratio`` (Bailey & Lopez de Prado 2012, "The Sharpe Ratio Efficient Frontier"):
  ``PSR(SR*) = Phi((SR - SR*) sqrt(T - 1) / sqrt(1 - g3 SR + (g4 - 1) / 4 SR^2))``, the probability that the true
  Sharpe ratio exceeds ``SR*`` given the estimate's non-normal sampling error.
* ``expected_max_sharpe`` / ``deflated_sharpe_ratio`` / ``deflated_sharpe`` (Bailey & Lopez de Prado 2014,
  "The Deflated Sharpe Ratio: Correcting for Selection Bias, Backtest Overfitting and Non-Normality", JPM 40(5)):
  with ``N`` trials whose Sharpe ratios have variance ``V``, the expected maximum under the null of no skill is
  ``SR0 = sqrt(V) ((1 - gamma_E) Phi^-1(1 - 1/N) + gamma_E Phi^-1(1 - 1/(N e)))``, and ``DSR = PSR(SR0)`` using
  the selected trial's ``SR, g3, g4, T``. ``DSR >= 0.95`` is the paper's bar for a discovery.
* ``pbo`` (Bailey, Borwein, Lopez de Prado & Zhu 2017, "The Probability of Backtest Overfitting", J. Comp.
  Finance 20(4)): combinatorially symmetric cross-validation, see its docstring.

numpy at import time; scipy.special (``ndtr``, ``ndtri``) is imported inside the functions that need it.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from itertools import combinations
from typing import Any, NamedTuple

import numpy as np

__all__ = [
    "DeflatedSharpe", "PBOResult", "SharpeCI", "deflated_sharpe", "deflated_sharpe_ratio",
    "expected_max_sharpe", "newey_west_lags", "pbo", "probabilistic_sharpe_ratio", "sharpe_ci",
    "sharpe_ratio", "sharpe_se", "stationary_bootstrap_indices",
]

EULER_GAMMA = 0.5772156649015329
SE_METHODS = ("iid", "hac")
CI_METHODS = ("iid", "hac", "bootstrap")
_ZERO_VOL = 1e-12  # variance <= _ZERO_VOL * mean(r^2) counts as zero volatility (rounding of constant series)


class SharpeCI(NamedTuple):
    """Sharpe ratio with a confidence interval, all annualized by ``sqrt(periods_per_year)``.

    sharpe: point estimate; se: its standard error (for ``"bootstrap"`` the standard deviation of the
    bootstrap Sharpe ratios); low, high: the interval; level: its coverage (0.95); method: ``"iid"``,
    ``"hac"`` or ``"bootstrap"``; n_obs: number of returns ``T``. NaN everywhere for zero volatility.
    """

    sharpe: float
    se: float
    low: float
    high: float
    level: float
    method: str
    n_obs: int


class DeflatedSharpe(NamedTuple):
    """Deflated Sharpe ratio of the best of ``N`` trials (``deflated_sharpe``).

    dsr: ``PSR(SR0)``, the probability that the selected trial's true Sharpe ratio beats the best of
    ``n_trials`` skill-less trials. best: column of the selected trial. sharpe, sr0: its Sharpe ratio and the
    expected maximum under the null, annualized. var_trials: variance ``V`` of the trials' per-bar Sharpe ratios.
    n_trials: ``N`` used in ``SR0``. skew, kurtosis: ``g3``, ``g4`` of the selected trial. n_obs: ``T``.
    """

    dsr: float
    best: int
    sharpe: float
    sr0: float
    var_trials: float
    n_trials: float
    skew: float
    kurtosis: float
    n_obs: int


class PBOResult(NamedTuple):
    """Probability of backtest overfitting by CSCV (``pbo``); ``C`` = number of train/test combinations.

    pbo: fraction of combinations whose in-sample best trial ranks at or below the out-of-sample median
    (``logit <= 0``). logits: ``(C,)`` ``lambda_c``. is_best: ``(C,)`` int column ``n*`` chosen in sample.
    is_perf, oos_perf: ``(C,)`` metric of ``n*`` in and out of sample. slope, intercept: least-squares line
    ``oos_perf ~ intercept + slope * is_perf`` (performance degradation; the halves are complements of one
    sample, so a trial's in- and out-of-sample metrics move against each other and the slope is negative even
    for a real edge - compare slopes between searches rather than with 0). prob_loss: fraction of combinations
    with ``oos_perf < 0`` (the in-sample winner loses out of sample).
    n_partitions: ``S``. n_rows_used: rows of the input used (``S * (T // S)``, the oldest remainder dropped).
    """

    pbo: float
    logits: np.ndarray
    is_best: np.ndarray
    is_perf: np.ndarray
    oos_perf: np.ndarray
    slope: float
    intercept: float
    prob_loss: float
    n_partitions: int
    n_rows_used: int


# ---------------------------------------------------------------- inputs and moments

def _returns(x: Any, name: str = "returns", *, ndim: int | None = None) -> np.ndarray:
    """``x`` as float64 ``(T,)`` or ``(T, N)``; rejects NaN/inf with the row to fix."""
    arr = np.asarray(x.to_numpy(dtype=np.float64) if hasattr(x, "to_numpy") else x, dtype=np.float64)
    if arr.ndim not in (1, 2) or (ndim is not None and arr.ndim != ndim):
        want = {1: "(T,)", 2: "(T, N)"}.get(ndim or 0, "(T,) or (T, N)")
        raise ValueError(f"{name} must have shape {want} (rows = bars), got {arr.shape}")
    bad = ~np.isfinite(arr)
    if bad.any():
        row = int(np.argwhere(bad)[0][0])
        raise ValueError(f"{name} contain NaN/inf at row {row}; drop or fill missing bars first "
                         "(e.g. .fillna(0.0) for bars without a position)")
    return arr


def _ppy(periods_per_year: float) -> float:
    if not (isinstance(periods_per_year, (int, float, np.integer, np.floating)) and periods_per_year > 0):
        raise ValueError(f"periods_per_year must be a positive number (e.g. 252), got {periods_per_year!r}")
    return float(periods_per_year)


def _sharpe_cols(r: np.ndarray) -> np.ndarray:
    """Per-bar Sharpe ratios ``(N,)`` of returns ``(T, N)``; NaN for zero volatility or ``T < 2``."""
    T = r.shape[0]
    if T < 2:
        return np.full(r.shape[1], np.nan)
    mean = r.mean(axis=0)
    var = r.var(axis=0, ddof=1)
    flat = var <= _ZERO_VOL * np.mean(r * r, axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(flat, np.nan, mean / np.sqrt(var))


def _moments(r: np.ndarray) -> tuple[float, float, float, float]:
    """(mean, std ddof=1, skewness g3, kurtosis g4) of ``(T,)`` returns; NaN moments for zero volatility."""
    mean = float(r.mean())
    d = r - mean
    m2 = float(np.mean(d * d))
    sd = float(np.sqrt(m2 * r.size / (r.size - 1))) if r.size > 1 else math.nan
    if r.size < 2 or m2 <= _ZERO_VOL * float(np.mean(r * r)):
        return mean, math.nan, math.nan, math.nan
    return mean, sd, float(np.mean(d ** 3) / m2 ** 1.5), float(np.mean(d ** 4) / m2 ** 2)


def sharpe_ratio(returns: Any, *, periods_per_year: float = 1.0) -> Any:
    """``mean / std(ddof=1) * sqrt(periods_per_year)`` of ``(T,)`` returns (a float) or ``(T, N)`` (``(N,)``).

    NaN (never inf) for zero volatility (all returns equal, e.g. a strategy that never trades) or ``T < 2``.
    """
    r = _returns(returns)
    sr = _sharpe_cols(r if r.ndim == 2 else r[:, None]) * math.sqrt(_ppy(periods_per_year))
    return float(sr[0]) if r.ndim == 1 else sr


# ---------------------------------------------------------------- Lo (2002) standard errors

def newey_west_lags(n_obs: int) -> int:
    """Newey & West (1994) automatic lag count ``floor(4 (T / 100)^(2/9))`` (8 lags for 2,520 bars)."""
    return math.floor(4.0 * (n_obs / 100.0) ** (2.0 / 9.0))


def _hac_var(r: np.ndarray, lags: int) -> float:
    """Lo (2002) GMM variance of the per-bar Sharpe estimate with ``lags`` Newey-West lags (``T * Var``)."""
    T = r.size
    mu = r.mean()
    d = r - mu
    s2 = float(np.mean(d * d))
    psi = np.column_stack([d, d * d - s2])  # (T, 2) moment conditions
    S = psi.T @ psi / T
    for j in range(1, min(lags, T - 1) + 1):
        G = psi[j:].T @ psi[:-j] / T  # (2, 2) lag-j autocovariance
        S += (1.0 - j / (lags + 1.0)) * (G + G.T)
    sig = math.sqrt(s2)
    grad = np.array([1.0 / sig, -mu / (2.0 * sig ** 3)])
    return float(grad @ S @ grad)


def sharpe_se(returns: Any, *, method: str = "iid", lags: int | None = None,
              periods_per_year: float = 1.0) -> float:
    """Standard error of the Sharpe ratio of ``(T,)`` returns (Lo 2002), annualized by ``sqrt(a)``.

    method: ``"iid"`` - iid normal returns, ``sqrt((1 + SR^2 / 2) / T)``; ``"hac"`` - serially correlated,
    non-normal returns: Lo's GMM estimator with a Newey-West long-run covariance of ``q = lags`` lags (default
    ``newey_west_lags(T)``; ``lags=0`` gives the non-normal iid formula). Formulas in the module docstring.
    Annualizing by ``sqrt(a)`` assumes no serial correlation (Lo 2002 derives the exact factor); the SE
    is scaled the same way so that ``SR / SE`` is unchanged. NaN for zero volatility.
    """
    if method not in SE_METHODS:
        raise ValueError(f"method must be one of {SE_METHODS}, got {method!r}")
    r = _returns(returns, ndim=1)
    a = math.sqrt(_ppy(periods_per_year))
    sr = float(_sharpe_cols(r[:, None])[0])
    T = r.size
    if not math.isfinite(sr):
        return math.nan
    if method == "iid":
        return math.sqrt((1.0 + 0.5 * sr * sr) / T) * a
    q = newey_west_lags(T) if lags is None else lags
    if isinstance(q, bool) or not isinstance(q, (int, np.integer)) or q < 0:
        raise ValueError(f"lags must be an integer >= 0, got {lags!r}")
    return math.sqrt(max(_hac_var(r, int(q)), 0.0) / T) * a


# ---------------------------------------------------------------- stationary bootstrap

def _check_block(block_length: float | None, n: int) -> float:
    b = float(max(1, round(n ** (1.0 / 3.0)))) if block_length is None else block_length
    if not (isinstance(b, (int, float, np.integer, np.floating)) and math.isfinite(b) and b >= 1):
        raise ValueError(f"block_length must be a number >= 1 (mean block length in bars), got {block_length!r}")
    return float(b)


def _bootstrap_chunks(n: int, n_boot: int, block_length: float, seed: int, chunk: int = 256):
    """Yield stationary-bootstrap index arrays ``(m, n)`` int64 for ``n_boot`` replications, ``m <= chunk``."""
    rng = np.random.default_rng(seed)
    p = 1.0 / block_length
    t = np.arange(n, dtype=np.int64)
    done = 0
    while done < n_boot:
        m = min(chunk, n_boot - done)
        starts = np.empty((m, n), dtype=np.int64)
        u = np.empty((m, n))
        for i in range(m):  # per replication: T start bars, then T uniforms (the order arch draws them in)
            starts[i] = rng.integers(n, size=n, dtype=np.int64)
            u[i] = rng.random(n)
        new = u <= p  # a new block starts at bar t (u > p continues the previous block)
        new[:, 0] = True
        last = np.maximum.accumulate(np.where(new, t, 0), axis=1)  # (m, n) bar where the current block began
        yield (np.take_along_axis(starts, last, axis=1) + (t - last)) % n
        done += m


def stationary_bootstrap_indices(n_obs: int, *, n_boot: int, block_length: float | None = None,
                                 seed: int = 0) -> np.ndarray:
    """Resampling indices of the stationary bootstrap (Politis & Romano 1994), ``(n_boot, n_obs)`` int64.

    Row ``i`` is replication ``i``: ``x[idx[i]]`` is a resample of ``x``. Mean block length ``block_length``
    (default ``round(n_obs^(1/3))``). Same seed, same indices as ``arch.bootstrap.StationaryBootstrap(
    block_length, x, seed=seed)`` replication by replication.
    """
    n = int(n_obs)
    if n < 1 or n_boot < 1:
        raise ValueError(f"n_obs and n_boot must be >= 1, got {n_obs!r} and {n_boot!r}")
    b = _check_block(block_length, n)
    return np.concatenate(list(_bootstrap_chunks(n, int(n_boot), b, seed)), axis=0)


def sharpe_ci(returns: Any, *, level: float = 0.95, method: str = "hac", lags: int | None = None,
              n_boot: int = 2000, block_length: float | None = None, seed: int = 0,
              periods_per_year: float = 1.0) -> SharpeCI:
    """Sharpe ratio of ``(T,)`` returns with a ``level`` confidence interval, annualized by ``sqrt(a)``.

    method: ``"hac"`` (default: Lo's GMM standard error with ``lags`` Newey-West lags, robust to fat tails and
    serial correlation), ``"iid"`` (Lo's iid-normal SE) - both ``SR +- z SE`` with ``z = Phi^-1((1 + level)/2)``
    - or ``"bootstrap"``: the ``(1 - level)/2`` and ``(1 + level)/2`` quantiles of the Sharpe ratios of
    ``n_boot`` stationary-bootstrap resamples with mean block length ``block_length`` (default
    ``round(T^(1/3))``), seeded by ``seed``. Resamples with zero volatility are left out of the quantiles.
    """
    if method not in CI_METHODS:
        raise ValueError(f"method must be one of {CI_METHODS}, got {method!r}")
    if not (0.0 < level < 1.0):
        raise ValueError(f"level must be in (0, 1), e.g. 0.95, got {level!r}")
    r = _returns(returns, ndim=1)
    a = math.sqrt(_ppy(periods_per_year))
    sr = float(_sharpe_cols(r[:, None])[0]) * a
    nan = SharpeCI(math.nan, math.nan, math.nan, math.nan, level, method, r.size)
    if not math.isfinite(sr):
        return nan
    if method != "bootstrap":
        from scipy.special import ndtri

        se = sharpe_se(r, method=method, lags=lags, periods_per_year=periods_per_year)
        z = float(ndtri(0.5 + level / 2.0))
        return SharpeCI(sr, se, sr - z * se, sr + z * se, level, method, r.size)
    if isinstance(n_boot, bool) or not isinstance(n_boot, (int, np.integer)) or n_boot < 10:
        raise ValueError(f"n_boot must be an integer >= 10, got {n_boot!r}")
    b = _check_block(block_length, r.size)
    boot = np.concatenate([_sharpe_cols(r[idx].T) for idx in _bootstrap_chunks(r.size, int(n_boot), b, seed)])
    boot = boot[np.isfinite(boot)] * a
    if boot.size < 2:
        return nan
    low, high = np.quantile(boot, [0.5 - level / 2.0, 0.5 + level / 2.0])
    return SharpeCI(sr, float(boot.std(ddof=1)), float(low), float(high), level, method, r.size)


# ---------------------------------------------------------------- PSR and DSR

def probabilistic_sharpe_ratio(sharpe: Any, n_obs: int, *, benchmark: Any = 0.0, skew: Any = 0.0,
                               kurtosis: Any = 3.0, periods_per_year: float = 1.0) -> Any:
    """PSR: probability that the true Sharpe ratio exceeds ``benchmark`` (Bailey & Lopez de Prado 2012).

    ``Phi((SR - SR*) sqrt(T - 1) / sqrt(1 - g3 SR + (g4 - 1) / 4 SR^2))`` with ``SR``, ``SR*`` per bar:
    ``sharpe`` and ``benchmark`` are given annualized with ``periods_per_year`` (default 1: per bar) and
    divided by ``sqrt(a)`` here. skew ``g3``, kurtosis ``g4`` (non-excess: 3 for normal returns) of the returns;
    n_obs ``T``. Scalars or broadcastable arrays; NaN in, NaN out.
    """
    from scipy.special import ndtr

    a = math.sqrt(_ppy(periods_per_year))
    if n_obs < 2:
        raise ValueError(f"n_obs must be >= 2 returns, got {n_obs!r}")
    sr = np.asarray(sharpe, dtype=np.float64) / a
    sr0 = np.asarray(benchmark, dtype=np.float64) / a
    g3 = np.asarray(skew, dtype=np.float64)
    g4 = np.asarray(kurtosis, dtype=np.float64)
    radicand = 1.0 - g3 * sr + (g4 - 1.0) / 4.0 * sr * sr  # >= 0 for real data since g4 >= 1 + g3^2
    with np.errstate(divide="ignore", invalid="ignore"):
        z = (sr - sr0) * math.sqrt(n_obs - 1.0) / np.sqrt(np.where(radicand > 0, radicand, np.nan))
    out = ndtr(z)
    return float(out) if np.ndim(out) == 0 else out


def expected_max_sharpe(n_trials: float, var_trials: float, *, mean_trials: float = 0.0) -> float:
    """Expected maximum Sharpe ratio of ``n_trials`` trials (Bailey & Lopez de Prado 2014, eq. for ``SR0``).

    ``mean + sqrt(V) ((1 - gamma_E) Phi^-1(1 - 1/N) + gamma_E Phi^-1(1 - 1/(N e)))``: the false-strategy bar
    when the trials' Sharpe estimates are normal with mean ``mean_trials`` and variance ``var_trials`` (same
    units as the result: per bar, or annual variance for an annual result). ``N <= 1``: ``mean_trials``.
    """
    from scipy.special import ndtri

    if not (n_trials > 0 and var_trials >= 0):
        raise ValueError(f"n_trials must be > 0 and var_trials >= 0, got {n_trials!r} and {var_trials!r}")
    if n_trials <= 1:
        return float(mean_trials)
    z = (1.0 - EULER_GAMMA) * ndtri(1.0 - 1.0 / n_trials) + EULER_GAMMA * ndtri(1.0 - 1.0 / (n_trials * math.e))
    return float(mean_trials + math.sqrt(var_trials) * z)


def deflated_sharpe_ratio(sharpe: float, n_obs: int, *, n_trials: float, var_trials: float, skew: float = 0.0,
                          kurtosis: float = 3.0, mean_trials: float = 0.0, periods_per_year: float = 1.0) -> float:
    """DSR from summary statistics: ``PSR(SR0)`` with ``SR0 = expected_max_sharpe(N, V)`` (Bailey & LdP 2014).

    sharpe: the selected trial's Sharpe ratio; var_trials ``V``: variance of the ``n_trials`` trials' Sharpe
    ratios; mean_trials: their mean under the null (0 in the paper). Sharpe ratios and ``V`` are annualized
    with ``periods_per_year`` (default 1: per bar); skew, kurtosis (non-excess) and ``n_obs`` of the selected
    trial's returns. Paper example: ``SR = 2.5, a = 250, N = 100, V = 0.5, T = 1250, g3 = -3, g4 = 10 ->
    0.9004``.
    """
    a = _ppy(periods_per_year)
    sr0 = expected_max_sharpe(n_trials, var_trials / a, mean_trials=mean_trials / math.sqrt(a))
    return probabilistic_sharpe_ratio(sharpe / math.sqrt(a), n_obs, benchmark=sr0, skew=skew, kurtosis=kurtosis)


def deflated_sharpe(returns: Any, *, n_trials: float | None = None, best: int | None = None,
                    periods_per_year: float = 1.0) -> DeflatedSharpe:
    """Deflated Sharpe ratio of the best column of a ``(T, N)`` matrix of per-bar trial returns.

    Every column is a trial (e.g. one parameter combination of a sweep, net of costs). ``best`` (default: the
    column with the highest Sharpe ratio) is the selected trial; ``V`` is the variance (``ddof=1``) of the
    per-bar Sharpe ratios of the trials. Trials with zero volatility (never in the market) have no Sharpe
    ratio and are left out of ``N`` and ``V``. ``n_trials`` overrides ``N`` (e.g. an estimate of the number of
    independent trials when the columns are strongly correlated; the default counts every column, the
    paper's conservative choice). Needs at least 2 trials with a Sharpe ratio.
    """
    r = _returns(returns, ndim=2)
    a = math.sqrt(_ppy(periods_per_year))
    sr = _sharpe_cols(r)
    ok = np.isfinite(sr)
    if ok.sum() < 2:
        raise ValueError(f"deflated_sharpe needs at least 2 trials with non-zero volatility, got {int(ok.sum())} "
                         f"of {r.shape[1]} columns")
    if best is None:
        best = int(np.nanargmax(sr))
    elif not (0 <= best < r.shape[1]) or not ok[best]:
        raise ValueError(f"best={best!r} must be a column 0..{r.shape[1] - 1} with non-zero volatility")
    N = float(ok.sum()) if n_trials is None else float(n_trials)
    V = float(np.var(sr[ok], ddof=1))
    sr0 = expected_max_sharpe(N, V)
    _, _, g3, g4 = _moments(r[:, best])
    dsr = probabilistic_sharpe_ratio(sr[best], r.shape[0], benchmark=sr0, skew=g3, kurtosis=g4)
    return DeflatedSharpe(float(dsr), int(best), float(sr[best] * a), sr0 * a, V, N, g3, g4, r.shape[0])


# ---------------------------------------------------------------- PBO by CSCV

def _block_sharpe(s1: np.ndarray, s2: np.ndarray, n: int) -> np.ndarray:
    """Per-bar Sharpe ratios from sums ``s1`` and sums of squares ``s2`` of ``n`` returns (any shape)."""
    mean = s1 / n
    var = (s2 - n * mean * mean) / (n - 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(var <= _ZERO_VOL * s2 / n, np.nan, mean / np.sqrt(np.maximum(var, 0.0)))


def _oos_rank(perf_is: np.ndarray, perf_oos: np.ndarray) -> tuple[np.ndarray, ...]:
    """For metrics ``(m, N)`` in and out of sample: ``n*`` (in-sample argmax), its metric in and out of sample,
    and its out-of-sample average rank among the ``N`` trials (1 = worst); NaN ranks lowest."""
    m = perf_is.shape[0]
    rows = np.arange(m)
    best = np.argmax(np.where(np.isnan(perf_is), -np.inf, perf_is), axis=1)  # (m,)
    oos = np.where(np.isnan(perf_oos), -np.inf, perf_oos)
    v = oos[rows, best][:, None]
    rank = np.count_nonzero(oos < v, axis=1) + (np.count_nonzero(oos == v, axis=1) + 1) / 2.0
    return best, perf_is[rows, best], perf_oos[rows, best], rank


def pbo(returns: Any, *, partitions: int = 16, metric: Callable[[np.ndarray], np.ndarray] | None = None,
        periods_per_year: float = 1.0) -> PBOResult:
    """Probability of backtest overfitting by combinatorially symmetric cross-validation (CSCV).

    returns: ``(T, N)`` per-bar returns of ``N >= 2`` trials (rows = bars). partitions: ``S`` (even; the paper
    uses 16): the last ``S * (T // S)`` rows are cut into ``S`` consecutive blocks. For each of the
    ``C(S, S/2)`` ways to pick half the blocks as the in-sample set ``J`` (its complement ``J_bar`` is
    out of sample; both keep time order): ``n* = argmax_n R_n(J)``, ``w_c = rank of R_{n*}(J_bar) among the N
    trials / (N + 1)`` (average ranks for ties, 1 = worst) and ``lambda_c = ln(w_c / (1 - w_c))``.
    ``PBO = #{lambda_c <= 0} / C(S, S/2)``: how often the in-sample winner is at best median out of sample.
    metric: ``(rows, N) -> (N,)`` performance of each trial on a set of rows (higher = better); default the
    Sharpe ratio (``* sqrt(periods_per_year)``, which only scales ``is_perf``/``oos_perf``), computed from block
    sums. An undefined metric (NaN: zero volatility) ranks lowest. ``C(16, 8) = 12,870`` combinations.
    """
    r = _returns(returns, ndim=2)
    S = partitions
    if isinstance(S, bool) or not isinstance(S, (int, np.integer)) or S < 2 or S % 2:
        raise ValueError(f"partitions must be an even integer >= 2 (16 in the paper), got {partitions!r}")
    T, N = r.shape
    if N < 2:
        raise ValueError(f"pbo needs at least 2 trials (columns), got {N}")
    b = T // S
    if b * S // 2 < 2:
        raise ValueError(f"{T} rows are too few for {S} partitions (each half needs >= 2 rows); "
                         "use fewer partitions")
    r = r[T - b * S:]
    blocks = r.reshape(S, b, N)  # (S, b, N)
    combos = np.array(list(combinations(range(S), S // 2)), dtype=np.int64)  # (C, S/2)
    C = combos.shape[0]
    ind = np.zeros((C, S))
    ind[np.arange(C)[:, None], combos] = 1.0  # (C, S): 1 = in-sample block
    a = math.sqrt(_ppy(periods_per_year))
    best = np.empty(C, dtype=np.int64)
    is_perf, oos_perf, rank = np.empty(C), np.empty(C), np.empty(C)
    if metric is None:
        s1, s2 = blocks.sum(axis=1), (blocks * blocks).sum(axis=1)  # (S, N) block sums
        t1, t2 = s1.sum(axis=0), s2.sum(axis=0)  # (N,)
        n_half = b * S // 2
    step = 256 if metric is None else 1  # chunks of combinations keep the (chunk, N) temporaries small
    for lo in range(0, C, step):
        c = ind[lo:lo + step]  # (m, S)
        if metric is None:
            cc = combos[lo:lo + step]  # gather + sum, not c @ s1: a tiny BLAS call thrashes threads on busy CPUs
            is1, is2 = s1[cc].sum(axis=1), s2[cc].sum(axis=1)  # (m, N)
            perf_is = _block_sharpe(is1, is2, n_half)
            perf_oos = _block_sharpe(t1 - is1, t2 - is2, n_half)
        else:
            mask = c[0].astype(bool)
            perf_is = np.asarray(metric(blocks[mask].reshape(-1, N)), dtype=np.float64).reshape(1, N)
            perf_oos = np.asarray(metric(blocks[~mask].reshape(-1, N)), dtype=np.float64).reshape(1, N)
        sl = slice(lo, lo + c.shape[0])
        best[sl], is_perf[sl], oos_perf[sl], rank[sl] = _oos_rank(perf_is, perf_oos)
    if metric is None:
        is_perf *= a
        oos_perf *= a
    w = rank / (N + 1.0)
    logits = np.log(w / (1.0 - w))
    fin = np.isfinite(is_perf) & np.isfinite(oos_perf)
    slope = intercept = math.nan
    if fin.sum() >= 2 and np.ptp(is_perf[fin]) > 0:
        slope, intercept = (float(x) for x in np.polyfit(is_perf[fin], oos_perf[fin], 1))
    fo = np.isfinite(oos_perf)
    prob_loss = float(np.mean(oos_perf[fo] < 0.0)) if fo.any() else math.nan
    return PBOResult(float(np.mean(logits <= 0.0)), logits, best, is_perf, oos_perf, slope, intercept,
                     prob_loss, S, b * S)
