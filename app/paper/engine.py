"""One paper tick: fetch -> decide -> simulate the fill -> persist, one database transaction per bar.

For every newly completed bar ``t`` (oldest first) one transaction writes, all or nothing:

1. the processed-bar marker (unique per run and bar: processing a bar twice is impossible);
2. the orders and fills of the decision taken at the previous processed bar's close, executed at bar t's
   open (``execution.rebalance``), and the updated positions;
3. the decision at bar t's close, one row per asset with the target weight and the decision-maker's trace
   record for that bar;
4. a snapshot valued at bar t's close (cash, positions value, equity), after checking that the positions and
   the cash derived from all fills agree with it (in memory at every bar; against the rows the database holds,
   inside the transaction, at the first and last bar of every tick).

So a crash at any point leaves the ledger at a bar boundary, and the next tick resumes from there.

Decisions: the run's decision-maker is built once per process (``backtest.decisions.build``) and asked ONCE
per tick for all the new rows: ``decide(completed_bars, start=first_new_row)``. The contract guarantees that
row t's decision uses bars up to t only (the registry-wide look-ahead test holds every registered
decision-maker to it), so this equals deciding each bar on its truncated history, and a catch-up over n new
bars costs O(n) decisions for decision-makers that compute only the rows >= start (rule-based ones compute
their vectorized history once per tick).

Replay mode without ``now``: the simulated clock advances one bar per tick. Live mode: ``now`` is the wall
clock. A bar is used only once complete (``now >= ts + interval``).
"""
from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from app.paper.execution import rebalance, update_position
from app.paper.ledger import Ledger
from app.paper.lock import renew_lease, run_lock
from app.paper.schema import Decision, Fill, Order, Position, ProcessedBar, Snapshot

if TYPE_CHECKING:
    import pandas as pd

    from app.paper.config import PaperConfig
    from app.paper.feeds import BarFeed

__all__ = ["LedgerInvariantError", "TickResult", "check_runnable", "client_order_id", "decide_new", "decision_maker",
           "tick"]

_TOL = 1e-9


class LedgerInvariantError(AssertionError):
    """The ledger's books do not balance (a bug): the bar's transaction is rolled back."""


@dataclass(frozen=True)
class TickResult:
    """What a tick did and where the run stands."""

    run: str
    bars_processed: int
    last_bar: datetime | None
    cash: float
    positions_value: float
    equity: float
    positions: dict[str, float]

    def line(self) -> str:
        """The one status line ``drex paper tick`` prints."""
        pos = ", ".join(f"{a} {q:.6g}" for a, q in self.positions.items()) or "none"
        last = self.last_bar.isoformat() if self.last_bar else "-"
        return (f"{self.run}: processed {self.bars_processed} bar(s), last bar {last}, equity {self.equity:,.2f}, "
                f"cash {self.cash:,.2f}, positions {pos}")


def client_order_id(run: str, asset: str, decision_ts: datetime) -> str:
    """Deterministic order id: a hash of (run, asset, decision bar timestamp), so a rerun finds, not resubmits."""
    key = f"{run}|{asset}|{decision_ts.astimezone(UTC).isoformat()}"
    return hashlib.sha256(key.encode()).hexdigest()[:32]


def _assets(bars: pd.DataFrame) -> list[str]:
    from markets.frames import assets

    return assets(bars)


def decide_new(dm: Any, bars: pd.DataFrame, start: int) -> list[tuple[dict[str, float], dict[str, Any]]]:
    """Target weights and trace records of rows ``start..T-1`` of ``bars`` in one ``decide`` call.

    Returns one ``({asset: weight}, {asset: trace record})`` pair per new row; NaN weights (warm-up) mean 0.
    A multi-asset trace record keyed by asset is split per asset; otherwise every asset gets the whole record.
    """
    import numpy as np
    import pandas as pd

    from backtest.decisions import decide, trace_record

    names = _assets(bars)
    decision = decide(dm, bars, start=start)
    w = decision.weights
    arr = (w[names] if isinstance(w, pd.DataFrame) and len(names) > 1 else w).to_numpy(dtype=np.float64)
    arr = np.nan_to_num(arr.reshape(len(w), len(names)), nan=0.0)
    out = []
    for i in range(len(w)):
        record = trace_record(decision.trace, i)
        if len(names) > 1 and set(names) <= set(record):
            shared = {k: v for k, v in record.items() if k not in names}
            expl = {a: {**record[a], **shared} if shared else record[a] for a in names}
        else:
            expl = {a: record for a in names}
        out.append(({a: float(arr[i, j]) + 0.0 for j, a in enumerate(names)}, expl))
    return out


