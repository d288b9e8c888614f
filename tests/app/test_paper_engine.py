"""The tick engine: decisions equal the backtester's weights, fills at the next open, no look-ahead,
complete bars only, idempotency and the cash + positions = equity books."""
from __future__ import annotations

from datetime import timedelta

import numpy as np
import pandas as pd
import pytest

from app.paper.config import validate_config
from app.paper.engine import tick
from app.paper.feeds import ReplayFeed
from app.paper.ledger import open_ledger
from tests.app.test_paper_support import ledger_rows, make_bars, write_bars
from tests.backtest.registry_helpers import explain, weights

H = timedelta(hours=1)


def _config(path, **kw):
    base = {"strategy": "trend", "params": {"fast": 3, "slow": 8}, "data": f"file:{path}", "interval": "1h",
            "initial_cash": 10_000.0, "fees": 0.001, "slippage": 0.0005}
    base.update(kw)
    return validate_config(base)


@pytest.fixture
def setup(tmp_path):
    bars = make_bars(40, seed=1)
    path = write_bars(tmp_path / "bars.parquet", bars)
    ledger = open_ledger(f"sqlite:///{tmp_path / 'ledger.sqlite'}")
    yield bars, path, ledger
    ledger.close()


def _run_all(ledger, name, bars):
    return tick(ledger, name, now=bars.index[-1] + H)


def test_replay_clock_advances_one_bar_per_tick(setup):
    bars, path, ledger = setup
    ledger.create_run("r", _config(path))
    for k in range(3):
        res = tick(ledger, "r")
        assert res.bars_processed == 1 and res.last_bar == bars.index[k]
    assert ledger.processed_bars("r") == list(bars.index[:3])


def test_decisions_equal_backtester_weights_and_keep_explanations(setup):
    bars, path, ledger = setup
    ledger.create_run("r", _config(path))
    assert _run_all(ledger, "r", bars).bars_processed == len(bars)
    dec = ledger.decisions("r").set_index("bar_ts")
    expected = weights("trend", bars, fast=3, slow=8).fillna(0.0)
    assert expected.abs().sum() > 5  # the strategy trades in this data
    np.testing.assert_array_equal(dec["target_weight"].to_numpy(), expected.to_numpy())
    assert list(dec["explanation"]) == list(explain("trend", bars, fast=3, slow=8))
    assert set(dec["explanation"].iloc[-1]) >= {"fast_ma", "slow_ma", "weight"}


def test_fills_happen_at_the_next_open_with_slippage_and_fees(setup):
    bars, path, ledger = setup
    ledger.create_run("r", _config(path))
    _run_all(ledger, "r", bars)
    orders, fills = ledger.orders("r"), ledger.fills("r")
    assert len(fills) > 3 and len(fills) == len(orders)
    # a 100% target with fees does not fit in the cash: buys are cut to it (as vectorbt does), sells are full
    assert set(orders.loc[orders["side"] == "buy", "status"]) == {"partial"}
    assert set(orders.loc[orders["side"] == "sell", "status"]) == {"filled"}
    merged = fills.merge(orders, on="client_order_id", suffixes=("", "_order"))
    for row in merged.itertuples():
        assert row.submitted_ts == row.ts == row.decision_ts + H  # decided at t's close, filled at t+1's open
        open_ = bars.loc[row.ts, "open"]
        side = 1.0 if row.qty > 0 else -1.0
        assert row.price == pytest.approx(open_ * (1 + side * 0.0005), rel=1e-12)
        assert row.fee == pytest.approx(abs(row.qty) * row.price * 0.001, rel=1e-12)


def test_books_balance_at_every_snapshot_from_an_independent_replay_of_the_fills(setup):
    bars, path, ledger = setup
    ledger.create_run("r", _config(path))
    _run_all(ledger, "r", bars)
    curve, fills = ledger.equity_curve("r"), ledger.fills("r")
    assert len(curve) == len(bars)
    cash, qty = 10_000.0, 0.0
    for ts, snap in curve.iterrows():
        for f in fills[fills["ts"] == ts].itertuples():
            cash -= f.qty * f.price + f.fee
            qty += f.qty
        pv = qty * bars.loc[ts, "close"]
        assert snap.cash == pytest.approx(cash, rel=1e-12)
        assert snap.positions_value == pytest.approx(pv, rel=1e-12, abs=1e-9)
        assert snap.cash + snap.positions_value == pytest.approx(snap.equity, rel=1e-12)
    pos = ledger.positions("r")
    assert (pos["qty"].sum() if len(pos) else 0.0) == pytest.approx(qty, rel=1e-12)


