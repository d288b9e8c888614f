"""The dashboard's parameter widgets and sweep axes sit on the one parameter layer (backtest.params)."""
from __future__ import annotations

import pytest

from app.dashboard import params as P
from backtest.decisions import get
from backtest.params import Param


def test_widget_kinds_follow_the_declarations():
    space = get("trend").space
    assert {k: P.widget_kind(p) for k, p in space.params.items()} == {
        "fast": "int", "slow": "int", "ma": "choice", "mode": "choice", "signal": "choice", "lookback": "int"}
    assert P.sweepable(space) == ["fast", "slow", "lookback"]
    assert P.sweepable(get("reversal").space) == ["rsi_window", "lower", "upper", "bb_window", "entry_z", "exit_z"]


def test_default_axes_parse_and_respect_the_bounds():
    for name in ("trend", "reversal", "breakout", "positioning"):
        space = get(name).space
        for k in P.sweepable(space):
            values = P.axis_values(k, P.default_axis(space.params[k]), space.params[k])
            assert values and all(space.params[k].parse(k, v) == v for v in values), (name, k)


@pytest.mark.parametrize("text, expected", [
    ("5:20:5", [5, 10, 15, 20]), ("5:22:5", [5, 10, 15, 20]), ("20|5|10|5", [20, 5, 10]), ("7", [7])])
def test_axis_values_use_the_cli_grid_syntax(text, expected):
    assert P.axis_values("fast", text, Param(20, low=1)) == expected


@pytest.mark.parametrize("text, match", [
    ("", "got nothing"), ("a|b", "not an integer"), ("1:2", "start:stop:step"), ("10:1:1", "stop >= start"),
    ("1:5:0", "step > 0"), ("1:10000:1", "gives 10000 values"), ("0|5", "fast must be an integer >= 1")])
def test_axis_errors_name_the_axis(text, match):
    with pytest.raises(ValueError, match=match) as info:
        P.axis_values("fast", text, Param(20, low=1))
    assert "fast" in str(info.value)
