"""The ledger: schema versioning and migrations, unique client order ids, runs, the read API and the run lock."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, text, update
from sqlalchemy.exc import IntegrityError

from app.paper import lock as lockmod
from app.paper import schema
from app.paper.config import validate_config
from app.paper.engine import client_order_id, tick
from app.paper.ledger import open_ledger
from app.paper.lock import RunLocked, run_lock
from app.paper.schema import Order, RunLease
from tests.app.test_paper_support import cli, make_bars, write_bars, write_config

H = timedelta(hours=1)


@pytest.fixture
def env(tmp_path):
    bars = make_bars(40, seed=2)
    path = write_bars(tmp_path / "bars.parquet", bars)
    cfg = validate_config({"strategy": "trend", "params": {"fast": 3, "slow": 8}, "data": f"file:{path}",
                           "interval": "1h", "initial_cash": 10_000.0})
    url = f"sqlite:///{tmp_path / 'ledger.sqlite'}"
    ledger = open_ledger(url)
    yield bars, cfg, ledger, url
    ledger.close()


def test_schema_version_row_and_tables(env):
    _, _, ledger, url = env
    with ledger.engine.connect() as conn:
        assert conn.execute(text("SELECT version FROM schema_version")).scalars().all() == [schema.SCHEMA_VERSION]
    for table in ("runs", "processed_bars", "decisions", "orders", "fills", "positions", "snapshots", "run_leases"):
        assert table in schema.Base.metadata.tables
    open_ledger(url).close()  # reopening an up-to-date ledger changes nothing
    with ledger.engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM schema_version")).scalar() == 1


def test_newer_schema_version_is_refused(env):
    _, _, ledger, url = env
    with ledger.engine.begin() as conn:
        conn.execute(text("UPDATE schema_version SET version = 99"))
    with pytest.raises(ValueError, match=r"schema version 99, newer than this DREX supports \(1\): upgrade"):
        open_ledger(url)


def test_migration_hook_upgrades_in_order(env, monkeypatch):
    _, _, _, url = env
    calls = []

    def to_v2(conn):
        calls.append(2)
        conn.execute(text("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)"))

    monkeypatch.setattr(schema, "SCHEMA_VERSION", 2)
    monkeypatch.setitem(schema.MIGRATIONS, 1, to_v2)
    migrated = open_ledger(url)
    assert migrated.schema_version == 2 and calls == [2]
    with migrated.engine.connect() as conn:
        assert conn.execute(text("SELECT version FROM schema_version")).scalar() == 2
        assert conn.execute(text("SELECT count(*) FROM notes")).scalar() == 0
    migrated.close()
    monkeypatch.setattr(schema, "SCHEMA_VERSION", 3)  # no migration 2 -> 3 registered
    with pytest.raises(ValueError, match="no migration to 3"):
        open_ledger(url)


def test_foreign_database_is_refused(tmp_path):
    import sqlite3

    db = tmp_path / "other.sqlite"
    sqlite3.connect(db).execute("CREATE TABLE runs (x INTEGER)").connection.commit()
    with pytest.raises(ValueError, match="not a DREX paper ledger"):
        open_ledger(f"sqlite:///{db}")


def test_client_order_ids_are_deterministic_and_unique(env):
    bars, cfg, ledger, _ = env
    ledger.create_run("r", cfg)
    tick(ledger, "r", now=bars.index[-1] + H)
    orders = ledger.orders("r")
    assert len(orders) > 2 and orders["client_order_id"].is_unique
    for row in orders.itertuples():
        assert row.client_order_id == client_order_id("r", row.asset, row.decision_ts.to_pydatetime())
    with ledger.session() as s, s.begin():
        dup = s.scalars(select(Order)).first()
        s.expunge(dup)
        s.add(Order(**{c.key: getattr(dup, c.key) for c in Order.__table__.columns if c.key != "id"}))
        with pytest.raises(IntegrityError):
            s.flush()


def test_runs_create_refuse_force_and_unknown_names(env):
    bars, cfg, ledger, _ = env
    ledger.create_run("r", cfg)
    with pytest.raises(ValueError, match="already exists.*--force"):
        ledger.create_run("r", cfg)
    tick(ledger, "r", now=bars.index[10] + H)
    assert ledger.run_summary("r").bars_processed == 11
    ledger.create_run("r", cfg, force=True)
    summary = ledger.run_summary("r")
    assert (summary.bars_processed, summary.equity, summary.status) == (0, 10_000.0, "created")
    assert ledger.orders("r").empty and ledger.equity_curve("r").empty
    with pytest.raises(KeyError, match=r"no paper run named 'nope'.*\(runs: r\)"):
        ledger.run_summary("nope")
    with pytest.raises(ValueError, match="bad run name"):
        ledger.create_run("a/b", cfg)


def test_read_api_frames(env):
    bars, cfg, ledger, _ = env
    ledger.create_run("r", cfg)
    tick(ledger, "r", now=bars.index[-1] + H)
    runs = ledger.list_runs()
    assert list(runs["name"]) == ["r"] and runs["last_bar"].iloc[0] == bars.index[-1]
    curve = ledger.equity_curve("r")
    assert list(curve.columns) == ["cash", "positions_value", "equity"] and curve.index[-1] == bars.index[-1]
    assert str(curve.index.tz) == "UTC"
    summary = ledger.run_summary("r")
    assert summary.equity == curve["equity"].iloc[-1] and summary.status == "active"
    assert list(ledger.fills("r").columns) == ["client_order_id", "asset", "ts", "price", "qty", "fee"]


def test_lock_refuses_a_second_tick_in_process(env):
    _, cfg, ledger, _ = env
    ledger.create_run("r", cfg)
    with run_lock(ledger, "r"), pytest.raises(RunLocked, match=f"run r is locked by pid {os.getpid()}"):
        tick(ledger, "r")
    assert tick(ledger, "r").bars_processed == 1  # released


def test_two_concurrent_tick_processes_one_wins_one_exits_1(tmp_path):
    bars = make_bars(150, seed=4)
    cfg = write_config(tmp_path, write_bars(tmp_path / "bars.parquet", bars), strategy="paper_test_slow",
                       params={"seconds": 3.0}, plugins=["tests.app.test_paper_support"])  # holds the lock 3 s
    home = tmp_path / "home"
    assert cli("init", "r", "--config", str(cfg), home=home).returncode == 0
    env = {**os.environ, "DREX_HOME": str(home)}
    now = (bars.index[-1] + H).isoformat()
    first = subprocess.Popen([sys.executable, "-m", "app.paper.cli", "tick", "r", "--now", now], env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    ledger = open_ledger(f"sqlite:///{home / 'paper' / 'paper.sqlite'}")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # wait until the first tick holds the lease
        with ledger.session() as s:
            if s.scalar(select(RunLease.pid)) == first.pid:
                break
        time.sleep(0.02)
    second = cli("tick", "r", "--now", now, home=home)
    out, err = first.communicate(timeout=120)
    assert second.returncode == 1, second.stderr
    assert f"run r is locked by pid {first.pid}" in second.stderr
    assert first.returncode == 0, err
    assert "processed 150 bar(s)" in out
    assert ledger.run_summary("r").bars_processed == 150
    ledger.close()


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_db_lease_cas_for_databases_without_a_file_lock(env):
    """The PostgreSQL path: a live holder blocks, an expired lease or a dead local holder is taken over."""
    _, cfg, ledger, _ = env
    ledger.create_run("r", cfg)
    with ledger.session() as s:
        rid = ledger.run_id(s, "r")
    host = lockmod.socket.gethostname()
    future = datetime.now(UTC) + timedelta(hours=1)

    def hold(pid, expires, holder_host=host):
        with ledger.engine.begin() as conn:
            conn.execute(update(RunLease).where(RunLease.run_id == rid)
                         .values(owner=f"{holder_host}:{pid}:x", pid=pid, host=holder_host, expires_at=expires))

    hold(os.getppid(), future)  # alive
    assert not lockmod._try_lease(ledger, rid, "me", 60, steal=False)
    hold(12345, future, holder_host="elsewhere")  # another host, not expired
    assert not lockmod._try_lease(ledger, rid, "me", 60, steal=False)
    hold(12345, datetime.now(UTC) - timedelta(seconds=1), holder_host="elsewhere")  # expired
    assert lockmod._try_lease(ledger, rid, "me", 60, steal=False)
    hold(_dead_pid(), future)  # crashed on this host
    assert lockmod._try_lease(ledger, rid, "me", 60, steal=False)
    with ledger.session() as s:
        assert s.get(RunLease, rid).pid == os.getpid()


def test_schema_compiles_for_postgresql():
    """No SQLite-only DDL: every table compiles for PostgreSQL (JSON, double precision, timestamps)."""
    from sqlalchemy.dialects import postgresql
    from sqlalchemy.schema import CreateTable

    ddl = "\n".join(str(CreateTable(t).compile(dialect=postgresql.dialect())) for t in schema.Base.metadata.sorted_tables)
    assert "DOUBLE PRECISION" in ddl and "JSON" in ddl and "TIMESTAMP" in ddl
    assert "UNIQUE (run_id, bar_ts)" in ddl and "UNIQUE (client_order_id)" in ddl
