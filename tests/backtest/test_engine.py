"""backtest.run: hand-computed tiny examples (a cash account: buys cut to the cash left), the borrow option
against a sequential reference loop, the no-trade band, no dust orders, the parameter axis, look-ahead,
leverage, ruin and input validation. The fill rules themselves: tests/backtest/test_accounting.py."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import backtest


def bars_from(open_, close, *, symbol="X", freq="D") -> pd.DataFrame:
    open_, close = np.asarray(open_, float), np.asarray(close, float)
    idx = pd.date_range("2021-01-04", periods=len(close), freq=freq, tz="UTC", name="timestamp")
    bars = pd.DataFrame({"open": open_, "high": np.maximum(open_, close), "low": np.minimum(open_, close),
                         "close": close, "volume": 0.0}, index=idx)
    bars.attrs["symbol"] = symbol
    return bars


def random_bars(T=200, seed=0, symbol="X") -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.02, T)))
    return bars_from(close * np.exp(rng.normal(0, 0.01, T)), close, symbol=symbol)


def multi(T=200, seeds=(0, 1, 2)) -> pd.DataFrame:
    out = pd.concat({f"A{s}": random_bars(T, s, f"A{s}") for s in seeds}, axis=1)
    out.columns = out.columns.set_names(["asset", "field"])
    return out


def sequential(exec_p, close, w, fees, slip, init=1.0):
    """Reference: the order-by-order cash/shares simulation, one bar at a time."""
    T, N = w.shape
    cash, shares, eq = init, np.zeros(N), np.zeros(T)
    for t in range(T):
        if t > 0:
            V = cash + shares @ exec_p[t]
            target = w[t - 1] * V / exec_p[t]
            for i in range(N):
                q = target[i] - shares[i]
                if q > 0:
                    cash -= q * exec_p[t, i] * (1 + slip) * (1 + fees)
                elif q < 0:
                    cash += -q * exec_p[t, i] * (1 - slip) * (1 - fees)
            shares = target
        eq[t] = cash + shares @ close[t]
    return eq


# ---------------------------------------------------------------------------------- hand-computed examples
OPEN = [100.0, 100.0, 110.0, 121.0]
CLOSE = [100.0, 105.0, 115.0, 120.0]


def test_long_round_trip_with_fees_next_open():
    # w=1 at bar 0 -> buy at open_1 = 100 with a 10 bps fee: 1 of cash buys 1 / (100 * 1.001) shares (the buy is
    # cut to the cash left, fee included: cash 0). close_1 = 105 -> E1 = 1.05 / 1.001. w=0 at bar 1 -> sell
    # everything at open_2 = 110: proceeds 1.1 / 1.001 * 0.999.
    bars = bars_from(OPEN, CLOSE)
    res = backtest.run(bars, pd.Series([1.0, 0.0, 0.0, 0.0], index=bars.index), fees=0.001)
    e2 = 1.1 / 1.001 * 0.999
    np.testing.assert_allclose(res.equity.to_numpy(), [1.0, 1.05 / 1.001, e2, e2], rtol=1e-15)
    tr = res.trades
    assert list(tr["side"]) == ["buy", "sell"]
    np.testing.assert_allclose(tr["quantity"], [1 / 100.1, 1 / 100.1], rtol=1e-14)
    np.testing.assert_allclose(tr["fee"], [1 - 1 / 1.001, 1.1 / 1.001 * 0.001], rtol=1e-12)
    assert res.metrics["n_trades"] == 2.0
    np.testing.assert_allclose(res.turnover.to_numpy(), [0.0, 1 / 1.001, 1.0, 0.0], rtol=1e-14)


def test_borrow_inf_is_the_former_fee_borrowing_rule():
    # borrow=inf never cuts a buy: the full 0.01 shares are bought and the fee (0.001) is borrowed: cash -0.001.
    bars = bars_from(OPEN, CLOSE)
    res = backtest.run(bars, np.array([1.0, 0.0, 0.0, 0.0]), fees=0.001, borrow=float("inf"))
    expected = [1.0, 1.049, 1.1 * 0.999 - 0.001, 1.1 * 0.999 - 0.001]
    np.testing.assert_allclose(res.equity.to_numpy(), expected, rtol=0, atol=1e-15)
    np.testing.assert_allclose(res.trades["quantity"], [0.01, 0.01], rtol=1e-14)
    # pre-trade value at bar 2 is 1.1 - 0.001 (the fee was borrowed): selling 1.1 of stock is 1.1/1.099 of it
    np.testing.assert_allclose(res.turnover.to_numpy(), [0.0, 1.0, 1.1 / 1.099, 0.0], rtol=1e-14)


def test_borrow_allows_gross_leverage_above_one():
    # w=1.5 at open 100, 10 bps fee: a cash account cuts the buy to 1 / (100 * 1.001) shares. borrow=0.5 raises
    # the limit to cash + 0.5 V = 1.5, which 1.5 / 100 shares plus their fee exceed, so the buy is cut to
    # 1.5 / (100 * 1.001) shares and cash ends at exactly -0.5 = -borrow V.
    bars = bars_from(OPEN, CLOSE)
    w = np.array([1.5, 1.5, 0.0, 0.0])
    cash_acct = backtest.run(bars, w, fees=0.001, band=0.0)
    np.testing.assert_allclose(cash_acct.trades["quantity"].iloc[0], 1 / 100.1, rtol=1e-14)
    lev = backtest.run(bars, w, fees=0.001, borrow=0.5, band=0.0)
    q = 1.5 / 100.1
    np.testing.assert_allclose(lev.trades["quantity"].iloc[0], q, rtol=1e-14)
    np.testing.assert_allclose(lev.equity.iloc[1], -0.5 + q * 105, rtol=1e-14)  # cash -0.5 + shares at close
    assert lev.positions.iloc[1, 0] == pytest.approx(q * 105 / (-0.5 + q * 105), rel=1e-14)  # ~1.5x at the close


def test_slippage_moves_fills_against_the_trade():
    # target shares use the unslipped open (vectorbt's val_price); the buy at 100 * 1.01 = 101 is cut to the
    # cash: 1/101 shares, cash 0; E1 = 105/101; sold at 110 * 0.99 = 108.9: E2 = 108.9/101.
    bars = bars_from(OPEN, CLOSE)
    res = backtest.run(bars, np.array([1.0, 0.0, 0.0, 0.0]), slippage=0.01)
    np.testing.assert_allclose(res.equity.to_numpy(), [1.0, 105 / 101, 108.9 / 101, 108.9 / 101], rtol=1e-15)
    np.testing.assert_allclose(res.trades["price"], [101.0, 108.9], rtol=1e-15)


def test_constant_full_weight_places_one_order_and_no_dust():
    """Issue #8: at weight 1.0 with fees the engine used to borrow the fee, then place ~1e-8 orders."""
    bars = random_bars(300, 4)
    for execution in ("next_open", "next_close"):
        res = backtest.run(bars, np.ones(300), fees=0.001, slippage=0.0005, execution=execution, band=0.0)
        assert res.metrics["n_trades"] == 1.0 and len(res.trades) == 1
        price = (bars["open"] if execution == "next_open" else bars["close"]).iloc[1] * 1.0005
        q = 1.0 / (price * 1.001)
        np.testing.assert_allclose(res.equity.to_numpy()[1:], q * bars["close"].to_numpy()[1:], rtol=1e-14)
        assert (res.turnover.to_numpy()[2:] == 0.0).all()


