"""``drex evaluate``, ``drex lookahead`` and the overfitting lines of ``drex sweep``: what the user sees equals
the library (``backtest.evaluate``, ``backtest.lookahead``, ``backtest.overfitting``), exit codes, errors."""
from __future__ import annotations

import json

import pandas as pd
import pytest
from typer.testing import CliRunner

import backtest
from app.cli import app
from backtest import decisions
from backtest.lookahead import default_cuts

runner = CliRunner()
RULES = ["trend", "reversal", "breakout", "positioning", "buy_and_hold"]


def run(*args: str):
    return runner.invoke(app, list(args))


def assert_user_error(result, *fragments: str) -> None:
    assert result.exit_code == 2, (result.exit_code, result.output, result.exception)
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), result.stderr
    for frag in fragments:
        assert frag in lines[0], (frag, lines[0])


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)


@pytest.fixture(scope="module")
def sp500():
    import markets

    return markets.load("sample:SP500")


# --------------------------------------------------------------------------------------------- evaluate
def test_evaluate_the_five_rules_equals_backtests_over_the_test_windows(tmp_path, sp500):
    """The issue's command: its JSON equals hand-assembled backtests over the same test windows (rule-based
    decisions on all earlier bars = one backtest of the full-history decisions from the first test bar)."""
    args = ["evaluate", "sample:SP500", *[a for n in RULES for a in ("-s", n)], "--folds", "5"]
    result = run(*args, "--json", str(tmp_path / "ev.json"), "--report", str(tmp_path / "rep"))
    assert result.exit_code == 0, result.output
    out = json.loads((tmp_path / "ev.json").read_text())
    assert list(out) == ["trend", "reversal", "breakout", "positioning", "equal_weight", "buy_and_hold"]
    first = 841  # walk_forward(5031 bars, folds=5): the test blocks start at bar 841
    for name in RULES:
        direct = backtest.run_strategy(sp500, name, start=first, fees=0.001, init_cash=10_000).result.metrics
        for key in ("sharpe", "total_return", "cagr", "max_drawdown"):
            assert out[name][key] == pytest.approx(direct[key], rel=1e-9), (name, key)
        assert out[name]["turnover"] == pytest.approx(direct["turnover_annual"], rel=1e-9)
        assert out[name]["sharpe_ci_low"] < out[name]["sharpe"] < out[name]["sharpe_ci_high"]
        assert len(out[name]["folds"]) == 5 and out[name]["folds"][0]["test_start"].startswith("2002-05-10")
    for key in ("sharpe", "sharpe_ci_low", "sharpe_ci_high", "total_return", "cagr", "max_drawdown", "turnover"):
        assert key in out["equal_weight"]
    assert out["buy_and_hold"]["vs_buy_and_hold"] == "benchmark"
    assert "walk-forward on sample:SP500: 5 folds, test 2002-05-10 .. 2018-12-31" in result.stdout
    assert "overlaps" in result.stdout and "Sharpe [95% CI]" in result.stdout
    for line in (f"fold {k}/5 done" for k in range(1, 6)):  # not a terminal: plain progress lines
        assert line in result.stderr
    rep = tmp_path / "rep"
    assert json.loads((rep / "evaluation.json").read_text()) == out
    assert len(list(rep.parent.glob("plotly-*.min.js"))) == 1  # one shared local plotly.js: opens offline
    assert "<script src='../plotly-" in (rep / "report.html").read_text()


def test_evaluate_optimize_and_fixed_params(tmp_path):
    result = run("evaluate", "sample:SP500", "--start", "2010-01-01", "-s", "reversal", "-p", "reversal:method=bollinger",
                 "--optimize", "trend:fast=10:50:20,slow=100:200:100", "--folds", "2", "--json", "ev.json")
    assert result.exit_code == 0, result.output
    out = json.loads((tmp_path / "ev.json").read_text())
    assert list(out) == ["reversal", "trend", "equal_weight", "buy_and_hold"]
    assert out["reversal"]["params"]["method"] == "bollinger"
    assert all(f["params"]["fast"] in (10, 30, 50) and f["params"]["slow"] in (100, 200) for f in out["trend"]["folds"])
    assert "trend: in-sample choice per fold:" in result.stdout


