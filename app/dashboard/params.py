"""Strategy parameters for the dashboard forms: widget kinds, value coercion and sweep-axis parsing.

Plain functions (no Streamlit). The widget for a parameter follows the type of its default in
``backtest.strategies.SPECS[name].defaults``: bool -> checkbox, int -> integer input, float -> number input,
str -> text, anything else (None, tuples, ...) -> a text box read as a Python literal.
"""
from __future__ import annotations

import ast
import math
from typing import Any, Literal

__all__ = ["ParamKind", "coerce_param", "param_choices", "param_kind", "parse_values", "sweepable"]

ParamKind = Literal["bool", "int", "float", "str", "literal"]

_MAX_AXIS = 400  # a sweep axis longer than this is almost certainly a typo in the step


def param_kind(default: Any) -> ParamKind:
    """The widget kind for a parameter whose default is ``default`` (bool checked before int)."""
    if isinstance(default, bool):
        return "bool"
    if isinstance(default, int):
        return "int"
    if isinstance(default, float):
        return "float"
    if isinstance(default, str):
        return "str"
    return "literal"


def param_choices(fn: Any) -> dict[str, tuple[Any, ...]]:
    """Parameters annotated ``Literal[...]`` in ``fn``'s signature -> their allowed values (a selectbox).

    Unresolvable annotations are ignored (the parameter falls back to its default's widget).
    """
    import typing

    try:
        hints = typing.get_type_hints(fn)
    except Exception:  # noqa: BLE001 - forward references a strategy module cannot resolve
        return {}
    return {k: typing.get_args(h) for k, h in hints.items() if typing.get_origin(h) is typing.Literal}


def sweepable(defaults: dict[str, Any]) -> list[str]:
    """Names of numeric (int/float, not bool) parameters: the ones a sweep heatmap can put on an axis."""
    return [k for k, v in defaults.items() if param_kind(v) in ("int", "float")]


def coerce_param(name: str, value: Any, default: Any) -> Any:
    """Convert a widget value to the type of ``default``; a bad value raises ``ValueError`` naming ``name``.

    ``literal`` parameters accept Python literals (``None``, ``(1, 2)``, ``0.5``); an empty text means
    ``None``. Non-finite floats are refused.
    """
    kind = param_kind(default)
    try:
        if kind == "bool":
            if isinstance(value, str):
                low = value.strip().lower()
                if low not in ("true", "false", "1", "0", "yes", "no"):
                    raise ValueError(value)
                return low in ("true", "1", "yes")
            return bool(value)
        if kind == "int":
            f = float(value)
            if not f.is_integer():
                raise ValueError(value)
            return int(f)
        if kind == "float":
            f = float(value)
            if not math.isfinite(f):
                raise ValueError(value)
            return f
        if kind == "str":
            return str(value)
        if isinstance(value, str):
            text = value.strip()
            return None if text == "" else ast.literal_eval(text)
        return value
    except (ValueError, TypeError, SyntaxError):
        expect = {"bool": "true/false", "int": "an integer", "float": "a finite number", "str": "text",
                  "literal": "a Python literal such as None, 3 or (1, 2)"}[kind]
        raise ValueError(f"parameter {name!r}: {value!r} is not {expect} (default {default!r})") from None


def parse_values(text: str, *, kind: Literal["int", "float"] = "int", name: str = "value") -> list[int | float]:
    """Parse one sweep axis: ``"start:stop:step"`` (stop included when it lands on the grid) or a comma list.

    >>> parse_values("5:20:5")
    [5, 10, 15, 20]
    >>> parse_values("0.5, 1, 2", kind="float")
    [0.5, 1.0, 2.0]

    Values are de-duplicated keeping order. Errors name ``name`` and show the accepted forms.
    """
    text = (text or "").strip()
    usage = f"axis {name!r}: write start:stop:step (e.g. 5:50:5) or a comma list (e.g. 5, 10, 20)"
    if not text:
        raise ValueError(f"{usage}; got nothing")
    cast = int if kind == "int" else float
    bad = ValueError(f"{usage}; got {text!r} (values must be {'integers' if kind == 'int' else 'numbers'})")
    try:
        if ":" in text:
            parts = [p.strip() for p in text.split(":")]
            if len(parts) != 3:
                raise bad
            start, stop, step = (float(p) for p in parts)
        else:
            raw = [float(p) for p in text.split(",") if p.strip()]
    except ValueError:
        raise bad from None
    if ":" in text:
        if not (step > 0 and stop >= start):
            raise ValueError(f"{usage}; need step > 0 and stop >= start, got {text!r}")
        n = math.floor((stop - start) / step + 1e-9) + 1
        if n > _MAX_AXIS:
            raise ValueError(f"{usage}; {text!r} gives {n} values (max {_MAX_AXIS}): use a larger step")
        raw = [start + i * step for i in range(n)]
    values: list[int | float] = []
    for v in raw:
        if not math.isfinite(v) or (kind == "int" and abs(v - round(v)) > 1e-9):
            raise bad
        c = cast(round(v)) if kind == "int" else cast(round(v, 12))
        if c not in values:
            values.append(c)
    if not values:
        raise ValueError(f"{usage}; got {text!r}")
    return values