def test_hand_computed_two_trades(tmp_path):
    """4 bars, a strategy long from bar 1's close, flat from bar 2's close: every number by hand."""
    idx = pd.date_range("2024-01-01", periods=4, freq="1h", tz="UTC", name="timestamp")
    bars = pd.DataFrame({"open": [10.0, 11.0, 12.0, 13.0], "high": [10.5, 11.5, 12.5, 13.5],
                         "low": [9.5, 10.5, 11.5, 12.5], "close": [10.2, 11.2, 12.2, 13.2],
                         "volume": [1.0] * 4}, index=idx)
    bars.attrs["symbol"] = "X"
    path = write_bars(tmp_path / "x.parquet", bars)
    from backtest import decisions

    def pulse(b):  # weights 0, 1, 0, 0: decided with the bar's data only
        w = pd.Series([0.0, 1.0, 0.0, 0.0][: len(b)], index=b.index)
        return decisions.Decision(w, pd.DataFrame({"weight": w}))

    if "paper_test_pulse" not in decisions._REGISTRY:
        decisions.register("paper_test_pulse", params={})(pulse)
    with open_ledger(f"sqlite:///{tmp_path / 'l.sqlite'}") as ledger:
        ledger.create_run("p", _config(path, strategy="paper_test_pulse", params={}, initial_cash=1000.0,
                                       fees=0.01, slippage=0.1))
        tick(ledger, "p", now=idx[-1] + H)
        fills, curve = ledger.fills("p"), ledger.equity_curve("p")
    # bar 2 open 12: buy at 13.2, 1000 / (13.2 * 1.01) shares (cut to cash); bar 3 open 13: sell at 11.7
    q = 1000.0 / (13.2 * 1.01)
    assert list(fills["ts"]) == [idx[2], idx[3]]
    assert fills["qty"].tolist() == pytest.approx([q, -q])
    assert fills["price"].tolist() == pytest.approx([13.2, 11.7])
    assert curve["equity"].tolist() == pytest.approx([1000.0, 1000.0, q * 12.2, q * 11.7 * 0.99])
    assert curve["cash"].iloc[-1] == pytest.approx(q * 11.7 * 0.99)


def test_no_look_ahead_future_bars_do_not_change_past_decisions(setup, tmp_path):
    bars, path, ledger = setup
    cfg = _config(path)
    ledger.create_run("a", cfg)
    ledger.create_run("b", cfg)
    cut = 25
    changed = bars.copy()
    changed.iloc[cut:, :4] *= np.linspace(0.5, 1.5, len(bars) - cut)[:, None]  # rewrite the future
    tick(ledger, "a", now=bars.index[-1] + H, feed=ReplayFeed(bars, 3600))
    tick(ledger, "b", now=bars.index[-1] + H, feed=ReplayFeed(changed, 3600))
    da, db = ledger.decisions("a"), ledger.decisions("b")
    pd.testing.assert_frame_equal(da.iloc[:cut], db.iloc[:cut])
    assert not da["explanation"].iloc[cut:].equals(db["explanation"].iloc[cut:])


def test_incomplete_bars_are_never_used(setup):
    bars, path, ledger = setup
    ledger.create_run("r", _config(path))
    k = 5
    res = tick(ledger, "r", now=bars.index[k] + H - timedelta(microseconds=1))
    assert res.bars_processed == k and res.last_bar == bars.index[k - 1]  # bar k still forming
    res = tick(ledger, "r", now=bars.index[k] + H)
    assert res.bars_processed == 1 and res.last_bar == bars.index[k]


def test_tick_twice_on_the_same_data_is_a_no_op(setup):
    bars, path, ledger = setup
    ledger.create_run("r", _config(path))
    _run_all(ledger, "r", bars)
    before = ledger_rows(ledger, "r")
    assert _run_all(ledger, "r", bars).bars_processed == 0
    assert tick(ledger, "r").bars_processed == 0  # replay clock: data exhausted
    assert ledger_rows(ledger, "r") == before


def test_reprocessing_a_processed_bar_is_refused_by_the_marker(setup):
    from app.paper.engine import _load_book, _process_bar, decide_new, decision_maker

    bars, path, ledger = setup
    cfg = _config(path)
    ledger.create_run("r", cfg)
    tick(ledger, "r", now=bars.index[9] + H)
    before = ledger_rows(ledger, "r")
    with ledger.session() as s:
        rid = ledger.run_id(s, "r")
    decision = decide_new(decision_maker(cfg), bars.iloc[:5], 4)[0]
    assert _process_bar(ledger, rid, "r", cfg, bars, 4, decision, _load_book(ledger, rid, cfg)) is False
    assert ledger_rows(ledger, "r") == before


