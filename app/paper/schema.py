"""The paper ledger's tables (SQLAlchemy 2 ORM), its schema version and the migration hook.

Portable SQL only (SQLite by default, PostgreSQL supported): no SQLite pragmas outside the SQLite connect
hook in ``ledger.py``, JSON through ``sqlalchemy.JSON``, timestamps stored as naive UTC and handed back
tz-aware UTC (``UTCDateTime``), money as float64 (``Double``; the cash + positions = equity invariant is
checked with a tolerance, see ``engine.py``).

Tables (one row means):
    schema_version   the ledger's schema version (exactly one row)
    runs             a paper run: name (unique), config JSON, status, created/updated/last tick, last error
    run_leases       the DB-level lock of a run: owner, pid, host, expiry (usable on PostgreSQL)
    processed_bars   a bar fully processed for a run (unique (run, bar_ts)): the per-bar commit marker
    decisions        the target weight of one asset decided at a bar's close, with the strategy's explanation
    orders           a market order at the next bar's open; client_order_id = hash(run, asset, decision bar) UNIQUE
    fills            the fill of an order: price incl. slippage, qty (signed), fee
    positions        the open position of a run in an asset: qty (signed), average entry price
    snapshots        cash, positions value (at the bar's close) and equity after a bar (unique (run, ts))

Migrations: ``MIGRATIONS[v]`` upgrades a ledger from version ``v`` to ``v + 1`` inside one transaction;
``ensure_schema`` applies them in order, and refuses a ledger newer than ``SCHEMA_VERSION``.
"""
from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    DateTime,
    Double,
    Engine,
    ForeignKey,
    Integer,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    inspect,
    select,
)
from sqlalchemy.engine import Connection
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

__all__ = [
    "MIGRATIONS",
    "SCHEMA_VERSION",
    "Base",
    "Decision",
    "Fill",
    "Order",
    "Position",
    "ProcessedBar",
    "Run",
    "RunLease",
    "SchemaVersion",
    "Snapshot",
    "ensure_schema",
]

SCHEMA_VERSION = 1

MIGRATIONS: dict[int, Callable[[Connection], None]] = {}
"""``MIGRATIONS[v](connection)`` upgrades the tables from version v to v + 1 (add one per schema change)."""