@pytest.mark.parametrize("args, fragments", [
    (["-s", "nope"], ["unknown decision-maker 'nope'"]),
    (["--optimize", "trend"], ["--optimize 'trend' must start with a registered name and a colon"]),
    (["--optimize", "trend:speed=1:3:1"], ["no parameter 'speed'"]),
    (["-p", "trend:fast=ten"], ["fast='ten' is not an integer"]),
    (["--folds", "6000"], ["too few for 6000 folds"]),
    (["--ci", "magic"], ["ci_method must be one of"]),
    (["--fees", "-1"], ["--fees must be a fraction in [0, 1)"]),
])
def test_evaluate_user_errors_are_one_line_exit_2(args, fragments):
    assert_user_error(run("evaluate", "sample:SP500", "-s", "trend", *args), *fragments)


# -------------------------------------------------------------------------------------------- lookahead
def _planted(bars):
    """Long when TOMORROW's close is higher: the classic shift(-1) look-ahead bug."""
    close = bars["close"]
    w = (close.shift(-1) > close).astype(float).rename("weight")
    return decisions.Decision(w, pd.DataFrame({"next_close": close.shift(-1)}))


def test_lookahead_catches_a_planted_lookahead_at_every_cut_exit_1(monkeypatch):
    entry = decisions.Entry("planted", _planted, decisions.ParamSpace({}, owner="planted"), source="tests.planted")
    monkeypatch.setitem(decisions._REGISTRY, "planted", entry)
    result = run("lookahead", "sample:SP500", "-s", "planted", "--last", "300", "--cuts", "10", "--json")
    assert result.exit_code == 1, result.output
    rep = json.loads(result.stdout)
    cuts = default_cuts(300, 10)
    assert [c["row"] for c in rep["cuts"]] == cuts and rep["ok"] is False
    for check in ("truncated", "perturbed"):
        caught = {v["cut"] for v in rep["violations"] if v["check"] == check}
        assert caught == set(cuts), (check, sorted(set(cuts) - caught))
    # the decision AT each cut read the bar after it; it is listed with the column that moved
    assert all(any(v["row"] == v["cut"] and "next_close" in v["columns"] for v in rep["violations"]
                   if v["check"] == "perturbed" and v["cut"] == c) for c in cuts if c < 299)
    assert rep["bars_changed"] == sorted({v["row"] for v in rep["violations"]})

    table = run("lookahead", "sample:SP500", "-s", "planted", "--last", "300")
    assert table.exit_code == 1
    assert "bars whose decision or trace changed" in table.stdout and "LOOK-AHEAD" in table.stdout


def test_lookahead_clean_rule_exit_0_with_warmup_dependence():
    result = run("lookahead", "sample:SP500", "-s", "trend", "-p", "ma=ema", "-p", "slow=60", "--last", "600")
    assert result.exit_code == 0, result.output
    assert "no look-ahead at 8 cut points over 600 bars" in result.stdout
    assert "warm-up dependence" in result.stdout  # an EMA remembers where it started
    rep = json.loads(run("lookahead", "sample:SP500", "-s", "trend", "--last", "600", "--json").stdout)
    assert rep["ok"] is True and rep["violations"] == [] and rep["declared_warmup"] == 100


def test_lookahead_user_errors():
    assert_user_error(run("lookahead", "sample:SP500", "-s", "nope"), "unknown decision-maker 'nope'")
    assert_user_error(run("lookahead", "sample:SP500", "-s", "trend", "-p", "fast=ten"), "is not an integer")


# ------------------------------------------------------------------------------------ sweep overfitting
def test_sweep_prints_the_deflated_sharpe_ratio_and_pbo(tmp_path):
    import markets
    from backtest.overfitting import sweep_overfitting

    result = run("sweep", "sample:SP500", "-s", "trend", "--grid", "fast=5:50:15,slow=60:200:70",
                 "--start", "2008-01-01", "--out", str(tmp_path / "s.csv"))
    assert result.exit_code == 0, result.output
    bars = markets.load("sample:SP500", "2008-01-01")
    table = backtest.sweep("trend", {"fast": [5, 20, 35, 50], "slow": [60, 130, 200]}, bars, fees=0.001,
                           init_cash=10_000)
    want = sweep_overfitting(table, bars, "trend", fees=0.001, init_cash=10_000)
    text = " ".join(result.stdout.split())  # undo the console's line wrapping
    assert f"deflated Sharpe ratio of the best: {want.deflated.dsr:.3g}" in text
    assert f"probability of backtest overfitting: {want.pbo.pbo:.3g}" in text
    assert "16 partitions, 12 combinations)" in text

    one = run("sweep", "sample:SP500", "-s", "trend", "--grid", "fast=10,slow=50", "--out", str(tmp_path / "o.csv"))
    assert one.exit_code == 0 and "overfitting statistics: n/a" in one.stdout
