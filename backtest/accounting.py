"""DREX's one accounting: how a target weight becomes an order, a fill, cash and a position.

Backtests (``backtest.run``), sweeps (both paths of ``backtest.sweep``), paper trading
(``app.paper.execution.rebalance``), training rewards and gym environments all trade through ``fill_nb`` in
``backtest._kernels_nb``, compiled by numba; this module is its pure-Python face.

Fill rules, per bar and portfolio (those of vectorbt 1.2 ``Portfolio.from_orders(size_type="targetpercent",
cash_sharing=True, call_seq="auto", allow_partial=True)``, with a cash account by default):

* Sizing at the execution price ``p`` (vectorbt's default ``val_price`` = the order price): the pre-trade
  value is ``V = cash + sum_i shares_i p_i``; asset i's order is ``q_i = w_i V / p_i - shares_i`` shares,
  all computed before any order fills. ``V <= 0``: nothing trades (the backtest floors equity at 0, "ruin").
* Fills: a buy at ``p (1 + slippage)``, a sell at ``p (1 - slippage)``; the fee is ``fees x`` the filled
  notional (at the slipped price) and comes out of cash.
* Sells first (not limited by cash: a short sale needs no cash, as vectorbt without ``lock_cash``; there is
  no margin call), then buys. When the cash left cannot pay for every buy, the buys go smallest order value
  first (vectorbt's ``call_seq="auto"``) and the first one that does not fit is cut to
  ``limit / (p (1 + slippage) (1 + fees))`` shares, spending exactly ``limit`` (status partial); the ones after
  it are rejected. ``limit = cash + borrow x V``; a buy fits when its cost incl. fee is at most ``limit`` or
  within 1e-9 relative of it (vectorbt's ``is_close``).
* ``borrow`` (default 0: a cash account, like vectorbt): cash the account may borrow for buys, as a fraction
  of ``V``; cash may go down to ``-borrow x V``. ``borrow=0.5`` lets a long book reach 1.5x gross;
  ``borrow=float("inf")`` never cuts a buy (the engine's rule before issue #8: a fully invested portfolio
  borrows its fees). Cash earns and costs nothing either way. ``leverage`` (``backtest.run``) is separate:
  it scales target rows whose ``sum |w|`` exceeds it, before any of this.
* No dust: an order whose notional ``|q| p`` is at most ``DUST = 1e-9`` of ``V`` is not placed (float noise:
  holding a constant weight of 1 recomputes the held quantity to ~1e-16). vectorbt's own threshold is an
  absolute 1e-12 shares (``is_close(size, 0)``), which lets float-noise orders through on large positions.
  Sums that cancel to within 1e-9 relative (a position closed, the cash spent) become exactly 0.
* No-trade band ``band`` (default ``DEFAULT_BAND = 0.1``), relative to the target: asset i's order is
  skipped while ``|w_i - d_i| < band |w_i|``, ``d_i = shares_i p_i / V`` the drifted weight (a position
  within 10 % of its target size is left alone). Opening (``d_i = 0``) and closing (``w_i = 0``) always
  trade, and the band scales with the position, so a 1/N sleeve of a broad universe is treated like a single
  asset. ``band=0`` rebalances every drift, as vectorbt. Measurements behind the default: docs/accounting.md.
* Counting: ``n_trades`` counts filled orders (full or partial); turnover is ``sum_i |filled_i| p_i / V``.

Entry points (shapes: ``T`` bars, ``N`` assets, ``P`` parameter rows, ``B`` independent portfolios):

* ``simulate(exec_price (T, N), mark_price (T, N), weights (P, T, N), ...) -> Simulation``: decisions at bar
  t's close executed at bar t+1; what ``backtest.run`` and ``backtest.sweep`` call.
* ``fill(cash, shares (N,), targets (N,), prices (N,), ...) -> Fill``: one portfolio, one bar, with per-order
  records (requested and filled quantity, fee, status, execution order); paper trading wraps it.
* ``step(cash (B,), shares (B, N), targets (B, N), prices (N,) or (B, N), ...) -> Step``: one bar for B
  independent portfolios (new cash and shares, filled quantities, fees, turnover): what environments call
  per step.
* ``horizon_rewards(exec_price, mark_price, t (B,), exposure (B,) or (B, N), horizon, ...) -> (B,)``: the net
  return of a cash account that holds ``start_exposure`` at bar t's close, targets ``exposure`` from row t
  (executed at t+1) through row t+H-1 and is marked at the close of bar t+H (no forced exit): the reward of
  the experts' and the router's RL training. Equal to ``simulate`` on the equivalent weights (tested).
"""
from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

