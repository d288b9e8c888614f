"""The one parameter layer: typing, bounds, choices, cross-parameter rules and the grid syntax."""
from __future__ import annotations

import math

import pytest

from backtest.params import MAX_AXIS, Param, ParamSpace, grid_size, parse_axis


def _rule(p):
    if p["fast"] >= p["slow"]:
        raise ValueError(f"fast ({p['fast']}) must be smaller than slow ({p['slow']})")


SPACE = ParamSpace({
    "fast": Param(20, low=1, doc="fast window"),
    "slow": Param(100, low=1, doc="slow window"),
    "ma": Param("sma", choices=("sma", "ema"), doc="kind"),
    "vol": Param(0.15, low=0.0, low_open=True, high=2.0, doc="target"),
    "short": Param(False, doc="allow shorts"),
    "tag": Param(None, kind="str", doc="optional label"),
}, check=_rule, owner="demo")


def test_kinds_are_inferred_and_bind_fills_defaults():
    assert [SPACE.params[k].kind for k in SPACE.params] == ["int", "int", "str", "float", "bool", "str"]
    assert SPACE.bind() == {"fast": 20, "slow": 100, "ma": "sma", "vol": 0.15, "short": False, "tag": None}
    got = SPACE.bind({"fast": "10", "vol": "0.5", "short": "yes", "ma": "ema", "tag": "x"})
    assert got == {"fast": 10, "slow": 100, "ma": "ema", "vol": 0.5, "short": True, "tag": "x"}
    assert isinstance(got["fast"], int) and isinstance(got["vol"], float)
    assert SPACE.bind({"fast": 10.0})["fast"] == 10 and SPACE.bind({"fast": "1e1"})["fast"] == 10
    assert SPACE.bind({"tag": "none"})["tag"] is None and SPACE.bind({"tag": ""})["tag"] is None
    with pytest.raises(TypeError, match="pass kind="):
        Param(None)


@pytest.mark.parametrize("values, match", [
    ({"fast": 0}, "fast must be an integer >= 1, got 0"),
    ({"fast": 2.5}, "fast must be an integer, got 2.5"),
    ({"fast": "ten"}, r"fast='ten' is not an integer \(default 20; accepted: an integer >= 1\)"),
    ({"fast": True}, "fast must be an integer"),
    ({"vol": 0.0}, r"vol must be a number in \(0, 2\], got 0.0"),
    ({"vol": 2.5}, r"vol must be a number in \(0, 2\]"),
    ({"vol": float("nan")}, "vol must be finite"),
    ({"vol": "inf"}, "vol must be finite"),
    ({"ma": "wma"}, "ma must be one of 'sma', 'ema', got 'wma'"),
    ({"short": "maybe"}, "short='maybe' is not true/false"),
    ({"short": 2}, "short must be true or false"),
    ({"tag": 3}, "tag must be text"),
    ({"speed": 1}, "demo has no parameter 'speed'; valid: fast=20, slow=100"),
    ({"fast": 100}, r"fast \(100\) must be smaller than slow \(100\)"),  # the cross-parameter rule
])
def test_bad_values_raise_one_line_naming_the_parameter(values, match):
    with pytest.raises(ValueError, match=match) as info:
        SPACE.bind(values)
    assert "\n" not in str(info.value)


def test_parse_items_is_the_cli_param_syntax():
    assert SPACE.parse_items(["fast=5", "ma = ema"]) == {"fast": 5, "ma": "ema"}
    for bad, match in [(["fast"], "not name=value"), (["=3"], "not name=value"), (["fast=1", "fast=2"], "twice")]:
        with pytest.raises(ValueError, match=match):
            SPACE.parse_items(bad)


def test_grid_syntax_ranges_lists_and_single_values():
    grid = SPACE.parse_grid(["fast=5:50:5,slow=20:200:10", "ma=sma|ema", "vol=0.1:0.3:0.1", "short=true"])
    assert grid["fast"] == list(range(5, 51, 5))  # stop included: it lands on the grid
    assert grid["slow"] == list(range(20, 201, 10))
    assert grid["ma"] == ["sma", "ema"] and grid["short"] == [True]
    assert grid["vol"] == [0.1, 0.2, 0.3]  # float steps do not lose the stop to rounding
    assert SPACE.parse_grid(["fast=5:12:5"])["fast"] == [5, 10]  # 12 is off the grid
    assert SPACE.parse_grid(["fast=3|7|3"])["fast"] == [3, 7]  # duplicates dropped, order kept
    assert grid_size(grid) == 10 * 19 * 2 * 3 * 1
    for bad, match in [("fast=5:50", "start:stop:step"), ("fast=5:50:0", "step > 0"), ("fast=9:5:1", "stop >= start"),
                       ("ma=a:b:c", "not numeric"), ("fast=1:2:1,fast=3|4", "given twice"),
                       ("nope=1|2", "no parameter 'nope'"), ("fast=0|5", "fast must be an integer >= 1"),
                       ("fast=a:b:c", "must be integers"), ("fast=1||2", "empty value"), ("vol=0:inf:1", "finite")]:
        with pytest.raises(ValueError, match=match):
            SPACE.parse_grid([bad])
    with pytest.raises(ValueError, match="empty grid"):
        SPACE.parse_grid([""])
    with pytest.raises(ValueError, match=f"at most {MAX_AXIS:,}"):
        parse_axis("fast", f"1:{MAX_AXIS + 1}:1", SPACE.params["fast"])


def test_describe_words_match_the_bounds():
    assert Param(3, low=1).describe() == "an integer >= 1"
    assert Param(0.5, low=0.0, low_open=True).describe() == "a number > 0"
    assert Param(30.0, low=0.0, high=100.0).describe() == "a number in [0, 100]"
    assert Param(1.0, high=2.0).describe() == "a number <= 2"
    assert Param("a", choices=("a", "b")).describe() == "a | b"
    assert Param(None, kind="float").describe() == "a number or none" and math.isfinite(1.0)


def test_registered_rules_share_the_layer_with_the_cli_and_the_python_api():
    from backtest.decisions import bind
    from backtest.rules.trend import trend
    from tests.backtest.test_strategies import make_bars

    assert bind("trend", {"fast": "5", "slow": "30"})["fast"] == 5
    with pytest.raises(ValueError, match=r"fast \(30\) must be smaller than slow \(5\)"):
        trend(make_bars(50), fast=30, slow=5)  # the Python API checks through the same declaration
