"""backtest.stats: published worked examples (PSR, DSR), Lo's formulas, library cross-checks (arch, skfolio,
statsmodels when installed), Monte Carlo checks of the standard errors, a hand-computed PBO and a random-signal
sweep whose best raw Sharpe looks good while DSR and PBO call it noise."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from backtest import metrics, stats


def _exact(mean: float, sd: float, T: int, seed: int = 0) -> np.ndarray:
    """T returns whose sample mean and sample std (ddof=1) are exactly ``mean`` and ``sd``."""
    z = np.random.default_rng(seed).normal(size=T)
    z = (z - z.mean()) / z.std(ddof=1)
    return mean + sd * z


def _ar1(rho: float, shape: tuple[int, int], *, mean: float = 0.0, seed: int = 0) -> np.ndarray:
    """AR(1) returns ``(M, T)`` with unit innovation scale 0.01 (burn-in dropped)."""
    from scipy.signal import lfilter

    M, T = shape
    e = np.random.default_rng(seed).normal(0.0, 0.01, (M, T + 200))
    return lfilter([1.0], [1.0, -rho], e, axis=1)[:, 200:] + mean


# ---------------------------------------------------------------- Sharpe ratio and zero volatility

def test_sharpe_ratio_matches_metrics_and_takes_columns():
    r = np.random.default_rng(1).normal(0.0005, 0.01, (300, 4))
    sr = stats.sharpe_ratio(r, periods_per_year=252)
    np.testing.assert_allclose(sr, metrics.compute(r.T, 252)["sharpe"], rtol=1e-12)
    assert stats.sharpe_ratio(r[:, 2], periods_per_year=252) == pytest.approx(sr[2], rel=1e-12)
    df = pd.DataFrame(r, columns=list("abcd"))
    np.testing.assert_allclose(stats.sharpe_ratio(df), sr / math.sqrt(252), rtol=1e-12)
    assert stats.sharpe_ratio(_exact(0.002, 0.01, 50)) == pytest.approx(0.2, rel=1e-12)


def test_zero_volatility_gives_nan_never_inf_everywhere():
    flat, const = np.zeros(200), np.full(200, 0.001)  # never in the market; a constant return (rounding noise)
    for r in (flat, const, np.array([0.01])):
        assert math.isnan(stats.sharpe_ratio(r))
    for r in (flat, const):
        assert math.isnan(stats.sharpe_se(r)) and math.isnan(stats.sharpe_se(r, method="hac"))
        for method in stats.CI_METHODS:
            ci = stats.sharpe_ci(r, method=method, n_boot=50)
            assert all(math.isnan(x) for x in (ci.sharpe, ci.se, ci.low, ci.high))
    rng = np.random.default_rng(2)
    R = rng.normal(0, 0.01, (400, 6))
    R[:, 3] = 0.0  # a trial that never trades
    sr = stats.sharpe_ratio(R)
    assert math.isnan(sr[3]) and np.isfinite(np.delete(sr, 3)).all()
    d = stats.deflated_sharpe(R)
    assert d.n_trials == 5 and d.var_trials == pytest.approx(np.var(np.delete(sr, 3), ddof=1))
    p = stats.pbo(R, partitions=8)
    assert not np.isinf(p.is_perf).any() and not np.isinf(p.oos_perf).any() and (p.is_best != 3).all()
    assert math.isnan(float(stats.probabilistic_sharpe_ratio(math.nan, 100)))


def test_bad_input_errors_name_the_fix():
    with pytest.raises(ValueError, match=r"NaN/inf at row 2.*fillna"):
        stats.sharpe_ratio([0.01, 0.02, np.nan])
    with pytest.raises(ValueError, match=r"must have shape \(T,\)"):
        stats.sharpe_se(np.zeros((5, 2)))
    with pytest.raises(ValueError, match="method must be one of"):
        stats.sharpe_ci(np.ones(5), method="jackknife")
    with pytest.raises(ValueError, match="partitions must be an even integer"):
        stats.pbo(np.zeros((100, 3)), partitions=5)
    with pytest.raises(ValueError, match="too few for 16 partitions"):
        stats.pbo(np.zeros((10, 3)))
    with pytest.raises(ValueError, match="at least 2 trials with non-zero volatility"):
        stats.deflated_sharpe(np.zeros((50, 3)))
    with pytest.raises(ValueError, match="block_length must be a number >= 1"):
        stats.stationary_bootstrap_indices(10, n_boot=2, block_length=0.5)


# ---------------------------------------------------------------- Lo (2002) standard errors

def test_lo_iid_standard_error_formula_values():
    # Lo (2002) eq. for iid normal returns: SE = sqrt((1 + SR^2 / 2) / T)
    assert stats.sharpe_se(_exact(0.002, 0.01, 100)) == pytest.approx(math.sqrt(1.02 / 100), rel=1e-12)
    assert stats.sharpe_se(_exact(0.005, 0.01, 60)) == pytest.approx(math.sqrt(1.125 / 60), rel=1e-12)
    # annualized: SR and SE both scale by sqrt(a) (SR 0.2 per bar -> 3.1749 a year on 252 bars)
    ci = stats.sharpe_ci(_exact(0.002, 0.01, 100), method="iid", periods_per_year=252)
    assert ci.sharpe == pytest.approx(0.2 * math.sqrt(252), rel=1e-12)
    assert ci.se == pytest.approx(math.sqrt(1.02 / 100 * 252), rel=1e-12)
    assert (ci.low, ci.high) == pytest.approx((ci.sharpe - 1.959963985 * ci.se, ci.sharpe + 1.959963985 * ci.se))


def test_hac_with_zero_lags_is_the_non_normal_iid_formula():
    r = np.random.default_rng(3).standard_t(4, 800) * 0.01 + 0.001
    d = r - r.mean()
    m2 = np.mean(d ** 2)
    g3, g4 = np.mean(d ** 3) / m2 ** 1.5, np.mean(d ** 4) / m2 ** 2
    sr = r.mean() / math.sqrt(m2)  # the GMM estimate uses the ddof=0 variance
    want = math.sqrt((1 - g3 * sr + (g4 - 1) / 4 * sr ** 2) / r.size)  # Mertens (2002), the PSR denominator
    assert stats.sharpe_se(r, method="hac", lags=0) == pytest.approx(want, rel=1e-10)


def test_hac_long_run_covariance_matches_statsmodels():
    sw = pytest.importorskip("statsmodels.stats.sandwich_covariance")
    r = _ar1(0.3, (1, 600), mean=0.002, seed=4)[0]
    mu, d = r.mean(), r - r.mean()
    s2 = np.mean(d * d)
    psi = np.column_stack([d, d * d - s2])
    S = sw.S_hac_simple(psi, nlags=6) / r.size  # Newey-West sums, Bartlett weights 1 - j / (nlags + 1)
    grad = np.array([1 / math.sqrt(s2), -mu / (2 * s2 ** 1.5)])
    assert stats.sharpe_se(r, method="hac", lags=6) == pytest.approx(math.sqrt(grad @ S @ grad / r.size), rel=1e-10)


def test_standard_errors_against_monte_carlo():
    T = 500
    X = np.random.default_rng(5).normal(0.001, 0.01, (3000, T))
    mc_iid = np.std(X.mean(1) / X.std(1, ddof=1))
    assert stats.sharpe_se(X[0]) == pytest.approx(mc_iid, rel=0.05)
    # AR(1), rho = 0.5: the iid SE understates the sampling error by about sqrt((1 + rho) / (1 - rho)) = 1.73
    Y = _ar1(0.5, (3000, T), mean=0.001, seed=6)
    mc_ar = np.std(Y.mean(1) / Y.std(1, ddof=1))
    hac = np.mean([stats.sharpe_se(Y[i], method="hac", lags=10) for i in range(100)])
    iid = np.mean([stats.sharpe_se(Y[i]) for i in range(100)])
    assert hac == pytest.approx(mc_ar, rel=0.12)
    assert iid < 0.65 * mc_ar
    assert stats.newey_west_lags(2520) == 8 and stats.newey_west_lags(100) == 4


# ---------------------------------------------------------------- stationary bootstrap

def test_bootstrap_indices_have_geometric_blocks_and_uniform_marginals():
    n, b = 400, 8.0
    idx = stats.stationary_bootstrap_indices(n, n_boot=400, block_length=b, seed=11)
    assert idx.shape == (400, n) and idx.dtype == np.int64 and idx.min() >= 0 and idx.max() < n
    cont = idx[:, 1:] == (idx[:, :-1] + 1) % n  # block continues
    assert cont.mean() == pytest.approx(1 - 1 / b, abs=0.005)  # new block with probability 1/b
    counts = np.bincount(idx.ravel(), minlength=n)
    assert counts.min() > 0.7 * idx.size / n and counts.max() < 1.3 * idx.size / n
    np.testing.assert_array_equal(idx, stats.stationary_bootstrap_indices(n, n_boot=400, block_length=b, seed=11))
    assert not np.array_equal(idx, stats.stationary_bootstrap_indices(n, n_boot=400, block_length=b, seed=12))


def test_bootstrap_matches_arch_when_installed():
    bs_mod = pytest.importorskip("arch.bootstrap")
    x = np.random.default_rng(1).standard_t(5, size=300) * 0.01 + 0.0005
    bs = bs_mod.StationaryBootstrap(7, x, seed=3)
    theirs = []
    for _ in bs.bootstrap(40):
        theirs.append(bs.index.copy())
    np.testing.assert_array_equal(stats.stationary_bootstrap_indices(300, n_boot=40, block_length=7, seed=3),
                                  np.array(theirs))
    ref = bs_mod.StationaryBootstrap(7, x, seed=3).conf_int(lambda y: np.array([y.mean() / y.std(ddof=1)]),
                                                            reps=400, method="percentile", size=0.9)
    ci = stats.sharpe_ci(x, method="bootstrap", n_boot=400, block_length=7, seed=3, level=0.9)
    assert (ci.low, ci.high) == pytest.approx((ref[0, 0], ref[1, 0]), rel=1e-12)


def test_bootstrap_standard_error_tracks_serial_correlation():
    X = np.random.default_rng(7).normal(0.001, 0.01, (1, 500))[0]
    ci = stats.sharpe_ci(X, method="bootstrap", n_boot=1000, seed=0)
    assert ci.se == pytest.approx(stats.sharpe_se(X), rel=0.15)  # iid data: close to Lo's iid SE
    Y = _ar1(0.5, (3000, 500), mean=0.001, seed=6)
    mc = np.std(Y.mean(1) / Y.std(1, ddof=1))
    boot = np.mean([stats.sharpe_ci(Y[i], method="bootstrap", n_boot=300, seed=i).se for i in range(10)])
    assert boot == pytest.approx(mc, rel=0.2) and boot > 1.35 * stats.sharpe_se(Y[0])
    assert ci.low < ci.sharpe < ci.high and ci.method == "bootstrap" and ci.n_obs == 500


# ---------------------------------------------------------------- PSR and DSR

def test_psr_published_example():
    """Bailey & Lopez de Prado (2012): SR 0.458 over 24 monthly returns, skew -2.448, kurtosis 10.164 -> 0.913."""
    assert stats.probabilistic_sharpe_ratio(0.458, 24, skew=-2.448, kurtosis=10.164) == pytest.approx(0.913, abs=5e-4)
    # normal returns: PSR(0) = Phi(SR sqrt(T - 1) / sqrt(1 + SR^2 / 2))
    z = 0.1 * math.sqrt(99) / math.sqrt(1 + 0.01 / 2)
    assert stats.probabilistic_sharpe_ratio(0.1, 100) == pytest.approx(0.5 * math.erfc(-z / math.sqrt(2)), rel=1e-12)


def test_dsr_published_example():
    """Bailey & Lopez de Prado (2014), numerical example: annualized SR 2.5 on 250 days a year, N = 100 trials with
    V[SR] = 1/2 (annualized), T = 1250 daily returns, skew -3, kurtosis 10 -> SR0 = 0.1132 a day, DSR = 0.9004."""
    sr0 = stats.expected_max_sharpe(100, 0.5 / 250)
    assert sr0 == pytest.approx(0.1132, abs=5e-5)
    dsr = stats.deflated_sharpe_ratio(2.5, 1250, n_trials=100, var_trials=0.5, skew=-3, kurtosis=10,
                                      periods_per_year=250)
    assert dsr == pytest.approx(0.9004, abs=5e-5)
    assert stats.expected_max_sharpe(1, 0.3) == 0.0  # one trial: nothing to deflate


def test_expected_max_sharpe_against_simulation():
    z = np.random.default_rng(8).normal(size=(20000, 100)).max(axis=1).mean()  # E[max of 100 N(0,1)] = 2.508
    assert stats.expected_max_sharpe(100, 1.0) == pytest.approx(z, rel=0.02)


def test_deflated_sharpe_matches_skfolio_when_installed():
    m = pytest.importorskip("skfolio.measures")
    R = np.random.default_rng(5).standard_t(4, size=(750, 40)) * 0.01 + 0.0003
    d = stats.deflated_sharpe(R, periods_per_year=252)
    sr = stats.sharpe_ratio(R)
    assert d.dsr == pytest.approx(m.deflated_sharpe_ratio(R[:, d.best], sr), rel=1e-12)
    assert stats.probabilistic_sharpe_ratio(sr[d.best], 750, benchmark=0.05, skew=d.skew, kurtosis=d.kurtosis) \
        == pytest.approx(m.probabilistic_sharpe_ratio(R[:, d.best], 0.05), rel=1e-12)


def test_deflated_sharpe_fields():
    R = np.random.default_rng(9).normal(0.0, 0.01, (500, 20))
    d = stats.deflated_sharpe(R, periods_per_year=252)
    sr = stats.sharpe_ratio(R)
    assert d.best == int(np.argmax(sr)) and d.sharpe == pytest.approx(sr[d.best] * math.sqrt(252))
    assert d.sr0 == pytest.approx(stats.expected_max_sharpe(20, np.var(sr, ddof=1)) * math.sqrt(252))
    assert d.n_obs == 500 and d.n_trials == 20
    fewer = stats.deflated_sharpe(R, n_trials=2)  # fewer independent trials -> lower bar -> higher DSR
    assert fewer.dsr > d.dsr


# ---------------------------------------------------------------- PBO

def test_pbo_hand_computed():
    M = np.array([[1.0, 0.0, 2.0], [3.0, 1.0, 0.0], [0.0, 2.0, 1.0], [2.0, 3.0, 1.0]])  # T = 4 bars, N = 3
    p = stats.pbo(M, partitions=4, metric=lambda x: x.mean(axis=0))
    # C(4, 2) = 6 in-sample halves: (0,1) (0,2) (0,3) (1,2) (1,3) (2,3); n* = argmax in sample (first on ties)
    assert p.is_best.tolist() == [0, 2, 0, 0, 0, 1]
    assert p.is_perf.tolist() == [2.0, 1.5, 1.5, 1.5, 2.5, 2.5]
    assert p.oos_perf.tolist() == [1.0, 0.5, 1.5, 1.5, 0.5, 0.5]
    # OOS ranks of n* (average ranks): 1.5, 1, 2.5, 2, 1, 1 -> w = rank / 4 -> logit
    np.testing.assert_allclose(p.logits, np.log([0.6, 1 / 3, 5 / 3, 1.0, 1 / 3, 1 / 3]), rtol=1e-12)
    assert p.pbo == pytest.approx(5 / 6)  # all but (0,3); the exact median (logit 0) counts as overfit
    assert p.slope == pytest.approx(-19 / 29) and p.intercept == pytest.approx(63 / 29)
    assert p.prob_loss == 0.0 and p.n_partitions == 4 and p.n_rows_used == 4


def test_pbo_fast_sharpe_path_equals_the_generic_metric_path():
    R = np.random.default_rng(10).normal(0.0002, 0.01, (403, 12))
    fast = stats.pbo(R, partitions=8, periods_per_year=252)
    slow = stats.pbo(R, partitions=8, metric=lambda x: stats.sharpe_ratio(x, periods_per_year=252))
    assert fast.n_rows_used == 400 and len(fast.logits) == math.comb(8, 4)
    np.testing.assert_array_equal(fast.is_best, slow.is_best)
    np.testing.assert_allclose(fast.logits, slow.logits, rtol=1e-12)
    np.testing.assert_allclose(fast.oos_perf, slow.oos_perf, rtol=1e-9)
    assert len(stats.pbo(R[:, :3], partitions=16).logits) == 12870


def test_pbo_constructed_cases():
    # skill-less, identically distributed noise strategies: the in-sample winner's OOS rank is uniform -> 0.5
    runs = [stats.pbo(np.random.default_rng(s).normal(0, 0.01, (800, 50)), partitions=10).pbo for s in range(40)]
    assert np.mean(runs) == pytest.approx(0.5, abs=0.06)
    # one strategy with a real edge (per-bar SR 0.2) among 49 noise strategies: chosen in sample, top OOS -> 0
    R = np.random.default_rng(1).normal(0, 0.01, (1600, 50))
    R[:, 17] += 0.002
    p = stats.pbo(R)
    assert p.pbo == 0.0 and (p.is_best == 17).all() and p.prob_loss == 0.0
    # time-shifted copies of ONE noise series have identical full-sample moments: whatever wins in sample has
    # the complement's shortfall out of sample - the extreme overfit, PBO -> 1
    x = np.random.default_rng(2).normal(0, 0.01, 800)
    shifted = np.column_stack([np.roll(x, 7 * k) for k in range(50)])
    assert stats.pbo(shifted, partitions=10).pbo > 0.95


# ---------------------------------------------------------------- the random-signal sweep

def test_random_signal_sweep_looks_good_raw_but_dsr_and_pbo_call_it_noise():
    """1,000 random long/flat strategies on a driftless random walk: the best raw Sharpe looks like a find, the
    deflated Sharpe ratio and PBO say noise; the same statistics pass a strategy with a planted edge."""
    import backtest

    T, n_strats = 756, 1000  # three years of daily bars
    rng = np.random.default_rng(0)
    ret = rng.normal(0.0, 0.01, T + 2)
    ret -= ret.mean()  # the asset itself has a Sharpe ratio of exactly 0: no strategy can have real skill
    W = (rng.random((T + 2, n_strats)) < 0.5).astype(float)  # decided at close t, filled at close t + 1
    R = W[:-2] * ret[2:, None]  # (T, 1000): the position taken at close t + 1 earns bar t + 2
    close = 100.0 * np.cumprod(1.0 + ret)
    idx = pd.date_range("2020-01-01", periods=T + 2, freq="B", tz="UTC")
    bars = pd.DataFrame({"open": close, "high": close, "low": close, "close": close, "volume": 1.0}, index=idx)
    engine = backtest.run(bars, W[:, :3].T[:, :, None], execution="next_close", periods_per_year=252)
    np.testing.assert_allclose(engine.returns.to_numpy()[2:], R[:, :3], atol=1e-12)  # the engine agrees

    best_raw = float(np.max(stats.sharpe_ratio(R, periods_per_year=252)))
    d = stats.deflated_sharpe(R, periods_per_year=252)
    p = stats.pbo(R, periods_per_year=252)
    assert best_raw > 1.0  # 1.18 a year: a "discovery" if the 999 other trials are forgotten
    assert d.sharpe == pytest.approx(best_raw) and d.sr0 > best_raw  # the best of 1,000 noise trials: 1.32
    assert d.dsr < 0.95  # 0.40: far from the paper's 0.95 bar
    assert p.pbo > 0.35  # 0.63; over 8 seeds 0.35-0.64 around the coin-flip 0.5 that skill-less trials give
    assert p.prob_loss > 0.3  # 0.63: the in-sample winner loses money out of sample in most combinations

    edge = np.where(rng.random(T) < 0.35, ret[2:] > 0, rng.random(T) < 0.5).astype(float)  # long before 35 % of up bars
    R2 = R.copy()
    R2[:, 0] = edge * ret[2:]
    d2 = stats.deflated_sharpe(R2, periods_per_year=252)
    p2 = stats.pbo(R2, periods_per_year=252)
    assert d2.best == 0 and d2.dsr > 0.95 and p2.pbo < 0.05  # SR 2.57 a year: DSR 0.981, PBO 0.024
    assert p2.prob_loss < 0.1
