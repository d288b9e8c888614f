"""Bandits & DQN page (Streamlit AppTest on the real page script) and its data helpers."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from streamlit.testing.v1 import AppTest

import app.dashboard
from app.dashboard import bandits_data as B

ENTRY = str(Path(app.dashboard.__file__).with_name("main.py"))


def test_generations_log_the_deployed_policy_and_forecast_the_next():
    f = B.generations(n_generations=4, rounds=400, n_bootstrap=50, seed=1)
    assert list(f.index) == [0, 1, 2, 3]
    assert f.loc[0, ["ips", "snips", "dr"]].isna().all()  # nothing to forecast the first generation from
    assert (f.loc[1:, "ips_low"] <= f.loc[1:, "ips"]).all() and (f.loc[1:, "ips"] <= f.loc[1:, "ips_high"]).all()
    assert f.loc[0, "value"] < f.loc[3, "value"] <= f.loc[3, "optimal"]  # uniform start, then it learns
    # the DR forecast of generation 1 is near what generation 1 then achieved
    assert abs(f.loc[1, "dr"] - f.loc[1, "value"]) < 0.25
    again = B.generations(n_generations=4, rounds=400, n_bootstrap=50, seed=1)
    np.testing.assert_array_equal(f.to_numpy(), again.to_numpy())  # seeded


def test_model_choices_lists_run_folders(tmp_path):
    (tmp_path / "a" / "model").mkdir(parents=True)
    (tmp_path / "a" / "model" / "manifest.json").write_text("{}")
    (tmp_path / "b").mkdir()
    assert B.model_choices(tmp_path) == ["default", str(tmp_path / "a")]


def test_page_runs_both_sections():
    at = AppTest.from_file(ENTRY, default_timeout=180)
    at.switch_page("views/bandits.py")
    at.run()
    assert not at.exception
    at.number_input(key="bd_gen").set_value(3)
    at.number_input(key="bd_rounds").set_value(400)
    at.text_input(key="bd_spec").set_value("synth:pairs?seed=1&n=2000")
    at.number_input(key="bd_last").set_value(600)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    assert len(at.dataframe) == 2
    assert at.dataframe[0].value.shape[0] == 3  # one row per generation
    assert set(at.dataframe[1].value.columns) == {"dqn_pairs", "pairs_zscore"}
    assert "Pair A/B" in " ".join(c.value for c in at.caption)


def test_page_reports_a_bad_spec_in_one_line():
    at = AppTest.from_file(ENTRY, default_timeout=180)
    at.switch_page("views/bandits.py")
    at.run()
    at.text_input(key="bd_spec").set_value("sample:SP500")
    at.run()
    assert any("lack" in e.value or "two assets" in e.value for e in at.error), [e.value for e in at.error]
