"""The environments' books: B independent cash accounts stepped one bar at a time through ``accounting.step``.

This is the backtester's accounting, not a second one: each call places target-percent orders at the
execution price of bar t+1 with ``backtest.accounting.step`` and marks equity at bar t+1's close exactly as
``backtest.run`` does (``cash + sum shares * close``, floored at 0 on ruin). Chained over an episode it gives
``backtest.run``'s equity for the same weights (tested to 1e-9).
"""
from __future__ import annotations

from typing import Any

import numpy as np

from backtest import accounting

__all__ = ["Book", "check_window", "prices"]


class Book:
    """B cash accounts of N assets, each starting with equity 1.

    cash (B,), shares (B, N), equity (B,) marked at the last close. ``costs`` are ``accounting.step``'s
    keyword options (fees, slippage, band, borrow), checked once here.
    """

    def __init__(self, n_envs: int, n_assets: int, *, fees: float, slippage: float, band: float,
                 borrow: float) -> None:
        fees = accounting.check_fraction("fees", fees)
        slippage = accounting.check_fraction("slippage", slippage)
        band, borrow = accounting.check_options(band=band, borrow=borrow)
        self.costs = {"fees": fees, "slippage": slippage, "band": band, "borrow": borrow}
        self.cash = np.ones(n_envs)
        self.shares = np.zeros((n_envs, n_assets))
        self.equity = np.ones(n_envs)

    def reset(self, rows: np.ndarray) -> None:
        """Rows ``rows`` (bool (B,) or indices) start over: cash 1, no shares, equity 1."""
        self.cash[rows] = 1.0
        self.shares[rows] = 0.0
        self.equity[rows] = 1.0

    def weights(self, close: np.ndarray) -> np.ndarray:
        """(B, N) drifted weights at the close prices ``close`` (B, N) (0 for a ruined account)."""
        eq = self.equity[:, None]
        return np.divide(self.shares * close, eq, out=np.zeros_like(self.shares), where=eq > 0)

    def trade(self, targets: np.ndarray, exec_price: np.ndarray, close: np.ndarray) -> accounting.Step:
        """Rebalance to ``targets`` (B, N) at ``exec_price`` (B, N), then mark at ``close`` (B, N).

        Ruined accounts (equity 0) trade nothing and stay at 0. Returns the ``accounting.Step``. When every
        account is flat and stays flat, ``accounting.step`` is not called (it would place no order).
        """
        if not targets.any() and not self.shares.any():  # all flat and staying flat: nothing to trade
            B, N = self.shares.shape
            self.equity = np.where(self.equity > 0, self.cash, 0.0)
            return accounting.Step(self.cash.copy(), self.shares.copy(), np.zeros((B, N)), np.zeros((B, N)),
                                   np.zeros(B), self.cash.copy(), np.zeros(B, dtype=np.int64))
        alive = self.equity > 0
        u = np.where(alive[:, None], targets, 0.0)
        s = accounting.step(self.cash, self.shares, u, exec_price, **self.costs)
        self.cash = np.where(alive, s.cash, self.cash)
        self.shares = np.where(alive[:, None], s.shares, self.shares)
        eq = self.cash + (self.shares * close).sum(axis=1)
        dead = ~alive | (eq <= 0.0) | ~(s.value > 0.0)
        self.equity = np.where(dead, 0.0, eq)
        return s


def check_window(n_bars: int, window: Any) -> tuple[int, int]:
    """``window`` as ``(lo, hi)`` bar positions with ``0 <= lo < hi <= n_bars`` (None: all bars)."""
    if window is None:
        return 0, n_bars
    try:
        lo, hi = (int(v) for v in window)
    except (TypeError, ValueError):
        raise ValueError(f"window must be (lo, hi) bar positions, got {window!r}") from None
    if not 0 <= lo < hi <= n_bars:
        raise ValueError(f"window ({lo}, {hi}) must satisfy 0 <= lo < hi <= {n_bars} (the number of bars); "
                         "pass the training window's positions, e.g. (0, int(0.7 * len(bars)))")
    return lo, hi


def prices(bars: Any, assets: list[str], hi: int, execution: str) -> tuple[np.ndarray, np.ndarray]:
    """(exec_price, close), each (hi, N) float64, of ``assets`` in ``bars[:hi]`` (the exec price is the open
    for ``execution="next_open"`` and the close for ``"next_close"``). Refuses non-positive prices."""
    import markets

    if execution not in accounting.EXECUTIONS:
        raise ValueError(f"execution must be one of {accounting.EXECUTIONS}, got {execution!r}")
    close = markets.fields(bars, "close")[assets].to_numpy(np.float64)[:hi]
    ex = close if execution == "next_close" else markets.fields(bars, "open")[assets].to_numpy(np.float64)[:hi]
    for name, arr in (("close", close), ("open", ex)):
        bad = ~(np.isfinite(arr) & (arr > 0))
        if bad.any():
            t, i = np.argwhere(bad)[0]
            raise ValueError(f"{assets[i]} {name} at bar {t} is {arr[t, i]}: prices must be finite and > 0 "
                             "(markets.repair the bars first)")
    return np.ascontiguousarray(ex), np.ascontiguousarray(close)
