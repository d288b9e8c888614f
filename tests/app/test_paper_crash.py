"""Crash safety: SIGKILL the tick process at seeded random moments, restart it, and the ledger must end
EXACTLY equal to an uninterrupted run's (no duplicated or missing bar, order or fill; books balanced)."""
from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from datetime import timedelta

import numpy as np
import pytest

from app.paper.ledger import open_ledger
from tests.app.test_paper_support import cli, ledger_rows, make_bars, write_bars, write_config

H = timedelta(hours=1)


def _wait(proc: subprocess.Popen, seconds: float) -> None:
    try:
        proc.wait(timeout=seconds)
    except subprocess.TimeoutExpired:
        pass


def _count(db) -> int:
    """Committed bars, read with a plain sqlite3 reader (WAL: it never blocks the writer)."""
    import sqlite3

    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)) as conn:
        return conn.execute("SELECT count(*) FROM processed_bars").fetchone()[0]


def _crash_and_restart(tmp_path, *, n_bars: int, max_kills: int, seed: int):
    bars = make_bars(n_bars, seed=seed)
    cfg = write_config(tmp_path, write_bars(tmp_path / "bars.parquet", bars),
                       params={"fast": 2, "slow": 5, "mode": "long_short"})  # trades often
    home_ref, home = tmp_path / "ref", tmp_path / "crash"
    end = (bars.index[-1] + H).isoformat()
    for h in (home_ref, home):
        assert cli("init", "r", "--config", str(cfg), home=h).returncode == 0
    # time a tick that processes nothing (start-up: interpreter, imports, data) and the uninterrupted run,
    # to aim the kills at the moments where bars are being processed and committed
    t0 = time.monotonic()
    assert cli("tick", "r", "--now", bars.index[0].isoformat(), home=home_ref).returncode == 0
    startup = time.monotonic() - t0
    t0 = time.monotonic()
    ref = cli("tick", "r", "--now", end, home=home_ref)
    per_bar = max(time.monotonic() - t0 - startup, 0.2) / n_bars
    assert ref.returncode == 0, ref.stderr

    rng = np.random.default_rng(seed)
    db = home / "paper" / "paper.sqlite"
    env = {**os.environ, "DREX_HOME": str(home)}  # PYTHONPATH: the repo and the test plugin (tests/conftest.py)
    progress, kills, mid_run = [0], 0, 0
    while progress[-1] < n_bars and kills < max_kills:
        proc = subprocess.Popen([sys.executable, "-m", "app.paper.cli", "tick", "r", "--now", end], env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        if n_bars - progress[-1] < 2:  # the last bar: let it finish
            proc.wait(timeout=120)
        elif rng.random() < 0.25:  # somewhere in start-up
            _wait(proc, rng.uniform(0.0, startup))
        else:  # once a random number of new bars is committed, plus a random part of the next bar
            target = progress[-1] + int(rng.integers(1, min(n_bars - progress[-1], 6)))
            while proc.poll() is None and _count(db) < target:
                time.sleep(0.002)
            _wait(proc, rng.uniform(0.0, per_bar))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        _, err = proc.communicate()
        assert proc.returncode in (0, -signal.SIGKILL), err
        progress.append(_count(db))
        if proc.returncode == -signal.SIGKILL and progress[-2] < progress[-1] < n_bars:
            mid_run += 1
    final = cli("tick", "r", "--now", end, home=home)  # the restart after the last kill finishes the job
    assert final.returncode == 0, final.stderr
    with open_ledger(f"sqlite:///{home_ref / 'paper' / 'paper.sqlite'}") as ledger:
        expected, expected_bars = ledger_rows(ledger, "r"), ledger.processed_bars("r")
    with open_ledger(f"sqlite:///{db}") as ledger:
        got, got_bars = ledger_rows(ledger, "r"), ledger.processed_bars("r")
        curve = ledger.equity_curve("r")
    assert got_bars == expected_bars == list(bars.index)
    for table in expected:
        assert got[table] == expected[table], table  # exact, float for float
    assert len(expected["fills"]) > n_bars // 5
    np.testing.assert_allclose(curve["cash"] + curve["positions_value"], curve["equity"], rtol=1e-12)
    assert progress == sorted(progress)  # a kill never loses committed bars
    return kills, mid_run


def test_sigkill_at_random_points_then_restart_equals_an_uninterrupted_run(tmp_path):
    kills, mid_run = _crash_and_restart(tmp_path, n_bars=60, max_kills=12, seed=7)
    assert kills >= 5 and mid_run >= 3, (kills, mid_run)


@pytest.mark.slow
def test_sigkill_many_times_over_a_longer_replay(tmp_path):
    kills, mid_run = _crash_and_restart(tmp_path, n_bars=80, max_kills=40, seed=11)
    assert kills >= 15 and mid_run >= 10, (kills, mid_run)
