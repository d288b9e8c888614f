"""NumPy array kernels of the backtest engine: target-weight portfolios simulated without a loop over bars.

Everything here is float64 NumPy in, NumPy out, vectorized over a leading parameter axis ``P`` (one row per
parameter combination), ``T`` bars and ``N`` assets. The pandas layer (``backtest.engine``) validates inputs
and wraps results; the sweep (``backtest.sweep``) calls ``simulate`` directly.

Derivation (what ``simulate`` computes, and why it equals vectorbt's ``from_orders`` with
``size_type="targetpercent"``, ``cash_sharing=True``, default ``val_price=np.inf`` = the order price):

* ``p_t`` (T, N) is the execution price at bar t (the open for ``next_open``, the close for ``next_close``)
  and ``m_t`` the close, at which equity is marked. The decision ``w_t`` taken at bar t's close is executed at
  bar t+1: the target executed at bar t is ``u_t = w_{t-1}``, ``u_0 = 0`` (no position at the first bar) and
  the last decision ``w_{T-1}`` is never executed (there is no bar T).
* ``V_t`` is the pre-trade value at bar t, valued at the execution price (cash + shares * p_t), and
  ``d_t = shares_{t-1} p_t / V_t`` the drifted weights before the trade. The trade sets shares to
  ``u_t V_t / p_t``; buying ``q`` shares costs ``q p (1+s)(1+f) = q p (1 + k_buy)`` with
  ``k_buy = s + f + s f`` and selling yields ``q p (1-s)(1-f) = q p (1 - k_sell)``, ``k_sell = s + f - s f``.
  So the trade costs the fraction ``c_t = sum_i |x_ti| k_i`` of ``V_t`` with ``x_t = u_t - d_t``;
  equivalently ``c_t = (s + f) sum_i |x_ti| + s f sum_i x_ti``. After it, holdings are worth ``u_t V_t`` and
  cash is ``V_t (1 - c_t - sum_i u_ti)``.
* With ``R_{t+1} = p_{t+1} / p_t - 1`` the next pre-trade value is
  ``V_{t+1} = V_t (1 - c_t + sum_i u_ti R_{t+1,i})`` and the drifted weights are
  ``d_{t+1} = u_t (1 + R_{t+1}) / (1 - c_t + sum_i u_ti R_{t+1,i})``.
* Equity at bar t's close, with ``G_t = m_t / p_t - 1``: ``E_t = V_t (1 - c_t + sum_i u_ti G_ti)``; the
  weights held at the close are ``u_t (1 + G_t) / (1 - c_t + sum_i u_ti G_ti)`` (``G = 0`` for
  ``next_close``). ``V_0 = init_cash`` and ``V_t = init_cash * prod_{s<t} (1 - c_s + u_s . R_{s+1})``.
* ``c_t`` depends on ``d_t``, which depends on ``c_{t-1}``, with ``|dc_t / dc_{t-1}| <= k * gross leverage``
  (about 1e-3). So ``c`` is the fixed point of ``c -> cost(d(c))``: start at ``c = 0``, compute ``d`` and
  ``c`` for all bars in one vectorized expression, repeat. The iteration is exact in finitely many steps
  (after m passes ``c_0 .. c_{m-1}`` equal the sequential values) and contracts by ``L ~ k * leverage`` per
  pass, so it stops after a handful of passes: when ``max |change| <= tol``, or earlier when the bound
  ``max |change| * L / (1 - L)`` on the remaining error is ``<= tol`` (each pass saved is ~8 array passes). After the first full pass only the
  elements whose predecessor changed are recomputed (few, for strategies that trade rarely).
* Turnover is ``sum_i |x_ti|``: traded notional (at the execution price, before slippage) over ``V_t``.
* Ruin: if a growth factor or the marked equity is <= 0, equity is 0 from that bar on (the position is gone;
  vectorbt would carry negative equity), no trade counts from that bar on, and ``ruined`` flags the row.
* Cost: about 25 elementwise passes over the (P, T, N) arrays plus one cumulative product; no loop over
  bars. Callers with a large P (the sweep) pass blocks of parameter rows that fit in the CPU cache.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

__all__ = ["TRADE_EPS", "Simulation", "simulate"]

TRADE_EPS = 1e-10
"""Orders smaller than this fraction of pre-trade equity are not counted as trades (float noise)."""


class Simulation(NamedTuple):
    """Result of ``simulate``; ``P`` parameter rows, ``T`` bars, ``N`` assets.

    equity (P, T): portfolio value at each bar's close. returns (P, T): ``E_t / E_{t-1} - 1`` with
    ``E_{-1} = init_cash``. pre_value (P, T): value before the trade at bar t (at the execution price).
    cost (P, T): trading cost at bar t as a fraction of ``pre_value``. turnover (P, T): ``sum |u - d|``.
    target (P, T, N): weights executed at bar t (``u_t = w_{t-1}``). pre_trade (P, T, N): drifted weights
    before the trade (``d_t``). positions (P, T, N) or None: weights held at the close. gross (P, T): sum of
    absolute weights held at the close. n_trades (P,): orders of at least ``TRADE_EPS`` of equity.
    ruined (P,): equity hit 0. iterations: fixed-point passes used.
    """

    equity: np.ndarray
    returns: np.ndarray
    pre_value: np.ndarray
    cost: np.ndarray
    turnover: np.ndarray
    target: np.ndarray
    pre_trade: np.ndarray
    positions: np.ndarray | None
    gross: np.ndarray
    n_trades: np.ndarray
    ruined: np.ndarray
    iterations: int


def _rowsum(x: np.ndarray) -> np.ndarray:
    """Sum over the last (asset) axis; a view when there is one asset (much faster than ``.sum(-1)``)."""
    return x[..., 0] if x.shape[-1] == 1 else x.sum(axis=-1)


def _cost(x: np.ndarray, absx: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cost fraction ``sum_i (a_i |x_i| + b_i x_i)`` of trades ``x (..., N)``, with a = s + f, b = s f."""
    if a.ndim == 0 and b.ndim == 0:  # one cost rate for all assets: 2-3 operations on (..., ) rows
        c = a * _rowsum(absx)
        return c + b * _rowsum(x) if b != 0.0 else c
    return _rowsum(absx * a + x * b)


