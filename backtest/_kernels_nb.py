"""DREX's compiled kernels (numba, cached on disk, GIL released): the accounting and the fused sweep.

Read ``backtest.accounting`` first: it documents the rules and is the pure-Python layer that validates inputs.
Imported lazily (numba costs ~0.3 s at import) by ``backtest.accounting`` and ``backtest.sweep``. Everything
is float64/int64 NumPy in, NumPy out.

``fill_nb`` is THE fill rule (one bar, one portfolio; ``fill_one_nb`` its single-asset scalar form);
``simulate_rows_nb`` (backtests and sweeps), ``step_nb`` (environments), ``horizon_nb`` (training rewards)
and ``fused_rows_nb`` (sweep metrics) only loop over it. They live in one file on purpose: numba's disk cache
notices a changed source file, not a changed function in another file that a cached kernel inlined.
"""
from __future__ import annotations

import numpy as np
from numba import njit

# keep in sync with backtest.accounting (asserted there)
DUST = 1e-9  # an order whose notional is at most DUST x pre-trade value is float noise: not placed
REL_TOL = 1e-9  # vectorbt's is_close relative tolerance (cash limit check, snapping sums to 0)
NONE, FILLED, PARTIAL, REJECTED = 0, 1, 2, 3
ROWS = 8  # parameter rows simulate_rows_nb runs side by side


@njit(cache=True, nogil=True, inline="always")
def _add(a, b):  # pragma: no cover - numba
    """``a + b``, exactly 0 when the two cancel to within REL_TOL (vectorbt's add_nb, without its absolute
    1e-12 term, so that the rule does not depend on the units of cash or shares)."""
    s = a + b
    x, y = abs(a), abs(b)
    if abs(s) <= REL_TOL * (x if x > y else y):  # noqa: FURB136 - numba compiles max() slower
        return 0.0
    return s


@njit(cache=True, nogil=True, inline="always")
def fill_one_nb(cash, sh, w, px, fees, slip, band, borrow):  # pragma: no cover - numba
    """``fill_nb`` for one asset, on scalars: the same rules and arithmetic (tests hold the two equal).

    Returns ``(cash, shares, value, turnover, status, q, filled, fee)``: q the order placed (0 = none).
    """
    V = cash + sh * px if sh != 0.0 else cash
    if not V > 0.0:
        return cash, sh, V, 0.0, NONE, 0.0, 0.0, 0.0
    q = w * V / px - sh
    notional = abs(q) * px
    if notional <= DUST * V or notional < band * abs(w) * V:
        return cash, sh, V, 0.0, NONE, 0.0, 0.0, 0.0
    if q < 0.0:
        acq = -q * (px * (1.0 - slip))
        fee = acq * fees
        return cash + _add(acq, -fee), _add(sh, q), V, notional / V, FILLED, q, q, fee
    adj = px * (1.0 + slip)
    cost = q * adj
    fee = cost * fees
    total = cost + fee
    limit = cash + borrow * V
    if total <= limit or total - limit <= REL_TOL * (total if total > abs(limit) else abs(limit)):  # noqa: FURB136
        return _add(cash, -total), _add(sh, q), V, notional / V, FILLED, q, q, fee
    budget = limit / (1.0 + fees)  # cut to the cash left
    size = budget / adj
    if not limit > 0.0 or size * px <= DUST * V:
        return cash, sh, V, 0.0, REJECTED, q, 0.0, 0.0
    return _add(cash, -limit), _add(sh, size), V, size * px / V, PARTIAL, q, size, limit - budget


