"""One tick at a time per run: a file lock next to a SQLite ledger, plus a DB lease row on any database.

* SQLite: ``filelock.FileLock`` on ``<db>.<run>.lock`` (an OS lock: released by the kernel when the holder
  dies, so a SIGKILLed tick never blocks the next one).
* Every database (PostgreSQL included): the ``run_leases`` row is taken with one compare-and-swap UPDATE
  (``owner IS NULL OR expires_at < now OR holder is a dead process on this host``), renewed per bar and
  released at the end. A lease left by a crashed process on another host expires after ``lease_seconds``.

A refused lock raises ``RunLocked("run X is locked by pid N")``.
"""
from __future__ import annotations

import contextlib
import os
import socket
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

from sqlalchemy import and_, or_, select, update

from app.paper.ledger import Ledger
from app.paper.schema import RunLease

__all__ = ["RunLocked", "renew_lease", "run_lock"]


class RunLocked(RuntimeError):
    """Another process is ticking this run."""


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def _holder(ledger: Ledger, run_id: int) -> tuple[int | None, str | None, str | None]:
    with ledger.session() as s:
        lease = s.get(RunLease, run_id)
        return (lease.pid, lease.host, lease.owner) if lease else (None, None, None)


def _try_lease(ledger: Ledger, run_id: int, owner: str, seconds: float, *, steal: bool) -> bool:
    now = datetime.now(UTC)
    host, pid = socket.gethostname(), os.getpid()
    free = or_(RunLease.owner.is_(None), RunLease.expires_at < now, RunLease.owner == owner)
    with ledger.engine.begin() as conn:
        if not steal:
            held_pid, held_host, held_owner = conn.execute(
                select(RunLease.pid, RunLease.host, RunLease.owner).where(RunLease.run_id == run_id)
            ).one()
            if held_owner and held_host == host and held_pid and not _pid_alive(held_pid):
                # the holder died on this host: take over exactly that stale lease
                free = or_(free, RunLease.owner == held_owner)
        cond = RunLease.run_id == run_id if steal else and_(RunLease.run_id == run_id, free)
        res = conn.execute(
            update(RunLease).where(cond).values(owner=owner, pid=pid, host=host, expires_at=now + timedelta(seconds=seconds))
        )
        return res.rowcount == 1


def renew_lease(ledger: Ledger, run_id: int, owner: str, seconds: float) -> None:
    """Push the lease's expiry forward; raises ``RunLocked`` if the lease was lost meanwhile."""
    if not _try_lease(ledger, run_id, owner, seconds, steal=False):
        pid = _holder(ledger, run_id)[0]
        raise RunLocked(f"lost the lock of run id {run_id} to pid {pid}")


def _locked_message(ledger: Ledger, name: str, run_id: int) -> str:
    pid = None
    for _ in range(20):  # the winner writes its lease row right after taking the file lock
        pid = _holder(ledger, run_id)[0]
        if pid is not None:
            break
        time.sleep(0.05)
    return f"run {name} is locked by pid {pid if pid is not None else '?'} (another tick is running; retry later)"


@contextlib.contextmanager
def run_lock(ledger: Ledger, name: str, *, lease_seconds: float = 600.0) -> Iterator[str]:
    """Hold the lock of run ``name`` for the block; yields the lease owner token (for ``renew_lease``)."""
    from filelock import FileLock, Timeout

    with ledger.session() as s:
        run_id = ledger.run_id(s, name)
    owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:12]}"
    flock = None
    db = ledger.sqlite_path
    if db is not None:
        flock = FileLock(f"{db}.{run_id}.lock")
        try:
            flock.acquire(timeout=0)
        except Timeout:
            raise RunLocked(_locked_message(ledger, name, run_id)) from None
    try:
        # with the OS file lock held, any lease left in the row belongs to a dead process: take it over
        if not _try_lease(ledger, run_id, owner, lease_seconds, steal=flock is not None):
            raise RunLocked(_locked_message(ledger, name, run_id))
        try:
            yield owner
        finally:
            with ledger.engine.begin() as conn:
                conn.execute(
                    update(RunLease)
                    .where(and_(RunLease.run_id == run_id, RunLease.owner == owner))
                    .values(owner=None, pid=None, host=None, expires_at=None)
                )
    finally:
        if flock is not None:
            flock.release()
