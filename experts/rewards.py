"""Horizon rewards: the net return of holding an answered exposure for H bars, with the backtester's fills.

TEMPORARY STAND-IN: ``backtest.accounting.horizon_rewards`` (another helper's) replaces this module's body
with an import when it lands on main; until then this private implementation has the same signature and the
fill rules of ``backtest.kernels`` (cross-checked against ``backtest.run`` in tests/experts/test_rewards.py).
Keep exactly one accounting: do not add a second one elsewhere.
"""
from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["horizon_rewards"]


def horizon_rewards(exec_price: Any, mark_price: Any, t: Any, exposure: Any, horizon: int, *, fees: float,
                    slippage: float, start_exposure: Any = 0.0, execution: str = "next_open") -> Any:
    """Net return of a cash account over bars t+1..t+H, one per sample.

    At bar t's close the account (value 1) holds ``start_exposure`` (a fraction of equity); it targets
    ``exposure`` from row t through row t+H-1 (executed at bars t+1..t+H at ``exec_price``, drift rebalanced
    each bar, fees and slippage as fractions of traded notional exactly as ``backtest.kernels.simulate``) and
    is marked at the close of bar t+H (``mark_price``).

    exec_price, mark_price: (T,) one asset's prices (the open and the close for ``next_open``; the close twice
    for ``next_close``). t: (B,) int rows with t + H <= T - 1. exposure, start_exposure: (B,) or scalars.
    Returns (B,) float64 (a torch tensor on exposure's device when ``exposure`` is a tensor).
    """
    if execution not in ("next_open", "next_close"):
        raise ValueError(f"execution must be next_open or next_close, got {execution!r}")
    if horizon < 1:
        raise ValueError(f"horizon must be >= 1 bar, got {horizon}")
    as_torch = type(exposure).__module__.startswith("torch")
    device = exposure.device if as_torch else None
    p = np.asarray(exec_price, dtype=np.float64)
    m = np.asarray(mark_price, dtype=np.float64)
    tt = np.asarray(t.cpu() if hasattr(t, "cpu") else t, dtype=np.int64)
    u = np.asarray(exposure.detach().cpu() if as_torch else exposure, dtype=np.float64)
    u = np.broadcast_to(u, tt.shape)
    s0 = np.asarray(start_exposure.cpu() if hasattr(start_exposure, "cpu") else start_exposure, dtype=np.float64)
    s0 = np.broadcast_to(s0, tt.shape)
    if tt.size and (tt.min() < 0 or tt.max() + horizon > len(p) - 1):
        raise ValueError(f"rows t must satisfy 0 <= t and t + horizon <= {len(p) - 1} (last bar), got "
                         f"t in [{tt.min()}, {tt.max()}] with horizon {horizon}")
    a, b = slippage + fees, slippage * fees  # cost fraction c = a |x| + b x of pre-trade value
    value = np.ones_like(u)  # V before the trade, relative to the account value at t's close
    held = s0.copy()  # holdings / value just before the price move
    ref = m[tt]  # price the holdings were last valued at
    cost = np.zeros_like(u)
    for k in range(1, horizon + 1):
        px = p[tt + k]
        r = px / ref - 1.0
        growth = 1.0 - cost + held * r  # V_pre(k) / V_pre(k-1) (for k = 1: V_pre(1) / 1, cost 0)
        drift = held * (1.0 + r) / growth
        value = value * growth
        x = u - drift
        cost = a * np.abs(x) + b * x
        held, ref = u, px
    g = m[tt + horizon] / p[tt + horizon] - 1.0
    out = value * (1.0 - cost + u * g) - 1.0
    if as_torch:
        import torch

        return torch.as_tensor(out, device=device)
    return out