__all__ = ["DEFAULT_BAND", "DUST", "EXECUTIONS", "STATUS", "Fill", "Simulation", "Step", "check_fraction",
           "check_options", "fill", "horizon_rewards", "simulate", "step"]

DUST = 1e-9
"""Orders whose notional is at most this fraction of the pre-trade value are not placed (float noise)."""
DEFAULT_BAND = 0.1
"""Default no-trade band, relative to the target weight (module docstring; measured in docs/accounting.md)."""
EXECUTIONS = ("next_open", "next_close")
STATUS = ("none", "filled", "partial", "rejected")
"""Order status by code, as ``Fill.status`` holds them: none = no order for this asset."""


def _ro(a: np.ndarray, dtype=np.float64) -> np.ndarray:
    """A read-only C-contiguous view of ``a`` (copied only if needed). Kernel inputs are always passed this way:
    numba compiles one specialization per writeable/read-only combination, each ~10 s on a cold cache."""
    v = np.ascontiguousarray(a, dtype=dtype).view()
    v.flags.writeable = False
    return v


def _nb():
    """The compiled kernels (imported on first use: numba is slow to import)."""
    from backtest import _kernels_nb

    assert _kernels_nb.DUST == DUST
    return _kernels_nb


class Simulation(NamedTuple):
    """Result of ``simulate``. equity (P, T) at each close; returns (P, T) (``E_{-1} = init_cash``);
    turnover (P, T); gross (P, T) ``sum |position|`` at the close; positions (P, T, N) weights at the close,
    filled (P, T, N) signed filled quantities, fees (P, T, N) fees paid (all three None unless ``keep``);
    n_trades (P,) filled orders; ruined (P,) equity hit 0."""

    equity: np.ndarray
    returns: np.ndarray
    turnover: np.ndarray
    gross: np.ndarray
    positions: np.ndarray | None
    filled: np.ndarray | None
    fees: np.ndarray | None
    n_trades: np.ndarray
    ruined: np.ndarray


class Fill(NamedTuple):
    """Result of ``fill`` (one portfolio, one bar). cash after trading; value: pre-trade value ``V``;
    shares (N,) after trading; requested (N,) the signed orders placed (0 = none); filled (N,) signed filled
    quantities; fees (N,); prices (N,) fill prices incl. slippage; status (N,) codes into ``STATUS``;
    order: asset indices of the orders placed, in execution order; turnover: traded notional / ``V``."""

    cash: float
    value: float
    shares: np.ndarray
    requested: np.ndarray
    filled: np.ndarray
    fees: np.ndarray
    prices: np.ndarray
    status: np.ndarray
    order: list[int]
    turnover: float


class Step(NamedTuple):
    """Result of ``step`` for B portfolios. cash (B,), shares (B, N) after trading; filled (B, N) signed
    filled quantities; fees (B, N); turnover (B,) traded notional / pre-trade value; value (B,) pre-trade
    value (<= 0: nothing traded); n_orders (B,) filled orders."""

    cash: np.ndarray
    shares: np.ndarray
    filled: np.ndarray
    fees: np.ndarray
    turnover: np.ndarray
    value: np.ndarray
    n_orders: np.ndarray