def test_short_position_and_rebalance():
    # w=-0.5 at bars 0 and 1. Bar 1: short 0.005 shares at 100, cash 1.5; E1 = 1.5 - 0.525 = 0.975.
    # Bar 2 (open 110): V = 1.5 - 0.55 = 0.95, target -0.475 / 110 shares; buy back 0.005 - 0.475/110 shares.
    # close 115: E2 = 1.5 - (0.005 - 0.475/110) * 110 - (0.475/110) * 115.
    bars = bars_from(OPEN, CLOSE)
    res = backtest.run(bars, [-0.5, -0.5, 0.0, 0.0])
    e2 = 1.5 - (0.005 - 0.475 / 110) * 110 - 0.475 / 110 * 115
    e3 = 1.5 - 0.005 * 110 + 0.475 / 110 * 110 - 0.475 / 110 * 121  # cover at open_3 = 121
    np.testing.assert_allclose(res.equity.to_numpy(), [1.0, 0.975, e2, e3], rtol=1e-14)
    np.testing.assert_allclose(res.positions.iloc[1, 0], -0.525 / 0.975, rtol=1e-14)
    assert res.equity.iloc[-1] < 1.0  # shorting a rising asset loses


def test_next_close_executes_at_the_next_close():
    # w=1 at bars 0, 1 -> bought at close_1 = 105 with no cost: E1 = 1; E2 = 115/105; w_2 = 0 sells at
    # close_3 = 120: E3 = 120/105. At the next open instead: bought at 100, sold at open_3 = 121.
    bars = bars_from(OPEN, CLOSE)
    res = backtest.run(bars, [1.0, 1.0, 0.0, 0.0], execution="next_close")
    np.testing.assert_allclose(res.equity.to_numpy(), [1.0, 1.0, 115 / 105, 120 / 105], rtol=1e-15)
    res_open = backtest.run(bars, [1.0, 1.0, 0.0, 0.0], execution="next_open")
    np.testing.assert_allclose(res_open.equity.to_numpy(), [1.0, 1.05, 1.15, 1.21], rtol=1e-15)


