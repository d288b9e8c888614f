"""Simulated market-on-open execution: rebalance to target weights with fees and slippage (pure maths).

Conventions (the backtester's, i.e. vectorbt ``from_orders(size_type="targetpercent", price=open)``):

* sizing: equity is valued at this bar's open (``cash + sum(qty * open)``); the order for an asset is
  ``target_weight * equity / open - qty`` (assets held but without a target go to 0);
* fill price: buy at ``open * (1 + slippage)``, sell at ``open * (1 - slippage)``;
* fee: ``fees * |filled qty| * fill price``, paid in cash;
* sells go first, then buys (asset order within each side); a buy larger than the cash left is cut to
  ``cash / (fill price * (1 + fees))`` and spends exactly the cash left (status ``partial``; ``rejected``
  when no cash is left); sells and shorts are not limited by cash (as vectorbt, no margin model);
* dust is skipped: no order when ``|qty|`` is within vectorbt's ``is_close(qty, 0)`` (1e-9 relative to the
  position, 1e-12 absolute), so holding a constant weight does not emit float-noise orders.

Money is float64; the ledger checks cash + positions value == equity with a 1e-9 relative tolerance.
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

__all__ = ["SimFill", "rebalance", "update_position"]


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
) -> tuple[float, list[SimFill]]:
    """Trade ``positions`` towards ``targets`` (fractions of equity) at ``open_prices``.

    Args:
        cash: cash before trading.
        positions: asset -> signed quantity held.
        targets: asset -> target weight (a fraction of equity; negative = short).
        open_prices: asset -> this bar's open, for every asset in ``positions`` or ``targets``.
        fees, slippage: fractions of the filled notional / the price (see the module docstring).

    Returns:
        ``(cash after trading, fills)`` in execution order (sells first).
    """
    assets = sorted(set(positions) | set(targets))
    for a in assets:
        p = open_prices.get(a)
        if p is None or not math.isfinite(p) or p <= 0:
            raise ValueError(f"no valid open price for asset {a!r} ({p}): the bars must hold a positive open")
    equity = cash + sum(positions.get(a, 0.0) * open_prices[a] for a in assets)
    deltas = {a: targets.get(a, 0.0) * equity / open_prices[a] - positions.get(a, 0.0) for a in assets}
    deltas = {a: d for a, d in deltas.items() if not _is_dust(d, positions.get(a, 0.0))}
    fills: list[SimFill] = []
    for a in [a for a in sorted(deltas) if deltas[a] < 0]:
        qty = -deltas[a]
        price = open_prices[a] * (1.0 - slippage)
        notional = qty * price
        fee = notional * fees
        cash = cash + notional - fee
        fills.append(SimFill(a, "sell", qty, -qty, price, fee, "filled"))
    for a in [a for a in sorted(deltas) if deltas[a] > 0]:
        qty = deltas[a]
        price = open_prices[a] * (1.0 + slippage)
        notional = qty * price
        fee = notional * fees
        if cash <= 0:
            fills.append(SimFill(a, "buy", qty, 0.0, price, 0.0, "rejected", "no cash left"))
            continue
        if _is_close(notional + fee, cash) or notional + fee < cash:
            cash = cash - notional - fee
            fills.append(SimFill(a, "buy", qty, qty, price, fee, "filled"))
            continue
        budget = cash / (1.0 + fees)  # cut to what the cash left pays, fee included
        filled = budget / price
        fills.append(SimFill(a, "buy", qty, filled, price, cash - budget, "partial", "cut to the cash left"))
        cash = 0.0
    return cash, fills


def _is_close(a: float, b: float) -> bool:
    return a == b or abs(a - b) <= max(1e-9 * max(abs(a), abs(b)), 1e-12)


def _is_dust(delta: float, held: float) -> bool:
    """``delta`` is float noise around 0 (relative to the position held)."""
    return delta == 0 or abs(delta) <= max(1e-9 * abs(held), 1e-12)


def update_position(qty: float, avg_price: float, filled: float, price: float) -> tuple[float, float]:
    """New ``(qty, avg_price)`` after a signed fill: averaged when adding, kept when reducing, reset on a flip."""
    new_qty = qty + filled
    if new_qty == 0:
        return 0.0, 0.0
    if qty == 0 or (qty > 0) == (filled > 0):
        return new_qty, (abs(qty) * avg_price + abs(filled) * price) / abs(new_qty)
    if (qty > 0) != (new_qty > 0):  # crossed through zero
        return new_qty, price
    return new_qty, avg_price
