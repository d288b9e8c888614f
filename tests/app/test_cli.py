"""The ``drex`` CLI: exit codes, one-line user errors, reports written, fast start-up."""
from __future__ import annotations

import json
import subprocess
import sys
import warnings
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from app.backtest_cli import parse_grid, parse_params
from app.cli import app

runner = CliRunner()
ROOT = Path(__file__).resolve().parents[2]


def run(*args: str):
    return runner.invoke(app, list(args))


def assert_user_error(result, *fragments: str) -> None:
    """Exit 2, one line on stderr starting with 'error:', no traceback."""
    assert result.exit_code == 2, (result.exit_code, result.output, result.exception)
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), result.stderr
    assert "Traceback" not in result.output
    for frag in fragments:
        assert frag in lines[0], (frag, lines[0])


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # default report folders land in the test's tmp dir


# ------------------------------------------------------------------------------------------- start-up
def test_import_keeps_heavy_modules_out():
    code = ("import sys, app.cli; heavy = [m for m in ('pandas', 'numpy', 'torch', 'vectorbt', 'plotly', "
            "'matplotlib', 'streamlit', 'ray') if m in sys.modules]; print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr


def test_help_lists_commands():
    result = run("--help")
    assert result.exit_code == 0
    for cmd in ("backtest", "sweep", "data", "strategies", "train"):
        assert cmd in result.output
    assert run("data", "--help").exit_code == 0
    bt = run("backtest", "--help")
    assert bt.exit_code == 0 and "--strategy" in bt.output and "--param" in bt.output


def test_python_dash_m_app_help():
    out = subprocess.run([sys.executable, "-m", "app", "--help"], cwd=ROOT, capture_output=True, text=True, check=False)
    assert out.returncode == 0 and "backtest" in out.stdout


# -------------------------------------------------------------------------------------------- parsing
def test_parse_params_types_follow_defaults():
    got = parse_params("trend", ["fast=10", "slow=50", "ma=ema", "mode=long_short"])
    assert got == {"fast": 10, "slow": 50, "ma": "ema", "mode": "long_short", "signal": "crossover",
                   "lookback": 252}  # every parameter, the defaults filled in
    assert isinstance(got["fast"], int)
    got = parse_params("reversal", ["lower=25", "entry_z=1.5"])
    assert (got["lower"], got["entry_z"]) == (25.0, 1.5) and isinstance(got["lower"], float)
    with pytest.raises(ValueError, match="fast='ten' is not an integer"):
        parse_params("trend", ["fast=ten"])
    with pytest.raises(ValueError, match="no parameter 'speed'; valid: fast=20, slow=100"):
        parse_params("trend", ["speed=3"])
    with pytest.raises(ValueError, match="is not name=value"):
        parse_params("trend", ["fast"])
    with pytest.raises(ValueError, match=r"fast \(60\) must be smaller than slow \(50\)"):  # cross rule
        parse_params("trend", ["fast=60", "slow=50"])


def test_parse_grid_ranges_and_lists():
    grid = parse_grid("trend", ["fast=5:50:5,slow=20:200:10", "ma=sma|ema"])
    assert grid["fast"] == list(range(5, 51, 5))  # stop included: it lands on the grid
    assert grid["slow"] == list(range(20, 201, 10))
    assert grid["ma"] == ["sma", "ema"]
    assert parse_grid("trend", ["fast=5:12:5"])["fast"] == [5, 10]  # 12 is off the grid
    assert parse_grid("reversal", ["entry_z=1:2:0.25"])["entry_z"] == [1.0, 1.25, 1.5, 1.75, 2.0]
    assert parse_grid("trend", ["fast=3|7"])["fast"] == [3, 7]
    for bad, match in [("fast=5:50", "start:stop:step"), ("fast=5:50:0", "step > 0"), ("ma=a:b:c", "not numeric"),
                       ("fast=1:2:1,fast=3|4", "given twice"), ("nope=1|2", "no parameter 'nope'"), ("", "empty")]:
        with pytest.raises(ValueError, match=match):
            parse_grid("trend", [bad])


# ------------------------------------------------------------------------------------------- commands
def test_strategies_lists_registry():
    result = run("strategies")
    assert result.exit_code == 0
    for name in ("trend", "reversal", "breakout", "positioning", "buy_and_hold"):
        assert name in result.output


def test_data_list_and_show():
    result = run("data", "list")
    assert result.exit_code == 0 and "SP500" in result.output and "MSFT" in result.output
    result = run("data", "show", "sample:SP500", "--start", "2018-01-01", "--end", "2018-03-31", "--rows", "3")
    assert result.exit_code == 0, result.output
    assert "2018-01-02" in result.output and "2018-03-29" in result.output  # first and last trading days
    assert "total_return" in result.output


def test_data_fetch_prints_rows_and_range():
    result = run("data", "fetch", "sample:MSFT", "--start", "2017-01-01", "--offline")
    assert result.exit_code == 0, result.output
    assert "sample:MSFT:" in result.output and "rows" in result.output and "2017-01-03" in result.output


def test_offline_fallback_is_one_yellow_line(monkeypatch):
    import markets

    real = markets.load

    def fake_load(spec, start=None, end=None, *, offline=None):
        warnings.warn("yf:AAPL download failed (no network); using cache 2020-01-01..2020-06-30",
                      markets.OfflineFallback)
        return real("sample:SP500", "2018-01-01", "2018-02-01")

    monkeypatch.setattr(markets, "load", fake_load)
    result = run("data", "fetch", "yf:AAPL")
    assert result.exit_code == 0, result.output
    assert "offline fallback: yf:AAPL download failed" in result.stderr


@pytest.mark.parametrize("args, fragments", [
    # a DataError raised inside the lazily imported markets; its "[asset ...]" prefix is not rich markup
    (("data", "show", "nope:XYZ"), ("[asset nope:XYZ", "unknown data source 'nope'")),
    (("data", "show", "sample:NOPE"), ("NOPE",)),
    (("data", "show", "sample:SP500", "--start", "2018-13-45"), ("2018-13-45",)),
    (("backtest", "sample:SP500", "--strategy", "nope"), ("unknown decision-maker 'nope'", "trend")),
    (("backtest", "sample:SP500", "-s", "trend", "--param", "fast=200"), ("fast (200) must be smaller than slow",)),
    (("backtest", "sample:SP500", "-s", "trend", "--param", "colour=red"), ("no parameter 'colour'", "slow=100")),
    (("backtest", "sample:SP500", "-s", "trend", "--execution", "now"), ("--execution must be one of",)),
    (("backtest", "sample:SP500", "-s", "trend", "--fees", "-1"), ("--fees must be a fraction in [0, 1)",)),
    (("sweep", "sample:SP500", "-s", "trend", "--grid", "fast=5:50"), ("start:stop:step",)),
    (("train", "experts", "--expert", "momentum", "--out", "runs/x"), ("unknown expert 'momentum'", "trend")),
    (("train", "experts", "--expert", "trend", "--stage", "rl", "--rollouts", "tree", "--out", "runs/x"),
     ("rollouts must be one of plain, entropy-guided",)),
])
def test_user_errors_are_one_line_exit_2(args, fragments):
    assert_user_error(run(*args), *fragments)


def test_backtest_writes_report_and_json():
    result = run("backtest", "sample:SP500", "--strategy", "trend", "--param", "fast=10", "--param", "slow=50",
                 "--start", "2015-01-01", "--end", "2018-12-31", "--json")
    assert result.exit_code == 0, result.output
    metrics = json.loads(result.stdout)
    folder = Path("reports/sample-SP500-trend")
    for name in ("report.html", "equity.png", "metrics.json", "trades.csv", "equity.csv"):
        assert (folder / name).exists(), name
    assert json.loads((folder / "metrics.json").read_text()) == metrics
    # the same numbers as calling the library directly
    import backtest
    import markets
    # warm-up history before --start is loaded (slow=50 bars), decisions start at --start
    bars = markets.load("sample:SP500", "2014-01-01", "2018-12-31")
    first = int(bars.index.searchsorted(pd.Timestamp("2015-01-01", tz="UTC")))
    bars = bars.iloc[first - 50:]
    direct = backtest.run_strategy(bars, "trend", {"fast": 10, "slow": 50}, start=50, fees=0.001,
                                   init_cash=10_000.0)
    assert direct.result.equity.index[0] == pd.Timestamp("2015-01-02", tz="UTC")
    assert metrics["total_return"] == pytest.approx(direct.result.metrics["total_return"], rel=1e-12)
    assert direct.decision.weights.iloc[0] != 0  # the trend was already known on the first day


def test_backtest_table_and_custom_report_folder(tmp_path):
    out = tmp_path / "my-report"
    result = run("backtest", "sample:SP500", "-s", "buy_and_hold", "--start", "2018-01-01", "--report", str(out))
    assert result.exit_code == 0, result.output
    assert "sharpe" in result.output and (out / "report.html").exists()


def test_sweep_ranks_and_writes_csv_and_json(tmp_path):
    out = tmp_path / "sweep.csv"
    result = run("sweep", "sample:SP500", "-s", "trend", "--grid", "fast=5:20:5,slow=30:50:10", "--grid", "ma=sma|ema",
                 "--start", "2014-01-01", "--top", "3", "--out", str(out))
    assert result.exit_code == 0, result.output
    import pandas as pd

    table = pd.read_csv(out)
    assert len(table) == 4 * 3 * 2
    assert table["sharpe"].is_monotonic_decreasing or table["sharpe"].dropna().is_monotonic_decreasing
    rows = json.loads(out.with_suffix(".json").read_text())
    assert len(rows) == len(table) and rows[0]["fast"] == table["fast"].iloc[0]
    assert "top 3 of 24 by sharpe" in result.output
    bad = run("sweep", "sample:SP500", "-s", "trend", "--grid", "fast=5|10", "--metric", "nope", "--out", str(out))
    assert_user_error(bad, "unknown metric 'nope'", "sharpe")


def test_data_list_shows_cached_datasets():
    import markets

    bars = markets.load("sample:SP500", "2018-01-01", "2018-01-31")
    path = markets.data_home("cache", "yf") / "AAPL_1d.parquet"  # the per-test DREX_HOME (tests/conftest.py)
    bars.to_parquet(path)
    result = run("data", "list")
    assert result.exit_code == 0, result.output
    assert "AAPL_1d.parquet" in result.output and str(len(bars)) in result.output


# ------------------------------------------------------------------------------- warm-up before --start
def _daily_file(path: Path, start: str, end: str, seed: int = 0) -> Path:
    """A GOOG-like daily file (business days, random walk), written as CSV."""
    import numpy as np

    idx = pd.bdate_range(start, end, name="timestamp")
    rng = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(rng.normal(0.0005, 0.02, len(idx))))
    frame = pd.DataFrame({"open": close * (1 + rng.normal(0, 0.002, len(idx))), "close": close,
                          "volume": 1e6}, index=idx)
    frame["high"] = frame[["open", "close"]].max(axis=1) * 1.01
    frame["low"] = frame[["open", "close"]].min(axis=1) * 0.99
    frame.to_csv(path)
    return path