def test_drift_and_turnover_two_assets():
    # 50/50 held; asset A doubles between the two opens while B is flat: the pre-trade weights drift to
    # (2/3, 1/3), and rebalancing to (0.5, 0.5) trades 1/6 of each: turnover 1/3 (A sold first, then B bought).
    idx = pd.date_range("2021-01-04", periods=3, freq="D", tz="UTC", name="timestamp")
    frames = {"A": bars_from([10, 10, 20], [10, 10, 20]), "B": bars_from([5, 5, 5], [5, 5, 5])}
    bars = pd.concat(frames, axis=1)
    bars.columns = bars.columns.set_names(["asset", "field"])
    w = pd.DataFrame({"B": [0.5, 0.5, 0.5], "A": [0.5, 0.5, 0.5]}, index=idx)  # column order does not matter
    res = backtest.run(bars, w, fees=0.0)
    np.testing.assert_allclose(res.turnover.to_numpy(), [0.0, 1.0, 1 / 3], rtol=1e-15)
    np.testing.assert_allclose(res.equity.to_numpy(), [1.0, 1.0, 1.5], rtol=1e-15)
    last = res.trades[res.trades["timestamp"] == idx[2]]
    assert list(zip(last["asset"], last["side"])) == [("A", "sell"), ("B", "buy")]
    np.testing.assert_allclose(last["quantity"].to_numpy(), [0.25 / 20, 0.25 / 5], rtol=1e-14)
    np.testing.assert_allclose(res.positions.iloc[2].to_numpy(), [0.5, 0.5], rtol=1e-15)


def test_band_skips_small_rebalances_but_always_opens_and_closes():
    # Hold 0.5 of A while it rises 4 % per bar: the drifted weight d = 0.5*1.04 / (0.5 + 0.5*1.04) = 0.5098 is
    # within 10 % of the target (|d - w| = 0.0098 < 0.05): no order with band=0.1; band=0 rebalances every bar.
    n = 8
    px = 100 * 1.04 ** np.arange(n)
    bars = bars_from(px, px)
    w = np.r_[np.full(n - 2, 0.5), 0.0, 0.0]
    banded = backtest.run(bars, w, band=0.1)
    assert list(banded.trades["side"]) == ["buy", "sell"]  # open at bar 1, close at bar n - 1
    every = backtest.run(bars, w, band=0.0)
    assert every.metrics["n_trades"] == n - 1 and every.trades["side"].iloc[1:-1].eq("sell").all()
    # the band is relative to the target: a drift beyond it trades back to the target
    jump = bars_from(np.r_[100, 100, 130, 130], np.r_[100, 100, 130, 130])
    res = backtest.run(jump, [0.5, 0.5, 0.5, 0.5], band=0.1)  # d = 65/115 = 0.565: |d - w| > 0.05
    assert res.metrics["n_trades"] == 2.0
    np.testing.assert_allclose(res.positions.iloc[2, 0], 0.5, rtol=1e-14)


# ---------------------------------------------------------------------------------- reference and semantics
@pytest.mark.parametrize("execution", ["next_open", "next_close"])
@pytest.mark.parametrize("seed", [0, 1])
def test_borrow_inf_equals_sequential_loop_with_leverage(execution, seed):
    bars = multi(150, seeds=(seed, seed + 10))
    rng = np.random.default_rng(seed)
    w = rng.uniform(-1.5, 1.5, (150, 2))  # gross up to 3x: beyond what a cash account allows
    w[rng.random(150) < 0.3] = 0.0
    res = backtest.run(bars, w, fees=0.002, slippage=0.001, execution=execution, init_cash=1000.0, band=0.0,
                       borrow=float("inf"))
    names = (f"A{seed}", f"A{seed + 10}")
    px = np.column_stack([bars[(a, "open" if execution == "next_open" else "close")] for a in names])
    cl = np.column_stack([bars[(a, "close")] for a in names])
    ref = sequential(px, cl, w, 0.002, 0.001, 1000.0)
    np.testing.assert_allclose(res.equity.to_numpy(), ref, rtol=1e-12)


