"""The durable paper-trading ledger: open it, create runs, and read it back as DataFrames.

Read API (what the dashboard's "Paper trading" page uses; every method returns a ``pandas.DataFrame``
except ``run_summary``, times are tz-aware UTC)::

    from app.paper.ledger import open_ledger
    with open_ledger() as ledger:                 # or open_ledger("postgresql+psycopg://...")
        ledger.list_runs()         # name, status, mode, strategy, data, created_at, last_tick_at, last_bar, equity
        ledger.run_summary(name)   # RunSummary: name, status, config, cash, positions_value, equity, last_bar, ...
        ledger.positions(name)     # asset, qty, avg_price, updated_ts
        ledger.orders(name)        # client_order_id, asset, decision_ts, submitted_ts, side, qty, status, reason
        ledger.fills(name)         # client_order_id, asset, ts, price, qty (signed), fee
        ledger.decisions(name)     # bar_ts, asset, target_weight, explanation (JSON-able)
        ledger.equity_curve(name)  # index ts; columns cash, positions_value, equity

The default ledger is SQLite at ``$DREX_HOME/paper/paper.sqlite`` (WAL journal, so the dashboard can read
while a tick writes); any SQLAlchemy URL works. ``open_ledger(url, readonly=True)`` (the read commands: list,
status, report, the dashboard) opens a SQLite file read-only and never sets a pragma that writes, so a
read-only ledger file or folder can still be inspected. Database failures that are the user's to fix (a
corrupt or read-only file, a missing folder, a full disk, a bad URL) raise ``LedgerError``: one line naming the
file and what to do. The schema and its versioning live in ``schema.py``; the
write path (one transaction per bar) in ``engine.py``; the run lock in ``lock.py``.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

from sqlalchemy import create_engine, delete, event, func, select
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.orm import Session

from app.paper.schema import (
    Decision,
    Fill,
    Order,
    Position,
    ProcessedBar,
    Run,
    RunLease,
    Snapshot,
    ensure_schema,
)

if TYPE_CHECKING:
    import pandas as pd

    from app.paper.config import PaperConfig

__all__ = ["Ledger", "LedgerError", "RunSummary", "check_run_name", "default_ledger_url", "open_ledger"]

_RUN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")


class LedgerError(ValueError):
    """The ledger cannot be used as asked (corrupt, read-only, missing folder, full disk, bad URL): one line
    naming the file and the fix."""


def check_run_name(name: str) -> str:
    """A run name: 1-100 characters, letters, digits, ``.``, ``_`` and ``-``, starting with a letter or digit
    (it names files and folders: reports, lock files)."""
    if not isinstance(name, str) or not _RUN_NAME.fullmatch(name):
        raise ValueError(f"bad run name {name!r}: use 1-100 letters, digits, '.', '_' or '-', starting with a "
                         "letter or digit (e.g. sp500-trend)")
    return name


def default_ledger_url() -> str:
    """``sqlite:///$DREX_HOME/paper/paper.sqlite``."""
    from markets.home import data_home

    return f"sqlite:///{data_home('paper') / 'paper.sqlite'}"


@dataclass(frozen=True)
class RunSummary:
    """The state of a run after its last processed bar."""

    name: str
    status: str
    mode: str
    config: dict[str, Any]
    created_at: datetime
    last_tick_at: datetime | None
    last_error: str | None
    bars_processed: int
    last_bar: datetime | None
    cash: float
    positions_value: float
    equity: float
    positions: dict[str, float]


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()


def _sqlite_readonly_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()  # nothing here writes (journal_mode=WAL would): a read-only file opens
    cur.execute("PRAGMA query_only=ON")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()


# sqlite messages -> what the user should do (``{where}`` is the file)
_SQLITE_FIXES = (
    (("not a database", "malformed", "file is encrypted"),
     ("ledger {where} is corrupt ({why}): restore it from a backup, or move it aside and start a new ledger "
     "(drex paper init creates one at that path; or pass --ledger sqlite:///OTHER.sqlite)")),
    (("readonly", "read-only"),
     ("ledger {where} is read-only ({why}): the read commands (list, status, report) work; to tick or init, "
     "make the file and its folder writable, or copy it and pass --ledger sqlite:///COPY.sqlite")),
    (("disk is full", "database or disk is full"),
     "ledger {where}: the disk is full ({why}): free some space; the ledger is intact (one transaction per bar)"),
    (("unable to open", "cannot open"),
     ("cannot open ledger {where} ({why}): check that its folder exists and is readable and writable, or pass "
     "--ledger sqlite:///PATH/ledger.sqlite")),
    (("disk i/o error",),
     "ledger {where}: disk I/O error ({why}): check the disk; restore the file from a backup if this repeats"),
)