def test_warmup_history_is_loaded_before_start(tmp_path):
    """The issue's command: `--start 2013-01-01` on daily GOOG 2004-2013 with a 100-bar window printed the
    metrics of a flat line. The 100 bars before --start are loaded: decisions start at once."""
    path = _daily_file(tmp_path / "GOOG.csv", "2004-08-19", "2013-12-31")
    res = run("backtest", f"file:{path}", "-s", "trend", "-p", "fast=20", "-p", "slow=100", "--start",
              "2013-01-01", "--json", "--no-report")
    assert res.exit_code == 0, res.output
    assert "warning" not in res.stderr
    doc = json.loads(res.stdout)
    assert doc["run"]["start"].startswith("2013-01-01") and doc["run"]["warmup_bars"] == 100
    assert doc["run"]["bars"] == len(pd.bdate_range("2013-01-01", "2013-12-31"))
    import backtest
    import markets

    bars = markets.load(f"file:{path}")
    first = int(bars.index.searchsorted(pd.Timestamp("2013-01-01", tz="UTC")))
    direct = backtest.run_strategy(bars.iloc[first - 100:], "trend", {"fast": 20, "slow": 100}, start=100,
                                   fees=0.001, init_cash=10_000.0)
    assert doc["total_return"] == pytest.approx(direct.result.metrics["total_return"], rel=1e-12)
    assert direct.decision.weights.notna().all() and direct.decision.weights.iloc[0] in (0.0, 1.0)