def check_fraction(name: str, value: Any) -> float:
    """``value`` as a float in [0, 1): fees and slippage are fractions of traded notional."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number (a fraction: 0.001 = 10 bps), got {value!r}") from None
    if not (0.0 <= v < 1.0):
        raise ValueError(f"{name}={v} is out of range: it is a fraction of traded notional in [0, 1) "
                         f"(0.001 = 10 bps; did you mean {name}={v / 1e4:g}?)")
    return v


def check_options(*, band: Any, borrow: Any) -> tuple[float, float]:
    """Validated ``(band, borrow)``: band in [0, 1) (relative to the target), borrow >= 0 (inf allowed)."""
    try:
        b, c = float(band), float(borrow)
    except (TypeError, ValueError):
        raise ValueError(f"band and borrow must be numbers, got band={band!r}, borrow={borrow!r}") from None
    if not (0.0 <= b < 1.0):
        raise ValueError(f"band={b} is out of range: it is a no-trade band relative to the target weight, in [0, 1) "
                         "(0.1 = leave a position within 10% of its target size alone; 0 rebalances every drift)")
    if not c >= 0.0:
        raise ValueError(f"borrow={c} must be >= 0: the cash the account may borrow for buys as a fraction of its "
                         "value (0 = cash account, 0.5 = up to 1.5x long, inf = never cut a buy)")
    return b, c


def _per_asset(name: str, value: Any, N: int) -> np.ndarray:
    """A cost rate as a float64 ``(N,)`` array (a scalar is broadcast)."""
    arr = np.asarray(value, dtype=np.float64)
    if arr.ndim == 0:
        return np.full(N, float(arr))
    if arr.shape != (N,):
        raise ValueError(f"{name} must be a scalar or one value per asset (shape ({N},)), got shape {arr.shape}")
    if not np.all((arr >= 0.0) & (arr < 1.0)):
        raise ValueError(f"{name} values must be fractions in [0, 1) (0.001 = 10 bps), got {arr}")
    return arr


def _as_weights(weights: Any) -> np.ndarray:
    """float64 C-contiguous ``(P, T, N)`` weights; NaN stays (it means 0), inf is refused."""
    w = np.ascontiguousarray(weights, dtype=np.float64)
    if w.ndim != 3:
        raise ValueError(f"weights must be (P, T, N), got shape {w.shape}")
    if np.isinf(w).any():
        p, t, i = np.argwhere(np.isinf(w))[0]
        raise ValueError(f"weights must be finite: parameter row {p}, bar {t}, asset {i} is {w[p, t, i]} "
                         "(NaN means flat; inf is not a weight)")
    return w


def simulate(exec_price: np.ndarray, mark_price: np.ndarray, weights: np.ndarray, *,
             fees: float | np.ndarray = 0.0, slippage: float | np.ndarray = 0.0, init_cash: float = 1.0,
             leverage: float | None = None, band: float = DEFAULT_BAND, borrow: float = 0.0,
             keep: bool = True, rows: np.ndarray | None = None) -> Simulation:
    """Backtest P target-weight portfolios (rules in the module docstring).

    exec_price (T, N): execution price per bar (the open for next-open execution, the close for next-close).
    mark_price (T, N): the close, at which equity is marked. Both finite and > 0 (``backtest.run`` checks).
    weights (P, T, N): target weights decided at each bar's close, executed at the next bar; NaN means 0;
    row ``T-1`` is never executed and the first bar holds nothing.
    fees, slippage: fractions of traded notional, scalars or ``(N,)``. init_cash: starting cash.
    leverage: if given, target rows whose gross ``sum |w|`` exceeds it are scaled down to it.
    band, borrow: see the module docstring. keep: also return positions, filled quantities and fees
    ``(P, T, N)``. rows: simulate only these parameter rows ``(R,)`` (results have R rows).
    """
    w = _as_weights(weights)
    P, T, N = w.shape
    p = np.ascontiguousarray(exec_price, dtype=np.float64)
    m = np.ascontiguousarray(mark_price, dtype=np.float64)
    if p.shape != (T, N) or m.shape != (T, N):
        raise ValueError(f"prices must be (T, N) = {(T, N)} like the weights, got {p.shape} and {m.shape}")
    if leverage is not None and not leverage > 0:
        raise ValueError(f"leverage must be > 0 (a cap on sum |w| per bar, e.g. 1.0), got {leverage}")
    band, borrow = check_options(band=band, borrow=borrow)
    f, s = _per_asset("fees", fees, N), _per_asset("slippage", slippage, N)
    idx = np.arange(P, dtype=np.int64) if rows is None else np.ascontiguousarray(rows, dtype=np.int64)
    return _simulate_checked(p, m, w, idx, f, s, init_cash=float(init_cash), leverage=float(leverage or 0.0),
                             band=band, borrow=borrow, keep=keep)


def _simulate_checked(p: np.ndarray, m: np.ndarray, w: np.ndarray, rows: np.ndarray, fees: np.ndarray,
                      slippage: np.ndarray, *, init_cash: float, leverage: float, band: float, borrow: float,
                      keep: bool) -> Simulation:
    """``simulate`` on validated C-contiguous float64 inputs (``rows`` int64, fees/slippage ``(N,)``,
    ``leverage`` 0 = no cap): for callers that already checked them (the sweep calls it per block)."""
    R, (T, N) = rows.size, m.shape
    eq, ret, gross, turn = (np.empty((R, T)) for _ in range(4))
    ntr = np.empty(R, dtype=np.int64)
    ruined = np.empty(R, dtype=np.bool_)
    shape = (R, T, N) if keep else (0, 0, 0)
    pos, fil, fee = np.empty(shape), np.empty(shape), np.empty(shape)
    _nb().simulate_rows_nb(_ro(p), _ro(m), _ro(w), _ro(rows, np.int64), _ro(fees), _ro(slippage), init_cash,
                           leverage, band, borrow, eq, ret, gross, turn, ntr, ruined, pos, fil, fee, *_scratch(N))
    return Simulation(eq, ret, turn, gross, pos if keep else None, fil if keep else None, fee if keep else None,
                      ntr, ruined)


def _scratch(N: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Scratch arrays of ``simulate_rows_nb``: fwork (5, N), cwork (3, ROWS), iwork (2, N)."""
    return np.empty((5, N)), np.empty((3, _nb().ROWS)), np.empty((2, N), dtype=np.int64)