@njit(cache=True, nogil=True, _nrt=False)
def fill_nb(cash, shares, u, p, fees, slip, band, borrow, req, filled, fee_out, status, seq):  # pragma: no cover
    """Rebalance one portfolio towards target weights ``u (N,)`` at prices ``p (N,)``; returns
    ``(cash, value, turnover, n_orders)``.

    shares (N,) is updated in place. Written for every asset: req (N,) the order placed (signed quantity,
    0 = none), filled (N,) the signed quantity filled, fee_out (N,) the fee paid, status (N,) int64 (NONE /
    FILLED / PARTIAL / REJECTED), seq (N,) int64 the assets of the orders in execution order (-1 after the
    last; rejected buys included). value is the pre-trade value ``cash + shares . p``; when it is not > 0
    nothing trades (the caller floors equity). fees, slip (N,): per-asset fractions; band: no-trade band,
    relative to the target; borrow: cash the account may borrow for buys as a fraction of value (0 = a cash
    account, inf = never cut a buy). Compiled without numba's reference counting: a call from the (also
    reference-count free) loops below costs no atomic updates of the arrays' reference counts.
    """
    N = shares.shape[0]
    if N == 1:  # the common single-asset case in scalar code (the same rules; tests hold the two equal)
        cash, shares[0], V, turn, status[0], req[0], filled[0], fee_out[0] = fill_one_nb(
            cash, shares[0], u[0], p[0], fees[0], slip[0], band, borrow)
        seq[0] = 0 if status[0] != NONE else -1
        return cash, V, turn, int(filled[0] != 0.0)
    V = cash
    for i in range(N):
        req[i] = 0.0
        filled[i] = 0.0
        fee_out[i] = 0.0
        status[i] = NONE
        seq[i] = -1
        if shares[i] != 0.0:
            V += shares[i] * p[i]
    if not V > 0.0:
        return cash, V, 0.0, 0
    dust_v = DUST * V
    turn = 0.0
    n = 0
    n_sell = 0
    n_buy = 0
    need = 0.0  # cash all buys would take
    for i in range(N):  # sizing at the execution price, as vectorbt's targetpercent: (u V) / p - shares
        q = u[i] * V / p[i] - shares[i]
        notional = abs(q) * p[i]
        if notional <= dust_v:
            continue  # float noise, e.g. a constant weight recomputed
        if notional < band * abs(u[i]) * V:
            continue  # inside the no-trade band: |w - d| < band |w| (opening and closing always trade)
        req[i] = q
        if q > 0.0:
            seq[n_buy] = i  # buys are queued in seq, executed below
            n_buy += 1
            need += q * (p[i] * (1.0 + slip[i])) * (1.0 + fees[i])
    for i in range(N):  # sells first: they are not limited by cash (shorts as vectorbt without lock_cash)
        q = req[i]
        if q < 0.0:
            adj = p[i] * (1.0 - slip[i])
            acq = -q * adj
            fee = acq * fees[i]
            cash += _add(acq, -fee)
            shares[i] = _add(shares[i], q)
            filled[i] = q
            fee_out[i] = fee
            status[i] = FILLED
            turn += -q * p[i]
            n += 1
            n_sell += 1
    extra = borrow * V  # inf when buys are never cut
    if n_buy > 1 and not need <= cash + extra:  # the cash may run out: smallest buys first (vectorbt call_seq auto)
        for a in range(1, n_buy):  # stable insertion sort on vectorbt's order value w V - shares p
            j = seq[a]
            key = u[j] * V - shares[j] * p[j]
            b = a - 1
            while b >= 0 and u[seq[b]] * V - shares[seq[b]] * p[seq[b]] > key:
                seq[b + 1] = seq[b]
                b -= 1
            seq[b + 1] = j
    for a in range(n_buy):
        i = seq[a]
        q = req[i]
        adj = p[i] * (1.0 + slip[i])
        cost = q * adj
        fee = cost * fees[i]
        total = cost + fee
        limit = cash + extra
        if total <= limit or total - limit <= REL_TOL * (total if total > abs(limit) else abs(limit)):  # noqa: FURB136
            cash = _add(cash, -total)
            shares[i] = _add(shares[i], q)
            filled[i] = q
            fee_out[i] = fee
            status[i] = FILLED
        else:  # cut to the cash left: size = limit / (p (1+s) (1+f)), spending all of it
            budget = limit / (1.0 + fees[i])
            size = budget / adj
            if not limit > 0.0 or size * p[i] <= dust_v:
                status[i] = REJECTED
                continue
            cash = _add(cash, -limit)
            shares[i] = _add(shares[i], size)
            filled[i] = size
            fee_out[i] = limit - budget
            status[i] = PARTIAL
        turn += filled[i] * p[i]
        n += 1
    if n_sell:  # execution order: the sells in asset order, then the buys in the order executed above
        for a in range(n_buy - 1, -1, -1):
            seq[n_sell + a] = seq[a]
        k = 0
        for i in range(N):
            if req[i] < 0.0:
                seq[k] = i
                k += 1
    return cash, V, turn / V, n