def test_flat_warning_when_history_is_missing(tmp_path):
    """When the file itself lacks the history, the backtest still runs and says why it is flat."""
    path = _daily_file(tmp_path / "short.csv", "2012-12-03", "2013-03-29")
    res = run("backtest", f"file:{path}", "-s", "trend", "-p", "fast=20", "-p", "slow=100", "--start",
              "2013-01-01", "--no-report")
    assert res.exit_code == 0, res.output
    before = len(pd.bdate_range("2012-12-03", "2012-12-31"))
    after = len(pd.bdate_range("2013-01-01", "2013-03-29"))
    assert (f"warning: trend is flat on every bar (it needs 100 bars of history and got {before} before the "
            f"first decision plus {after} decided)") in res.stderr
    assert "n_trades" in res.stdout


# ------------------------------------------------------------------------------- sweep outputs
def test_sweep_json_report_and_out_json(tmp_path):
    """--out x.json writes x.json AND x.csv (it used to overwrite the CSV); --json prints the ranking;
    --report writes the heatmap, the top table and the best combination's equity."""
    out = tmp_path / "res.json"
    res = run("sweep", "sample:SP500", "-s", "trend", "--grid", "fast=5:20:5,slow=10:30:10", "--start",
              "2015-01-01", "--out", str(out), "--report", str(tmp_path / "rep"), "--json", "--top", "3")
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    # fast in 5..20, slow in 10..30: (10,10), (15,10), (20,10), (20,20) break fast < slow
    assert (doc["combinations"], doc["valid"], doc["dropped"]) == (12, 8, 4)
    assert doc["note"].startswith("4 of 12 combinations dropped as invalid for 'trend'")
    assert len(doc["top"]) == 3 and doc["csv"] == str(tmp_path / "res.csv") and doc["json"] == str(out)
    table = pd.read_csv(tmp_path / "res.csv")
    rows = json.loads(out.read_text())
    assert len(table) == len(rows) == 8 and rows[0]["fast"] == table["fast"].iloc[0] == doc["top"][0]["fast"]
    assert doc["overfitting"]["n_trials"] >= 1
    html = (tmp_path / "rep" / "report.html").read_text()
    assert '"type":"heatmap"' in html and "Top 3 by sharpe" in html and "Best combination" in html
    best = json.loads((tmp_path / "rep" / "metrics.json").read_text())
    assert (best["run"]["params"]["fast"], best["run"]["params"]["slow"]) == (rows[0]["fast"], rows[0]["slow"])
    assert best["sharpe"] == pytest.approx(rows[0]["sharpe"], rel=1e-9)  # the best row, backtested again
    assert best["run"]["note"] == doc["note"]
    eq = pd.read_csv(tmp_path / "rep" / "best_equity.csv")
    assert eq["equity"].iloc[-1] / 10_000.0 - 1 == pytest.approx(rows[0]["total_return"], rel=1e-9)
    assert len(pd.read_csv(tmp_path / "rep" / "top.csv")) == 3