def _cap_leverage(w: np.ndarray, leverage: float) -> np.ndarray:
    """Scale rows of ``w (P, T, N)`` whose gross ``sum |w|`` exceeds ``leverage`` down to it."""
    gross = np.abs(w).sum(axis=-1, keepdims=True)  # (P, T, 1)
    scale = leverage / np.maximum(gross, leverage)
    return w * scale


class _Costs(NamedTuple):
    c: np.ndarray  # (P, T) cost fraction
    d: np.ndarray  # (P, T, N) drifted weights before the trade
    x: np.ndarray  # (P, T, N) trades u - d
    absx: np.ndarray  # (P, T, N) |x|
    passes: int


def _no_convergence(max_iter: int, last: float, a: np.ndarray, b: np.ndarray, u: np.ndarray) -> FloatingPointError:
    k = float(np.max(a + np.abs(b)))
    lev = float(np.max(np.abs(u).sum(axis=-1)))
    return FloatingPointError(
        f"trading-cost fixed point did not converge in {max_iter} passes (last change {last:.3g}); the cost per "
        f"unit traded k={k:.4g} times the gross leverage {lev:.4g} must be well below 1: check fees/slippage "
        "(fractions: 0.001 = 10 bps) and the leverage of the weights")


def _contraction(d: np.ndarray, base: np.ndarray, a: np.ndarray, b: np.ndarray) -> float:
    """Bound ``L`` on ``|dc_t / dc_{t-1}| = |sum_i (a_i sign(x_ti) + b_i) d_ti / (base_t - c_{t-1})|``.

    Taken at the pass-1 values with a safety factor 2 (later passes move d and c by ~1e-6 relatively);
    inf when some bar is ruined (no shortcut then).
    """
    low = float(base.min())
    if low <= 0.0:
        return np.inf
    k = float(np.max(a + np.abs(b)))
    gross = _rowsum(np.abs(d)) if d.shape[-1] > 1 else np.maximum(d.max(), -d.min())
    return 2.0 * k * float(np.max(gross)) / low  # max of the ratio <= ratio of the extremes


def _converged(last: float, lip: float, tol: float) -> bool:
    """Stop when the last pass changed no cost by more than ``tol``, or when the remaining distance to the exact
    fixed point, at most ``last * L / (1 - L)`` for a contraction with constant ``L``, is below ``tol``."""
    return last <= tol or (lip < 0.5 and last * lip / (1.0 - lip) <= tol)


