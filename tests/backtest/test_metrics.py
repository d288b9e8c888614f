"""backtest.metrics: hand-computed values, edge cases, the parameter axis and periods-per-year inference."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from backtest import metrics

R = np.array([0.10, -0.05, 0.02, -0.10, 0.08])


def test_hand_computed_return_metrics():
    m = metrics.compute(R, 252)
    eq = np.cumprod(1 + R)  # 1.1, 1.045, 1.0659, 0.95931, 1.0360548
    assert m["total_return"] == pytest.approx(1.0360548 - 1, rel=1e-12)
    assert m["cagr"] == pytest.approx(1.0360548 ** (252 / 5) - 1, rel=1e-12)
    mean, sd = 0.01, math.sqrt(sum((r - 0.01) ** 2 for r in R) / 4)  # sd = 0.0856154...
    assert m["ann_volatility"] == pytest.approx(sd * math.sqrt(252), rel=1e-12)
    assert m["sharpe"] == pytest.approx(mean / sd * math.sqrt(252), rel=1e-12)
    downside = math.sqrt((0.05 ** 2 + 0.10 ** 2) / 5)
    assert m["sortino"] == pytest.approx(mean * 252 / (downside * math.sqrt(252)), rel=1e-12)
    # peak 1.1 at bar 0, trough 0.95931 at bar 3: -12.79 %; never recovered -> duration to the last bar (4)
    assert m["max_drawdown"] == pytest.approx(eq[3] / 1.1 - 1, rel=1e-12)
    assert m["max_drawdown_duration"] == 4.0
    assert m["calmar"] == pytest.approx(m["cagr"] / abs(eq[3] / 1.1 - 1), rel=1e-12)
    # k = 0.05 * 5 = 0.25 < 1: the worst return, weight 0.25 / 0.25
    assert m["cvar_5"] == pytest.approx(-0.10, rel=1e-12)


def test_cvar_fractional_boundary_and_drawdown_recovery():
    r = np.zeros(30)
    r[[3, 7, 11]] = [-0.05, -0.03, -0.01]
    m = metrics.compute(r, 252)
    # k = 1.5: worst (-0.05) fully, next worst (-0.03) with weight 0.5 -> (-0.05 - 0.015) / 1.5
    assert m["cvar_5"] == pytest.approx((-0.05 - 0.5 * 0.03) / 1.5, rel=1e-12)
    r2 = np.array([0.0, 0.1, -0.1, 0.05, 0.07, 0.0])  # peak at bar 1 (1.1), trough bar 2, back above at bar 4
    m2 = metrics.compute(r2, 252)
    assert m2["max_drawdown"] == pytest.approx(-0.1, rel=1e-12)
    assert m2["max_drawdown_duration"] == 3.0
    m3 = metrics.compute(np.array([-0.2, 0.1, 0.2]), 252)  # a first-bar loss is a drawdown from the capital
    assert m3["max_drawdown"] == pytest.approx(-0.2)
    assert m3["max_drawdown_duration"] == 3.0  # from the start (-1) to bar 2 (0.8 * 1.1 * 1.2 = 1.056)


def test_positions_turnover_trades():
    r = np.array([0.0, 0.01, -0.02, 0.03, 0.0, 0.01])
    pos = np.array([0.0, 1.0, 1.0, 0.0, 0.0, -0.5])
    m = metrics.compute(r, 252, pos, turnover=np.array([0, 1, 0, 1, 0, 0.5]), trades=3)
    assert m["exposure"] == pytest.approx(3 / 6)
    assert m["gross_exposure"] == pytest.approx(2.5 / 6)
    # in the market at bars 1, 2, 3 (held at previous close 2) and 5: wins at 1, 3, 5 -> 3/4
    assert m["hit_rate"] == pytest.approx(3 / 4)
    assert m["turnover_mean"] == pytest.approx(2.5 / 6)
    assert m["turnover_annual"] == pytest.approx(2.5 / 6 * 252)
    assert m["n_trades"] == 3.0
    two = np.stack([pos, pos]), np.stack([r, r])
    m2 = metrics.compute(np.stack([r, r]), 252, np.stack([[pos, -pos], [pos, pos]]).transpose(0, 2, 1))
    assert m2["gross_exposure"].shape == (2,) and two[0].shape == (2, 6)
    assert m2["gross_exposure"][0] == pytest.approx(5 / 6)  # |pos| + |-pos| per bar


def test_edge_cases_zero_volatility_is_nan_and_flagged():
    """Issue #8: a combination that never trades had Sharpe = +inf (vectorbt's rule) and topped sweeps."""
    flat = metrics.compute(np.zeros(10), 365)
    assert math.isnan(flat["sharpe"]) and math.isnan(flat["sortino"]) and flat["flat"] == 1.0
    assert math.isnan(flat["calmar"]) and flat["max_drawdown"] == 0.0 and flat["max_drawdown_duration"] == 0.0
    const = metrics.compute(np.full(10, 0.001), 252)  # constant non-zero returns: zero volatility too
    assert const["flat"] == 1.0 and math.isnan(const["sharpe"]) and math.isnan(const["sortino"])
    no_loss = metrics.compute(np.array([0.0, 0.01, 0.0, 0.02]), 252)  # volatile but never down: no downside
    assert no_loss["flat"] == 0.0 and math.isnan(no_loss["sortino"])
    assert no_loss["sharpe"] == pytest.approx(0.0075 / np.std([0, 0.01, 0, 0.02], ddof=1) * math.sqrt(252))
    one = metrics.compute(np.array([0.05]), 252)
    assert all(math.isnan(one[k]) for k in ("sharpe", "sortino", "ann_volatility", "cvar_5", "flat"))
    assert one["total_return"] == pytest.approx(0.05)
    assert math.isnan(one["hit_rate"]) and math.isnan(one["n_trades"])  # not given
    batch = metrics.compute(np.stack([np.zeros(6), [0.01, -0.02, 0.0, 0.01, 0.0, 0.0]]), 252)
    np.testing.assert_array_equal(batch["flat"], [1.0, 0.0])
    assert math.isnan(batch["sharpe"][0]) and np.isfinite(batch["sharpe"][1])


