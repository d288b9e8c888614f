"""Simulated market-on-open execution: a thin wrapper over ``backtest.accounting.fill`` (the one fill model).

``rebalance`` trades the paper portfolio exactly as ``backtest.run`` does at the same bar (tests hold a paper
run and a backtest of the same bars, strategy, fees and slippage equal to 1e-9 at every bar): sizing at this
bar's open, sells first, buys cut to the cash left (status ``partial``; ``rejected`` when nothing is left),
shorts not limited by cash, fees on the filled notional, slippage against the trade, no dust orders, and the
no-trade band (``band``, relative to the target). The rules and thresholds are documented once, in
``backtest.accounting``.

Money is float64; the ledger checks cash + positions value == equity with a 1e-9 relative tolerance.
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from backtest.accounting import DEFAULT_BAND, STATUS, fill

__all__ = ["SimFill", "rebalance", "update_position"]

_REASONS = {"partial": "cut to the cash left", "rejected": "no cash left"}


@dataclass(frozen=True)
class SimFill:
    """One simulated order and its fill: ``qty`` requested (unsigned), ``filled`` (signed, + = bought)."""

    asset: str
    side: str  # buy | sell
    qty: float
    filled: float
    price: float  # incl. slippage
    fee: float
    status: str  # filled | partial | rejected
    reason: str | None = None


def rebalance(
    cash: float,
    positions: Mapping[str, float],
    targets: Mapping[str, float],
    open_prices: Mapping[str, float],
    *,
    fees: float,
    slippage: float,
    band: float = DEFAULT_BAND,
    borrow: float = 0.0,
) -> tuple[float, list[SimFill]]:
    """Trade ``positions`` towards ``targets`` (fractions of equity) at ``open_prices``.

    Args:
        cash: cash before trading.
        positions: asset -> signed quantity held.
        targets: asset -> target weight (a fraction of equity; negative = short); assets held without a target
            go to 0.
        open_prices: asset -> this bar's open, for every asset in ``positions`` or ``targets``.
        fees, slippage: fractions of the filled notional / the price; band, borrow: see ``backtest.accounting``.

    Returns:
        ``(cash after trading, fills)`` in execution order (sells first), one per order placed.
    """
    assets = sorted(set(positions) | set(targets))
    for a in assets:
        p = open_prices.get(a)
        if p is None or not math.isfinite(p) or p <= 0:
            raise ValueError(f"no valid open price for asset {a!r} ({p}): the bars must hold a positive open")
    res = fill(cash, [positions.get(a, 0.0) for a in assets], [targets.get(a, 0.0) for a in assets],
               [open_prices[a] for a in assets], fees=fees, slippage=slippage, band=band, borrow=borrow)
    fills = []
    for i in res.order:
        status = STATUS[int(res.status[i])]
        req = float(res.requested[i])
        fills.append(SimFill(assets[i], "buy" if req > 0 else "sell", abs(req), float(res.filled[i]),
                             float(res.prices[i]), float(res.fees[i]), status, _REASONS.get(status)))
    return res.cash, fills


def update_position(qty: float, avg_price: float, filled: float, price: float) -> tuple[float, float]:
    """New ``(qty, avg_price)`` after a signed fill: averaged when adding, kept when reducing, reset on a flip.

    The quantity is ``qty + filled``, exactly 0 when the two cancel to within 1e-9 relative: the rule
    ``backtest.accounting`` applies to positions, so the ledger holds the quantities a backtest holds.
    """
    new_qty = qty + filled
    if abs(new_qty) <= 1e-9 * max(abs(qty), abs(filled)):
        return 0.0, 0.0
    if qty == 0 or (qty > 0) == (filled > 0):
        return new_qty, (abs(qty) * avg_price + abs(filled) * price) / abs(new_qty)
    if (qty > 0) != (new_qty > 0):  # crossed through zero
        return new_qty, price
    return new_qty, avg_price