def _prices(bars: pd.DataFrame, field: str) -> tuple[list[str], Any]:
    """Asset names and the ``(T, N)`` float64 array of one field (computed once per tick)."""
    from markets.frames import fields

    frame = fields(bars, field)
    return [str(a) for a in frame.columns], frame.to_numpy(dtype="float64")


@dataclass
class _Book:
    """The run's books after its last processed bar, exactly as the ledger holds them: loaded once per tick
    (``_load_book``), then kept in step with every committed bar, so a bar's transaction only writes.

    cash; positions: asset -> (qty, avg_price) (the rows of ``positions``); prev_ts / prev_targets: the last
    processed bar and its decided weights (executed at the next bar's open); fills: asset -> [sum qty,
    sum qty * price, sum fee] over all fills (what the books check derives cash and positions from).
    """

    cash: float
    positions: dict[str, tuple[float, float]]
    prev_ts: datetime | None
    prev_targets: dict[str, float]
    fills: dict[str, list[float]]


def _load_book(ledger: Ledger, run_id: int, cfg: PaperConfig) -> _Book:
    with ledger.session() as s:
        snap = s.scalars(select(Snapshot).where(Snapshot.run_id == run_id).order_by(Snapshot.ts.desc()).limit(1)).first()
        positions = {p.asset: (p.qty, p.avg_price) for p in s.scalars(select(Position).where(Position.run_id == run_id))}
        prev_ts = s.scalar(select(func.max(ProcessedBar.bar_ts)).where(ProcessedBar.run_id == run_id))
        prev = dict(s.execute(select(Decision.asset, Decision.target_weight).where(
            Decision.run_id == run_id, Decision.bar_ts == prev_ts)).all()) if prev_ts is not None else {}
        fills = {a: [q, n, f] for a, q, n, f in _fill_sums(s, run_id)}
    return _Book(snap.cash if snap else cfg.initial_cash, positions, prev_ts, prev, fills)


def _fill_sums(s: Session, run_id: int) -> list[tuple[str, float, float, float]]:
    return list(s.execute(
        select(Fill.asset, func.sum(Fill.qty), func.sum(Fill.qty * Fill.price), func.sum(Fill.fee))
        .where(Fill.run_id == run_id).group_by(Fill.asset)).all())


def _check_books(cfg: PaperConfig, ts: datetime, cash: float, positions: dict[str, tuple[float, float]],
                 fills: dict[str, list[float]], equity: float, pv: float, close: dict[str, float]) -> None:
    """cash + positions value == equity, positions == sum of fills, cash == initial - net fills - fees."""
    scale = max(1.0, abs(cfg.initial_cash), abs(equity))
    value = sum(q * close[a] for a, (q, _) in positions.items())
    if abs(cash + value - equity) > _TOL * scale or abs(value - pv) > _TOL * scale:
        raise LedgerInvariantError(f"bar {ts}: cash {cash!r} + positions value {value!r} != equity {equity!r}")
    derived = cfg.initial_cash - sum(n for _, n, _ in fills.values()) - sum(f for _, _, f in fills.values())
    if abs(derived - cash) > _TOL * scale:
        raise LedgerInvariantError(f"bar {ts}: cash {cash!r} but the fills imply {derived!r}")
    for asset, (qty, _, _) in fills.items():
        held = positions.get(asset, (0.0, 0.0))[0]
        if abs(qty - held) > _TOL * max(1.0, abs(qty)):
            raise LedgerInvariantError(f"bar {ts}: position {asset} {held!r} but fills sum to {qty!r}")


def _check_db(s: Session, run_id: int, cfg: PaperConfig, ts: datetime, book_cash: float, equity: float, pv: float,
              close: dict[str, float]) -> None:
    """The books check on what the database holds inside the bar's transaction (after a flush)."""
    positions = {p.asset: (p.qty, p.avg_price) for p in s.scalars(select(Position).where(Position.run_id == run_id))}
    fills = {a: [q, n, f] for a, q, n, f in _fill_sums(s, run_id)}
    _check_books(cfg, ts, book_cash, positions, fills, equity, pv, close)