def test_parameter_axis_equals_per_row_and_dataframe_input():
    rng = np.random.default_rng(0)
    r = rng.normal(0, 0.01, (5, 300))
    pos = rng.uniform(-1, 1, (5, 300, 2)) * (rng.random((5, 300, 1)) > 0.3)
    batch = metrics.compute(r, 252, pos, turnover=np.abs(r), trades=np.arange(5))
    for p in range(5):
        single = metrics.compute(r[p], 252, pos[p], turnover=np.abs(r[p]), trades=p)
        for k, v in single.items():
            assert batch[k][p] == pytest.approx(v, rel=1e-12, nan_ok=True), k
    frame = pd.DataFrame(r.T, index=pd.date_range("2020", periods=300))
    np.testing.assert_allclose(metrics.compute(frame, 252)["sharpe"], batch["sharpe"], rtol=1e-14)


def test_bad_input_errors():
    with pytest.raises(ValueError, match="row 2"):
        metrics.compute(np.array([0.1, 0.0, np.nan]), 252)
    with pytest.raises(ValueError, match="periods_per_year"):
        metrics.compute(R, 0)
    with pytest.raises(ValueError, match="positions has shape"):
        metrics.compute(R, 252, np.zeros(4))


@pytest.mark.parametrize(("freq", "periods", "expected"), [
    ("B", 300, 252.0), ("D", 300, 365.0), ("h", 500, 365.0 * 24), ("15min", 2000, 365.0 * 96),
    ("W-FRI", 60, 52.0), ("MS", 30, 12.0), ("QS", 12, 4.0), ("YS", 6, 1.0),
])
def test_infer_periods_per_year(freq, periods, expected):
    idx = pd.date_range("2021-01-04", periods=periods, freq=freq, tz="UTC")
    assert metrics.infer_periods_per_year(idx) == pytest.approx(expected)


def test_infer_periods_per_year_equity_sessions_and_errors():
    days = pd.bdate_range("2021-01-04", periods=20, tz="UTC")
    hours = pd.DatetimeIndex([d + pd.Timedelta(hours=14, minutes=30) + pd.Timedelta(hours=h)
                              for d in days for h in range(7)])
    assert metrics.infer_periods_per_year(hours) == 252 * 7  # 1h US equities: 7 bars a session
    daily_gaps = pd.bdate_range("2021-01-04", periods=200, tz="UTC").delete([5, 40, 41])  # holidays
    assert metrics.infer_periods_per_year(daily_gaps) == 252.0
    with pytest.raises(TypeError, match="pass periods_per_year"):
        metrics.infer_periods_per_year(pd.RangeIndex(10))
    with pytest.raises(ValueError, match="pass periods_per_year"):
        metrics.infer_periods_per_year(days[:2])


@pytest.mark.parametrize("freq, days", [("D", 400), ("B", 400), ("h", 30), ("W", 400)])
def test_periods_per_year_series_is_the_inference_on_each_prefix(freq, days):
    """Causal annualization: entry t equals ``infer_periods_per_year`` of the timestamps up to t."""
    from backtest.metrics import infer_periods_per_year, periods_per_year_series

    index = pd.date_range("2020-01-06", periods=days if freq != "h" else days * 24, freq=freq, tz="UTC")
    got = periods_per_year_series(index)
    assert np.isnan(got[:2]).all()
    for t in (2, 3, 10, 50, len(index) - 1):
        assert got[t] == infer_periods_per_year(index[: t + 1]), (freq, t)
    # session (intraday, weekdays only) data: bars per completed day
    session = pd.DatetimeIndex([d + pd.Timedelta(hours=h) for d in pd.bdate_range("2021-01-04", periods=30, tz="UTC")
                                for h in range(14, 21)])
    s = periods_per_year_series(session)
    assert s[-1] == infer_periods_per_year(session) == 252.0 * 7
