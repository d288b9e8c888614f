"""A decision-maker from another installed package (the test plugin ``drex_testplugin``, registered through the
``drex.plugins`` entry point) is picked up without changes by the CLI, the dashboard and paper trading, its
model loads once per process, and a paper catch-up costs O(new bars) decisions."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

import markets
from app.paper.config import validate_config
from app.paper.engine import tick
from app.paper.ledger import open_ledger
from backtest.decisions import decide
from tests.app.test_paper_support import REPO, cli

SPEC = "sample:MSFT"


def drex(*args: str, log: Path, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "DREX_TESTPLUGIN_LOG": str(log)}
    return subprocess.run([sys.executable, "-m", "app.cli", *args], cwd=cwd, env=env, text=True,
                          capture_output=True, timeout=120, check=False)


def loads(log: Path) -> list[str]:
    return log.read_text().splitlines() if log.exists() else []


def test_cli_lists_and_backtests_the_plugin_and_loads_its_model_once(tmp_path):
    log = tmp_path / "loads.log"
    listed = drex("strategies", log=log, cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert "plugin_ema" in listed.stdout and "drex_testplugin" in listed.stdout and "trainable" in listed.stdout
    assert loads(log) == []  # listing reads declarations, builds nothing
    out = drex("backtest", SPEC, "-s", "plugin_ema", "-p", "fast=4", "--start", "2010-01-01", "--json",
               "--report", str(tmp_path / "rep"), log=log, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    metrics = json.loads(out.stdout)
    assert len(loads(log)) == 1  # one process, one model load (backtest + report + benchmark)
    bars = markets.load(SPEC)
    first = int(bars.index.searchsorted(pd.Timestamp("2010-01-01", tz="UTC")))
    import backtest

    ref = backtest.run_strategy(bars.iloc[first - 60:], "plugin_ema", {"fast": 4}, start=60, fees=0.001,
                                init_cash=10_000.0)
    assert metrics["total_return"] == pytest.approx(ref.result.metrics["total_return"], rel=1e-12)
    trace = pd.read_parquet(tmp_path / "rep" / "trace.parquet")
    assert list(trace.columns) == ["fast_ema", "slow_ema", "weight"] and trace.index[0] >= pd.Timestamp(
        "2010-01-01", tz="UTC")


def test_dashboard_backtest_page_runs_the_plugin():
    from streamlit.testing.v1 import AppTest

    import backtest
    from tests.app.test_dashboard_backtest import END, ENTRY, FEES, START, _values

    at = AppTest.from_file(ENTRY, default_timeout=120)
    at.switch_page("views/backtest.py")
    at.run()
    at.selectbox(key="bt_strategy").set_value("plugin_ema").run()
    at.number_input(key="bt_p_plugin_ema_fast").set_value(3).run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    bars = markets.load("sample:SP500", START, END)
    ref = backtest.run_strategy(bars, "plugin_ema", {"fast": 3}, fees=FEES)
    assert {m.label: m.value for m in at.metric}["Sharpe"] == f"{ref.result.metrics['sharpe']:.2f}"
    equity = json.loads(at.get("plotly_chart")[0].proto.spec)["data"][0]
    eq = ref.result.equity.to_numpy()
    np.testing.assert_allclose(_values(equity["y"]), eq / eq[0], rtol=1e-12)


def test_paper_run_through_the_cli_loads_once_per_process(tmp_path):
    bars = markets.load(SPEC, "2016-01-01", "2017-11-10")
    cfg = tmp_path / "paper.yaml"
    cfg.write_text(yaml.safe_dump({"strategy": "plugin_ema", "params": {"fast": 3, "slow": 12}, "data": SPEC,
                                   "interval": "1d", "history_start": "2016-01-01", "start": "2017-06-01",
                                   "initial_cash": 10_000.0}))
    home, log = tmp_path / "home", tmp_path / "loads.log"
    os.environ["DREX_TESTPLUGIN_LOG"] = str(log)
    try:
        assert cli("init", "p", "--config", str(cfg), home=home).returncode == 0
        now = (bars.index[-1] + timedelta(days=1)).isoformat()
        res = cli("tick", "p", "--now", now, home=home)
    finally:
        del os.environ["DREX_TESTPLUGIN_LOG"]
    assert res.returncode == 0, res.stderr
    assert len(loads(log)) == 2 and len({line.split()[1] for line in loads(log)}) == 2  # init, tick: once each
    with open_ledger(f"sqlite:///{home / 'paper' / 'paper.sqlite'}") as ledger:
        dec = ledger.decisions("p").set_index("bar_ts")
    full = decide("plugin_ema", bars, {"fast": 3, "slow": 12})
    traded = full.weights[full.weights.index >= pd.Timestamp("2017-06-01", tz="UTC")]
    np.testing.assert_array_equal(dec["target_weight"].to_numpy(), traded.to_numpy())
    assert dec["explanation"].iloc[-1]["fast_ema"] == pytest.approx(full.trace["fast_ema"].iloc[-1])


def test_paper_catch_up_of_1000_bars_makes_1000_decisions_and_equals_the_full_history(tmp_path):
    from drex_testplugin import DECIDED

    bars = markets.load(SPEC).iloc[-1100:]
    start = bars.index[100]
    path = tmp_path / "bars.parquet"
    bars.to_parquet(path)
    cfg = validate_config({"strategy": "plugin_ema", "data": f"file:{path}", "interval": "1d",
                           "start": start.isoformat(), "initial_cash": 10_000.0})
    with open_ledger(f"sqlite:///{tmp_path / 'l.sqlite'}") as ledger:
        ledger.create_run("c", cfg)
        before = DECIDED[0]
        res = tick(ledger, "c", now=bars.index[-1] + timedelta(days=1))
        decided = DECIDED[0] - before
        assert res.bars_processed == 1000
        assert decided == 1000  # O(new bars), not O(1000^2 / 2) = 500,500 truncated-history decisions
        dec = ledger.decisions("c").set_index("bar_ts")
    full = decide("plugin_ema", bars)  # the whole history at once
    np.testing.assert_array_equal(dec["target_weight"].to_numpy(), full.weights.iloc[100:].to_numpy())
    assert [e["weight"] for e in dec["explanation"]] == full.trace["weight"].iloc[100:].tolist()
    assert REPO.exists()