@njit(cache=True, nogil=True, _nrt=False)
def _simulate_one(p, m, W, rows, fees, slip, init_cash, lev, band, borrow, eq, ret, gross, turn, ntr, ruined,
                  cwork):  # pragma: no cover - numba
    """``simulate_rows_nb`` for one asset without per-asset outputs (sweeps): scalar fills, the same arithmetic.
    ROWS rows go side by side (bar-major) so that their independent cash -> value -> order chains, which are
    division-latency bound, overlap in the CPU. cwork (3, ROWS): cash, shares, previous equity per row."""
    T = m.shape[0]
    cash, shs, prev = cwork[0], cwork[1], cwork[2]
    for start in range(0, rows.size, ROWS):
        nb = min(ROWS, rows.size - start)
        for j in range(nb):
            cash[j] = init_cash
            shs[j] = 0.0
            prev[j] = init_cash
            ntr[start + j] = 0
            ruined[start + j] = False
        for t in range(T):
            pt = p[t]
            mt = m[t]
            for j in range(nb):
                r = start + j
                dead = ruined[r]
                c = cash[j]
                sh = shs[j]
                turn_t = 0.0
                n_t = 0
                if t > 0 and not dead:
                    w = W[rows[r], t - 1, 0]
                    w = 0.0 if np.isnan(w) else w
                    if lev > 0.0 and abs(w) > lev:
                        w = lev if w > 0.0 else -lev
                    c, sh, V, turn_t, status, _, _, _ = fill_one_nb(c, sh, w, pt, fees, slip, band, borrow)
                    n_t = status == FILLED or status == PARTIAL
                    if not V > 0.0:
                        dead = True
                E = c
                v = 0.0
                if not dead:
                    v = sh * mt
                    E += v
                if dead or E <= 0.0:
                    dead = True
                    E = 0.0
                    v = 0.0
                    turn_t = 0.0
                    n_t = 0
                cash[j] = c
                shs[j] = sh
                ruined[r] = dead
                ntr[r] += n_t
                eq[r, t] = E
                ret[r, t] = E / prev[j] - 1.0 if prev[j] > 0.0 else 0.0
                gross[r, t] = abs(v) / E if E > 0.0 else 0.0
                turn[r, t] = turn_t
                prev[j] = E


@njit(cache=True, nogil=True, _nrt=False)
def simulate_rows_nb(p, m, W, rows, fees, slip, init_cash, lev, band, borrow, eq, ret, gross, turn, ntr, ruined,
                     pos, fil, fee, fwork, cwork, iwork):  # pragma: no cover - numba
    """Backtest the parameter rows ``rows (R,)`` of target weights ``W (P, T, N)`` (decided at bar t's close,
    executed at bar t+1 at ``p (T, N)``, marked at the close ``m (T, N)``), one ``fill_nb`` per bar.

    Writes, per row j: eq (R, T) equity at the close; ret (R, T) its period returns (``E_{-1} = init_cash``);
    gross (R, T) ``sum |position| / E`` at the close; turn (R, T) traded notional / pre-trade value; ntr (R,)
    orders filled; ruined (R,) equity hit 0 (then it stays 0, nothing trades, the ruin bar's orders do not
    count). pos, fil, fee (R, T, N): weights at the close, signed filled quantities and fees, written only when
    ``pos.shape[0] > 0`` (pass ``np.empty((0, 0, 0))`` otherwise). NaN weights are 0; ``lev > 0`` scales rows
    whose ``sum |w|`` exceeds it down to it.

    Scratch: fwork (5, N) float64, cwork (3, ROWS) float64, iwork (2, N) int64. Compiled without numba's
    reference counting (nothing is allocated here), so that calling ``fill_nb`` once per bar costs no atomic
    reference updates (with them, several times slower): tens of ns per bar and parameter row. Single-asset rows
    without per-asset outputs (sweeps) go through ``_simulate_one`` (scalar fills, ROWS rows side by side).
    """
    T, N = m.shape
    keep = pos.shape[0] > 0
    if N == 1 and not keep:
        _simulate_one(p[:, 0], m[:, 0], W, rows, fees[0], slip[0], init_cash, lev, band, borrow, eq, ret, gross,
                      turn, ntr, ruined, cwork)
        return
    u, req, fl, fe, shares = fwork[0], fwork[1], fwork[2], fwork[3], fwork[4]
    st, sq = iwork[0], iwork[1]
    for r in range(rows.size):
        k = rows[r]
        cash = init_cash
        prev = init_cash
        n_tr = 0
        dead = False
        for i in range(N):
            shares[i] = 0.0
        for t in range(T):
            turn_t = 0.0
            ntr_t = 0
            if t > 0 and not dead:
                g = 0.0
                for i in range(N):
                    w = W[k, t - 1, i]
                    w = 0.0 if np.isnan(w) else w
                    u[i] = w
                    g += abs(w)
                if lev > 0.0 and g > lev:
                    if N == 1:
                        u[0] = lev if u[0] > 0.0 else -lev
                    else:
                        for i in range(N):
                            u[i] *= lev / g
                cash, V, turn_t, ntr_t = fill_nb(cash, shares, u, p[t], fees, slip, band, borrow, req, fl, fe, st, sq)
                if not V > 0.0:
                    dead = True
            if keep:
                for i in range(N):
                    fil[r, t, i] = fl[i] if t > 0 and not dead else 0.0
                    fee[r, t, i] = fe[i] if t > 0 and not dead else 0.0
            E = cash
            held = 0.0
            if not dead:
                for i in range(N):
                    v = shares[i] * m[t, i]
                    E += v
                    held += abs(v)
            if dead or E <= 0.0:
                if keep and not dead:
                    for i in range(N):
                        fil[r, t, i] = 0.0
                        fee[r, t, i] = 0.0
                dead = True
                E = 0.0
                held = 0.0
                turn_t = 0.0
                ntr_t = 0
            n_tr += ntr_t
            eq[r, t] = E
            ret[r, t] = E / prev - 1.0 if prev > 0.0 else 0.0
            gross[r, t] = held / E if E > 0.0 else 0.0
            turn[r, t] = turn_t
            if keep:
                for i in range(N):
                    pos[r, t, i] = shares[i] * m[t, i] / E if E > 0.0 else 0.0
            prev = E
        ntr[r] = n_tr
        ruined[r] = dead


