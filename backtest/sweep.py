"""Parameter sweeps: every combination of a strategy's parameter grid backtested in one vectorized pass.

``sweep("trend", {"fast": [5, 10, 20], "slow": [50, 100]}, bars)`` builds the product grid (``P`` rows, in
``itertools.product`` order of the grid's keys), gets the ``(P, T, N)`` weights from the strategy's batched
function (``SPECS[name].batched``) or, if it has none, by stacking the per-combination function, simulates
all P portfolios with ``backtest.kernels.simulate`` (in blocks of parameter rows sized for the CPU cache, no
loop over bars) and computes every metric of ``backtest.metrics`` at once.

Invalid combinations (those the batched function marks ``valid=False``, e.g. ``fast >= slow`` for ``trend``,
or those for which the per-combination function raises ``ValueError``) are DROPPED: the result has one row
per valid combination, and ``result.attrs["dropped"]`` lists the dropped combinations (dicts) with
``result.attrs["note"]`` saying how many and why. Each row equals ``backtest.run`` on that combination's
weights with the same options.
"""
from __future__ import annotations

import itertools
from typing import Any

import numpy as np

from backtest import kernels
from backtest import metrics as _metrics
from backtest.engine import EXECUTIONS, _bar_prices, _check_fraction, _weights_array

__all__ = ["grid_product", "sweep"]

_BLOCK_ELEMENTS = 1 << 16  # parameter rows per block: about this many (T * N) elements, a few hundred kB


def grid_product(grid: dict[str, Any]) -> list[dict[str, Any]]:
    """All combinations of ``grid`` (name -> list of values, or a scalar), in ``itertools.product`` order."""
    names = list(grid)
    values = [list(v) if isinstance(v, (list, tuple, np.ndarray, range)) else [v] for v in grid.values()]
    for name, vals in zip(names, values):
        if not vals:
            raise ValueError(f"grid parameter {name!r} has no values; give at least one")
    return [dict(zip(names, combo)) for combo in itertools.product(*values)]


def _check_grid(spec, grid: dict[str, Any]) -> None:
    if not isinstance(grid, dict) or not grid:
        raise ValueError(f"grid must be a non-empty dict of parameter lists; {spec.name} takes "
                         f"{sorted(spec.defaults)}")
    unknown = sorted(set(grid) - set(spec.defaults))
    if unknown:
        raise ValueError(f"unknown parameter(s) {unknown} for strategy {spec.name!r}; valid: {sorted(spec.defaults)}")


def _grid_weights(spec, bars, combos: list[dict[str, Any]], assets: list[str]) -> tuple[np.ndarray, np.ndarray, list]:
    """Weights ``(P, T, N)``, a validity mask ``(P,)`` and the per-row reasons for invalid rows."""
    P = len(combos)
    if spec.batched is not None:
        arrays = {k: np.asarray([c[k] for c in combos]) for k in combos[0]}
        out = spec.batched(bars, **arrays)
        weights, valid = (out.weights, out.valid) if hasattr(out, "valid") else (out, np.ones(P, dtype=bool))
        weights = np.asarray(weights, dtype=np.float64)
        if weights.ndim == 2:  # (P, T) for one asset
            weights = weights[..., None]
        if weights.shape != (P, len(bars.index), len(assets)):
            raise ValueError(f"{spec.name}'s batched function returned weights of shape {weights.shape}; expected "
                             f"(P, T, N) = {(P, len(bars.index), len(assets))}")
        reasons = ["rejected by the strategy (batched valid=False)" if not v else "" for v in valid]
        return weights, np.asarray(valid, dtype=bool), reasons
    rows, valid, reasons = [], np.ones(P, dtype=bool), [""] * P
    for p, combo in enumerate(combos):
        try:
            w, _ = _weights_array(spec.fn(bars, **combo), bars.index, assets)
        except ValueError as err:
            valid[p], reasons[p] = False, str(err)
            w = np.zeros((1, len(bars.index), len(assets)))
        rows.append(w[0])
    return np.stack(rows), valid, reasons  # (P, T, N)


def sweep(strategy: str, grid: dict[str, Any], bars, *, fees: float = 0.0, slippage: float = 0.0,
          execution: str = "next_open", init_cash: float = 1.0, periods_per_year: float | None = None,
          leverage: float | None = None):
    """Backtest every combination of ``grid`` for the registered ``strategy`` in one vectorized pass.

    strategy: a name in ``backtest.strategies.STRATEGIES``. grid: parameter name -> list of values (scalars
    are held fixed); parameters not in the grid keep their defaults. bars: canonical bars, ``T`` rows.
    Options as in ``backtest.run``. Returns a DataFrame, one row per valid combination: the parameter columns
    then the metric columns of ``backtest.metrics.METRIC_NAMES``; ``attrs["dropped"]`` / ``attrs["note"]``
    describe dropped invalid combinations.
    """
    import pandas as pd

    from backtest.strategies import get_strategy

    spec = get_strategy(strategy)
    _check_grid(spec, grid)
    if execution not in EXECUTIONS:
        raise ValueError(f"execution must be one of {EXECUTIONS}, got {execution!r}")
    fees, slippage = _check_fraction("fees", fees), _check_fraction("slippage", slippage)
    assets, opens, closes = _bar_prices(bars)
    ppy = float(periods_per_year) if periods_per_year is not None else _metrics.infer_periods_per_year(bars.index)
    combos = grid_product(grid)
    weights, valid, reasons = _grid_weights(spec, bars, combos, assets)
    keep = np.flatnonzero(valid)
    exec_price = opens if execution == "next_open" else closes
    T, N = closes.shape
    results = {k: np.empty(keep.size) for k in _metrics.METRIC_NAMES}
    block = max(1, _BLOCK_ELEMENTS // (T * N))
    for start in range(0, keep.size, block):
        rows = keep[start:start + block]
        sim = kernels.simulate(exec_price, closes, weights[rows], fees=fees, slippage=slippage,
                               init_cash=float(init_cash), leverage=leverage, keep_positions=False)
        m = _metrics._compute_arrays(sim.returns, ppy, gross=sim.gross, turnover=sim.turnover,
                                     n_trades=sim.n_trades, equity=sim.equity / init_cash)
        for k, v in m.items():
            results[k][start:start + rows.size] = v
    frame = pd.DataFrame([combos[p] for p in keep], columns=list(grid))
    for k, v in results.items():
        frame[k] = v
    dropped = [dict(combos[p], reason=reasons[p]) for p in np.flatnonzero(~valid)]
    frame.attrs["dropped"] = dropped
    frame.attrs["note"] = (f"{len(dropped)} of {len(combos)} combinations dropped as invalid for {strategy!r} "
                           "(see attrs['dropped'])" if dropped else "")
    frame.attrs["periods_per_year"] = ppy
    return frame