def _process_bar(ledger: Ledger, run_id: int, name: str, cfg: PaperConfig, bars: pd.DataFrame, i: int,
                 decision: tuple[dict[str, float], dict[str, Any]], book: _Book,
                 prices: dict[str, tuple[list[str], Any]] | None = None, *, verify_db: bool = True) -> bool:
    """Process bar ``i`` of ``bars`` in one transaction; False if it was already processed.

    ``decision``: this bar's ``(targets, trace records)`` (``decide_new``). ``book``: the books before the bar
    (``_load_book``), updated in place once the transaction commits. ``prices``: ``{"open": (assets, (T, N)
    array), "close": ...}`` of ``bars``, precomputed by the caller. The books are checked in memory at every
    bar and, with ``verify_db``, against what the database holds inside the transaction (the tick does it on
    its first and last bar).
    """
    ts = bars.index[i].to_pydatetime()
    targets, explanations = decision
    prices = prices or {f: _prices(bars, f) for f in ("open", "close")}
    opens, closes = ({a: float(v) for a, v in zip(prices[f][0], prices[f][1][i])} for f in ("open", "close"))
    cash, positions = book.cash, dict(book.positions)
    fills_sum = {a: list(v) for a, v in book.fills.items()}
    now = datetime.now(UTC)
    with ledger.session() as s, s.begin():
        if s.scalar(select(ProcessedBar.id).where(ProcessedBar.run_id == run_id, ProcessedBar.bar_ts == ts)):
            return False
        s.add(ProcessedBar(run_id=run_id, bar_ts=ts, processed_at=now))
        sim = []
        if book.prev_ts is not None:
            cash, sim = rebalance(cash, {a: q for a, (q, _) in positions.items()}, book.prev_targets, opens,
                                  fees=cfg.fees, slippage=cfg.slippage, band=cfg.band, borrow=cfg.borrow)
        orders = [Order(run_id=run_id, client_order_id=client_order_id(name, f.asset, book.prev_ts), asset=f.asset,
                        decision_ts=book.prev_ts, submitted_ts=ts, side=f.side, qty=f.qty, status=f.status,
                        reason=f.reason) for f in sim]
        s.add_all(orders)
        if orders:
            s.flush()  # the orders' ids, for their fills
        touched = set()
        for order, f in zip(orders, sim):
            if f.filled == 0:
                continue
            s.add(Fill(order_id=order.id, run_id=run_id, asset=f.asset, ts=ts, price=f.price, qty=f.filled, fee=f.fee))
            qty, avg = positions.get(f.asset, (0.0, 0.0))
            positions[f.asset] = update_position(qty, avg, f.filled, f.price)
            acc = fills_sum.setdefault(f.asset, [0.0, 0.0, 0.0])
            acc[0] += f.filled
            acc[1] += f.filled * f.price
            acc[2] += f.fee
            touched.add(f.asset)
        for a in sorted(touched):
            qty, avg = positions[a]
            where = (Position.run_id == run_id) & (Position.asset == a)
            if qty == 0:
                del positions[a]
                s.execute(delete(Position).where(where))
            elif a in book.positions:
                s.execute(update(Position).where(where).values(qty=qty, avg_price=avg, updated_ts=ts))
            else:
                s.add(Position(run_id=run_id, asset=a, qty=qty, avg_price=avg, updated_ts=ts))
        s.add_all(Decision(run_id=run_id, bar_ts=ts, asset=a, target_weight=targets[a], explanation=explanations[a])
                  for a in sorted(targets))
        pv = sum(q * closes[a] for a, (q, _) in positions.items())
        s.add(Snapshot(run_id=run_id, ts=ts, cash=cash, positions_value=pv, equity=cash + pv))
        _check_books(cfg, ts, cash, positions, fills_sum, cash + pv, pv, closes)
        if verify_db:
            s.flush()
            _check_db(s, run_id, cfg, ts, cash, cash + pv, pv, closes)
    book.cash, book.positions, book.fills = cash, positions, fills_sum
    book.prev_ts, book.prev_targets = ts, dict(targets)
    return True


