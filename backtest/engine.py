"""The backtest engine's pandas layer: validate bars and weights, call the accounting, wrap the results.

``run(bars, weights)`` simulates target weights (fractions of equity, negative = short) decided at each bar's
close and executed at the next bar's open (``execution="next_open"``) or close (``"next_close"``), with fees
and slippage as fractions of traded notional. Orders, fills, cash and positions follow ``backtest.accounting``
(the one fill model of DREX, also used by sweeps and paper trading): with ``band=0`` the result equals
vectorbt's ``Portfolio.from_orders(close, size=weights.shift(1), size_type="targetpercent", price=open, fees,
slippage, cash_sharing=True, call_seq="auto")`` (a cash account: buys are cut to the cash left). The first
bar holds nothing; the last row of weights is never executed (there is no next bar).
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np

from backtest import accounting
from backtest import metrics as _metrics
from backtest.accounting import EXECUTIONS, check_fraction

__all__ = ["EXECUTIONS", "BacktestResult", "run"]

_check_fraction = check_fraction  # the former private name, kept for callers that still use it


@dataclass(frozen=True)
class BacktestResult:
    """What ``run`` returns. Single run: ``equity``/``returns``/``turnover`` are Series ``(T,)``,
    ``positions`` a DataFrame ``(T, N)``, ``metrics`` a dict of floats. With a parameter axis (weights
    ``(P, T, N)``): DataFrames ``(T, P)`` (columns = parameter row), ``positions`` an array ``(P, T, N)`` and
    ``metrics`` a dict of ``(P,)`` arrays. ``trades`` (computed on first access): one row per executed order,
    columns ``timestamp, asset, side, quantity, price, notional, fee`` (+ ``param`` with a parameter axis);
    ``price`` includes slippage, ``notional = quantity * price``, ``fee = fees * notional``.
    """

    equity: Any
    returns: Any
    positions: Any
    turnover: Any
    metrics: dict[str, Any]
    periods_per_year: float
    _sim: accounting.Simulation = field(repr=False)
    _context: dict[str, Any] = field(repr=False)

    @cached_property
    def trades(self):
        return _trades_frame(self._sim, **self._context)


def _trades_frame(sim: accounting.Simulation, *, index, assets, exec_price, fees, slippage, param_axis):
    import pandas as pd

    p, t, i = np.nonzero(sim.filled)  # (P, T, N): one entry per filled order
    q = sim.filled[p, t, i]
    buy = q > 0
    price = exec_price[t, i] * np.where(buy, 1.0 + slippage, 1.0 - slippage)
    frame = pd.DataFrame({
        "timestamp": index[t], "asset": np.asarray(assets, dtype=object)[i],
        "side": np.where(buy, "buy", "sell"), "quantity": np.abs(q), "price": price, "notional": np.abs(q) * price,
        "fee": sim.fees[p, t, i],
    })
    if param_axis:
        frame.insert(0, "param", p)
    return frame


def _bar_prices(bars) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Asset names and float64 ``open``, ``close`` arrays ``(T, N)`` of canonical bars (checked finite, > 0)."""
    import pandas as pd

    if not isinstance(bars, pd.DataFrame) or not isinstance(bars.index, pd.DatetimeIndex):
        raise TypeError("bars must be a DataFrame with a DatetimeIndex (canonical bars, see docs/ARCHITECTURE.md)")
    if not (bars.index.is_monotonic_increasing and bars.index.is_unique):
        raise ValueError("bars' timestamps must be strictly increasing and unique; sort and deduplicate them "
                         "(bars[~bars.index.duplicated()].sort_index())")
    if isinstance(bars.columns, pd.MultiIndex):
        assets = list(dict.fromkeys(bars.columns.get_level_values(0)))
        try:
            opens = np.column_stack([bars[(a, "open")].to_numpy(dtype=np.float64) for a in assets])
            closes = np.column_stack([bars[(a, "close")].to_numpy(dtype=np.float64) for a in assets])
        except KeyError as err:
            raise ValueError(f"multi-asset bars need (asset, 'open') and (asset, 'close') columns; missing {err}")
    else:
        missing = [c for c in ("open", "close") if c not in bars.columns]
        if missing:
            raise ValueError(f"bars lack column(s) {missing}; canonical columns are open, high, low, close, volume")
        assets = [str(bars.attrs.get("symbol", "asset"))]
        opens = bars[["open"]].to_numpy(dtype=np.float64)
        closes = bars[["close"]].to_numpy(dtype=np.float64)
    for name, arr in (("open", opens), ("close", closes)):
        bad = ~(np.isfinite(arr) & (arr > 0))
        if bad.any():
            t, i = np.argwhere(bad)[0]
            raise ValueError(f"bars: {name} of asset {assets[i]} at {bars.index[t]} (row {t}) is {arr[t, i]}; "
                             "prices must be finite and > 0: drop or fill those rows (markets.validate names them)")
    return assets, opens, closes


