"""Simulated fills: hand-computed references for sizing, slippage, fees, cash cuts and sell-before-buy."""
from __future__ import annotations

import pytest

from app.paper.execution import rebalance, update_position


def test_buy_then_sell_hand_computed():
    # equity 1000, target 50% at open 100: 5 shares at 100*(1+0.02)=102, fee 1% of 510
    cash, fills = rebalance(1000.0, {}, {"A": 0.5}, {"A": 100.0}, fees=0.01, slippage=0.02)
    (f,) = fills
    assert (f.side, f.status, f.qty, f.filled) == ("buy", "filled", pytest.approx(5.0), pytest.approx(5.0))
    assert f.price == pytest.approx(102.0) and f.fee == pytest.approx(5.10)
    assert cash == pytest.approx(1000.0 - 510.0 - 5.10)
    # back to flat at open 110: sell 5 at 110*(1-0.02)=107.8, fee 5.39
    cash, fills = rebalance(cash, {"A": 5.0}, {"A": 0.0}, {"A": 110.0}, fees=0.01, slippage=0.02)
    (f,) = fills
    assert (f.side, f.filled, f.price, f.fee) == ("sell", pytest.approx(-5.0), pytest.approx(107.8), pytest.approx(5.39))
    assert cash == pytest.approx(484.9 + 539.0 - 5.39)


def test_buy_cut_to_cash_left_like_vectorbt():
    # 100% of 100 at 50 with 1% fee would cost 101: cut to 100 / (50 * 1.01) shares
    cash, (f,) = rebalance(100.0, {}, {"A": 1.0}, {"A": 50.0}, fees=0.01, slippage=0.0)
    assert f.status == "partial" and f.qty == pytest.approx(2.0)
    assert f.filled == pytest.approx(100.0 / 50.5)
    assert cash == pytest.approx(0.0, abs=1e-12)


def test_sells_fund_buys_in_the_same_bar():
    # all cash is in A; rotating into B only works if A is sold first
    cash, fills = rebalance(0.0, {"A": 10.0}, {"A": 0.0, "B": 1.0}, {"A": 10.0, "B": 20.0}, fees=0.0, slippage=0.0)
    assert [(f.asset, f.side, f.status) for f in fills] == [("A", "sell", "filled"), ("B", "buy", "filled")]
    assert fills[1].filled == pytest.approx(5.0) and cash == pytest.approx(0.0, abs=1e-12)


def test_rejected_without_cash_and_held_asset_without_target_goes_flat():
    cash, fills = rebalance(0.0, {}, {"A": 0.5}, {"A": 10.0}, fees=0.0, slippage=0.0)
    assert cash == 0.0 and fills == []  # equity 0: nothing to buy
    cash, fills = rebalance(-5.0, {"B": 1.0}, {"A": 1.0}, {"A": 10.0, "B": 10.0}, fees=0.0, slippage=0.0)
    assert [(f.asset, f.side) for f in fills] == [("B", "sell"), ("A", "buy")]
    assert cash == pytest.approx(0.0, abs=1e-12)


def test_short_target_sells_without_cash_limit():
    cash, (f,) = rebalance(1000.0, {}, {"A": -0.5}, {"A": 100.0}, fees=0.0, slippage=0.01)
    assert f.side == "sell" and f.filled == pytest.approx(-5.0) and f.price == pytest.approx(99.0)
    assert cash == pytest.approx(1000.0 + 495.0)


def test_bad_open_price_names_the_asset():
    with pytest.raises(ValueError, match="asset 'A'"):
        rebalance(100.0, {}, {"A": 1.0}, {"A": float("nan")}, fees=0.0, slippage=0.0)


@pytest.mark.parametrize(
    "before, fill, after",
    [
        ((0.0, 0.0), (5.0, 102.0), (5.0, 102.0)),
        ((5.0, 102.0), (5.0, 112.0), (10.0, 107.0)),  # averaged
        ((10.0, 107.0), (-4.0, 120.0), (6.0, 107.0)),  # reduced: kept
        ((6.0, 107.0), (-10.0, 90.0), (-4.0, 90.0)),  # flipped: reset
        ((6.0, 107.0), (-6.0, 90.0), (0.0, 0.0)),  # closed
    ],
)
def test_update_position(before, fill, after):
    assert update_position(*before, *fill) == pytest.approx(after)


def test_float_noise_orders_are_skipped_and_no_cash_is_rejected():
    # holding 100% of equity: the target differs from the position by float noise only -> no order
    pos = 1000.0 / 3.0
    cash, fills = rebalance(0.0, {"A": pos}, {"A": 1.0}, {"A": 7.3}, fees=0.001, slippage=0.0)
    assert fills == [] and cash == 0.0
    cash, (f,) = rebalance(0.0, {"A": 1.0}, {"A": 2.0}, {"A": 10.0}, fees=0.0, slippage=0.0)
    assert (f.status, f.filled, cash) == ("rejected", 0.0, 0.0)
