"""DREX's engine and metrics against vectorbt 1.2.0 itself (the reference implementation of the fill rules).

Orders go through ``from_orders(size=w.shift(1), size_type="targetpercent", price=open or close,
cash_sharing=True, call_seq="auto")`` with DREX's ``band=0`` (vectorbt rebalances every drift) and the
default cash account (``borrow=0``: both cut a buy to the cash left). Weights are random in [-1, 1] per asset
with gross exposure up to 1 and runs of exactly 1.0 and -1.0, so the cash limit binds (a 100 % target with
fees cannot be paid in full), with fees and slippage, in both execution modes. Real bundled data: MSFT and the
S&P 500 index (single asset) and the 20-stock panel (multi-asset; open = close there, so the multi-asset case
also uses synthetic OHLC with distinct opens).

Documented difference: a return series with zero volatility (a strategy that never trades) has Sharpe and
Sortino NaN in DREX (flagged ``flat = 1``) where vectorbt gives inf, and no losing bar gives Sortino NaN.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

import backtest
import markets

vbt = pytest.importorskip("vectorbt")  # a declared dependency: this only guards broken installs


def _weights(T: int, N: int, seed: int) -> np.ndarray:
    """(T, N) weights in [-1, 1], gross <= 1, with flat spells and runs of exactly +1 / -1 on the first asset."""
    rng = np.random.default_rng(seed)
    w = rng.uniform(-1.0, 1.0, (T, N))
    w[rng.random(T) < 0.2] = 0.0  # flat spells
    gross = np.abs(w).sum(axis=1, keepdims=True)
    w = w / np.maximum(gross, 1.0)
    for start in rng.choice(T - 12, size=6, replace=False):  # held at exactly +-1: the cash limit binds
        w[start:start + 10] = 0.0
        w[start:start + 10, 0] = 1.0 if rng.random() < 0.6 else -1.0
    return w


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


def _vbt(bars, w, fees, slippage, execution, init_cash=100.0):
    close = markets.fields(bars, "close")
    price = markets.fields(bars, "open") if execution == "next_open" else close
    idx = close.index.tz_localize(None)
    size = pd.DataFrame(w, index=idx, columns=close.columns).shift(1)
    return vbt.Portfolio.from_orders(close=close.set_axis(idx), size=size, size_type="targetpercent",
                                     price=price.set_axis(idx), fees=fees, slippage=slippage, init_cash=init_cash,
                                     cash_sharing=True, group_by=True, call_seq="auto", freq="1D")


def _check_orders(ours, pf, assets):
    """Same orders, one for one: bar, asset, side, size, fill price, fee."""
    orders = pf.orders.records_readable.sort_values(["Timestamp", "Column"], kind="stable")
    mine = ours.trades.sort_values(["timestamp", "asset"], kind="stable")
    assert len(mine) == len(orders)
    np.testing.assert_array_equal(mine["timestamp"].dt.tz_localize(None).to_numpy(), orders["Timestamp"].to_numpy())
    assert list(mine["asset"]) == [assets[c] if isinstance(c, int) else c for c in orders["Column"]]
    assert list(mine["side"]) == [s.lower() for s in orders["Side"]]
    np.testing.assert_allclose(mine["quantity"].to_numpy(), orders["Size"].to_numpy(), rtol=1e-9)
    np.testing.assert_allclose(mine["price"].to_numpy(), orders["Price"].to_numpy(), rtol=1e-12)
    np.testing.assert_allclose(mine["fee"].to_numpy(), orders["Fees"].to_numpy(), rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize(("seed", "execution", "costs"), [
    (0, "next_open", (0.001, 0.0005)), (1, "next_close", (0.001, 0.0005)), (2, "next_open", (0.0, 0.002)),
    (3, "next_close", (0.003, 0.0)),
])
def test_single_asset_matches_vectorbt_order_for_order(seed, execution, costs):
    bars = markets.load("sample:MSFT").iloc[-400:]
    w = _weights(len(bars), 1, seed)[:, 0]
    assert (w == 1.0).sum() >= 10 and (w == -1.0).sum() >= 10
    fees, slip = costs
    ours = backtest.run(bars, w, fees=fees, slippage=slip, execution=execution, init_cash=100.0, band=0.0)
    pf = _vbt(bars, w[:, None], fees, slip, execution)
    np.testing.assert_allclose(ours.equity.to_numpy(), pf.value().to_numpy(), rtol=1e-9)
    _check_orders(ours, pf, ["MSFT"])


@pytest.mark.parametrize(("seed", "execution"), [(3, "next_open"), (4, "next_close")])
def test_multi_asset_matches_vectorbt_order_for_order(seed, execution):
    bars = _synthetic_multi(300, seed)
    w = _weights(300, 3, seed)
    w[50:60] = [1.0, 0.0, 0.0]  # rotations at exactly 100 %: sells fund the buy, which the fees cut
    w[60:70] = [0.0, 1.0, 0.0]
    w[70:80] = [0.0, 0.0, -1.0]
    w[80:90] = [0.5, -0.25, 0.25]
    ours = backtest.run(bars, w, fees=0.001, slippage=0.0005, execution=execution, init_cash=100.0, band=0.0)
    pf = _vbt(bars, w, 0.001, 0.0005, execution)
    np.testing.assert_allclose(ours.equity.to_numpy(), pf.value().to_numpy(), rtol=1e-9)
    _check_orders(ours, pf, ["AAA", "BBB", "CCC"])


@pytest.mark.parametrize("execution", ["next_open", "next_close"])
def test_real_panel_multi_asset_matches_vectorbt(execution):
    bars = markets.load("sample:SP20").iloc[-300:]
    N = len(markets.assets(bars))
    w = _weights(len(bars), N, 7)
    w[100:150] = 1.0 / N  # equal weight at 100 % gross: every bar rebalances and the cash limit cuts a buy
    ours = backtest.run(bars, w, fees=0.001, slippage=0.0005, execution=execution, init_cash=100.0, band=0.0)
    pf = _vbt(bars, w, 0.001, 0.0005, execution)
    np.testing.assert_allclose(ours.equity.to_numpy(), pf.value().to_numpy(), rtol=1e-9)
    assert ours.metrics["n_trades"] == len(pf.orders.records)


@pytest.mark.parametrize("spec", ["sample:SP500", "sample:MSFT"])
@pytest.mark.parametrize("execution", ["next_open", "next_close"])
def test_buy_and_hold_on_real_data_places_one_order_like_vectorbt(spec, execution):
    """Issue #8: weight 1.0 with fees used to borrow the fee and then place dust orders on later bars."""
    from tests.backtest.registry_helpers import weights

    bars = markets.load(spec)
    w = weights("buy_and_hold", bars)
    ours = backtest.run(bars, w, fees=0.001, slippage=0.0005, execution=execution, init_cash=10_000.0)
    pf = _vbt(bars, w.to_numpy()[:, None], 0.001, 0.0005, execution, init_cash=10_000.0)
    assert len(pf.orders.records) == 1 and len(ours.trades) == 1 and ours.metrics["n_trades"] == 1
    assert ours.equity.iloc[-1] == pytest.approx(pf.value().iloc[-1], rel=1e-9)
    np.testing.assert_allclose(ours.equity.to_numpy(), pf.value().to_numpy(), rtol=1e-9)
    assert pf.cash().iloc[-1] == 0.0  # the buy was cut to the cash left: nothing borrowed