def test_sweep_prints_the_dropped_note(tmp_path):
    res = run("sweep", "sample:SP500", "-s", "trend", "--grid", "fast=5:20:5,slow=10:30:10", "--start", "2016-01-01",
              "--out", str(tmp_path / "r.csv"))
    assert res.exit_code == 0, res.output
    assert "note: 4 of 12 combinations dropped as invalid for 'trend' (e.g. parameter fast (10) must be smaller " \
        "than slow (10)" in res.stderr
    assert "top 8 of 8 by sharpe" in res.stdout


# ------------------------------------------------------------------------------- output details
def test_help_shows_flags_without_types():
    out = run("backtest", "--help").output
    assert "<bool>" not in out and "<str>" not in out and "<float>" not in out
    assert "--no-report" in out and "NUMBER" in out and "SPEC" in out


def test_backtest_json_records_settings_trades_and_interval():
    res = run("backtest", "sample:SP500", "-s", "trend", "-p", "fast=10", "-p", "slow=50", "--start", "2016-01-01",
              "--fees", "0.0005", "--slippage", "0.0002", "--execution", "next_close", "--json", "--no-report")
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert doc["run"]["params"] == {"fast": 10, "slow": 50, "ma": "sma", "mode": "long_only", "signal": "crossover",
                                    "lookback": 252}
    assert (doc["run"]["fees"], doc["run"]["slippage"], doc["run"]["execution"]) == (0.0005, 0.0002, "next_close")
    assert doc["run"]["start"].startswith("2016-01-04") and doc["run"]["end"].startswith("2018-12-31")
    assert doc["sharpe_ci_low"] < doc["sharpe"] < doc["sharpe_ci_high"]
    assert doc["n_round_trips"] >= 1 and 0 <= doc["win_rate"] <= 1 and doc["units"]["max_drawdown_duration"] == "bars"


