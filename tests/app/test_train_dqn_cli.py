"""``drex train dqn``: a tiny run writes the run folder the backtest and the Training monitor read; bad options
are one-line errors (exit 2)."""
from __future__ import annotations

import json

from typer.testing import CliRunner

from app.cli import app

SPEC = "synth:pairs?seed=3&n=1200&half_life=30&spread_vol=0.004"


def test_train_dqn_tiny_run_then_backtest(tmp_path):
    out = tmp_path / "run"
    res = CliRunner().invoke(app, ["train", "dqn", SPEC, "--steps", "600", "--out", str(out), "--n-envs", "8",
                                   "--hedge-window", "60", "--episode-bars", "64", "--log-every", "200",
                                   "--save-every", "400", "--fees", "0.0002"])
    assert res.exit_code == 0, res.output
    for name in ("config.json", "metrics.jsonl", "evaluation.json", "model/manifest.json",
                 "model/policy.safetensors", "model/sb3.zip"):
        assert (out / name).exists(), name
    assert list((out / "checkpoints").glob("step_*/manifest.json"))
    assert "pairs_zscore" in res.output and "random" in res.output
    lines = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [x["step"] for x in lines] == [200, 400, 600]
    bt = CliRunner().invoke(app, ["backtest", SPEC, "-s", "dqn_pairs", "-p", f"model={out}", "--json",
                                  "--no-report", "--fees", "0.0002"])
    assert bt.exit_code == 0, bt.output


def test_train_dqn_bad_options_are_one_line_errors(tmp_path):
    res = CliRunner().invoke(app, ["train", "dqn", SPEC, "--out", str(tmp_path / "x"), "--algo", "ppo"])
    assert res.exit_code == 2 and "algo must be one of dqn, qrdqn-cvar" in res.output
    res = CliRunner().invoke(app, ["train", "dqn", "sample:SP500", "--out", str(tmp_path / "y"), "--steps", "10"])
    assert res.exit_code == 2 and "at least two assets" in res.output