def test_start_skips_trading_but_keeps_history(setup):
    bars, path, ledger = setup
    ledger.create_run("r", _config(path, start=bars.index[10].isoformat()))
    assert tick(ledger, "r").last_bar == bars.index[10]  # replay starts at `start`
    _run_all(ledger, "r", bars)
    dec = ledger.decisions("r").set_index("bar_ts")["target_weight"]
    assert dec.index[0] == bars.index[10]
    expected = weights("trend", bars, fast=3, slow=8).fillna(0.0).iloc[10:]
    np.testing.assert_array_equal(dec.to_numpy(), expected.to_numpy())


def test_multi_asset_run_on_the_bundled_panel_with_a_plugin_strategy(tmp_path):
    import markets

    spec = "sample:AAPL,JPM,XOM"
    bars = markets.load(spec, start="2020-01-01", end="2020-02-15", offline=True)  # (31, 15), real closes
    with open_ledger(f"sqlite:///{tmp_path / 'm.sqlite'}") as ledger:
        cfg = validate_config({"strategy": "paper_test_rotation", "params": {"lookback": 3}, "data": spec,
                               "interval": "1d", "history_start": "2020-01-01", "end": "2020-02-15",
                               "plugins": ["tests.app.test_paper_support"], "fees": 0.001, "slippage": 0.001})
        ledger.create_run("m", cfg)
        assert tick(ledger, "m", now=bars.index[-1] + timedelta(days=1)).bars_processed == len(bars)
        dec = ledger.decisions("m")
        expected = weights("paper_test_rotation", bars, lookback=3).fillna(0.0)
        got = dec.pivot(index="bar_ts", columns="asset", values="target_weight")
        np.testing.assert_array_equal(got.to_numpy(), expected.to_numpy())
        row = dec[dec["bar_ts"] == bars.index[-1]].set_index("asset")["explanation"]
        close = bars[("JPM", "close")]
        assert row["JPM"] == {"ret": pytest.approx(close.iloc[-1] / close.iloc[-4] - 1)}
        curve = ledger.equity_curve("m")
        assert len(ledger.positions("m")) == 1
        assert (curve["cash"] + curve["positions_value"] - curve["equity"]).abs().max() < 1e-9
        fills = ledger.fills("m")
        assert fills["asset"].nunique() >= 2  # it rotated
        # every fill is at the bar's open, moved against the trade
        opens = bars.xs("open", axis=1, level="field")
        for f in fills.itertuples():
            assert f.price == pytest.approx(opens.loc[f.ts, f.asset] * (1 + np.sign(f.qty) * 0.001), rel=1e-12)


@pytest.mark.slow
def test_equity_curve_matches_vectorbt_target_percent_at_next_open(setup):
    """Cross-check against vectorbt ``from_orders(size_type="targetpercent", price=open)`` on shifted weights
    (``band=0``: vectorbt rebalances every drift)."""
    import vectorbt as vbt

    bars, path, ledger = setup
    ledger.create_run("r", _config(path, params={"fast": 3, "slow": 8, "mode": "long_short"}, band=0.0))
    _run_all(ledger, "r", bars)
    w = weights("trend", bars, fast=3, slow=8, mode="long_short").fillna(0.0)
    pf = vbt.Portfolio.from_orders(close=bars["close"], size=w.shift(1), size_type="targetpercent",
                                   price=bars["open"], fees=0.001, slippage=0.0005, init_cash=10_000.0, freq="1h")
    curve = ledger.equity_curve("r")
    np.testing.assert_allclose(curve["equity"].to_numpy(), pf.value().to_numpy(), rtol=1e-9)
    np.testing.assert_allclose(curve["cash"].to_numpy(), pf.cash().to_numpy(), rtol=1e-9, atol=1e-6)
    assert len(ledger.fills("r")) == len(pf.orders.records)


def test_books_that_do_not_balance_roll_the_bar_back(setup, monkeypatch):
    """A fill model bug (cash off by 1) is caught by the books check: the bar's transaction is rolled back."""
    from app.paper import engine
    from app.paper.engine import LedgerInvariantError

    bars, path, ledger = setup
    ledger.create_run("r", _config(path))
    tick(ledger, "r", now=bars.index[9] + H)
    before = ledger_rows(ledger, "r")
    real = engine.rebalance
    monkeypatch.setattr(engine, "rebalance", lambda cash, *a, **k: (real(cash, *a, **k)[0] + 1.0, real(cash, *a, **k)[1]))
    with pytest.raises(LedgerInvariantError, match="the fills imply"):
        tick(ledger, "r", now=bars.index[12] + H)
    assert ledger_rows(ledger, "r") == before  # nothing of the bad bar was committed
    monkeypatch.setattr(engine, "rebalance", real)
    assert tick(ledger, "r", now=bars.index[12] + H).bars_processed == 3  # and the next tick carries on