@pytest.mark.parametrize("spec, label", [("sample:SP500", "daily_vol"), ("synth:pairs?n=3000", "bar_vol_1min")])
def test_data_show_names_the_volatility_per_bar(spec, label):
    res = runner.invoke(app, ["data", "show", spec, "--rows", "1"], env={"COLUMNS": "200"})
    assert res.exit_code == 0, res.output
    assert label in res.stdout and "ann_vol" in res.stdout


def test_sweep_progress_lines_when_not_a_terminal(monkeypatch, tmp_path):
    """Long sweeps print plain progress lines on stderr when the output is not a terminal (short ones stay
    quiet: the other tests see no such line)."""
    import app.backtest_cli as bcli

    monkeypatch.setattr(bcli, "PROGRESS_AFTER_S", 0.0)
    monkeypatch.setattr(bcli, "PROGRESS_EVERY_S", 0.0)
    monkeypatch.setenv("DREX_SWEEP_CHUNK_MB", "0.02")  # about 8 combinations of 1,000 bars per chunk
    res = run("sweep", "sample:SP500", "-s", "trend", "--grid", "fast=2:30:2,slow=40|60", "--start", "2015-01-01",
              "--out", str(tmp_path / "r.csv"))
    assert res.exit_code == 0, res.output
    lines = [ln for ln in res.stderr.splitlines() if ln.startswith("sweep: ")]
    assert len(lines) >= 3 and lines[-1].startswith("sweep: 30 of 30 combinations (100%)")


def test_sweep_results_are_streamed_as_strict_json(tmp_path):
    import numpy as np

    from app.backtest_cli import write_sweep_results

    n = 25_001  # three streamed slices
    table = pd.DataFrame({"fast": np.arange(n), "sharpe": np.linspace(-1, 1, n)})
    table.loc[7, "sharpe"] = np.nan
    table.loc[10_000, "sharpe"] = np.inf
    write_sweep_results(table, tmp_path / "r.csv", tmp_path / "r.json")
    rows = json.loads((tmp_path / "r.json").read_text())
    assert len(rows) == n and rows[7]["sharpe"] is None and rows[10_000]["sharpe"] is None
    assert rows[-1] == {"fast": n - 1, "sharpe": 1.0} and len(pd.read_csv(tmp_path / "r.csv")) == n


def test_every_command_group_is_mounted():
    """The root app mounts each command module (a merge once dropped `drex train`)."""
    result = run("--help")
    assert result.exit_code == 0
    for command in ("data", "strategies", "backtest", "sweep", "evaluate", "lookahead", "paper", "train",
                    "dashboard"):
        assert command in result.output, command
    assert "experts" in run("train", "--help").output


def test_metrics_table_shows_undefined_values_as_na_without_a_unit():
    from rich.console import Console

    from app._common import metrics_table

    con = Console(width=80, record=True)
    con.print(metrics_table({"avg_holding_bars": None, "max_drawdown_duration": 12}, "m",
                            units={"avg_holding_bars": "bars", "max_drawdown_duration": "bars"}))
    text = con.export_text()
    assert "None" not in text and "n/a" in text and "12 bars" in text
