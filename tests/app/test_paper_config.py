"""The paper config: validation errors that name the field, UTC times, intervals, and the shipped example."""
from __future__ import annotations

import doctest
from datetime import UTC, datetime
from pathlib import Path

import pytest
from pydantic import ValidationError

import app.paper.config as config_mod
from app.paper.config import load_config, parse_interval, to_utc, validate_config
from app.paper.engine import tick
from app.paper.ledger import open_ledger

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "paper.yaml"


def test_docstring_examples():
    assert doctest.testmod(config_mod).failed == 0


@pytest.mark.parametrize("text, seconds", [("1s", 1), ("15m", 900), ("4h", 14400), ("1d", 86400), ("2w", 1209600)])
def test_parse_interval(text, seconds):
    assert parse_interval(text) == seconds


@pytest.mark.parametrize("text", ["", "0d", "1M", "d", "1.5h", "-1h"])
def test_parse_interval_refuses(text):
    with pytest.raises(ValueError, match="bad interval"):
        parse_interval(text)


def test_times_become_utc():
    assert to_utc("2024-01-31") == datetime(2024, 1, 31, tzinfo=UTC)
    assert to_utc("2024-01-31T21:00:00Z") == datetime(2024, 1, 31, 21, tzinfo=UTC)
    assert to_utc("2024-01-31T16:00:00-05:00") == datetime(2024, 1, 31, 21, tzinfo=UTC)


def test_validation_errors_name_the_field():
    base = {"strategy": "trend", "data": "sample:SP500"}
    assert validate_config(base).fees == 0.001
    for change, where in [({"fees": 1.5}, "'fees'"), ({"initial_cash": 0}, "'initial_cash'"),
                          ({"mode": "real"}, "'mode'"), ({"start": "soon"}, "'start'"), ({"oops": 1}, "'oops'")]:
        with pytest.raises(ValueError, match=f"field {where}"):
            validate_config({**base, **change})
    with pytest.raises(ValueError, match="field 'data'"):
        validate_config({"strategy": "trend"})
    with pytest.raises(ValueError, match="expected a mapping"):
        validate_config(["trend"])


def test_config_is_frozen_and_round_trips_through_json():
    cfg = validate_config({"strategy": "trend", "data": "sample:SP500", "start": "2017-01-03"})
    with pytest.raises(ValidationError, match="frozen"):
        cfg.fees = 0.5
    assert validate_config(cfg.to_json()) == cfg


def test_example_config_runs(tmp_path):
    cfg = load_config(EXAMPLE)
    assert (cfg.strategy, cfg.mode, cfg.interval_seconds) == ("trend", "replay", 86400)
    with open_ledger(f"sqlite:///{tmp_path / 'ex.sqlite'}") as ledger:
        ledger.create_run("ex", cfg)
        first = tick(ledger, "ex")
        second = tick(ledger, "ex")
    assert first.last_bar == cfg.start and second.last_bar > first.last_bar
    assert second.cash + second.positions_value == pytest.approx(second.equity, rel=1e-12)


def test_bad_yaml_names_the_file(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("strategy: [unclosed\n")
    with pytest.raises(ValueError, match="bad.yaml: not valid YAML"):
        load_config(path)


def test_aliases_are_fine_until_they_explode(tmp_path):
    """A config reusing an anchor loads; an alias bomb (700 bytes -> billions of values: it grew to 5.65 GB
    and hung) is refused before anything expands it; so is a recursive alias."""
    from app.paper.config import MAX_YAML_NODES

    ok = tmp_path / "ok.yaml"
    ok.write_text("defaults: &p {fast: 3, slow: 8}\nstrategy: trend\ndata: sample:SP500\nparams: *p\n")
    with pytest.raises(ValueError, match="field 'defaults'"):  # the anchor loads; the extra key is what is refused
        load_config(ok)
    levels = "".join(f"l{i + 1}: &l{i + 1} [{', '.join([f'*l{i}'] * 9)}]\n" for i in range(9))
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text("l0: &l0 [x, x, x, x, x, x, x, x, x]\n" + levels + "strategy: trend\ndata: sample:SP500\n")
    assert bomb.stat().st_size < 1000
    with pytest.raises(ValueError, match=f"more than {MAX_YAML_NODES:,} values"):
        load_config(bomb)
    rec = tmp_path / "rec.yaml"
    rec.write_text("a: &a [1, *a]\nstrategy: trend\n")
    with pytest.raises(ValueError, match="recursive YAML alias"):
        load_config(rec)


def test_dates_must_be_in_order_and_cash_finite():
    base = {"strategy": "trend", "data": "sample:SP500"}
    with pytest.raises(ValueError, match="start .* is after end"):
        validate_config({**base, "start": "2020-02-01", "end": "2020-01-01"})
    with pytest.raises(ValueError, match="history_start .* is after start"):
        validate_config({**base, "history_start": "2020-03-01", "start": "2020-02-01"})
    for cash in (float("inf"), float("nan"), 0, -1):
        with pytest.raises(ValueError, match="field 'initial_cash'"):
            validate_config({**base, "initial_cash": cash})