def _convert_error(where: str):
    """A ``handle_error`` listener: sqlite failures the user can fix become ``LedgerError`` (one line)."""

    def handle(context: Any) -> None:
        orig = context.original_exception
        why = str(orig).splitlines()[0] if str(orig).strip() else type(orig).__name__
        low = why.lower()
        db = Path(where)
        if "unable to open" in low and db.is_file() and not os.access(db.parent, os.W_OK):
            raise LedgerError(
                f"ledger {where} is read-only (its folder is not writable; SQLite creates {db.name}-wal and "
                f"{db.name}-shm there to write): the read commands (list, status, report) work; to tick or init, "
                "make the folder writable, or copy the file and pass --ledger sqlite:///COPY.sqlite") from orig
        for keys, text in _SQLITE_FIXES:
            if any(k in low for k in keys):
                raise LedgerError(text.format(where=where, why=why)) from orig

    return handle


class Ledger:
    """A connection to one ledger database (many runs). Use ``open_ledger``; close it (or use ``with``).

    ``readonly=True`` opens a SQLite file read-only (``mode=ro``; an unwritable folder falls back to
    ``immutable=1``) with no writing pragmas; writes then fail with ``LedgerError``."""

    def __init__(self, url: str, *, readonly: bool = False):
        self.url = url
        self.readonly = readonly
        try:
            parsed = make_url(url)
        except ArgumentError:
            raise LedgerError(f"bad ledger URL {url!r}: use sqlite:///PATH/ledger.sqlite or "
                              "postgresql+psycopg://USER@HOST/DB (--ledger or DREX_PAPER_LEDGER)") from None
        kwargs: dict[str, Any] = {}
        db = parsed.database if parsed.get_backend_name() == "sqlite" else None
        where = db or url
        if parsed.get_backend_name() == "sqlite":
            kwargs["connect_args"] = {"timeout": 30}
            if db and db != ":memory:" and not db.startswith("file:"):
                folder = Path(db).expanduser().resolve().parent
                if not folder.is_dir():
                    raise LedgerError(f"ledger folder {folder} does not exist: create it, or pass another "
                                      "--ledger sqlite:///PATH/ledger.sqlite")
                if readonly and Path(db).is_file() and Path(db).stat().st_size > 0:  # else: create the schema
                    kwargs["creator"] = _readonly_connect(Path(db).expanduser().resolve())
        try:
            self.engine: Engine = create_engine(parsed, **kwargs)
        except ArgumentError as exc:  # NoSuchModuleError included: an unknown dialect or driver
            raise LedgerError(f"bad ledger URL {url!r} ({exc}): use sqlite:///PATH/ledger.sqlite or "
                              "postgresql+psycopg://USER@HOST/DB") from None
        except ImportError as exc:
            raise LedgerError(f"ledger URL {url!r} needs the database driver {exc.name!r}: pip install it, or "
                              "use sqlite:///PATH/ledger.sqlite") from None
        event.listen(self.engine, "handle_error", _convert_error(where))
        if self.engine.dialect.name == "sqlite":
            pragmas = _sqlite_readonly_pragmas if "creator" in kwargs else _sqlite_pragmas
            event.listen(self.engine, "connect", pragmas)
        self.schema_version = ensure_schema(self.engine, url_for_errors=url, readonly="creator" in kwargs)

    # -- plumbing --------------------------------------------------------------------------------------------
    @property
    def sqlite_path(self) -> Path | None:
        """The database file of a file-backed SQLite ledger, else None."""
        if self.engine.dialect.name != "sqlite":
            return None
        db = self.engine.url.database
        return Path(db) if db and db != ":memory:" else None

    def session(self) -> Session:
        return Session(self.engine, expire_on_commit=False)

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def run_id(self, session: Session, name: str) -> int:
        """The id of run ``name``; an unknown name lists the runs there are."""
        rid = session.scalar(select(Run.id).where(Run.name == name))
        if rid is None:
            names = session.scalars(select(Run.name).order_by(Run.name)).all()
            known = ", ".join(names) if names else "none yet"
            raise KeyError(f"no paper run named {name!r} in {self.url} (runs: {known}); create it with `drex paper init`")
        return rid

    # -- runs ------------------------------------------------------------------------------------------------
    def create_run(self, name: str, config: PaperConfig, *, force: bool = False) -> None:
        """Create run ``name``; an existing run is refused unless ``force`` (which deletes its history)."""
        check_run_name(name)
        now = datetime.now(UTC)
        if config.mode == "live" and config.start is None:  # live runs trade bars that close after init
            config = config.model_copy(update={"start": now})
        with self.session() as s, s.begin():
            old = s.scalar(select(Run).where(Run.name == name))
            if old is not None:
                if not force:
                    raise ValueError(f"paper run {name!r} already exists in {self.url}: pick another name or pass --force")
                for table in (Fill, Order, Decision, Position, Snapshot, ProcessedBar, RunLease):
                    s.execute(delete(table).where(table.run_id == old.id))
                s.delete(old)
                s.flush()
            run = Run(name=name, config=config.to_json(), status="created", created_at=now, updated_at=now)
            s.add(run)
            s.flush()
            s.add(RunLease(run_id=run.id))

    def config(self, name: str) -> PaperConfig:
        """The validated config a run was created with."""
        from app.paper.config import validate_config

        with self.session() as s:
            run = s.get(Run, self.run_id(s, name))
            return validate_config(run.config, source=f"run {name!r} config")

    def set_status(self, name: str, status: str, *, error: str | None = None) -> None:
        """Set a run's status (created | active | running | failed | stopped) and last error."""
        with self.session() as s, s.begin():
            run = s.get(Run, self.run_id(s, name))
            run.status, run.updated_at, run.last_error = status, datetime.now(UTC), error

    def record_tick(self, name: str, *, error: str | None = None) -> None:
        """Stamp a tick's end: ``last_tick_at``, ``last_error``; a failure marks the run ``failed`` (unless a
        ``paper run`` loop owns it: it stays ``running``), a success turns ``created``/``failed`` into ``active``."""
        now = datetime.now(UTC)
        with self.session() as s, s.begin():
            run = s.get(Run, self.run_id(s, name))
            run.last_tick_at, run.updated_at, run.last_error = now, now, error
            if error is not None and run.status != "running":
                run.status = "failed"
            elif error is None and run.status in ("created", "failed"):
                run.status = "active"

    def processed_bars(self, name: str) -> list[datetime]:
        """Timestamps of the bars already processed, ascending."""
        with self.session() as s:
            rid = self.run_id(s, name)
            q = select(ProcessedBar.bar_ts).where(ProcessedBar.run_id == rid).order_by(ProcessedBar.bar_ts)
            return list(s.scalars(q))

    # -- read API (DataFrames) -------------------------------------------------------------------------------
    def _frame(self, name: str, query_fn, columns: list[str]) -> pd.DataFrame:
        import pandas as pd

        with self.session() as s:
            rows = s.execute(query_fn(self.run_id(s, name))).all()
        frame = pd.DataFrame([tuple(r) for r in rows], columns=columns)
        for col in columns:
            if col.endswith("_ts") or col in ("ts", "created_at", "last_tick_at", "last_bar"):
                frame[col] = pd.to_datetime(frame[col], utc=True)
        return frame

    def list_runs(self) -> pd.DataFrame:
        """One row per run: name, status, mode, strategy, data, created_at, last_tick_at, last_bar, equity."""
        import pandas as pd

        rows = []
        with self.session() as s:
            for run in s.scalars(select(Run).order_by(Run.name)):
                last = s.execute(
                    select(Snapshot.ts, Snapshot.equity).where(Snapshot.run_id == run.id).order_by(Snapshot.ts.desc()).limit(1)
                ).first()
                cfg = run.config
                equity = last[1] if last else float(cfg.get("initial_cash", float("nan")))
                rows.append(
                    (run.name, run.status, cfg.get("mode"), cfg.get("strategy"), cfg.get("data"), run.created_at,
                     run.last_tick_at, last[0] if last else None, equity)
                )
        cols = ["name", "status", "mode", "strategy", "data", "created_at", "last_tick_at", "last_bar", "equity"]
        frame = pd.DataFrame(rows, columns=cols)
        for col in ("created_at", "last_tick_at", "last_bar"):
            frame[col] = pd.to_datetime(frame[col], utc=True)
        return frame

    def run_summary(self, name: str) -> RunSummary:
        """Cash, positions value, equity and positions after the last processed bar (initial cash before any)."""
        with self.session() as s:
            rid = self.run_id(s, name)
            run = s.get(Run, rid)
            snap = s.scalars(select(Snapshot).where(Snapshot.run_id == rid).order_by(Snapshot.ts.desc()).limit(1)).first()
            n_bars = s.scalar(select(func.count()).select_from(ProcessedBar).where(ProcessedBar.run_id == rid))
            pos = dict(s.execute(select(Position.asset, Position.qty).where(Position.run_id == rid).order_by(Position.asset)).all())
        cash0 = float(run.config["initial_cash"])
        return RunSummary(
            name=name, status=run.status, mode=run.config["mode"], config=run.config, created_at=run.created_at,
            last_tick_at=run.last_tick_at, last_error=run.last_error, bars_processed=int(n_bars or 0),
            last_bar=snap.ts if snap else None, cash=snap.cash if snap else cash0,
            positions_value=snap.positions_value if snap else 0.0, equity=snap.equity if snap else cash0,
            positions=pos,
        )

    def positions(self, name: str) -> pd.DataFrame:
        """Open positions: asset, qty (signed), avg_price, updated_ts."""
        cols = ["asset", "qty", "avg_price", "updated_ts"]
        return self._frame(
            name,
            lambda rid: select(Position.asset, Position.qty, Position.avg_price, Position.updated_ts)
            .where(Position.run_id == rid).order_by(Position.asset),
            cols,
        )

    def orders(self, name: str) -> pd.DataFrame:
        """All orders: client_order_id, asset, decision_ts, submitted_ts, side, qty, status, reason."""
        cols = ["client_order_id", "asset", "decision_ts", "submitted_ts", "side", "qty", "status", "reason"]
        return self._frame(
            name,
            lambda rid: select(Order.client_order_id, Order.asset, Order.decision_ts, Order.submitted_ts, Order.side,
                               Order.qty, Order.status, Order.reason)
            .where(Order.run_id == rid).order_by(Order.submitted_ts, Order.asset),
            cols,
        )

    def fills(self, name: str) -> pd.DataFrame:
        """All fills: client_order_id, asset, ts, price (incl. slippage), qty (signed), fee."""
        cols = ["client_order_id", "asset", "ts", "price", "qty", "fee"]
        return self._frame(
            name,
            lambda rid: select(Order.client_order_id, Fill.asset, Fill.ts, Fill.price, Fill.qty, Fill.fee)
            .join(Order, Order.id == Fill.order_id).where(Fill.run_id == rid).order_by(Fill.ts, Fill.asset),
            cols,
        )

    def decisions(self, name: str) -> pd.DataFrame:
        """All decisions: bar_ts, asset, target_weight, explanation."""
        cols = ["bar_ts", "asset", "target_weight", "explanation"]
        return self._frame(
            name,
            lambda rid: select(Decision.bar_ts, Decision.asset, Decision.target_weight, Decision.explanation)
            .where(Decision.run_id == rid).order_by(Decision.bar_ts, Decision.asset),
            cols,
        )

    def equity_curve(self, name: str) -> pd.DataFrame:
        """Snapshots indexed by bar ``ts``: cash, positions_value, equity (valued at each bar's close)."""
        frame = self._frame(
            name,
            lambda rid: select(Snapshot.ts, Snapshot.cash, Snapshot.positions_value, Snapshot.equity)
            .where(Snapshot.run_id == rid).order_by(Snapshot.ts),
            ["ts", "cash", "positions_value", "equity"],
        )
        return frame.set_index("ts")


def _readonly_connect(path: Path):
    """A sqlite3 connection factory opening ``path`` read-only: ``mode=ro``, or ``immutable=1`` when the
    WAL's shared-memory file cannot be created (a read-only folder)."""
    import sqlite3
    from urllib.parse import quote

    def connect() -> sqlite3.Connection:
        base = f"file:{quote(str(path))}"
        try:
            conn = sqlite3.connect(f"{base}?mode=ro", uri=True, timeout=30, check_same_thread=False)
            conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
            return conn
        except sqlite3.OperationalError as exc:
            if "unable to open" not in str(exc) and "readonly" not in str(exc):
                raise
            return sqlite3.connect(f"{base}?mode=ro&immutable=1", uri=True, timeout=30, check_same_thread=False)

    return connect


def open_ledger(url: str | None = None, *, readonly: bool = False) -> Ledger:
    """Open the ledger at ``url`` (default: ``default_ledger_url()``), creating or migrating the schema if
    needed; ``readonly=True`` for commands that only read (module doc)."""
    return Ledger(url or default_ledger_url(), readonly=readonly)