@njit(cache=True, nogil=True, _nrt=False)
def step_nb(cash, shares, targets, prices, fees, slip, band, borrow, cash_out, shares_out, filled, fee,
            turnover, value, n_orders, fwork, iwork):  # pragma: no cover - numba
    """One bar for B independent portfolios: ``fill_nb`` on row b of cash (B,), shares (B, N), targets (B, N),
    prices (B, N); results into cash_out (B,), shares_out (B, N), filled (B, N), fee (B, N), turnover (B,),
    value (B,) (pre-trade), n_orders (B,). fwork (1, N), iwork (2, N): scratch."""
    B, N = shares.shape
    req = fwork[0]
    st, sq = iwork[0], iwork[1]
    for b in range(B):
        for i in range(N):
            shares_out[b, i] = shares[b, i]
        c, v, tn, n = fill_nb(cash[b], shares_out[b], targets[b], prices[b], fees, slip, band, borrow, req,
                              filled[b], fee[b], st, sq)
        cash_out[b] = c
        value[b] = v
        turnover[b] = tn
        n_orders[b] = n


@njit(cache=True, nogil=True, _nrt=False)
def horizon_nb(ep, mp, t, expo, start, H, fees, slip, band, borrow, out, fwork, iwork):  # pragma: no cover
    """Net return over H bars of B cash accounts (``backtest.accounting.horizon_rewards``): account b has equity 1
    at bar ``t[b]``'s close, weights ``start[b]`` (N,) held at that close, targets ``expo[b]`` (N,) executed at
    bars t+1..t+H at ``ep (T, N)``, marked at the closes ``mp (T, N)``; equity floored at 0 as in a backtest.
    fwork (4, N), iwork (2, N): scratch."""
    B, N = expo.shape
    shares, req, fl, fe = fwork[0], fwork[1], fwork[2], fwork[3]
    st, sq = iwork[0], iwork[1]
    for b in range(B):
        t0 = t[b]
        cash = 1.0
        for i in range(N):
            shares[i] = start[b, i] / mp[t0, i]
            cash -= start[b, i]
        dead = False
        E = 1.0
        for h in range(1, H + 1):
            tt = t0 + h
            if not dead:
                cash, V, _, _ = fill_nb(cash, shares, expo[b], ep[tt], fees, slip, band, borrow, req, fl, fe, st, sq)
                if not V > 0.0:
                    dead = True
            E = cash
            if not dead:
                for i in range(N):
                    E += shares[i] * mp[tt, i]
            if dead or E <= 0.0:
                dead = True
                E = 0.0
        out[b] = E - 1.0


# output columns, in backtest.metrics.METRIC_NAMES order (asserted by backtest.sweep)
COLUMNS = ("total_return", "cagr", "ann_volatility", "sharpe", "sortino", "calmar", "max_drawdown",
           "max_drawdown_duration", "cvar_5", "turnover_mean", "turnover_annual", "exposure", "gross_exposure",
           "hit_rate", "n_trades", "flat")
(TOTAL, CAGR, VOL, SHARPE, SORTINO, CALMAR, MDD, MDD_DUR, CVAR, TURN_MEAN, TURN_ANNUAL, EXPOSURE, GROSS, HIT,
 N_TRADES, FLAT) = range(16)


