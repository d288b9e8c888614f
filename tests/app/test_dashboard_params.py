"""Parameter widgets' typing and sweep-axis parsing (plain functions behind the Backtest and Sweep pages)."""
from __future__ import annotations

from typing import Literal

import pytest

from app.dashboard import params as P


def test_param_kind_follows_the_default_type():
    assert [P.param_kind(v) for v in (True, 3, 2.5, "sma", None, (1, 2))] == \
        ["bool", "int", "float", "str", "literal", "literal"]
    assert P.sweepable({"fast": 20, "slow": 100, "ma": "sma", "short": False, "vol": 0.1}) == \
        ["fast", "slow", "vol"]


def test_coerce_param_types_and_errors():
    assert P.coerce_param("fast", 20.0, 5) == 20 and isinstance(P.coerce_param("fast", 20.0, 5), int)
    assert P.coerce_param("vol", "0.25", 0.1) == 0.25
    assert P.coerce_param("short", "yes", False) is True
    assert P.coerce_param("x", "(1, 2)", None) == (1, 2) and P.coerce_param("x", " ", None) is None
    with pytest.raises(ValueError, match=r"parameter 'fast': 2.5 is not an integer \(default 5\)"):
        P.coerce_param("fast", 2.5, 5)
    with pytest.raises(ValueError, match="parameter 'vol'.*finite number"):
        P.coerce_param("vol", "inf", 0.1)
    with pytest.raises(ValueError, match="parameter 'x'.*Python literal"):
        P.coerce_param("x", "foo(", None)


def test_param_choices_reads_literal_annotations():
    def strat(bars, *, ma: Literal["sma", "ema"] = "sma", fast: int = 5, mode: str = "long_only"):
        return bars

    assert P.param_choices(strat) == {"ma": ("sma", "ema")}


@pytest.mark.parametrize("text, kind, expected", [
    ("5:20:5", "int", [5, 10, 15, 20]),
    ("5:22:5", "int", [5, 10, 15, 20]),          # stop not on the grid: not included
    ("20, 5,10,5", "int", [20, 5, 10]),           # comma list, order kept, duplicates dropped
    ("0.1:0.3:0.1", "float", [0.1, 0.2, 0.3]),  # float steps do not lose the stop to rounding
    ("7", "int", [7]),
])
def test_parse_values(text, kind, expected):
    assert P.parse_values(text, kind=kind) == expected


@pytest.mark.parametrize("text, match", [
    ("", "got nothing"),
    ("a, b", "values must be integers"),
    ("1.5", "values must be integers"),
    ("1:2", "start:stop:step"),
    ("10:1:1", "stop >= start"),
    ("1:5:0", "step > 0"),
    ("1:10000:1", "gives 10000 values"),
])
def test_parse_values_errors_name_the_axis_and_the_forms(text, match):
    with pytest.raises(ValueError, match=match) as info:
        P.parse_values(text, name="fast")
    assert "axis 'fast'" in str(info.value) and "5:50:5" in str(info.value)
