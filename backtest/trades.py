"""Round trips and per-trade statistics from a backtest's orders.

A **round trip** of one asset runs from the order that opens a position (from flat) to the order that brings it
back to flat; an order that reverses the position (long to short or back) closes one round trip and opens the
next, its quantity, cash and fee split in proportion (as vectorbt's positions do). Orders in between resize the
position and belong to the trip. For each trip:

* ``pnl``: the sum of its cash flows, ``-quantity * price - fee`` over its orders (prices include slippage),
  plus, for a trip still open at the end, the position valued at the last close (``open=True``);
* ``return``: ``pnl`` over the entry notional, every increase of the position at its fill price (vectorbt's
  ``entry price x size``);
* ``entry``/``exit`` timestamps and ``bars`` held (``exit`` is the last bar for an open trip).

``trade_stats(trips)`` summarizes the closed trips: ``n_round_trips``, ``win_rate``, ``profit_factor`` (gross
wins / gross losses), ``avg_win``/``avg_loss`` (currency), ``avg_win_return``/``avg_loss_return``,
``expectancy`` (mean pnl per trip) and ``expectancy_return``, ``avg_holding_bars`` and ``avg_holding_days``.
Tested against vectorbt's ``Portfolio.positions`` on the same orders.

Vectorized (no loop over orders): a report of millions of orders is computed in well under a second.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

__all__ = ["TRADE_STATS", "round_trips", "trade_stats"]

TRADE_STATS = ("n_round_trips", "win_rate", "profit_factor", "avg_win", "avg_loss", "avg_win_return",
               "avg_loss_return", "expectancy", "expectancy_return", "avg_holding_bars", "avg_holding_days",
               "open_trip_pnl")
_COLUMNS = ["asset", "entry", "exit", "side", "bars", "entry_price", "exit_price", "pnl", "return", "open"]


def _asset_trips(q: np.ndarray, price: np.ndarray, fee: np.ndarray, last_close: float
                 ) -> tuple[np.ndarray, ...]:
    """Trips of one asset's time-ordered orders: signed quantities ``q (K,)``, fill prices and fees ``(K,)``
    -> ``(entry order, exit order or -1, side, pnl, entry notional, open)``, one entry per trip."""
    pos = np.cumsum(q)
    eps = 1e-9 * max(float(np.max(np.abs(pos))), float(np.max(np.abs(q))), 1e-300)
    pos = np.where(np.abs(pos) <= eps, 0.0, pos)
    prev = np.concatenate([[0.0], pos[:-1]])
    s_prev, s_now = np.sign(prev), np.sign(pos)
    opens = (s_now != 0) & (s_now != s_prev)  # from flat, or a reversal
    closes = (s_prev != 0) & (s_now != s_prev)  # back to flat, or a reversal
    rev = opens & closes
    cash = -q * price - fee  # (K,) cash flow of each order
    part = np.where(rev, np.abs(prev) / np.maximum(np.abs(q), eps), 0.0)  # a reversal's share closing the old trip
    trip = np.cumsum(opens) - 1  # the trip each order opens or continues (-1: none yet)
    n = int(opens.sum())
    pnl = np.zeros(n)
    keep = trip >= 0
    np.add.at(pnl, trip[keep], (cash * (1.0 - part))[keep])
    np.add.at(pnl, trip[rev] - 1, (cash * part)[rev])
    exit_ = np.full(n, -1)
    exit_[np.where(rev, trip - 1, trip)[closes]] = np.flatnonzero(closes)
    is_open = exit_ < 0  # at most the last trip: marked at the last close
    pnl[is_open] += pos[-1] * last_close
    # entry notional: every increase of |position| at its fill price (vectorbt's entry price x size)
    grow = np.where(opens, np.abs(pos), np.where(s_now == s_prev, np.maximum(np.abs(pos) - np.abs(prev), 0.0), 0.0))
    notional = np.zeros(n)
    np.add.at(notional, trip[keep], (grow * price)[keep])
    entry = np.flatnonzero(opens)
    return entry, exit_, np.sign(pos[entry]), pnl, notional, is_open


def round_trips(trades: pd.DataFrame, index: pd.DatetimeIndex, last_close: dict[str, float] | pd.Series
                ) -> pd.DataFrame:
    """The round trips of a backtest (module doc), one row each: ``asset, entry, exit, side (+1 long, -1
    short), bars, entry_price, exit_price (fill prices of the opening and closing orders; NaN while open),
    pnl, return, open``, ordered by entry.

    trades: ``BacktestResult.trades`` (one row per order: ``timestamp, asset, side, quantity, price, fee``).
    index: the bars' timestamps (for bars held). last_close: asset -> close of the last bar (open trips).
    """
    if trades is None or len(trades) == 0:
        return pd.DataFrame({c: pd.Series(dtype=t) for c, t in zip(
            _COLUMNS, ("object", "datetime64[ns, UTC]", "datetime64[ns, UTC]", "float64", "int64", "float64",
                       "float64", "float64", "float64", "bool"))})
    frames = []
    for asset, orders in trades.groupby("asset", sort=False):
        orders = orders.sort_values("timestamp", kind="stable")
        q = orders["quantity"].to_numpy(dtype=float) * np.where(orders["side"].to_numpy() == "buy", 1.0, -1.0)
        bar = index.get_indexer(pd.DatetimeIndex(orders["timestamp"]))
        price = orders["price"].to_numpy(dtype=float)
        entry, exit_, side, pnl, notional, is_open = _asset_trips(
            q, price, orders["fee"].to_numpy(dtype=float), float(last_close[asset]))
        stamps = orders["timestamp"].to_numpy()
        exit_bar = np.where(is_open, len(index) - 1, bar[np.maximum(exit_, 0)])
        frames.append(pd.DataFrame({
            "asset": asset, "entry": stamps[entry],
            "exit": np.where(is_open, index[-1].to_datetime64(), stamps[np.maximum(exit_, 0)]),
            "side": side, "bars": exit_bar - bar[entry], "entry_price": price[entry],
            "exit_price": np.where(is_open, np.nan, price[np.maximum(exit_, 0)]), "pnl": pnl,
            "return": np.divide(pnl, notional, out=np.full(pnl.shape, np.nan), where=notional > 0),
            "open": is_open,
        }))
    out = pd.concat(frames, ignore_index=True).sort_values(["entry", "asset"], kind="stable", ignore_index=True)
    for col in ("entry", "exit"):
        out[col] = pd.to_datetime(out[col], utc=True)
    return out


def trade_stats(trips: pd.DataFrame) -> dict[str, float]:
    """Statistics of the CLOSED round trips (module doc); NaN where undefined (no trips, no losses for the
    profit factor: +inf is reported as inf). ``open_trip_pnl``: the unrealized pnl of trips still open."""
    closed = trips[~trips["open"]] if len(trips) else trips
    pnl = closed["pnl"].to_numpy(dtype=float) if len(closed) else np.array([])
    ret = closed["return"].to_numpy(dtype=float) if len(closed) else np.array([])
    wins, losses = pnl > 0, pnl < 0
    gross_win, gross_loss = float(pnl[wins].sum()), float(-pnl[losses].sum())
    nan = math.nan

    def mean(x: np.ndarray) -> float:
        return float(np.mean(x)) if x.size else nan

    held = closed["exit"] - closed["entry"] if len(closed) else pd.Series(dtype="timedelta64[ns]")
    return {
        "n_round_trips": float(len(closed)),
        "win_rate": float(wins.mean()) if pnl.size else nan,
        "profit_factor": (gross_win / gross_loss if gross_loss > 0 else (math.inf if gross_win > 0 else nan)),
        "avg_win": mean(pnl[wins]), "avg_loss": mean(pnl[losses]),
        "avg_win_return": mean(ret[wins]), "avg_loss_return": mean(ret[losses]),
        "expectancy": mean(pnl), "expectancy_return": mean(ret),
        "avg_holding_bars": mean(closed["bars"].to_numpy(dtype=float)) if len(closed) else nan,
        "avg_holding_days": float(held.mean() / pd.Timedelta(days=1)) if len(closed) else nan,
        "open_trip_pnl": float(trips.loc[trips["open"], "pnl"].sum()) if len(trips) else 0.0,
    }