@njit(cache=True, nogil=True)
def fused_rows_nb(p, m, W, rows, fees, slip, init_cash, lev, band, borrow, ppy, out):  # pragma: no cover
    """Simulation (``simulate_rows_nb``, ROWS rows per call) + metrics of the parameter rows ``rows (R,)`` of ``W (P, T, N)`` into
    ``out (R, len(COLUMNS))``, with the formulas of ``backtest.metrics._compute_arrays``."""
    T = m.shape[0]
    B = ROWS
    eq = np.empty((B, T))
    r = np.empty((B, T))
    gross = np.empty((B, T))
    turn = np.empty((B, T))
    ntr = np.empty(B, dtype=np.int64)
    ruined = np.empty(B, dtype=np.bool_)
    none = np.empty((0, 0, 0))
    fwork = np.empty((5, m.shape[1]))
    cwork = np.empty((3, ROWS))
    iwork = np.empty((2, m.shape[1]), dtype=np.int64)
    buf = np.empty(T)
    sq = np.sqrt(ppy)
    nan = np.nan
    for start in range(0, rows.size, B):
        nb = min(B, rows.size - start)
        simulate_rows_nb(p, m, W, rows[start:start + nb], fees, slip, init_cash, lev, band, borrow, eq, r, gross,
                         turn, ntr, ruined, none, none, none, fwork, cwork,
                         iwork)
        for j in range(nb):
            rj, ej, gj, tj = r[j], eq[j], gross[j], turn[j]
            for t in range(T):
                ej[t] = ej[t] / init_cash  # relative equity, as backtest.run hands it to the metrics
            total = ej[T - 1] - 1.0
            cagr = (1.0 + total) ** (ppy / T) - 1.0
            sr = sg = st = 0.0
            n_held = n_in = wins = 0
            lo = hi = rj[0]
            for t in range(T):
                sr += rj[t]
                sg += gj[t]
                st += tj[t]
                if rj[t] < lo:
                    lo = rj[t]
                elif rj[t] > hi:
                    hi = rj[t]
                h = gj[t] > 0.0
                n_held += h
                if h or (t > 0 and gj[t - 1] > 0.0):
                    n_in += 1
                    wins += rj[t] > 0.0
            mean = sr / T
            vol = sharpe = sortino = cvar = flat = nan
            if T >= 2:
                ss = 0.0
                dn = 0.0
                for t in range(T):
                    ss += (rj[t] - mean) ** 2
                    if rj[t] < 0.0:
                        dn += rj[t] * rj[t]
                std = np.sqrt(ss / (T - 1))
                down = np.sqrt(dn / T)
                vol = std * sq
                flat = 1.0 if lo == hi else 0.0
                sharpe = nan if (std == 0.0 or lo == hi) else mean / std * sq
                sortino = nan if (down == 0.0 or lo == hi) else mean * ppy / (down * sq)
                kq = 0.05 * T  # CVaR: the mq + 1 smallest returns; gather those below mean - std first (cheap)
                mq = int(np.floor(kq))
                n = 0
                thr = mean - std
                for t in range(T):
                    if rj[t] < thr:
                        buf[n] = rj[t]
                        n += 1
                if n <= mq:
                    buf[:T] = rj
                    n = T
                part = np.partition(buf[:n], mq)
                cvar = (part[:mq].sum() + (kq - mq) * part[mq]) / kq
            best = np.inf  # max drawdown: the first minimum of eq / max(1, running max), as np.argmin
            peak = 1.0
            trough = 0
            peak_at = 1.0
            for t in range(T):
                if ej[t] > peak:  # noqa: PLR1730 - numba compiles max() slower
                    peak = ej[t]
                dd = ej[t] / peak
                if dd < best:
                    best = dd
                    trough = t
                    peak_at = peak
            mdd = best - 1.0
            peak_idx = -1
            for t in range(trough + 1):
                if ej[t] >= peak_at:
                    peak_idx = t
            end = T - 1
            for t in range(trough + 1, T):
                if ej[t] >= peak_at:
                    end = t
                    break
            tmean = st / T
            o = out[start + j]
            o[TOTAL], o[CAGR], o[VOL], o[SHARPE], o[SORTINO] = total, cagr, vol, sharpe, sortino
            o[CALMAR] = nan if mdd == 0.0 else cagr / abs(mdd)
            o[MDD], o[MDD_DUR] = mdd, float(end - peak_idx) if mdd < 0.0 else 0.0
            o[CVAR], o[TURN_MEAN], o[TURN_ANNUAL] = cvar, tmean, tmean * ppy
            o[EXPOSURE], o[GROSS] = n_held / T, sg / T
            o[HIT] = wins / n_in if n_in > 0 else nan
            o[N_TRADES] = ntr[j]
            o[FLAT] = flat