def _weights_array(weights: Any, index, assets: list[str]) -> tuple[np.ndarray, bool]:
    """Weights as float64 ``(P, T, N)`` and whether they carried a parameter axis."""
    import pandas as pd

    T, N = len(index), len(assets)
    if isinstance(weights, (pd.Series, pd.DataFrame)):
        if len(weights.index) != T or not weights.index.equals(index):
            diff = next((k for k, (a, b) in enumerate(zip(weights.index, index)) if a != b), min(T, len(weights)))
            raise ValueError(f"weights' index differs from bars' index (lengths {len(weights)} vs {T}, first "
                             f"difference at row {diff}); align them: weights.reindex(bars.index)")
        if isinstance(weights, pd.Series):
            if N != 1:
                raise ValueError(f"a weights Series fits single-asset bars; these bars have {N} assets {assets}: "
                                 "pass a DataFrame (T, N) with one column per asset")
            return weights.to_numpy(dtype=np.float64).reshape(1, T, 1), False
        cols = [str(c) for c in weights.columns]
        if N == 1 and len(cols) == 1:
            return weights.to_numpy(dtype=np.float64).reshape(1, T, 1), False
        missing, extra = sorted(set(assets) - set(cols)), sorted(set(cols) - set(assets))
        if missing or extra:
            raise ValueError(f"weights' columns must be the bars' assets {assets}; missing {missing}, unknown {extra}")
        frame = weights.copy()
        frame.columns = cols
        return frame[assets].to_numpy(dtype=np.float64)[None], False
    arr = np.asarray(weights, dtype=np.float64)
    if arr.ndim == 1 and arr.shape == (T,) and N == 1:
        return arr.reshape(1, T, 1), False
    if arr.ndim == 2 and arr.shape == (T, N):
        return arr[None], False
    if arr.ndim == 3 and arr.shape[1:] == (T, N):
        return arr, True
    raise ValueError(f"weights array has shape {arr.shape}; expected (T,)={(T,)} for one asset, (T, N)={(T, N)} "
                     f"or (P, T, N) with a leading parameter axis")


def run(bars, weights, *, fees: float = 0.0, slippage: float = 0.0, execution: str = "next_open",
        init_cash: float = 1.0, periods_per_year: float | None = None, leverage: float | None = None,
        band: float = accounting.DEFAULT_BAND, borrow: float = 0.0) -> BacktestResult:
    """Backtest target weights on bars.

    bars: canonical single-asset frame or ``(asset, field)`` MultiIndex frame, ``T`` rows (open and close used).
    weights: target fraction of equity per asset decided at each bar's close; a Series ``(T,)`` (one asset), a
    DataFrame ``(T, N)`` with the assets as columns, or an array ``(T,)``, ``(T, N)`` or ``(P, T, N)`` (a
    leading parameter axis: P portfolios at once). Index must equal the bars' index; NaN means 0.
    fees, slippage: fractions of traded notional (0.001 = 10 bps); buys fill at ``p (1 + slippage)``, sells at
    ``p (1 - slippage)``, the fee is charged on the filled notional.
    execution: ``"next_open"`` (default) or ``"next_close"``: where the decision of bar t is executed (bar t+1).
    init_cash: starting equity. periods_per_year: annualization for metrics (inferred from the index if None).
    leverage: cap on gross exposure ``sum |w|`` per bar (rows above it are scaled down).
    band: no-trade band relative to the target: an asset's order is skipped while
    ``|target - drifted weight| < band |target|`` (opening and closing always trade); 0 rebalances every drift,
    as vectorbt (default 0.1, ``accounting.DEFAULT_BAND``). borrow: cash the account may borrow for buys, as a
    fraction of its value (0 = a cash account: buys are cut to the cash left; ``inf`` = never cut).
    See ``backtest.accounting`` for the fill rules. Returns a ``BacktestResult``.
    """
    import pandas as pd

    if execution not in EXECUTIONS:
        raise ValueError(f"execution must be one of {EXECUTIONS}, got {execution!r}")
    fees = check_fraction("fees", fees)
    slippage = check_fraction("slippage", slippage)
    band, borrow = accounting.check_options(band=band, borrow=borrow)
    if not (np.isfinite(init_cash) and init_cash > 0):
        raise ValueError(f"init_cash must be a positive number, got {init_cash!r}")
    assets, opens, closes = _bar_prices(bars)
    w, param_axis = _weights_array(weights, bars.index, assets)
    ppy = float(periods_per_year) if periods_per_year is not None else _metrics.infer_periods_per_year(bars.index)
    exec_price = opens if execution == "next_open" else closes
    sim = accounting.simulate(exec_price, closes, w, fees=fees, slippage=slippage, init_cash=float(init_cash),
                              leverage=leverage, band=band, borrow=borrow)
    if sim.ruined.any():
        p = int(np.flatnonzero(sim.ruined)[0])
        t = int(np.argmax(sim.equity[p] <= 0))
        warnings.warn(f"portfolio{f' (parameter row {p})' if param_axis else ''} lost all its equity at "
                      f"{bars.index[t]}; equity stays 0 from there (reduce leverage or short exposure)",
                      RuntimeWarning, stacklevel=2)
    m = _metrics._compute_arrays(sim.returns, ppy, gross=sim.gross, turnover=sim.turnover, n_trades=sim.n_trades,
                                 equity=sim.equity / init_cash)
    index = bars.index
    context = {"index": index, "assets": assets, "exec_price": exec_price, "fees": fees, "slippage": slippage,
               "param_axis": param_axis}
    if param_axis:
        cols = pd.RangeIndex(w.shape[0], name="param")
        return BacktestResult(
            equity=pd.DataFrame(sim.equity.T, index=index, columns=cols),
            returns=pd.DataFrame(sim.returns.T, index=index, columns=cols),
            positions=sim.positions, turnover=pd.DataFrame(sim.turnover.T, index=index, columns=cols),
            metrics=m, periods_per_year=ppy, _sim=sim, _context=context)
    return BacktestResult(
        equity=pd.Series(sim.equity[0], index=index, name="equity"),
        returns=pd.Series(sim.returns[0], index=index, name="returns"),
        positions=pd.DataFrame(sim.positions[0], index=index, columns=pd.Index(assets, name="asset")),
        turnover=pd.Series(sim.turnover[0], index=index, name="turnover"),
        metrics={k: float(v[0]) for k, v in m.items()}, periods_per_year=ppy, _sim=sim, _context=context)