def test_dust_threshold_is_relative_where_vectorbts_is_in_shares():
    """Documented difference: vectorbt skips orders below 1e-12 shares, so 1e9 units held at weight 1 emit
    float-noise orders there; DREX skips orders below 1e-9 of equity whatever the units."""
    bars = markets.load("sample:SP500")
    w = np.ones(len(bars))
    ours = backtest.run(bars, w, fees=0.001, init_cash=1e12, band=0.0)
    pf = _vbt(bars, w[:, None], 0.001, 0.0, "next_open", init_cash=1e12)
    assert ours.metrics["n_trades"] == 1 and len(pf.orders.records) > 100
    np.testing.assert_allclose(ours.equity.to_numpy(), pf.value().to_numpy(), rtol=1e-9)


def test_metrics_match_vectorbt_returns_accessor():
    bars = markets.load("sample:MSFT").iloc[-500:]
    W = np.stack([_weights(len(bars), 1, s) for s in range(3)])  # (3, T, 1)
    ours = backtest.run(bars, W, fees=0.001, periods_per_year=252, band=0.0)
    acc = ours.returns.set_axis(ours.returns.index.tz_localize(None)).vbt.returns(freq="1D", year_freq="252 days")
    pairs = {"sharpe": acc.sharpe_ratio(), "sortino": acc.sortino_ratio(), "max_drawdown": acc.max_drawdown(),
             "cagr": acc.annualized(), "calmar": acc.calmar_ratio(), "total_return": acc.total(),
             "ann_volatility": acc.annualized_volatility(), "cvar_5": acc.cond_value_at_risk()}
    for name, ref in pairs.items():
        np.testing.assert_allclose(ours.metrics[name], ref.to_numpy(), rtol=1e-10, err_msg=name)
    pf = _vbt(bars, W[0], 0.001, 0.0, "next_open")
    with pytest.warns(UserWarning, match="year frequency"):  # vectorbt copies the object to change it
        stats = pf.returns_stats(settings={"year_freq": "252 days"})
    np.testing.assert_allclose(ours.metrics["sharpe"][0], stats["Sharpe Ratio"], rtol=1e-9)
    np.testing.assert_allclose(-ours.metrics["max_drawdown"][0] * 100, stats["Max Drawdown [%]"], rtol=1e-9)


def test_zero_volatility_is_nan_and_flagged_where_vectorbt_gives_inf():
    """The documented difference: a strategy that never trades does not get an infinite Sharpe."""
    bars = markets.load("sample:MSFT").iloc[-300:]
    ours = backtest.run(bars, np.zeros(len(bars)), fees=0.001)
    acc = ours.returns.set_axis(ours.returns.index.tz_localize(None)).vbt.returns(freq="1D", year_freq="252 days")
    assert acc.sharpe_ratio() == np.inf and acc.sortino_ratio() == np.inf  # vectorbt
    assert math.isnan(ours.metrics["sharpe"]) and math.isnan(ours.metrics["sortino"])
    assert ours.metrics["flat"] == 1.0 and ours.metrics["n_trades"] == 0.0