def test_parameter_axis_equals_separate_runs():
    bars = multi(120)
    rng = np.random.default_rng(3)
    W = rng.uniform(-0.6, 0.6, (4, 120, 3))
    batch = backtest.run(bars, W, fees=0.001, slippage=0.0005)
    assert batch.equity.shape == (120, 4) and batch.positions.shape == (4, 120, 3)
    for p in range(4):
        single = backtest.run(bars, W[p], fees=0.001, slippage=0.0005)
        np.testing.assert_allclose(batch.equity[p].to_numpy(), single.equity.to_numpy(), rtol=1e-14)
        np.testing.assert_allclose(batch.positions[p], single.positions.to_numpy(), rtol=1e-13, atol=1e-15)
        for k, v in single.metrics.items():
            np.testing.assert_allclose(batch.metrics[k][p], v, rtol=1e-12)
        assert (batch.trades["param"] == p).sum() == len(single.trades)


def test_no_look_ahead_and_last_row_never_executed():
    bars = random_bars(100)
    rng = np.random.default_rng(5)
    w = rng.uniform(-1, 1, 100)
    base = backtest.run(bars, w, fees=0.001).equity.to_numpy()
    for t in (30, 99):
        w2 = w.copy()
        w2[t:] = rng.uniform(-1, 1, 100 - t)  # change decisions from bar t on
        eq = backtest.run(bars, w2, fees=0.001).equity.to_numpy()
        np.testing.assert_array_equal(eq[: t + 1], base[: t + 1])  # bar t's close is unaffected
    eq = backtest.run(bars, np.r_[w[:-1], 5.0], fees=0.001).equity.to_numpy()
    np.testing.assert_array_equal(eq, base)  # the last decision has no bar to execute on


def test_nan_weights_mean_flat_and_leverage_cap():
    bars = random_bars(50)
    w = np.full(50, np.nan)
    w[10:20] = 0.5
    a = backtest.run(bars, w)
    b = backtest.run(bars, np.nan_to_num(w))
    np.testing.assert_array_equal(a.equity.to_numpy(), b.equity.to_numpy())
    capped = backtest.run(bars, np.where(np.isnan(w), 0, 4.0), leverage=0.5)
    np.testing.assert_allclose(capped.equity.to_numpy(), a.equity.to_numpy(), rtol=1e-15)
    m = multi(50, seeds=(0, 1))
    W = np.zeros((50, 2))
    W[5:] = [3.0, -1.0]  # gross 4 -> scaled by 1/2 to (1.5, -0.5)
    r1 = backtest.run(m, W, leverage=2.0)
    r2 = backtest.run(m, W / 2)
    np.testing.assert_allclose(r1.equity.to_numpy(), r2.equity.to_numpy(), rtol=1e-15)


def test_ruin_floors_equity_at_zero_and_warns():
    bars = bars_from([100, 100, 300, 300], [100, 100, 300, 300])
    with pytest.warns(RuntimeWarning, match="lost all its equity"):
        res = backtest.run(bars, [-1.0, -1.0, -1.0, 0.0])  # short 1x into a tripling
    np.testing.assert_allclose(res.equity.to_numpy(), [1.0, 1.0, 0.0, 0.0])
    assert np.isfinite(res.returns).all()


def test_metrics_use_inferred_periods_per_year():
    bars = random_bars(60)
    res = backtest.run(bars, np.full(60, 0.5))
    assert res.periods_per_year == 365.0  # daily bars with weekends
    assert backtest.run(bars, np.full(60, 0.5), periods_per_year=252).periods_per_year == 252.0


# ---------------------------------------------------------------------------------- validation
def test_clear_errors_on_bad_input():
    bars = random_bars(20)
    with pytest.raises(ValueError, match="reindex"):
        backtest.run(bars, pd.Series(0.5, index=bars.index[1:]))
    with pytest.raises(ValueError, match="10 bps"):
        backtest.run(bars, np.zeros(20), fees=10)
    with pytest.raises(ValueError, match="execution must be one of"):
        backtest.run(bars, np.zeros(20), execution="same_close")
    with pytest.raises(ValueError, match="no-trade band relative to the target"):
        backtest.run(bars, np.zeros(20), band=1.5)
    with pytest.raises(ValueError, match="borrow=-1.0 must be >= 0"):
        backtest.run(bars, np.zeros(20), borrow=-1)
    with pytest.raises(ValueError, match=r"\(P, T, N\)"):
        backtest.run(bars, np.zeros((20, 2)))
    bad = bars.copy()
    bad.iloc[7, bad.columns.get_loc("open")] = np.nan
    with pytest.raises(ValueError, match=r"open of asset X at .*\(row 7\)"):
        backtest.run(bad, np.zeros(20))
    m = multi(20, seeds=(0, 1))
    with pytest.raises(ValueError, match="DataFrame"):
        backtest.run(m, pd.Series(0.0, index=m.index))
    with pytest.raises(ValueError, match=r"missing \['A1'\]"):
        backtest.run(m, pd.DataFrame({"A0": 0.0, "Z": 0.0}, index=m.index))
