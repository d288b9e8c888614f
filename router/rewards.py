"""Horizon rewards of the router: the net return of holding a position for H bars, with the backtester's fills.

TEMPORARY PRIVATE STAND-IN for ``backtest.accounting.horizon_rewards`` (another helper's, not on main yet).
When it lands, this module's body becomes ``from backtest.accounting import horizon_rewards`` and nothing else
changes: the signature below is that function's. Until then this implementation follows the fill rules of
``backtest.kernels.simulate`` exactly (cross-checked against ``backtest.run`` in tests/router/test_rewards.py).
Keep exactly one accounting: nothing else in ``router`` computes a trading return.
"""
from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["horizon_rewards"]


def horizon_rewards(exec_price: Any, mark_price: Any, t: Any, exposure: Any, horizon: int, *, fees: float,
                    slippage: float, start_exposure: Any = 0.0, execution: str = "next_open") -> Any:
    """Net return of a cash account that holds ``exposure`` from row t (executed at t+1) through row t+H-1,
    marked at bar t+H's close; one value per sample.

    At bar t's close the account (value 1) holds ``start_exposure``; it targets ``exposure`` at bars t+1..t+H
    (each bar rebalances the drifted weights back to the target, fees and slippage as fractions of traded
    notional, exactly as ``backtest.kernels.simulate``) and is marked at the close of bar t+H.

    Args:
        exec_price, mark_price: ``(T,)`` or ``(T, N)`` prices (the open and the close for ``next_open``; the
            close twice for ``next_close``).
        t: ``(B,)`` int rows with ``t + horizon <= T - 1``.
        exposure: ``(B,)`` (one asset) or ``(B, N)`` target weights; numpy or torch.
        start_exposure: weights held at t's close, broadcast like ``exposure``.

    Returns:
        ``(B,)`` float64 (a torch tensor on ``exposure``'s device when ``exposure`` is one).
    """
    if execution not in ("next_open", "next_close"):
        raise ValueError(f"execution must be next_open or next_close, got {execution!r}")
    if int(horizon) < 1:
        raise ValueError(f"horizon must be >= 1 bar, got {horizon}")
    as_torch = type(exposure).__module__.startswith("torch")
    device = exposure.device if as_torch else None
    p = np.asarray(exec_price, dtype=np.float64)
    m = np.asarray(mark_price, dtype=np.float64)
    p, m = (p[:, None], m[:, None]) if p.ndim == 1 else (p, m)  # (T, N)
    tt = np.asarray(t.cpu() if hasattr(t, "cpu") else t, dtype=np.int64).reshape(-1)
    u = np.asarray(exposure.detach().cpu() if as_torch else exposure, dtype=np.float64)
    u = np.broadcast_to(u.reshape(len(tt), -1) if u.ndim else u, (len(tt), p.shape[1]))  # (B, N)
    s0 = np.asarray(start_exposure.detach().cpu() if hasattr(start_exposure, "detach") else start_exposure,
                    dtype=np.float64)
    s0 = np.broadcast_to(s0.reshape(len(tt), -1) if s0.ndim else s0, u.shape)
    if tt.size and (tt.min() < 0 or tt.max() + horizon > len(p) - 1):
        raise ValueError(f"rows t must satisfy 0 <= t and t + horizon <= {len(p) - 1} (last bar), got "
                         f"t in [{tt.min()}, {tt.max()}] with horizon {horizon}")
    a, b = slippage + fees, slippage * fees  # cost fraction c = a sum|x| + b sum x of the pre-trade value
    value = np.ones(len(tt))  # pre-trade value relative to the account value at t's close
    held = np.array(s0, dtype=np.float64)  # (B, N) weights just before the price move
    ref = m[tt]  # (B, N) prices the holdings were last valued at
    cost = np.zeros(len(tt))
    for k in range(1, int(horizon) + 1):
        px = p[tt + k]  # (B, N)
        r = px / ref - 1.0
        growth = 1.0 - cost + (held * r).sum(-1)  # V_pre(k) / V_pre(k-1)
        drift = held * (1.0 + r) / growth[:, None]
        value = value * growth
        x = u - drift
        cost = a * np.abs(x).sum(-1) + b * x.sum(-1)
        held, ref = u, px
    g = m[tt + horizon] / p[tt + horizon] - 1.0  # (B, N)
    out = value * (1.0 - cost + (u * g).sum(-1)) - 1.0
    if as_torch:
        import torch

        return torch.as_tensor(out, device=device)
    return out