class UTCDateTime(TypeDecorator):
    """Stored as naive UTC (portable across SQLite and PostgreSQL), returned as tz-aware UTC."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if hasattr(value, "to_pydatetime"):
            value = value.to_pydatetime()
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value} given to the ledger: pass a UTC-aware time")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


class Base(DeclarativeBase):
    pass


class SchemaVersion(Base):
    __tablename__ = "schema_version"
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    applied_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Run(Base):
    __tablename__ = "runs"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    config: Mapped[dict] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(20))  # created | running | stopped | failed
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_tick_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)


class RunLease(Base):
    __tablename__ = "run_leases"
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True)
    owner: Mapped[str | None] = mapped_column(String(200), nullable=True)
    pid: Mapped[int | None] = mapped_column(Integer, nullable=True)
    host: Mapped[str | None] = mapped_column(String(200), nullable=True)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class ProcessedBar(Base):
    __tablename__ = "processed_bars"
    __table_args__ = (UniqueConstraint("run_id", "bar_ts", name="uq_processed_run_bar"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), index=True)
    bar_ts: Mapped[datetime] = mapped_column(UTCDateTime)
    processed_at: Mapped[datetime] = mapped_column(UTCDateTime)  # wall clock


class Decision(Base):
    __tablename__ = "decisions"
    __table_args__ = (UniqueConstraint("run_id", "bar_ts", "asset", name="uq_decision_run_bar_asset"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), index=True)
    bar_ts: Mapped[datetime] = mapped_column(UTCDateTime)
    asset: Mapped[str] = mapped_column(String(100))
    target_weight: Mapped[float] = mapped_column(Double)
    explanation: Mapped[Any] = mapped_column(JSON, nullable=True)


class Order(Base):
    __tablename__ = "orders"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), index=True)
    client_order_id: Mapped[str] = mapped_column(String(64), unique=True)
    asset: Mapped[str] = mapped_column(String(100))
    decision_ts: Mapped[datetime] = mapped_column(UTCDateTime)  # bar whose close decided it
    submitted_ts: Mapped[datetime] = mapped_column(UTCDateTime)  # open of the next bar
    side: Mapped[str] = mapped_column(String(4))  # buy | sell
    qty: Mapped[float] = mapped_column(Double)  # requested, unsigned
    status: Mapped[str] = mapped_column(String(10))  # filled | partial | rejected
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)


class Fill(Base):
    __tablename__ = "fills"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id", ondelete="CASCADE"), unique=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), index=True)
    asset: Mapped[str] = mapped_column(String(100))
    ts: Mapped[datetime] = mapped_column(UTCDateTime)
    price: Mapped[float] = mapped_column(Double)  # incl. slippage
    qty: Mapped[float] = mapped_column(Double)  # signed: + bought, - sold
    fee: Mapped[float] = mapped_column(Double)


class Position(Base):
    __tablename__ = "positions"
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True)
    asset: Mapped[str] = mapped_column(String(100), primary_key=True)
    qty: Mapped[float] = mapped_column(Double)  # signed
    avg_price: Mapped[float] = mapped_column(Double)
    updated_ts: Mapped[datetime] = mapped_column(UTCDateTime)


class Snapshot(Base):
    __tablename__ = "snapshots"
    __table_args__ = (UniqueConstraint("run_id", "ts", name="uq_snapshot_run_ts"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), index=True)
    ts: Mapped[datetime] = mapped_column(UTCDateTime)  # the bar's timestamp (valued at its close)
    cash: Mapped[float] = mapped_column(Double)
    positions_value: Mapped[float] = mapped_column(Double)
    equity: Mapped[float] = mapped_column(Double)


def _stored_version(conn: Connection) -> int | None:
    if not inspect(conn).has_table(SchemaVersion.__tablename__):
        return None
    versions = conn.execute(select(SchemaVersion.version)).scalars().all()
    if len(versions) != 1:
        raise ValueError(
            f"ledger schema_version table holds {len(versions)} rows, expected 1: the ledger is damaged; "
            "restore it from a backup or start a new ledger URL"
        )
    return int(versions[0])


def ensure_schema(engine: Engine, *, url_for_errors: str = "", readonly: bool = False) -> int:
    """Create the tables of an empty ledger, or migrate an older one; return the schema version.

    A ledger written by a newer DREX (version > ``SCHEMA_VERSION``) is refused with a clear error.
    ``readonly``: only check (an empty or outdated ledger is refused: a write command creates or migrates it).
    """
    now = datetime.now(UTC)
    with engine.begin() as conn:
        version = _stored_version(conn)
        if readonly and (version is None or version < SCHEMA_VERSION):
            tables = inspect(conn).get_table_names()
            if version is None and tables:
                raise ValueError(f"ledger {url_for_errors} has tables {tables[:5]} but no schema_version row: it "
                                 "is not a DREX paper ledger; use another ledger URL")
            state = "has no tables" if version is None else f"has schema version {version}"
            raise ValueError(f"ledger {url_for_errors} {state} and is opened read-only: run a write command "
                             "(drex paper init or tick) on it first, or pass another --ledger")
        if version is None:
            existing = [t for t in Base.metadata.tables if inspect(conn).has_table(t)]
            if existing:
                raise ValueError(
                    f"ledger {url_for_errors} has tables {existing} but no schema_version row: "
                    "it is not a DREX paper ledger; use another ledger URL"
                )
            Base.metadata.create_all(conn)
            conn.execute(SchemaVersion.__table__.insert().values(version=SCHEMA_VERSION, applied_at=now))
            return SCHEMA_VERSION
    if version > SCHEMA_VERSION:
        raise ValueError(
            f"ledger {url_for_errors} has schema version {version}, newer than this DREX supports "
            f"({SCHEMA_VERSION}): upgrade drex-trader to open it"
        )
    while version < SCHEMA_VERSION:
        step = MIGRATIONS.get(version)
        if step is None:
            raise ValueError(
                f"ledger {url_for_errors} has schema version {version} and no migration to "
                f"{version + 1} exists: open it with the DREX release that wrote it"
            )
        with engine.begin() as conn:
            step(conn)
            conn.execute(SchemaVersion.__table__.update().values(version=version + 1, applied_at=now))
        version += 1
    return version