def decision_maker(cfg: PaperConfig) -> Any:
    """The run's decision-maker: plugins loaded (the config's modules, entry points), parameters bound and
    checked, built once per process."""
    from backtest.decisions import build, discover

    discover(tuple(cfg.plugins))
    return build(cfg.strategy, cfg.params)


def check_runnable(cfg: PaperConfig) -> str:
    """Check at ``paper init`` everything a tick will need; returns one line describing the data.

    The decision-maker resolves and its parameters bind and pass its checks; the data spec parses; a replay
    run's bars load (offline, as every tick loads them) and hold a bar at or after ``start``. A live run's
    source is only parsed (its bars are fetched on each tick). Errors are one-line ``ValueError``/``KeyError``.
    """
    from markets.sources import SOURCES, parse_spec

    try:
        decision_maker(cfg)
    except (KeyError, ValueError) as exc:
        msg = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
        raise ValueError(f"strategy {cfg.strategy!r} with params {cfg.params}: {msg}") from None
    scheme, _, _ = parse_spec(cfg.data)
    if cfg.mode == "live":
        if not SOURCES[scheme].network:
            raise ValueError(f"data {cfg.data!r}: live mode needs a network source (yf:, ccxt:); use mode: replay "
                             "for stored bars")
        return f"live {cfg.data}"
    from app.paper.feeds import feed_for

    bars = feed_for(cfg).bars
    later = bars.index[bars.index >= cfg.start] if cfg.start is not None else bars.index
    if len(later) == 0:
        raise ValueError(f"data {cfg.data!r} ends {bars.index[-1]:%Y-%m-%d %H:%M} UTC, before start "
                         f"{cfg.start:%Y-%m-%d %H:%M}: move start earlier or use other data")
    return f"{len(later)} bars to replay, {later[0]:%Y-%m-%d %H:%M} .. {later[-1]:%Y-%m-%d %H:%M} UTC"


def tick(ledger: Ledger, name: str, *, now: datetime | None = None, feed: BarFeed | None = None) -> TickResult:
    """Process every newly completed bar of run ``name`` (replay without ``now``: the next bar only).

    Raises ``KeyError`` for an unknown run, ``app.paper.lock.RunLocked`` while another tick holds the run.
    """
    from app.paper.feeds import ReplayFeed, feed_for

    cfg = ledger.config(name)
    dm = decision_maker(cfg)
    with ledger.session() as s:
        run_id = ledger.run_id(s, name)
    n_done = 0
    with run_lock(ledger, name, lease_seconds=cfg.lease_seconds) as owner:
        feed = feed if feed is not None else feed_for(cfg)
        done = ledger.processed_bars(name)
        last = done[-1] if done else None
        if now is None and isinstance(feed, ReplayFeed):
            now = feed.next_close(after=last, start=cfg.start)
        elif now is None:
            now = datetime.now(UTC)
        if now is not None:
            bars = feed.completed_bars(now)
            first = _first_new_row(bars, last, cfg.start)
            decisions = decide_new(dm, bars, first) if first < len(bars) else []
            prices = {f: _prices(bars, f) for f in ("open", "close")}
            book = _load_book(ledger, run_id, cfg)
            renewed = time.monotonic()
            rows = range(first, len(bars))
            for k, (i, decision) in enumerate(zip(rows, decisions)):
                if time.monotonic() - renewed > cfg.lease_seconds / 4:  # keep the DB lease well ahead of expiry
                    renew_lease(ledger, run_id, owner, cfg.lease_seconds)
                    renewed = time.monotonic()
                n_done += _process_bar(ledger, run_id, name, cfg, bars, i, decision, book, prices,
                                       verify_db=k in (0, len(rows) - 1))
    ledger.record_tick(name)
    summary = ledger.run_summary(name)
    return TickResult(name, n_done, summary.last_bar, summary.cash, summary.positions_value, summary.equity,
                      summary.positions)


def _first_new_row(bars: pd.DataFrame, last: datetime | None, start: datetime | None) -> int:
    """Index of the first bar after the last processed one and at or after the run's start."""
    i = 0 if last is None else int(bars.index.searchsorted(last, side="right"))
    if start is not None:
        i = max(i, int(bars.index.searchsorted(start, side="left")))
    return i
