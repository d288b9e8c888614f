"""Round trips and per-trade statistics: a hand-computed reversal, and vectorbt's positions on a real backtest."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from backtest.trades import TRADE_STATS, round_trips, trade_stats


def _orders(rows):
    return pd.DataFrame(rows, columns=["timestamp", "asset", "side", "quantity", "price", "fee"])


def test_hand_example_with_a_reversal_and_an_open_trip():
    t = pd.date_range("2024-01-01", periods=8, freq="D", tz="UTC")
    orders = _orders([
        (t[1], "X", "buy", 10, 100.0, 1.0),    # open long 10 @ 100
        (t[2], "X", "buy", 5, 110.0, 0.5),     # add 5 @ 110
        (t[4], "X", "sell", 15, 120.0, 1.5),   # close: long trip done
        (t[5], "X", "sell", 4, 90.0, 0.4),     # open short 4 @ 90
        (t[6], "X", "buy", 10, 80.0, 1.0),     # reversal: cover 4, go long 6 @ 80
    ])
    trips = round_trips(orders, t, {"X": 85.0})
    assert list(trips["side"]) == [1.0, -1.0, 1.0] and list(trips["open"]) == [False, False, True]
    # long: -1000-1 -550-0.5 +1800-1.5 = 247
    assert trips["pnl"].iloc[0] == pytest.approx(247.0)
    assert trips["return"].iloc[0] == pytest.approx(247.0 / (1000 + 550))
    # short: +360-0.4, then 4/10 of the reversal (-800-1.0): -320-0.4 -> 39.2
    assert trips["pnl"].iloc[1] == pytest.approx(360 - 0.4 - 320 - 0.4)
    # open long 6: 6/10 of the reversal (-480-0.6) marked at 85 -> -480.6 + 510
    assert trips["pnl"].iloc[2] == pytest.approx(-480.6 + 6 * 85.0)
    assert list(trips["bars"]) == [3, 1, 1]  # the open trip is held to the last bar
    assert trips["entry_price"].tolist() == [100.0, 90.0, 80.0]
    assert trips["exit_price"].iloc[:2].tolist() == [120.0, 80.0] and math.isnan(trips["exit_price"].iloc[2])

    stats = trade_stats(trips)
    assert set(stats) == set(TRADE_STATS)
    assert stats["n_round_trips"] == 2 and stats["win_rate"] == 1.0
    assert stats["profit_factor"] == math.inf and math.isnan(stats["avg_loss"])
    assert stats["expectancy"] == pytest.approx((247.0 + 39.2) / 2)
    assert stats["avg_holding_bars"] == 2.0 and stats["avg_holding_days"] == 2.0
    assert stats["open_trip_pnl"] == pytest.approx(-480.6 + 510.0)


def test_no_trades():
    trips = round_trips(pd.DataFrame(), pd.date_range("2024-01-01", periods=3, tz="UTC"), {})
    assert len(trips) == 0
    stats = trade_stats(trips)
    assert stats["n_round_trips"] == 0 and math.isnan(stats["win_rate"]) and stats["open_trip_pnl"] == 0.0


@pytest.mark.parametrize("execution", ["next_open", "next_close"])
def test_equal_to_vectorbt_positions(execution):
    """Closed round trips equal vectorbt's closed positions on the same orders: pnl, return, entry and exit,
    and the summary statistics vectorbt computes (win rate, profit factor, expectancy)."""
    vbt = pytest.importorskip("vectorbt")
    import backtest
    import markets

    bars = markets.load("sample:SP500", "2010-01-01", "2016-12-31")
    rng = np.random.default_rng(7)
    w = pd.Series(np.repeat(rng.choice([-0.9, 0.0, 0.4, 0.9], size=len(bars) // 15 + 1), 15)[: len(bars)],
                  index=bars.index)
    res = backtest.run(bars, w, fees=0.001, slippage=0.0005, init_cash=10_000.0, execution=execution, band=0.0)
    trips = round_trips(res.trades, bars.index, {"SP500": float(bars["close"].iloc[-1])})
    price = bars["open"] if execution == "next_open" else bars["close"]
    pf = vbt.Portfolio.from_orders(bars["close"], size=w.shift(1), size_type="targetpercent", price=price,
                                   fees=0.001, slippage=0.0005, init_cash=10_000.0, freq="1D")
    closed = pf.positions.closed
    ref = closed.records_readable
    mine = trips[~trips["open"]]
    assert len(mine) == len(ref) > 20
    np.testing.assert_allclose(mine["pnl"].to_numpy(), ref["PnL"].to_numpy(), rtol=1e-9, atol=1e-7)
    np.testing.assert_allclose(mine["return"].to_numpy(), ref["Return"].to_numpy(), rtol=1e-9, atol=1e-12)
    assert (mine["entry"].to_numpy() == ref["Entry Timestamp"].to_numpy()).all()
    assert (mine["exit"].to_numpy() == ref["Exit Timestamp"].to_numpy()).all()
    stats = trade_stats(trips)
    assert stats["win_rate"] == pytest.approx(closed.win_rate())
    assert stats["profit_factor"] == pytest.approx(closed.profit_factor())
    assert stats["expectancy"] == pytest.approx(closed.expectancy())
