"""backtest.distributed: sweeps and walk-forward evaluations as Ray tasks give exactly the in-process tables,
the CLI's ``--ray`` too; failed tasks are retried; without Ray, one line naming the extra.

One local Ray (2 CPUs) serves every test (``ray_session`` in tests/conftest.py; starting it takes seconds)."""
from __future__ import annotations

import json
import sys

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

import backtest
from app.cli import app
from backtest import distributed
from backtest.evaluate import evaluate

runner = CliRunner()


def panel(T: int = 400, assets: tuple[str, ...] = ("AAA", "BBB", "CCC"), seed: int = 0) -> pd.DataFrame:
    """Seeded random-walk bars of several assets (canonical multi-asset frame)."""
    rng = np.random.default_rng(seed)
    idx = pd.date_range("2015-01-01", periods=T, freq="B", tz="UTC", name="timestamp")
    frames = {}
    for a in assets:
        close = 100 * np.exp(np.cumsum(rng.normal(3e-4, 0.012, T)))
        open_ = close * np.exp(rng.normal(0, 0.004, T))
        frames[a] = pd.DataFrame({"open": open_, "high": np.maximum(open_, close) * 1.002,
                                  "low": np.minimum(open_, close) * 0.998, "close": close, "volume": 1e5}, index=idx)
    bars = pd.concat(frames, axis=1, names=["asset", "field"])
    return bars


def single(T: int = 900, seed: int = 1) -> pd.DataFrame:
    bars = panel(T, ("SYN",), seed)["SYN"]
    bars.columns.name = None
    bars.attrs["symbol"] = "SYN"
    return bars


GRID = {"fast": list(range(3, 40, 3)), "slow": [10, 25, 40, 60], "ma": ["sma", "ema"]}  # 104, 30 invalid
COSTS = {"fees": 0.001, "slippage": 0.0005}


