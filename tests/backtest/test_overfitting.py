"""Overfitting statistics of a sweep: the deflated Sharpe ratio and PBO equal ``backtest.stats`` on the
re-simulated per-combination returns, large grids use a documented seeded subset, and 1,000 random strategies
swept end to end look good raw while DSR and PBO call them noise."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import backtest
from backtest import decisions, stats
from backtest.overfitting import combination_returns, sweep_overfitting
from backtest.params import Param
from backtest.rules.trend import BatchedWeights

FEES = 0.001


@pytest.fixture(scope="module")
def bars() -> pd.DataFrame:
    import markets

    return markets.load("sample:SP500", "2008-01-01", "2018-12-31")


@pytest.fixture(scope="module")
def trend_sweep(bars):
    grid = {"fast": [5, 10, 20, 30, 50], "slow": [60, 100, 150, 200]}
    return grid, backtest.sweep("trend", grid, bars, fees=FEES)


def test_combination_returns_equal_backtest_run(bars, trend_sweep):
    _, table = trend_sweep
    R = combination_returns(table, bars, "trend", [0, 7], fees=FEES)
    for col, row in enumerate((0, 7)):
        params = {"fast": int(table["fast"].iloc[row]), "slow": int(table["slow"].iloc[row])}
        run = backtest.run_strategy(bars, "trend", params, fees=FEES).result
        np.testing.assert_allclose(R[:, col], run.returns.to_numpy(), rtol=1e-12, atol=1e-15)


def test_dsr_and_pbo_equal_the_statistics_on_all_returns(bars, trend_sweep):
    _, table = trend_sweep
    got = sweep_overfitting(table, bars, "trend", fees=FEES)
    R = combination_returns(table, bars, "trend", np.arange(len(table)), fees=FEES)
    best = int(table["sharpe"].to_numpy().argmax())
    want = stats.deflated_sharpe(R, periods_per_year=252)
    assert want.best == best == got.deflated.best
    for field in ("dsr", "sharpe", "sr0", "var_trials", "skew", "kurtosis"):
        assert getattr(got.deflated, field) == pytest.approx(getattr(want, field), rel=1e-9), field
    assert (got.deflated.n_trials, got.deflated.n_obs) == (want.n_trials, want.n_obs) == (len(table), len(bars))
    p = stats.pbo(R, periods_per_year=252)
    assert got.pbo.pbo == p.pbo and got.pbo.prob_loss == p.prob_loss
    assert got.best == {"fast": int(table["fast"].iloc[best]), "slow": int(table["slow"].iloc[best])}
    assert got.n_pbo_trials == got.n_combinations == len(table) and got.note == ""
    text = "\n".join(got.lines())
    assert "deflated Sharpe ratio of the best" in text and "probability of backtest overfitting" in text
    js = got.to_json()
    assert js["dsr"] == got.deflated.dsr and js["pbo"] == got.pbo.pbo


def test_ranking_by_another_metric_deflates_that_combination(bars, trend_sweep):
    _, table = trend_sweep
    got = sweep_overfitting(table, bars, "trend", metric="max_drawdown", fees=FEES)
    best = int(table["max_drawdown"].to_numpy().argmax())  # the shallowest drawdown ranks first
    R = combination_returns(table, bars, "trend", np.arange(len(table)), fees=FEES)
    assert got.deflated.dsr == pytest.approx(stats.deflated_sharpe(R, best=best, periods_per_year=252).dsr, rel=1e-9)


def test_large_grids_use_a_seeded_subset_for_pbo(bars, trend_sweep):
    _, table = trend_sweep
    a = sweep_overfitting(table, bars, "trend", fees=FEES, max_trials=8, seed=3)
    b = sweep_overfitting(table, bars, "trend", fees=FEES, max_trials=8, seed=3)
    c = sweep_overfitting(table, bars, "trend", fees=FEES, max_trials=8, seed=4)
    assert a.n_pbo_trials == 8 and a.n_combinations == len(table) and "seeded subset (seed 3)" in a.note
    np.testing.assert_array_equal(a.pbo.logits, b.pbo.logits)  # same seed, same subset, same PBO
    best = int(table["sharpe"].to_numpy().argmax())
    others = np.delete(np.arange(len(table)), best)
    rows = np.concatenate([[best], np.sort(np.random.default_rng(3).choice(others, 7, replace=False))])
    R = combination_returns(table, bars, "trend", rows, fees=FEES)
    assert a.pbo.pbo == stats.pbo(R, periods_per_year=252).pbo
    assert not np.array_equal(a.pbo.logits, c.pbo.logits)
    full = sweep_overfitting(table, bars, "trend", fees=FEES)
    assert a.deflated == full.deflated  # DSR always counts every combination


def test_without_a_batched_function_it_decides_each_combination(bars):
    grid = {"rsi_window": [7, 14], "lower": [20.0, 30.0]}
    table = backtest.sweep("reversal", grid, bars, fees=FEES)
    got = sweep_overfitting(table, bars, "reversal", fees=FEES)
    R = np.column_stack([backtest.run_strategy(bars, "reversal", {k: table[k].iloc[i].item() for k in grid},
                                               fees=FEES).result.returns.to_numpy() for i in range(len(table))])
    assert got.deflated.dsr == pytest.approx(stats.deflated_sharpe(R, periods_per_year=252).dsr, rel=1e-9)


def test_bad_inputs_name_the_fix(bars, trend_sweep):
    _, table = trend_sweep
    with pytest.raises(ValueError, match="pass the bars and costs the sweep used"):
        sweep_overfitting(table, bars, "trend", fees=0.0)
    with pytest.raises(ValueError, match="this sweep has 1"):
        sweep_overfitting(table.iloc[:1], bars, "trend", fees=FEES)
    with pytest.raises(ValueError, match="no 'nope' column"):
        sweep_overfitting(table, bars, "trend", metric="nope", fees=FEES)


# ------------------------------------------------------------------------ random signals, end to end
def test_a_random_signal_sweep_looks_good_raw_but_dsr_and_pbo_call_it_noise(monkeypatch):
    """1,000 random long/flat strategies swept through ``backtest.sweep`` on a driftless random walk (three years
    of daily bars, no costs): the same data and signals as the statistics-level test in test_stats.py
    (``test_random_signal_sweep_looks_good_raw_but_dsr_and_pbo_call_it_noise``), now through a registered
    decision-maker, the sweep and ``sweep_overfitting``. The best raw Sharpe looks like a find; DSR and PBO say
    noise, with the statistics-level numbers."""
    T, n = 756, 1000
    rng = np.random.default_rng(0)
    ret = rng.normal(0.0, 0.01, T + 2)
    ret -= ret.mean()  # the asset's own Sharpe ratio is exactly 0: no strategy can have skill
    W = (rng.random((T + 2, n)) < 0.5).astype(float)  # strategy k's decisions: column k (seed k)
    close = 100.0 * np.cumprod(1.0 + ret)
    idx = pd.date_range("2020-01-01", periods=T + 2, freq="B", tz="UTC")
    bars = pd.DataFrame({"open": close, "high": close, "low": close, "close": close, "volume": 1.0}, index=idx)

    def batched(bars_, *, seed):
        seeds = np.atleast_1d(seed).astype(int)
        return BatchedWeights(W[: len(bars_.index), seeds].T[:, :, None], np.ones(seeds.size, dtype=bool))

    def decide(bars_, *, seed):
        w = pd.Series(W[: len(bars_.index), int(seed)], index=bars_.index, name="weight")
        return decisions.Decision(w, pd.DataFrame({"weight": w}))

    space = decisions.ParamSpace({"seed": Param(0, low=0, high=n - 1)}, owner="random_signal")
    entry = decisions.Entry("random_signal", decide, space, batched=batched, source="tests.random_signal")
    monkeypatch.setitem(decisions._REGISTRY, "random_signal", entry)
    table = backtest.sweep("random_signal", {"seed": list(range(n))}, bars, execution="next_close",
                           periods_per_year=252)
    got = sweep_overfitting(table, bars, "random_signal", execution="next_close")

    best_raw = float(table["sharpe"].max())
    assert best_raw > 1.0  # 1.17 a year: a "discovery" if the 999 other trials are forgotten
    assert got.deflated.sharpe == pytest.approx(best_raw, rel=1e-12) and got.deflated.sr0 > best_raw
    assert got.deflated.dsr < 0.95  # 0.40: far from the paper's 0.95 bar; expected best of noise 1.31
    assert got.pbo.pbo > 0.35 and got.pbo.prob_loss > 0.3  # 0.63 and 0.63: coin flips or worse
    R = W[:-2] * ret[2:, None]  # the statistics-level test's (T, 1000) returns: decided at t, earn bar t + 2
    assert got.pbo.pbo == stats.pbo(R, periods_per_year=252).pbo  # the same 752 rows (oldest remainder dropped)
    assert got.deflated.dsr == pytest.approx(stats.deflated_sharpe(R, periods_per_year=252).dsr, abs=0.02)
    engine = combination_returns(table, bars, "random_signal", np.arange(n), execution="next_close",
                                 periods_per_year=252)
    np.testing.assert_allclose(engine[2:], R, atol=1e-12)  # the engine's returns are those returns
    assert got.deflated.dsr == pytest.approx(stats.deflated_sharpe(engine, periods_per_year=252).dsr, rel=1e-9)
