"""backtest.accounting, the one fill model: hand-computed fills (cash cut, rejection, order of execution, dust,
band, borrow), the single-asset scalar kernel against the general loop, ``step`` and ``horizon_rewards``
against ``backtest.run`` (the functions environments and RL rewards call), and input errors."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import backtest
from backtest import accounting
from backtest.accounting import STATUS, fill, horizon_rewards, step


def _bars(T: int, N: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    idx = pd.date_range("2020-01-01", periods=T, freq="D", tz="UTC", name="timestamp")
    frames = {}
    for k in range(N):
        close = 50 * np.exp(np.cumsum(rng.normal(0, 0.03, T)))
        open_ = close * np.exp(rng.normal(0, 0.01, T))
        frames[f"A{k}"] = pd.DataFrame({"open": open_, "high": np.maximum(open_, close), "low": np.minimum(open_, close),
                                       "close": close, "volume": 1.0}, index=idx)
    if N == 1:
        out = frames["A0"]
        out.attrs["symbol"] = "A0"
        return out
    out = pd.concat(frames, axis=1)
    out.columns = out.columns.set_names(["asset", "field"])
    return out


# ---------------------------------------------------------------------------------- hand-computed fills
def test_buys_go_smallest_first_and_the_one_that_does_not_fit_is_cut():
    # value 100, fee 1 %: A 0.2 and B 0.3 cost 20.2 and 30.3 and fill; C 0.5 would cost 50.5 > 49.5 left:
    # cut to 49.5 / (10 * 1.01) shares, fee 49.5 - 49.5 / 1.01, cash exactly 0.
    res = fill(100.0, [0, 0, 0], [0.5, 0.2, 0.3], [10.0, 10.0, 10.0], fees=0.01, band=0.0)
    assert [STATUS[s] for s in res.status] == ["partial", "filled", "filled"]
    assert res.order == [1, 2, 0]  # smallest order value first
    np.testing.assert_allclose(res.filled, [49.5 / 10.1, 2.0, 3.0], rtol=1e-15)
    np.testing.assert_allclose(res.fees, [49.5 - 49.5 / 1.01, 0.2, 0.3], rtol=1e-13)
    assert res.cash == 0.0 and res.value == 100.0
    np.testing.assert_allclose(res.shares, res.filled, rtol=0)


def test_sells_fund_buys_and_an_empty_account_rejects_the_rest():
    # sells first: A (10 shares at 10 = 100) is sold at 10 * 0.99, fee 1 %: cash 98.01. Buys of 50 each at
    # 20 * 1.01: B fills (50 * 1.01 * 1.01 = 51.005), C is cut to the 47.005 left, D gets nothing.
    res = fill(0.0, [10, 0, 0, 0], [0.0, 0.5, 0.5, 0.5], [10.0, 20.0, 20.0, 20.0], fees=0.01, slippage=0.01,
               band=0.0)
    assert res.order == [0, 1, 2, 3]
    assert [STATUS[s] for s in res.status] == ["filled", "filled", "partial", "rejected"]
    np.testing.assert_allclose(res.prices, [9.9, 20.2, 20.2, 20.2], rtol=1e-15)
    left = 98.01 - 2.5 * 20.2 * 1.01
    np.testing.assert_allclose(res.filled, [-10.0, 2.5, left / 1.01 / 20.2, 0.0], rtol=1e-14)
    assert res.cash == 0.0 and res.requested[3] == pytest.approx(2.5)


def test_shorts_are_not_limited_by_cash_and_borrow_extends_buys():
    res = fill(100.0, [0], [-1.0], [50.0], fees=0.001, band=0.0)
    assert STATUS[res.status[0]] == "filled" and res.filled[0] == -2.0
    assert res.cash == pytest.approx(100 + 100 * 0.999)
    cut = fill(100.0, [0], [2.0], [50.0], fees=0.0, band=0.0)
    assert STATUS[cut.status[0]] == "partial" and cut.filled[0] == pytest.approx(2.0)
    lev = fill(100.0, [0], [2.0], [50.0], fees=0.0, band=0.0, borrow=1.0)
    assert STATUS[lev.status[0]] == "filled" and lev.filled[0] == 4.0 and lev.cash == -100.0


def test_float_noise_is_not_an_order_but_a_real_drift_is():
    pos = 1e6 / 3.0  # holding 100 % of equity: the target differs from the position by float noise only
    res = fill(0.0, [pos], [1.0], [7.3], fees=0.001, band=0.0)
    assert res.order == [] and res.cash == 0.0 and res.shares[0] == pos
    drift = fill(0.0, [pos], [0.999], [7.3], fees=0.001, band=0.0)  # 0.1 % of equity is a real order
    assert drift.order == [0] and drift.filled[0] == pytest.approx(-pos * 0.001)


def test_band_is_relative_to_the_target():
    # holding 0.5 of equity as 0.46 (|d - w| = 0.04 < 0.1 * 0.5): skipped; 0.44 (0.06): traded back to 0.5.
    for held, trades in ((46.0, False), (44.0, True)):
        res = fill(100.0 - held, [held], [0.5], [1.0], band=0.1)
        assert (res.order == [0]) is trades
    assert fill(100.0, [0.0], [0.001], [1.0], band=0.5).order == [0]  # opening always trades
    assert fill(99.0, [1.0], [0.0], [1.0], band=0.5).order == [0]  # closing always trades


# ---------------------------------------------------------------------------------- kernels agree
def test_single_asset_scalar_kernel_equals_the_general_loop():
    """fill_one_nb (N = 1) and the N-asset loop implement one rule: an inert second asset changes nothing."""
    rng = np.random.default_rng(0)
    for _ in range(3000):
        cash = float(rng.choice([0.0, rng.uniform(-50, 150)]))
        sh = float(rng.choice([0.0, rng.uniform(-3, 3)]))
        w = float(rng.choice([0.0, 1.0, -1.0, rng.uniform(-2, 2)]))
        kw = {"fees": float(rng.choice([0.0, 0.001, 0.01])), "slippage": float(rng.choice([0.0, 0.002])),
              "band": float(rng.choice([0.0, 0.1])), "borrow": float(rng.choice([0.0, 0.5, np.inf]))}
        p = float(rng.uniform(10, 100))
        one = fill(cash, [sh], [w], [p], **kw)
        two = fill(cash, [sh, 0.0], [w, 0.0], [p, 3.0], **kw)
        assert (one.cash, one.value, one.turnover) == (two.cash, two.value, two.turnover)
        for field in ("shares", "requested", "filled", "fees", "status"):
            assert getattr(one, field)[0] == getattr(two, field)[0], field
        assert one.order == two.order


@pytest.mark.parametrize("N", [1, 3])
def test_step_chained_over_bars_equals_backtest_run(N):
    """An environment calling ``step`` once per bar holds exactly the portfolio ``backtest.run`` holds."""
    bars = _bars(120, N, N)
    rng = np.random.default_rng(N)
    B = 4
    W = rng.uniform(-1, 1, (B, 120, N)) / N
    W[:, 40:60] = 1.0 / N  # fully invested: the cash limit binds
    opens = bars.xs("open", axis=1, level="field").to_numpy() if N > 1 else bars[["open"]].to_numpy()
    closes = bars.xs("close", axis=1, level="field").to_numpy() if N > 1 else bars[["close"]].to_numpy()
    ref = backtest.run(bars, W, fees=0.001, slippage=0.0005)
    cash, shares = np.ones(B), np.zeros((B, N))
    equity = [cash + (shares * closes[0]).sum(-1)]
    for t in range(1, 120):
        out = step(cash, shares, W[:, t - 1], opens[t], fees=0.001, slippage=0.0005)
        cash, shares = out.cash, out.shares
        equity.append(cash + (shares * closes[t]).sum(-1))
    np.testing.assert_allclose(np.array(equity), ref.equity.to_numpy(), rtol=1e-12)


def test_step_equals_fill_per_portfolio_and_leaves_inputs_alone():
    rng = np.random.default_rng(3)
    cash, shares = rng.uniform(0, 100, 6), rng.uniform(-1, 2, (6, 3))
    targets, prices = rng.uniform(-0.6, 0.6, (6, 3)), rng.uniform(10, 50, (6, 3))
    before = shares.copy()
    out = step(cash, shares, targets, prices, fees=0.002, slippage=0.001, band=0.05)
    np.testing.assert_array_equal(shares, before)
    for b in range(6):
        one = fill(cash[b], shares[b], targets[b], prices[b], fees=0.002, slippage=0.001, band=0.05)
        assert out.cash[b] == one.cash and out.turnover[b] == one.turnover and out.value[b] == one.value
        np.testing.assert_array_equal(out.shares[b], one.shares)
        np.testing.assert_array_equal(out.filled[b], one.filled)
        assert out.n_orders[b] == np.count_nonzero(one.filled)


# ---------------------------------------------------------------------------------- horizon rewards
@pytest.mark.parametrize("N", [1, 3])
@pytest.mark.parametrize("execution", ["next_open", "next_close"])
@pytest.mark.parametrize("band", [0.0, accounting.DEFAULT_BAND])
def test_horizon_rewards_equal_backtest_run(N, execution, band):
    bars = _bars(200, N, 10 + N)
    rng = np.random.default_rng(N)
    B, H = 40, 7
    t = rng.integers(0, 200 - H, B)
    t[:2] = [0, 200 - H - 1]  # both ends
    expo = rng.uniform(-1, 1, (B, N)) / N
    expo[2:6] = [[1.0 / N] * N, [-1.0 / N] * N, [0.0] * N, [1.0] + [0.0] * (N - 1)]  # exactly +-1 and 0
    W = np.zeros((B, 200, N))
    for b in range(B):
        W[b, t[b]:t[b] + H] = expo[b]
    ref = backtest.run(bars, W, fees=0.001, slippage=0.0005, execution=execution, band=band)
    want = ref.equity.to_numpy()[t + H, np.arange(B)] - 1.0
    fields = (lambda f: bars.xs(f, axis=1, level="field").to_numpy()) if N > 1 else (lambda f: bars[f].to_numpy())
    got = horizon_rewards(fields("open"), fields("close"), t, expo if N > 1 else expo[:, 0], H, fees=0.001,
                          slippage=0.0005, execution=execution, band=band)
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-15)
    assert np.count_nonzero(got) > B - 3  # they trade


def test_horizon_rewards_from_a_held_exposure_equal_chained_steps():
    bars = _bars(60, 2, 5)
    opens, closes = (bars.xs(f, axis=1, level="field").to_numpy() for f in ("open", "close"))
    t = np.array([3, 10, 20, 30])
    start = np.array([[0.5, 0.5], [1.0, 0.0], [0.0, -0.5], [0.2, 0.3]])
    expo = np.array([[0.5, 0.5], [0.0, 0.0], [0.5, 0.5], [-0.5, 0.5]])
    got = horizon_rewards(opens, closes, t, expo, 5, fees=0.001, start_exposure=start)
    for b in range(4):
        cash, shares = np.array([1.0 - start[b].sum()]), (start[b] / closes[t[b]])[None]
        for h in range(1, 6):
            out = step(cash, shares, expo[b][None], opens[t[b] + h], fees=0.001)
            cash, shares = out.cash, out.shares
        assert got[b] == pytest.approx(cash[0] + shares[0] @ closes[t[b] + 5] - 1.0, rel=1e-12, abs=1e-15)
    # holding the start's 50/50 inside a wide band: no trade, the reward is the price move of the holdings
    hold = horizon_rewards(opens, closes, t[:1], expo[:1], 5, fees=0.001, start_exposure=start[:1], band=0.9)
    assert hold[0] == pytest.approx(0.5 * (closes[8] / closes[3] - 1).sum(), rel=1e-12)


def test_horizon_rewards_ruin_floors_at_minus_one():
    close = np.array([100.0, 100.0, 100.0, 300.0, 300.0])
    r = horizon_rewards(close, close, np.array([0, 1]), np.array([-1.0, 0.5]), 3, execution="next_close")
    assert r[0] == -1.0 and r[1] == pytest.approx(0.5 * 2.0)


def test_horizon_rewards_errors_name_the_fix():
    close = np.linspace(10, 20, 30)
    with pytest.raises(ValueError, match=r"t \+ horizon <= T - 1 = 29"):
        horizon_rewards(close, close, np.array([25]), np.array([1.0]), 5)
    with pytest.raises(ValueError, match=r"exposure must be \(2,\)"):
        horizon_rewards(close, close, np.array([1, 2]), np.array([1.0]), 5)
    with pytest.raises(ValueError, match="horizon must be >= 1"):
        horizon_rewards(close, close, np.array([1]), np.array([1.0]), 0)
    with pytest.raises(ValueError, match="needs exec_price"):
        horizon_rewards(None, close, np.array([1]), np.array([1.0]), 2)
    with pytest.raises(ValueError, match="execution must be one of"):
        horizon_rewards(close, close, np.array([1]), np.array([1.0]), 2, execution="now")


def test_step_and_fill_errors():
    with pytest.raises(ValueError, match=r"prices must be \(N,\) = \(2,\) or \(B, N\)"):
        step(np.ones(3), np.zeros((3, 2)), np.zeros((3, 2)), np.ones(3))
    with pytest.raises(ValueError, match="finite and > 0; entry 1 is nan"):
        fill(1.0, [0, 0], [0.5, 0.5], [1.0, np.nan])
    with pytest.raises(ValueError, match="fees must be a scalar or one value per asset"):
        fill(1.0, [0, 0], [0.5, 0.5], [1.0, 1.0], fees=[0.1, 0.1, 0.1])
    with pytest.raises(ValueError, match="borrow=-0.5 must be >= 0"):
        step(np.ones(1), np.zeros((1, 1)), np.zeros((1, 1)), np.ones(1), borrow=-0.5)