def fill(cash: float, shares: np.ndarray, targets: np.ndarray, prices: np.ndarray, *,
         fees: float | np.ndarray = 0.0, slippage: float | np.ndarray = 0.0, band: float = DEFAULT_BAND,
         borrow: float = 0.0) -> Fill:
    """Rebalance one portfolio at one bar: ``cash``, ``shares (N,)`` held, target weights ``targets (N,)``,
    execution prices ``prices (N,)`` (finite, > 0). Returns a ``Fill`` with per-order records."""
    sh = np.array(shares, dtype=np.float64).reshape(-1)
    N = sh.size
    u = np.ascontiguousarray(targets, dtype=np.float64).reshape(-1)
    px = np.ascontiguousarray(prices, dtype=np.float64).reshape(-1)
    if u.size != N or px.size != N:
        raise ValueError(f"shares, targets and prices must have one entry per asset; got {N}, {u.size}, {px.size}")
    _check_prices(px)
    band, borrow = check_options(band=band, borrow=borrow)
    f, s = _per_asset("fees", fees, N), _per_asset("slippage", slippage, N)
    req, filled, fee = np.empty(N), np.empty(N), np.empty(N)
    status, seq = np.empty(N, dtype=np.int64), np.empty(N, dtype=np.int64)
    u = np.where(np.isnan(u), 0.0, u)
    new_cash, value, turnover, _ = _nb().fill_nb(float(cash), sh, _ro(u), _ro(px), _ro(f), _ro(s), band, borrow,
                                                 req, filled, fee, status, seq)
    fill_price = np.where(req > 0, px * (1.0 + s), px * (1.0 - s))
    return Fill(float(new_cash), float(value), sh, req, filled, fee, fill_price, status,
                [int(i) for i in seq if i >= 0], float(turnover))


def _check_prices(px: np.ndarray) -> None:
    bad = ~(np.isfinite(px) & (px > 0))
    if bad.any():
        i = int(np.flatnonzero(bad.reshape(-1))[0])
        raise ValueError(f"prices must be finite and > 0; entry {i} is {px.reshape(-1)[i]}")


def step(cash: np.ndarray, shares: np.ndarray, targets: np.ndarray, prices: np.ndarray, *,
         fees: float | np.ndarray = 0.0, slippage: float | np.ndarray = 0.0, band: float = DEFAULT_BAND,
         borrow: float = 0.0) -> Step:
    """One bar's rebalance of B independent portfolios (the function environments call per step).

    cash (B,); shares (B, N) held; targets (B, N) target weights (NaN means 0); prices (N,) shared or (B, N)
    per portfolio, the execution prices (finite, > 0). fees, slippage: scalars or ``(N,)``; band, borrow: see
    the module docstring. Inputs are not modified. Returns a ``Step``; equity after the trade at the same
    prices is ``cash + (shares * prices).sum(-1)``.
    """
    c = np.ascontiguousarray(cash, dtype=np.float64).reshape(-1)
    sh = np.ascontiguousarray(shares, dtype=np.float64)
    u = np.ascontiguousarray(targets, dtype=np.float64)
    B = c.size
    if sh.ndim != 2 or sh.shape[0] != B or u.shape != sh.shape:
        raise ValueError(f"step needs cash (B,), shares (B, N) and targets (B, N); got {c.shape}, {sh.shape}, "
                         f"{u.shape}")
    N = sh.shape[1]
    px = np.asarray(prices, dtype=np.float64)
    if px.shape == (N,):
        px = np.broadcast_to(px, (B, N))
    if px.shape != (B, N):
        raise ValueError(f"prices must be (N,) = ({N},) or (B, N) = {(B, N)}, got {px.shape}")
    px = np.ascontiguousarray(px)
    _check_prices(px)
    if np.isnan(u).any():
        u = np.where(np.isnan(u), 0.0, u)
    band, borrow = check_options(band=band, borrow=borrow)
    f, s = _per_asset("fees", fees, N), _per_asset("slippage", slippage, N)
    out = Step(np.empty(B), np.empty((B, N)), np.empty((B, N)), np.empty((B, N)), np.empty(B), np.empty(B),
               np.empty(B, dtype=np.int64))
    _nb().step_nb(_ro(c), _ro(sh), _ro(u), _ro(px), _ro(f), _ro(s), band, borrow, out.cash, out.shares, out.filled,
                  out.fees, out.turnover, out.value, out.n_orders, np.empty((1, N)), np.empty((2, N), dtype=np.int64))
    return out