def _solve_costs(num: np.ndarray, base: np.ndarray, u: np.ndarray, a: np.ndarray, b: np.ndarray, *,
                 tol: float, max_iter: int) -> _Costs:
    """Fixed point of the trading costs (module docstring): ``d_t = num_t / (base_t - c_{t-1})``.

    num (P, T, N) = ``u_{t-1} (1 + R_t)``, base (P, T) = ``1 + u_{t-1} . R_t`` (0 and 1 at t = 0), u (P, T, N).
    Pass 1 is dense with ``c = 0``. Later passes are dense when more than a quarter of all bars carry a cost,
    else they recompute only the bars whose predecessor's cost moved by more than ``tol``. The iteration stops
    when the guaranteed distance to the exact solution is at most ``tol`` (``_converged``).
    """
    P, T, N = u.shape
    with np.errstate(divide="ignore", invalid="ignore"):
        d = num / base[..., None]  # (P, T, N)
    if base.min() <= 0.0:
        d[base <= 0.0] = 0.0  # ruined: nothing left to hold
    x = u - d
    absx = np.abs(x)
    if not (np.any(a) or np.any(b)):
        return _Costs(np.zeros((P, T)), d, x, absx, 1)
    c = _cost(x, absx, a, b)  # (P, T)
    lip = _contraction(d, base, a, b)
    if _converged(float(np.max(c)), lip, tol):
        return _Costs(c, d, x, absx, 1)
    if np.count_nonzero(c) * 4 > P * T:  # costs at most bars (e.g. drift rebalancing): dense passes
        return _dense_passes(c, d, x, absx, num, base, u, a, b, lip, tol=tol, max_iter=max_iter)
    fc, fnum, fbase, fu = c.reshape(-1), num.reshape(-1, N), base.reshape(-1), u.reshape(-1, N)
    fd, fx, fabsx = d.reshape(-1, N), x.reshape(-1, N), absx.reshape(-1, N)
    moved = np.flatnonzero(c)  # flat (P*T) indices whose cost moved away from the pass-1 value 0
    passes, last = 1, float(np.max(c))
    while True:  # sparse passes: gather the bars whose predecessor's cost moved, recompute, scatter
        rows = moved[moved % T != T - 1] + 1  # their successors (same parameter row)
        if rows.size == 0:
            return _Costs(c, d, x, absx, passes)
        if passes >= max_iter:
            raise _no_convergence(max_iter, last, a, b, u)
        denom = fbase[rows] - fc[rows - 1]
        with np.errstate(divide="ignore", invalid="ignore"):
            d_rows = fnum[rows] / denom[:, None]  # (R, N)
        d_rows[~(denom > 0.0)] = 0.0
        x_rows = fu[rows] - d_rows
        absx_rows = np.abs(x_rows)
        c_rows = _cost(x_rows, absx_rows, a, b)
        delta = np.abs(c_rows - fc[rows])
        fd[rows], fx[rows], fabsx[rows], fc[rows] = d_rows, x_rows, absx_rows, c_rows
        moved = rows[delta > tol]
        last = float(delta.max())
        passes += 1
        if _converged(last, lip, tol):
            return _Costs(c, d, x, absx, passes)


def _dense_passes(c: np.ndarray, d: np.ndarray, x: np.ndarray, absx: np.ndarray, num: np.ndarray,
                  base: np.ndarray, u: np.ndarray, a: np.ndarray, b: np.ndarray, lip: float, *, tol: float,
                  max_iter: int) -> _Costs:
    """Fixed-point passes over every bar (in place on d, x, absx) until converged (``_converged``)."""
    denom = np.empty_like(base)  # (P, T) base_t - c_{t-1}
    denom[:, 0] = base[:, 0]
    passes, last = 1, np.inf
    while True:
        if passes >= max_iter:
            raise _no_convergence(max_iter, last, a, b, u)
        np.subtract(base[:, 1:], c[:, :-1], out=denom[:, 1:])
        with np.errstate(divide="ignore", invalid="ignore"):
            np.divide(num, denom[..., None], out=d)
        if denom.min() <= 0.0:
            d[denom <= 0.0] = 0.0
        np.subtract(u, d, out=x)
        np.abs(x, out=absx)
        c_new = _cost(x, absx, a, b)
        c -= c_new
        last = max(float(c.max()), -float(c.min()))
        c = c_new
        passes += 1
        if _converged(last, lip, tol):
            return _Costs(c, d, x, absx, passes)


def _as_weights(weights: np.ndarray) -> np.ndarray:
    """float64 ``(P, T, N)`` weights with NaN -> 0 (copied only when NaN is present)."""
    w = np.asarray(weights, dtype=np.float64)
    if w.ndim != 3:
        raise ValueError(f"weights must be (P, T, N), got shape {w.shape}")
    if not np.isfinite(w.sum()):
        w = np.where(np.isnan(w), 0.0, w)
        if not np.isfinite(w).all():
            p, t, i = np.argwhere(~np.isfinite(w))[0]
            raise ValueError(f"weights must be finite: parameter row {p}, bar {t}, asset {i} is {w[p, t, i]} "
                             "(NaN means flat; inf is not a weight)")
    return w


