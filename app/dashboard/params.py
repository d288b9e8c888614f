"""Decision-maker parameters for the dashboard forms: widget kinds and sweep axes, on the one parameter layer.

Plain functions (no Streamlit) over ``backtest.params``: a parameter's widget follows its declaration
(choices -> selectbox, bool -> checkbox, int/float -> number input, str -> text), every widget value is
parsed and checked by ``Param.parse``, and sweep axes use the CLI's grid syntax (``start:stop:step`` with the
stop included when it lands on the grid, or ``a|b|c``) through ``backtest.params.parse_axis``.
"""
from __future__ import annotations

from typing import Any, Literal

from backtest.params import Param, ParamSpace, parse_axis

__all__ = ["MAX_DASHBOARD_AXIS", "WidgetKind", "axis_values", "default_axis", "sweepable", "widget_kind"]

WidgetKind = Literal["choice", "bool", "int", "float", "str"]

MAX_DASHBOARD_AXIS = 400
"""A heatmap axis longer than this is almost certainly a typo in the step."""


def widget_kind(param: Param) -> WidgetKind:
    """The widget for ``param``: a selectbox when it has choices, else by its kind."""
    return "choice" if param.choices is not None else param.kind  # type: ignore[return-value]


def sweepable(space: ParamSpace) -> list[str]:
    """Names of numeric parameters without a fixed set of choices: the ones a heatmap can put on an axis."""
    return [k for k, p in space.params.items() if p.kind in ("int", "float") and p.choices is None]


def default_axis(param: Param) -> str:
    """A starting axis around the default, in the grid syntax (kept inside the parameter's bounds)."""
    d = param.default
    hi = param.high if param.high is not None else float("inf")
    if param.kind == "int" and isinstance(d, int) and d > 0:
        step = max(1, round(d / 4))
        lo = max(step, int(param.low or 0) + (1 if param.low_open else 0))
        return f"{lo}:{int(min(2 * d, hi))}:{step}"
    if param.kind == "float" and isinstance(d, float) and d > 0:
        step = d / 4
        lo = d / 2 if param.low is None else max(d / 2, param.low + (step if param.low_open else 0.0))
        return f"{lo:g}:{min(d * 2, hi):g}:{step:g}"
    return "0|1|2" if param.kind == "int" else "0|0.5|1"


def axis_values(name: str, text: str, param: Param) -> list[Any]:
    """One sweep axis parsed and checked (``backtest.params.parse_axis``), at most ``MAX_DASHBOARD_AXIS``."""
    if not (text or "").strip():
        raise ValueError(f"axis {name!r}: write start:stop:step (e.g. 5:50:5) or values a|b|c; got nothing")
    try:
        values = parse_axis(name, text, param)
    except ValueError as err:
        raise ValueError(f"axis {name!r}: {err}") from None
    if len(values) > MAX_DASHBOARD_AXIS:
        raise ValueError(f"axis {name!r}: {text!r} gives {len(values)} values (max {MAX_DASHBOARD_AXIS}); use a "
                         "larger step")
    return values
