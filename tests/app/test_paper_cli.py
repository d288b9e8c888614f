"""The ``paper_app`` commands (CliRunner) and the ``paper run`` scheduler loop (subprocess + SIGTERM)."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import timedelta

import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from app.paper.cli import paper_app
from app.paper.ledger import open_ledger
from app.paper.scheduler import run_loop
from tests.app.test_paper_support import make_bars, write_bars, write_config

H = timedelta(hours=1)
runner = CliRunner()


@pytest.fixture
def made(tmp_path):
    bars = make_bars(12, seed=5)
    cfg = write_config(tmp_path, write_bars(tmp_path / "bars.parquet", bars))
    return bars, cfg


def _ledger():
    from markets.home import data_home

    return open_ledger(f"sqlite:///{data_home('paper') / 'paper.sqlite'}")


def test_init_tick_status_list_report(made, tmp_path):
    bars, cfg = made
    res = runner.invoke(paper_app, ["init", "demo", "--config", str(cfg)])
    assert res.exit_code == 0, res.output
    assert "created paper run demo" in res.output
    res = runner.invoke(paper_app, ["tick", "demo"])
    assert res.exit_code == 0, res.output
    assert res.stdout.startswith("demo: processed 1 bar(s), last bar 2024-01-01T00:00:00+00:00, equity 10,000.00")
    res = runner.invoke(paper_app, ["tick", "demo", "--now", (bars.index[-1] + H).isoformat()])
    assert res.exit_code == 0 and "processed 11 bar(s)" in res.stdout
    res = runner.invoke(paper_app, ["status", "demo"])
    assert res.exit_code == 0 and "equity" in res.stdout and "active" in res.stdout
    res = runner.invoke(paper_app, ["list"])
    assert res.exit_code == 0 and "demo" in res.stdout
    res = runner.invoke(paper_app, ["report", "demo", "--out", str(tmp_path / "rep")])
    assert res.exit_code == 0, res.output
    out = tmp_path / "rep" / "paper-demo"  # the run's own folder inside the reports folder
    summary = json.loads((out / "summary.json").read_text())
    curve = pd.read_csv(out / "equity_curve.csv")
    with _ledger() as ledger:
        assert summary["equity"] == ledger.run_summary("demo").equity
        assert len(curve) == 12 and summary["bars_processed"] == 12
        assert len(pd.read_csv(out / "fills.csv")) == len(ledger.fills("demo"))
    page = (out / "equity.html").read_text()
    assert "cdn" not in page and "http" not in page.split("<body>")[0]  # offline: nothing fetched
    assert "src='../plotly-" in page and len(list((tmp_path / "rep").glob("plotly-*.min.js"))) == 1


def test_user_errors_are_one_line_exit_2(made, tmp_path):
    _, cfg = made
    assert runner.invoke(paper_app, ["init", "demo", "--config", str(cfg)]).exit_code == 0
    res = runner.invoke(paper_app, ["init", "demo", "--config", str(cfg)])
    assert res.exit_code == 2 and "already exists" in res.stderr and "--force" in res.stderr
    assert runner.invoke(paper_app, ["init", "demo", "--config", str(cfg), "--force"]).exit_code == 0
    res = runner.invoke(paper_app, ["tick", "nope"])
    assert res.exit_code == 2 and "no paper run named 'nope'" in res.stderr
    res = runner.invoke(paper_app, ["tick", "demo", "--now", "yesterday"])
    assert res.exit_code == 2 and "bad time 'yesterday'" in res.stderr
    bad = yaml.safe_load(cfg.read_text())
    cases = [
        ({"interval": "1x"}, "field 'interval': bad interval '1x'"),
        ({"fees": -0.1}, "field 'fees'"),
        ({"colour": "red"}, "field 'colour'"),
        ({"strategy": "nope"}, "unknown decision-maker 'nope'; registered:"),
        ({"params": {"fats": 3}}, "trend has no parameter 'fats'"),
        ({"params": {"fast": 200, "slow": 50}}, "fast (200) must be smaller than slow (50)"),
        ({"params": {"fast": "abc"}}, "fast='abc' is not an integer"),
    ]
    for change, message in cases:
        path = tmp_path / "bad.yaml"
        path.write_text(yaml.safe_dump({**bad, **change}))
        res = runner.invoke(paper_app, ["init", "x", "--config", str(path)])
        assert res.exit_code == 2, (change, res.output)
        assert message in res.stderr and len(res.stderr.strip().splitlines()) == 1, res.stderr
    res = runner.invoke(paper_app, ["init", "x", "--config", str(tmp_path / "missing.yaml")])
    assert res.exit_code == 2 and "not found" in res.stderr


def test_tick_failure_exits_1_and_is_recorded(made, tmp_path):
    _, cfg = made
    assert runner.invoke(paper_app, ["init", "demo", "--config", str(cfg)]).exit_code == 0
    (tmp_path / "bars.parquet").unlink()  # the data went missing
    res = runner.invoke(paper_app, ["tick", "demo"])
    assert res.exit_code == 1 and "tick of run demo failed" in res.stderr and "bars.parquet" in res.stderr
    with _ledger() as ledger:
        summary = ledger.run_summary("demo")
    assert summary.status == "failed" and "bars.parquet" in summary.last_error


def test_run_loop_max_ticks_in_process(made):
    bars, cfg = made
    assert runner.invoke(paper_app, ["init", "demo", "--config", str(cfg)]).exit_code == 0
    lines = []
    res = run_loop("demo", interval_s=0.2, offset_s=0.0, max_ticks=3, echo=lines.append, install_signals=False)
    assert (res.ticks, res.bars, res.failures, res.stopped_by) == (3, 3, 0, "max ticks (3)")
    with _ledger() as ledger:
        assert ledger.processed_bars("demo") == list(bars.index[:3])
        assert ledger.run_summary("demo").status == "stopped"
    assert lines[-1].startswith("demo: processed 1 bar(s), last bar 2024-01-01T02:00:00")


def test_run_loop_ends_with_the_replay_data(made):
    bars, cfg = made
    assert runner.invoke(paper_app, ["init", "demo", "--config", str(cfg)]).exit_code == 0
    res = runner.invoke(paper_app, ["tick", "demo", "--now", bars.index[-3].isoformat()])
    assert res.exit_code == 0
    res = run_loop("demo", interval_s=0.1, offset_s=0.0, echo=lambda _: None, install_signals=False)
    assert res.stopped_by == "end of replay data" and res.bars == 3


def test_paper_run_subprocess_stops_gracefully_on_sigterm(tmp_path):
    bars = make_bars(200, seed=6)
    cfg = write_config(tmp_path, write_bars(tmp_path / "bars.parquet", bars))
    env = {**os.environ, "DREX_HOME": str(tmp_path / "home")}  # PYTHONPATH: the repo and the test plugin (tests/conftest.py)
    cmd = [sys.executable, "-m", "app.paper.cli"]
    assert subprocess.run([*cmd, "init", "demo", "--config", str(cfg)], env=env, capture_output=True,
                          check=False).returncode == 0
    proc = subprocess.Popen([*cmd, "run", "demo", "--interval", "1s", "--offset", "0s"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    ledger = open_ledger(f"sqlite:///{tmp_path / 'home' / 'paper' / 'paper.sqlite'}")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and len(ledger.processed_bars("demo")) < 3:
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "stopped (SIGTERM)" in out
    done = ledger.processed_bars("demo")
    assert 3 <= len(done) < 200 and done == list(bars.index[: len(done)])  # one bar per second, in order
    assert len(ledger.equity_curve("demo")) == len(done)
    summary = ledger.run_summary("demo")
    assert summary.status == "stopped" and summary.last_error is None
    assert out.count("processed 1 bar(s)") == len(done)
    ledger.close()


def test_paper_run_says_when_the_next_tick_is_due(tmp_path):
    """The issue: `paper run` on an hourly replay printed nothing until stopped. It now says at once when the
    first tick fires and how to replay faster (and after each tick, when the next one is due)."""
    from app.paper.scheduler import _human

    assert [_human(timedelta(seconds=s)) for s in (0.2, 5, 65, 3600 + 120, 90_000)] == \
        ["0.2s", "5s", "1m 5s", "1h 2m", "1d 1h"]
    cfg = write_config(tmp_path, write_bars(tmp_path / "bars.parquet", make_bars(20, seed=2)))
    env = {**os.environ, "DREX_HOME": str(tmp_path / "home")}
    cmd = [sys.executable, "-m", "app.paper.cli"]
    assert subprocess.run([*cmd, "init", "demo", "--config", str(cfg)], env=env, capture_output=True,
                          check=False).returncode == 0
    proc = subprocess.Popen([*cmd, "run", "demo"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    first, hint = proc.stdout.readline(), proc.stdout.readline()  # printed (and flushed) before any tick
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert first.startswith("demo: ticking every 1h at bar close + 5s; first tick at ") and "UTC (in " in first
    assert "--interval 5s replays faster" in hint and "drex paper tick demo --now ISO" in hint
    assert "stopped (SIGTERM): 0 tick(s)" in out


def test_run_loop_prints_the_next_tick_after_each_tick(made):
    _, cfg = made
    assert runner.invoke(paper_app, ["init", "demo", "--config", str(cfg)]).exit_code == 0
    lines = []
    run_loop("demo", interval_s=0.2, offset_s=0.0, max_ticks=2, echo=lines.append, install_signals=False)
    assert lines[0].startswith("demo: ticking every 0.2s at bar close + 0s; first tick at ")
    assert lines[1].startswith("demo: processed 1 bar(s)") and lines[2].startswith("next tick at ")
    assert lines[3].startswith("demo: processed 1 bar(s)") and len(lines) == 4  # stopped: no next tick