def simulate(exec_price: np.ndarray, mark_price: np.ndarray, weights: np.ndarray, *,
             fees: float | np.ndarray = 0.0, slippage: float | np.ndarray = 0.0, init_cash: float = 1.0,
             leverage: float | None = None, keep_positions: bool = True, tol: float = 1e-15,
             max_iter: int = 50) -> Simulation:
    """Simulate P target-weight portfolios at once (the module docstring has the derivation).

    exec_price (T, N): execution price per bar (the open for next-open execution, the close for next-close).
    mark_price (T, N): the close, at which equity is marked. Both finite and > 0 (the engine checks).
    weights (P, T, N): target weights decided at each bar's close; NaN means 0. Row ``T-1`` is never executed.
    fees, slippage: fractions of traded notional, scalars or ``(N,)`` per asset.
    leverage: if given, rows whose gross ``sum |w|`` exceeds it are scaled down to it.
    keep_positions: also return the ``(P, T, N)`` weights held at the close (``gross`` always comes back).
    tol, max_iter: stopping rule of the cost fixed point (``max |change| <= tol``), error after ``max_iter``.
    Returns a ``Simulation``.
    """
    w = _as_weights(weights)
    P, T, N = w.shape
    p = np.asarray(exec_price, dtype=np.float64)
    m = np.asarray(mark_price, dtype=np.float64)
    if p.shape != (T, N) or m.shape != (T, N):
        raise ValueError(f"prices must be (T, N) = {(T, N)} like the weights, got {p.shape} and {m.shape}")
    if leverage is not None:
        if not leverage > 0:
            raise ValueError(f"leverage must be > 0 (a cap on sum |w| per bar, e.g. 1.0), got {leverage}")
        w = np.clip(w, -leverage, leverage) if N == 1 else _cap_leverage(w, float(leverage))
    f = np.asarray(fees, dtype=np.float64)
    s = np.asarray(slippage, dtype=np.float64)
    a, b = s + f, s * f  # c = sum a |x| + b x

    u = np.empty_like(w)  # (P, T, N) target executed at bar t: u_t = w_{t-1}, u_0 = 0
    u[:, 0] = 0.0
    u[:, 1:] = w[:, :-1]
    R = p[1:] / p[:-1] - 1.0  # (T-1, N) execution-to-execution return R_t, t >= 1
    num = np.empty_like(w)  # (P, T, N) u_{t-1} (1 + R_t)
    num[:, 0] = 0.0
    np.multiply(u[:, :-1], 1.0 + R, out=num[:, 1:])
    base = np.empty((P, T))  # (P, T) 1 + u_{t-1} . R_t
    base[:, 0] = 1.0
    base[:, 1:] = _rowsum(u[:, :-1] * R)
    base[:, 1:] += 1.0
    c, d, _, absx, passes = _solve_costs(num, base, u, a, b, tol=tol, max_iter=max_iter)

    growth = np.empty((P, T))  # V_t / V_{t-1}
    growth[:, 0] = 1.0
    np.subtract(base[:, 1:], c[:, :-1], out=growth[:, 1:])
    G = m / p - 1.0  # (T, N) execution-to-close return
    has_G = bool(np.any(G))
    close_factor = 1.0 - c  # E_t / V_t
    if has_G:
        close_factor += _rowsum(u * G)
    V = np.cumprod(growth, axis=1)
    V *= init_cash
    equity = V * close_factor
    ruined = np.zeros(P, dtype=bool)
    if growth.min() <= 0.0 or close_factor.min() <= 0.0:
        bad = (growth <= 0.0) | (close_factor <= 0.0)
        ruined = bad.any(axis=1)
        dead = np.logical_or.accumulate(bad, axis=1)
        equity[dead] = V[dead] = close_factor[dead] = c[dead] = 0.0
        u[dead] = d[dead] = absx[dead] = 0.0  # nothing trades once the equity is gone (nor at the ruin bar)
    returns = np.empty((P, T))
    returns[:, 0] = equity[:, 0] / init_cash - 1.0
    with np.errstate(divide="ignore", invalid="ignore"):
        np.divide(equity[:, 1:], equity[:, :-1], out=returns[:, 1:])
    returns[:, 1:] -= 1.0
    if ruined.any():
        returns[np.isnan(returns)] = 0.0

    turnover = _rowsum(absx)
    n_trades = np.count_nonzero(absx > TRADE_EPS, axis=(1, 2))
    held = u * (1.0 + G) if has_G else u
    with np.errstate(divide="ignore", invalid="ignore"):
        safe = np.where(close_factor > 0.0, close_factor, np.inf) if ruined.any() else close_factor
        positions = held / safe[..., None]  # (P, T, N)
    gross = _rowsum(np.abs(positions))
    return Simulation(equity, returns, V, c, turnover, u, d, positions if keep_positions else None, gross,
                      n_trades, ruined, passes)
