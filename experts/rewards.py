"""The experts' RL reward: ``backtest.accounting.horizon_rewards`` (the one accounting) with torch in and out.

``horizon_rewards(exec_price, mark_price, t, exposure, H, ...)`` is the net return of a cash account that holds
``start_exposure`` at bar t's close, targets ``exposure`` from row t (executed at t+1) through row t+H-1 and
is marked at bar t+H's close, filled by exactly the rules of ``backtest.run`` and paper trading. This wrapper
only moves torch tensors to numpy and back (on their device), so the policy's samples can be scored directly.
"""
from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["horizon_rewards"]


def _np(x: Any) -> Any:
    return x.detach().cpu().numpy() if hasattr(x, "detach") else x


def horizon_rewards(exec_price: Any, mark_price: Any, t: Any, exposure: Any, horizon: int, **kw: Any) -> Any:
    """``backtest.accounting.horizon_rewards`` with tensors accepted; returns a tensor on ``exposure``'s device
    when ``exposure`` is one, else a float64 array ``(B,)``."""
    from backtest.accounting import horizon_rewards as _reward

    as_torch = type(exposure).__module__.startswith("torch")
    kw = {k: _np(v) for k, v in kw.items()}
    out = _reward(_np(exec_price), _np(mark_price), np.asarray(_np(t), dtype=np.int64),
                  np.asarray(_np(exposure), dtype=np.float64), int(horizon), **kw)
    if as_torch:
        import torch

        return torch.as_tensor(out, device=exposure.device)
    return out
