"""router.rewards (the stand-in for backtest.accounting.horizon_rewards) against the backtest engine."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

import markets
from backtest.engine import run
from router.rewards import horizon_rewards

FEES, SLIP = 0.001, 0.0005


@pytest.fixture(scope="module")
def bars():
    return markets.load("sample:MSFT").iloc[-400:]


def _engine(bars, t, exposure, horizon, execution, start=None):
    """E_{t+H} / E_t - 1 from the engine: a decision row t (and, for a start position, row t-1 executed at
    t's close with next_close so the account holds exactly ``start`` at t's close)."""
    lo = t - 1 if start is not None else t
    sub = bars.iloc[lo: t + horizon + 1]
    w = np.full(len(sub), np.nan)
    if start is not None:
        w[0] = start
        w[1: 1 + horizon] = exposure
    else:
        w[:horizon] = exposure
    res = run(sub, pd.Series(w, index=sub.index).fillna(0.0), fees=FEES, slippage=SLIP, execution=execution,
              periods_per_year=252)
    eq = res.equity.to_numpy()
    return eq[-1] / eq[0 if start is None else 1] - 1.0  # row 0 holds nothing: eq[0] is the initial cash


@pytest.mark.parametrize("execution", ["next_open", "next_close"])
@pytest.mark.parametrize("horizon", [1, 5])
def test_flat_start_equals_the_engine(bars, execution, horizon):
    o, c = bars["open"].to_numpy(), bars["close"].to_numpy()
    exec_p = o if execution == "next_open" else c
    t = np.array([10, 57, 200, 390 - horizon])
    u = np.array([1.0, -0.7, 0.35, 2.0])
    got = horizon_rewards(exec_p, c, t, u, horizon, fees=FEES, slippage=SLIP, execution=execution)
    want = [_engine(bars, int(ti), ui, horizon, execution) for ti, ui in zip(t, u)]
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)


def test_start_exposure_equals_the_engine_holding_it(bars):
    c = bars["close"].to_numpy()
    t, u, w0 = np.array([30, 120]), np.array([0.5, -1.0]), np.array([1.0, 0.2])
    # the engine buys w0 at t's close from flat: it then holds w0 / (1 - cost) of its (post-cost) equity
    held = w0 / (1.0 - ((SLIP + FEES) * np.abs(w0) + SLIP * FEES * w0))
    got = horizon_rewards(c, c, t, u, 4, fees=FEES, slippage=SLIP, start_exposure=held, execution="next_close")
    want = [_engine(bars, int(ti), ui, 4, "next_close", start=wi) for ti, ui, wi in zip(t, u, w0)]
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)


def test_several_assets_equal_the_engine():
    panel = markets.load("sample:AAPL,JPM").iloc[-100:]
    close = markets.fields(panel, "close").to_numpy()
    u = np.array([[0.6, -0.3]])
    got = horizon_rewards(close, close, np.array([20]), u, 3, fees=FEES, slippage=SLIP, execution="next_close")
    sub = panel.iloc[20:24]
    w = pd.DataFrame([[0.6, -0.3]] * 3 + [[0.0, 0.0]], index=sub.index, columns=["AAPL", "JPM"])
    eq = run(sub, w, fees=FEES, slippage=SLIP, execution="next_close", periods_per_year=252).equity.to_numpy()
    assert got[0] == pytest.approx(eq[-1] / eq[0] - 1.0, rel=1e-10)


def test_torch_in_torch_out_and_errors(bars):
    c = bars["close"].to_numpy()
    got = horizon_rewards(c, c, torch.tensor([5, 6]), torch.tensor([1.0, 0.0]), 2, fees=0.0, slippage=0.0)
    assert isinstance(got, torch.Tensor)
    assert got[1].item() == 0.0
    assert got[0].item() == pytest.approx(c[7] / c[6] - 1.0)  # no costs: bought at bar 6 (the exec price), marked at 7
    with pytest.raises(ValueError, match="t \\+ horizon"):
        horizon_rewards(c, c, np.array([len(c) - 2]), np.array([1.0]), 2, fees=0.0, slippage=0.0)
    with pytest.raises(ValueError, match="execution"):
        horizon_rewards(c, c, np.array([1]), np.array([1.0]), 2, fees=0.0, slippage=0.0, execution="now")
