"""DREX's engine and metrics against vectorbt 1.2.0 itself (the reference implementation of the semantics).

Weights are random with gross exposure <= 0.9 so vectorbt's cash limit never cuts a buy (DREX can borrow fees,
vectorbt cannot); orders go through ``from_orders(size=w.shift(1), size_type="targetpercent", price=open)``.
Real bundled data: MSFT (single asset) and the 20-stock panel (multi-asset, open = close there, so the
multi-asset case also uses synthetic OHLC with distinct opens).
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import backtest
import markets

vbt = pytest.importorskip("vectorbt")  # a declared dependency: this only guards broken installs


def _weights(T: int, N: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    w = rng.uniform(-0.9, 0.9, (T, N))
    w[rng.random(T) < 0.2] = 0.0  # flat spells
    gross = np.abs(w).sum(axis=1, keepdims=True)
    return w * np.minimum(1.0, 0.9 / np.maximum(gross, 1e-12))


def _synthetic_multi(T: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frames = {}
    for a in ("AAA", "BBB", "CCC"):
        close = 50 * np.exp(np.cumsum(rng.normal(2e-4, 0.015, T)))
        open_ = close * np.exp(rng.normal(0, 0.005, T))
        frames[a] = pd.DataFrame({"open": open_, "high": np.maximum(open_, close) * 1.002,
                                  "low": np.minimum(open_, close) * 0.998, "close": close, "volume": 1.0},
                                 index=pd.date_range("2015-01-05", periods=T, freq="B", tz="UTC", name="timestamp"))
    out = pd.concat(frames, axis=1)
    out.columns = out.columns.set_names(["asset", "field"])
    return out


def _vbt_value(bars, w, fees, slippage, execution):
    close = markets.fields(bars, "close")
    price = markets.fields(bars, "open") if execution == "next_open" else close
    idx = close.index.tz_localize(None)
    size = pd.DataFrame(w, index=idx, columns=close.columns).shift(1)
    pf = vbt.Portfolio.from_orders(close=close.set_axis(idx), size=size, size_type="targetpercent",
                                   price=price.set_axis(idx), fees=fees, slippage=slippage, init_cash=100.0,
                                   cash_sharing=True, group_by=True, call_seq="auto", freq="1D")
    return pf


@pytest.mark.parametrize(("seed", "execution"), [(0, "next_open"), (1, "next_close"), (2, "next_open")])
def test_single_asset_equity_and_orders_match_vectorbt(seed, execution):
    bars = markets.load("sample:MSFT").iloc[-400:]
    w = _weights(len(bars), 1, seed)[:, 0]
    fees, slip = [(0.001, 0.0), (0.0, 0.002), (0.0005, 0.001)][seed]
    ours = backtest.run(bars, w, fees=fees, slippage=slip, execution=execution, init_cash=100.0)
    pf = _vbt_value(bars, w[:, None], fees, slip, execution)
    np.testing.assert_allclose(ours.equity.to_numpy(), pf.value().to_numpy(), rtol=1e-6)
    orders = pf.orders.records_readable
    assert len(ours.trades) == len(orders)
    np.testing.assert_allclose(ours.trades["quantity"].to_numpy(), orders["Size"].to_numpy(), rtol=1e-6)
    np.testing.assert_allclose(ours.trades["price"].to_numpy(), orders["Price"].to_numpy(), rtol=1e-12)
    np.testing.assert_allclose(ours.trades["fee"].to_numpy(), orders["Fees"].to_numpy(), rtol=1e-6, atol=1e-12)


@pytest.mark.parametrize(("seed", "execution"), [(3, "next_open"), (4, "next_close")])
def test_multi_asset_equity_matches_vectorbt(seed, execution):
    bars = _synthetic_multi(300, seed)
    w = _weights(300, 3, seed)
    ours = backtest.run(bars, w, fees=0.001, slippage=0.0005, execution=execution, init_cash=100.0)
    pf = _vbt_value(bars, w, 0.001, 0.0005, execution)
    np.testing.assert_allclose(ours.equity.to_numpy(), pf.value().to_numpy(), rtol=1e-6)


def test_real_panel_multi_asset_matches_vectorbt():
    bars = markets.load("sample:AAPL,JPM,XOM").iloc[-300:]
    w = _weights(len(bars), 3, 7)
    ours = backtest.run(bars, w, fees=0.001, init_cash=100.0)
    pf = _vbt_value(bars, w, 0.001, 0.0, "next_open")
    np.testing.assert_allclose(ours.equity.to_numpy(), pf.value().to_numpy(), rtol=1e-6)


def test_metrics_match_vectorbt_returns_accessor():
    bars = markets.load("sample:MSFT").iloc[-500:]
    W = np.stack([_weights(len(bars), 1, s) for s in range(3)])  # (3, T, 1)
    ours = backtest.run(bars, W, fees=0.001, periods_per_year=252)
    acc = ours.returns.set_axis(ours.returns.index.tz_localize(None)).vbt.returns(freq="1D", year_freq="252 days")
    pairs = {"sharpe": acc.sharpe_ratio(), "sortino": acc.sortino_ratio(), "max_drawdown": acc.max_drawdown(),
             "cagr": acc.annualized(), "calmar": acc.calmar_ratio(), "total_return": acc.total(),
             "ann_volatility": acc.annualized_volatility(), "cvar_5": acc.cond_value_at_risk()}
    for name, ref in pairs.items():
        np.testing.assert_allclose(ours.metrics[name], ref.to_numpy(), rtol=1e-10, err_msg=name)
    pf = _vbt_value(bars, W[0], 0.001, 0.0, "next_open")
    with pytest.warns(UserWarning, match="year frequency"):  # vectorbt copies the object to change it
        stats = pf.returns_stats(settings={"year_freq": "252 days"})
    np.testing.assert_allclose(ours.metrics["sharpe"][0], stats["Sharpe Ratio"], rtol=1e-5)
    np.testing.assert_allclose(-ours.metrics["max_drawdown"][0] * 100, stats["Max Drawdown [%]"], rtol=1e-5)
