"""Live mode against a fake ccxt exchange: public OHLCV only (private endpoints raise), complete bars only."""
from __future__ import annotations

from datetime import timedelta
from typing import ClassVar

import ccxt
import numpy as np
import pandas as pd
import pytest

from app.paper.config import validate_config
from app.paper.engine import tick
from app.paper.ledger import open_ledger
from tests.app.test_paper_support import make_bars
from tests.backtest.registry_helpers import weights

H = timedelta(hours=1)
BARS = make_bars(30, seed=8)  # candle open times 2024-01-01 00:00 ... 2024-01-02 05:00 UTC, hourly
PRIVATE = ("create_order", "create_market_order", "create_limit_order", "cancel_order", "cancel_all_orders",
           "fetch_balance", "fetch_open_orders", "fetch_orders", "fetch_my_trades", "fetch_positions",
           "withdraw", "transfer")


class FakeBinance(ccxt.binance):
    """binance with recorded candles and a simulated clock; the network and private endpoints are off limits."""

    now: pd.Timestamp = BARS.index[0]
    calls: ClassVar[list[str]] = []

    def milliseconds(self):
        return int(self.now.value // 1_000_000)

    def load_markets(self, reload=False, params={}):  # noqa: B006 - ccxt's signature
        FakeBinance.calls.append("load_markets")
        self.markets = {"BTC/USDT": {"symbol": "BTC/USDT", "id": "BTCUSDT"}}
        return self.markets

    def fetch_ohlcv(self, symbol, timeframe="1m", since=None, limit=None, params={}):  # noqa: B006
        FakeBinance.calls.append("fetch_ohlcv")
        assert (symbol, timeframe) == ("BTC/USDT", "1h")
        ms = BARS.index.as_unit("ms").asi8
        rows = [[int(t), *map(float, r)] for t, r in zip(ms, BARS.to_numpy())
                if t <= self.milliseconds() and (since is None or t >= since)]  # incl. the forming candle
        return rows[:limit] if limit else rows

    def fetch(self, *args, **kwargs):
        raise AssertionError(f"paper trading touched the network: {args[:2]}")


def _forbidden(name):
    def method(self, *args, **kwargs):
        raise AssertionError(f"paper trading called the private endpoint {name}")

    return method


for _name in PRIVATE:
    setattr(FakeBinance, _name, _forbidden(_name))


@pytest.fixture
def fake_exchange(monkeypatch):
    monkeypatch.setattr(ccxt, "binance", FakeBinance)
    FakeBinance.calls = []
    return FakeBinance


def test_live_tick_uses_public_ohlcv_and_only_complete_bars(fake_exchange, tmp_path):
    start = BARS.index[10]
    cfg = validate_config({"strategy": "trend", "params": {"fast": 3, "slow": 8}, "mode": "live",
                           "data": "ccxt:binance:BTC/USDT:1h", "interval": "1h",
                           "history_start": BARS.index[0].isoformat(), "start": start.isoformat()})
    with open_ledger(f"sqlite:///{tmp_path / 'live.sqlite'}") as ledger:
        ledger.create_run("live", cfg)
        fake_exchange.now = BARS.index[20] + timedelta(minutes=30)  # candle 20 is still forming
        res = tick(ledger, "live", now=fake_exchange.now.to_pydatetime())
        assert (res.bars_processed, res.last_bar) == (10, BARS.index[19])
        fake_exchange.now = BARS.index[23] + H  # three more candles closed
        res = tick(ledger, "live", now=fake_exchange.now.to_pydatetime())
        assert (res.bars_processed, res.last_bar) == (4, BARS.index[23])
        dec = ledger.decisions("live").set_index("bar_ts")["target_weight"]
        curve = ledger.equity_curve("live")
    assert set(fake_exchange.calls) == {"load_markets", "fetch_ohlcv"}
    expected = weights("trend", BARS.iloc[:24], fast=3, slow=8).fillna(0.0).iloc[10:]
    assert list(dec.index) == list(BARS.index[10:24])
    np.testing.assert_allclose(dec.to_numpy(), expected.to_numpy(), rtol=0, atol=1e-12)
    np.testing.assert_allclose(curve["cash"] + curve["positions_value"], curve["equity"], rtol=1e-12)


def test_the_fake_exchange_really_refuses_private_calls():
    ex = FakeBinance()
    for name in PRIVATE:
        with pytest.raises(AssertionError, match="private endpoint"):
            getattr(ex, name)("BTC/USDT")


def test_live_run_without_start_trades_only_bars_closing_after_init(tmp_path):
    cfg = validate_config({"strategy": "trend", "mode": "live", "data": "ccxt:binance:BTC/USDT:1h", "interval": "1h"})
    with open_ledger(f"sqlite:///{tmp_path / 'l.sqlite'}") as ledger:
        ledger.create_run("r", cfg)
        stored = ledger.config("r")
        assert stored.start is not None and abs((pd.Timestamp.now(tz="UTC") - stored.start).total_seconds()) < 60