def horizon_rewards(exec_price: np.ndarray | None, mark_price: np.ndarray, t: np.ndarray, exposure: np.ndarray,
                    horizon: int, *, fees: float | np.ndarray = 0.0, slippage: float | np.ndarray = 0.0,
                    start_exposure: float | np.ndarray = 0.0, execution: str = "next_open",
                    band: float = DEFAULT_BAND, borrow: float = 0.0) -> np.ndarray:
    """Net return ``(B,)`` of holding a target exposure for ``horizon`` bars after decision bar ``t``.

    exec_price (T,) or (T, N): the open (the execution price with ``execution="next_open"``; unused and may
    be None with ``"next_close"``, which executes at the close). mark_price: the close, same shape.
    t (B,) int: decision rows, ``0 <= t`` and ``t + horizon <= T - 1``. exposure (B,) for (T,) prices or
    (B, N): target weights, the same at rows t .. t+H-1 (executed at bars t+1 .. t+H). horizon H >= 1.
    start_exposure: weights held at bar t's close (scalar, (B,) or (B, N)), with equity 1 there: shares
    ``start / close_t``, cash ``1 - sum start``. fees, slippage, band, borrow: as ``simulate``.
    Returns ``E_{t+H} - 1`` with ``E`` marked at the close (equity floored at 0, as a backtest). With
    ``start_exposure=0`` it equals ``simulate``/``backtest.run`` of weights that are ``exposure`` on rows
    t .. t+H-1 and 0 elsewhere: ``equity[t + H] / init_cash - 1``.
    """
    if execution not in EXECUTIONS:
        raise ValueError(f"execution must be one of {EXECUTIONS}, got {execution!r}")
    m = np.asarray(mark_price, dtype=np.float64)
    single = m.ndim == 1
    m = np.ascontiguousarray(m.reshape(len(m), -1))
    T, N = m.shape
    if execution == "next_close":
        ep = m
    else:
        if exec_price is None:
            raise ValueError("execution='next_open' needs exec_price (the opens)")
        ep = np.ascontiguousarray(np.asarray(exec_price, dtype=np.float64).reshape(T, -1))
        if ep.shape != (T, N):
            raise ValueError(f"exec_price must have the shape of mark_price {m.shape}, got {np.shape(exec_price)}")
    _check_prices(ep)
    _check_prices(m)
    tt = np.ascontiguousarray(t, dtype=np.int64).reshape(-1)
    B = tt.size
    H = int(horizon)
    if H < 1:
        raise ValueError(f"horizon must be >= 1 bar, got {horizon}")
    if B and (tt.min() < 0 or tt.max() + H > T - 1):
        raise ValueError(f"decision rows t must satisfy 0 <= t and t + horizon <= T - 1 = {T - 1} (horizon {H}); "
                         f"got t in [{tt.min()}, {tt.max()}]")
    expo = np.asarray(exposure, dtype=np.float64)
    expo = expo.reshape(B, 1) if single and expo.shape == (B,) else expo
    if expo.shape != (B, N):
        want = f"({B},)" if single else f"({B}, {N})"
        raise ValueError(f"exposure must be {want} (one target per decision row t), got {np.shape(exposure)}")
    start = np.asarray(start_exposure, dtype=np.float64)
    start = start.reshape(B, 1) if single and start.shape == (B,) else start
    try:
        start = np.ascontiguousarray(np.broadcast_to(start, (B, N)))
    except ValueError:
        raise ValueError(f"start_exposure must be a scalar or shaped like exposure {expo.shape}, got "
                         f"{np.shape(start_exposure)}") from None
    if not (np.isfinite(expo).all() and np.isfinite(start).all()):
        raise ValueError("exposure and start_exposure must be finite (0 = flat)")
    band, borrow = check_options(band=band, borrow=borrow)
    f, s = _per_asset("fees", fees, N), _per_asset("slippage", slippage, N)
    out = np.empty(B)
    _nb().horizon_nb(_ro(ep), _ro(m), _ro(tt, np.int64), _ro(expo), _ro(start), H, _ro(f), _ro(s), band, borrow,
                     out, np.empty((4, N)),
                     np.empty((2, N), dtype=np.int64))
    return out