def test_without_ray_the_api_and_the_cli_name_the_extra(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError, as where it is not installed
    with pytest.raises(ImportError, match=r'pip install -e "\.\[ray\]"') as err:
        distributed.sweep("trend", {"fast": [5], "slow": [50]}, single(200))
    assert isinstance(err.value, ValueError) and "\n" not in str(err.value)
    monkeypatch.chdir(tmp_path)
    for args in (["sweep", "sample:SP500", "-s", "trend", "--grid", "fast=5|10,slow=50", "--out", "x.csv", "--ray"],
                 ["evaluate", "sample:SP500", "-s", "trend", "--ray", "auto", "--json", "e.json"]):
        res = runner.invoke(app, args)
        lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
        assert res.exit_code == 2 and len(lines) == 1, (res.exit_code, res.output)
        assert lines[0].startswith("error: Ray is not installed: pip install -e \".[ray]\"")
    assert list(tmp_path.iterdir()) == []  # nothing written


def test_ray_is_imported_only_when_used_and_ray_takes_an_optional_address():
    import subprocess

    code = ("import sys, backtest, backtest.sweep, backtest.evaluate, backtest.distributed; "
            "print('ray' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False", out.stderr
    from app._common import optional_values

    assert optional_values(["sweep", "S", "--ray"]) == ["sweep", "S", "--ray=local"]
    assert optional_values(["sweep", "S", "--ray", "--top", "3"]) == ["sweep", "S", "--ray=local", "--top", "3"]
    assert optional_values(["sweep", "S", "--ray", "auto"]) == ["sweep", "S", "--ray", "auto"]
    assert optional_values(["x", "--", "--ray"]) == ["x", "--", "--ray"]


def test_sweep_on_ray_equals_in_process(ray_session):
    bars = panel()
    chunk = 8 * 400 * 3 * 8 * 3  # 24 combinations per memory chunk: more than one chunk, and tasks smaller still
    local = backtest.sweep("trend", GRID, bars, **COSTS, chunk_bytes=chunk)
    seen: list[tuple[int, int]] = []
    remote = distributed.sweep("trend", GRID, bars, **COSTS, chunk_bytes=chunk,
                               progress=lambda done, total: seen.append((done, total)))
    pd.testing.assert_frame_equal(remote, local, check_exact=True)
    assert remote.attrs == local.attrs and remote.attrs["n_dropped"] == 30 and len(remote) == 74
    # 104 combinations on 2 CPUs: tasks of 16 (>= 4 per CPU, a multiple of 8) -> 7 tasks, progress after each
    assert distributed.sweep_tasks(104, 24, 2) == 16
    assert len(seen) == 7 and [d for d, _ in seen] == sorted(d for d, _ in seen) and seen[-1] == (104, 104)
    # the unfused path and options that change every number
    kw = {"fees": 0.002, "execution": "next_close", "leverage": 0.8, "band": 0.0, "fused": False}
    pd.testing.assert_frame_equal(distributed.sweep("trend", GRID, bars, **kw), backtest.sweep("trend", GRID, bars, **kw),
                                  check_exact=True)


def test_evaluate_on_ray_equals_in_process(ray_session):
    bars = single()
    kw = {"folds": 3, "fees": 0.001, "optimize": {"trend": {"fast": [5, 10, 20], "slow": [50, 100]}}}
    folds_local: list = []
    folds_remote: list = []
    local = evaluate(bars, ["plugin_ema", "reversal"], progress=lambda *a: folds_local.append(a[:2]), **kw)
    remote = distributed.evaluate(bars, ["plugin_ema", "reversal"], progress=lambda *a: folds_remote.append(a[:2]),
                                  **kw)
    assert json.dumps(remote.to_json()) == json.dumps(local.to_json())
    assert list(remote.strategies) == ["plugin_ema", "reversal", "trend", "equal_weight", "buy_and_hold"]
    for label, s in local.strategies.items():
        pd.testing.assert_series_equal(remote.strategies[label].result.equity, s.result.equity, check_exact=True)
    assert folds_remote == folds_local == [(0, 3), (1, 3), (2, 3), (3, 3)]
    assert [f["params"]["fast"] for f in remote.strategies["trend"].folds] == \
        [f["params"]["fast"] for f in local.strategies["trend"].folds]  # per-fold in-sample choices


def test_cli_ray_gives_the_same_files(ray_session, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    spec = "synth:regimes?seed=3&n=700"
    sweep = ["sweep", spec, "-s", "trend", "--grid", "fast=5:40:5,slow=20:120:20", "--top", "3"]
    assert runner.invoke(app, [*sweep, "--out", "a.csv"]).exit_code == 0
    res = runner.invoke(app, [*sweep, "--out", "b.csv", "--ray"])  # --ray last: a local Ray (here: the session's)
    assert res.exit_code == 0, res.output
    assert (tmp_path / "a.csv").read_bytes() == (tmp_path / "b.csv").read_bytes()
    assert (tmp_path / "a.json").read_bytes() == (tmp_path / "b.json").read_bytes()
    ev = ["evaluate", spec, "-s", "trend", "-s", "reversal", "--folds", "3"]
    assert runner.invoke(app, [*ev, "--json", "a.json"]).exit_code == 0
    res = runner.invoke(app, [*ev, "--ray", "--json", "b.json"])  # --ray followed by an option: no address
    assert res.exit_code == 0, res.output
    assert json.loads((tmp_path / "a.json").read_text()) == json.loads((tmp_path / "b.json").read_text())


def test_failed_tasks_are_retried_and_the_result_is_complete(ray_session):
    """A task whose worker dies once and one that raises OSError once are retried: the tables equal the
    in-process ones (the fault strategies are trend in this process). A ValueError is not retried."""
    from tests import ray_faults

    _, faults = ray_session
    bars = panel(300)
    grid = {"fast": [5, 10, 20, 40], "slow": [30, 60, 90, 120]}  # 16 combinations: 2 tasks of 8
    want = backtest.sweep("trend", grid, bars, **COSTS)
    for name in ("fault_die", "fault_oserror"):
        got = distributed.sweep(name, grid, bars, **COSTS)
        pd.testing.assert_frame_equal(got, want, check_exact=True)
        assert ray_faults.calls(faults, name) == 3  # 2 tasks + 1 retry
    with pytest.raises(ValueError, match="fault_value: a deterministic error"):
        distributed.sweep("fault_value", {"fast": [5, 10], "slow": [30, 60]}, bars)  # one task
    assert ray_faults.calls(faults, "fault_value") == 1
