"""Declared parameters of decision-makers: the ONE place values are parsed, typed and validated.

Every registered decision-maker declares its parameters as ``Param``s in a ``ParamSpace`` (name -> Param,
plus an optional cross-parameter rule). The CLI (``-p k=v``, ``--grid``), the dashboard forms, sweeps, paper
configs and ``backtest.decisions.build`` all go through ``ParamSpace.bind`` / ``parse_grid``:

* a value may come typed (Python API, YAML) or as text (CLI, dashboard); text is parsed by the parameter's
  kind (``int``, ``float``, ``bool``: true/false/yes/no/on/off/1/0, ``str``);
* numbers are checked against inclusive bounds ``low``/``high`` (``low_open`` makes the lower bound strict)
  and must be finite; ``choices`` restrict any kind to a fixed set;
* the cross-parameter rule (``check(params)``, e.g. ``fast < slow``) runs on the complete bound dict and
  raises ``ValueError`` naming the fix.

Grid syntax (one parser for the CLI and the dashboard): ``name=start:stop:step`` is a range that includes
``stop`` when it lands on the grid (``fast=5:50:5`` -> 5, 10, ..., 50); ``name=a|b|c`` lists values;
``name=v`` is one value; several parameters are separated by commas (``fast=5:50:5,slow=20:200:10``).

Stdlib only: the CLI imports this module at start-up cost.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["MAX_AXIS", "Param", "ParamSpace", "grid_size", "parse_axis"]

MAX_AXIS = 100_000
"""Values one grid axis may hold (a longer axis is almost certainly a typo in the step)."""

_TRUE, _FALSE = frozenset({"true", "yes", "1", "on"}), frozenset({"false", "no", "0", "off"})
_KINDS = ("int", "float", "bool", "str")


def _kind_of(default: Any) -> str:
    if isinstance(default, bool):
        return "bool"
    if isinstance(default, int):
        return "int"
    if isinstance(default, float):
        return "float"
    if isinstance(default, str):
        return "str"
    raise TypeError(f"cannot infer the kind of a parameter whose default is {default!r}; pass kind=")


@dataclass(frozen=True)
class Param:
    """One declared parameter.

    default: the value used when none is given. kind: ``int``/``float``/``bool``/``str`` (inferred from the
    default; required when the default is None, which makes the parameter nullable: ``none`` or an empty text
    gives None). low/high: inclusive bounds for numbers (``low_open``: ``> low``). choices: the allowed
    values. doc: one line shown by ``drex strategies`` and the dashboard.
    """

    default: Any
    low: float | None = None
    high: float | None = None
    choices: tuple[Any, ...] | None = None
    doc: str = ""
    low_open: bool = False
    kind: str = ""

    def __post_init__(self) -> None:
        kind = self.kind or _kind_of(self.default)
        if kind not in _KINDS:
            raise ValueError(f"Param kind must be one of {_KINDS}, got {kind!r}")
        object.__setattr__(self, "kind", kind)
        if self.choices is not None:
            object.__setattr__(self, "choices", tuple(self.choices))

    @property
    def nullable(self) -> bool:
        return self.default is None

    def describe(self) -> str:
        """The accepted values in words: ``an integer >= 1``, ``a number in (0, 100]``, ``sma | ema``."""
        if self.choices is not None:
            return " | ".join(map(str, self.choices))
        what = _article(self.kind)
        lo, hi = self.low, self.high
        if self.kind in ("int", "float") and lo is not None and hi is not None:
            return f"{what} in {'(' if self.low_open else '['}{_num(lo)}, {_num(hi)}]"
        if self.kind in ("int", "float") and lo is not None:
            return f"{what} {'>' if self.low_open else '>='} {_num(lo)}"
        if self.kind in ("int", "float") and hi is not None:
            return f"{what} <= {_num(hi)}"
        return what + (" or none" if self.nullable else "")

    def parse(self, name: str, value: Any) -> Any:
        """``value`` (typed, or text to parse) checked against this declaration; ``ValueError`` names ``name``."""
        if self.nullable and (value is None or (isinstance(value, str) and value.strip().lower() in ("", "none"))):
            return None
        v = self._typed(name, value)
        if self.choices is not None and v not in self.choices:
            raise ValueError(f"parameter {name} must be one of {', '.join(map(repr, self.choices))}, got {value!r}")
        if self.kind in ("int", "float"):
            bad = (self.low is not None and (v < self.low or (self.low_open and v == self.low))) or (
                self.high is not None and v > self.high)
            if bad:
                raise ValueError(f"parameter {name} must be {self.describe()}, got {value!r}")
        return v

    def _typed(self, name: str, value: Any) -> Any:
        kind = self.kind
        if isinstance(value, str) and kind != "str":
            text = value.strip()
            try:
                if kind == "bool":
                    low = text.lower()
                    if low not in _TRUE and low not in _FALSE:
                        raise ValueError(text)
                    return low in _TRUE
                num = float(text) if kind == "float" else _int_text(text)
            except ValueError:
                raise ValueError(f"parameter {name}={value!r} is not {_article(kind)} (default "
                                 f"{self.default!r}; accepted: {self.describe()})") from None
            value = num
        if kind == "bool":
            if isinstance(value, bool) or (_is_number(value) and value in (0, 1)):
                return bool(value)
            raise ValueError(f"parameter {name} must be true or false, got {value!r}")
        if kind == "str":
            if not isinstance(value, str):
                raise ValueError(f"parameter {name} must be text, got {value!r}")
            return value
        if isinstance(value, bool) or not _is_number(value):
            raise ValueError(f"parameter {name} must be {_article(kind)}, got {value!r}")
        f = float(value)
        if not math.isfinite(f):
            raise ValueError(f"parameter {name} must be finite, got {value!r}")
        if kind == "int":
            if not f.is_integer():
                raise ValueError(f"parameter {name} must be an integer, got {value!r}")
            return int(f)
        return f


def _int_text(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        f = float(text)  # "1e3" or "20.0"
        if not (math.isfinite(f) and f.is_integer()):
            raise
        return int(f)


def _is_number(value: Any) -> bool:
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return not isinstance(value, str)


def _article(kind: str) -> str:
    return {"int": "an integer", "float": "a number", "bool": "true/false", "str": "text"}[kind]


def _num(x: float) -> str:
    return f"{x:g}"


@dataclass(frozen=True)
class ParamSpace:
    """The declared parameters of one decision-maker and its cross-parameter rule.

    params: name -> Param, in display order. check: ``check(bound: dict) -> None`` raising ``ValueError``
    for combinations that make no sense (e.g. ``fast >= slow``). owner: the decision-maker's name (errors).
    """

    params: Mapping[str, Param] = field(default_factory=dict)
    check: Callable[[dict[str, Any]], None] | None = None
    owner: str = ""

    @property
    def defaults(self) -> dict[str, Any]:
        return {k: p.default for k, p in self.params.items()}

    def _param(self, name: str) -> Param:
        try:
            return self.params[name]
        except KeyError:
            valid = ", ".join(f"{k}={p.default!r}" for k, p in self.params.items()) or "none"
            raise ValueError(f"{self.owner or 'this decision-maker'} has no parameter {name!r}; valid: "
                             f"{valid}") from None

    def bind(self, values: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Every parameter, typed and validated: ``values`` (typed or text) over the defaults; unknown names,
        bad types, out-of-range values and failed cross-parameter rules raise ``ValueError``."""
        values = dict(values or {})
        for name in values:
            self._param(name)
        bound = {}
        for name, p in self.params.items():
            bound[name] = p.parse(name, values[name]) if name in values else p.default
        if self.check is not None:
            self.check(bound)
        return bound

    def parse_items(self, items: Iterable[str]) -> dict[str, Any]:
        """``["fast=10", "ma=ema"]`` (the CLI's ``-p``) -> ``{"fast": 10, "ma": "ema"}`` typed (not yet
        cross-checked: ``bind`` does that with the defaults filled in)."""
        out: dict[str, Any] = {}
        for item in items:
            name, sep, raw = str(item).partition("=")
            name = name.strip()
            if not sep or not name:
                raise ValueError(f"parameter {item!r} is not name=value (e.g. -p fast=10)")
            if name in out:
                raise ValueError(f"parameter {name!r} is given twice")
            out[name] = self._param(name).parse(name, raw.strip())
        return out

    def parse_grid(self, items: Iterable[str]) -> dict[str, list[Any]]:
        """``["fast=5:50:5,slow=20:200:10", "ma=sma|ema"]`` -> ``{"fast": [5, ..., 50], ...}`` (module doc)."""
        grid: dict[str, list[Any]] = {}
        for item in items:
            for part in filter(None, (p.strip() for p in str(item).split(","))):
                name, sep, raw = part.partition("=")
                name = name.strip()
                if not sep or not name or not raw.strip():
                    raise ValueError(f"grid entry {part!r} is not name=values (e.g. fast=5:50:5 or ma=sma|ema)")
                if name in grid:
                    raise ValueError(f"grid parameter {name!r} is given twice")
                grid[name] = parse_axis(name, raw, self._param(name))
        if not grid:
            raise ValueError("empty grid; e.g. 'fast=5:50:5,slow=20:200:10'")
        return grid

    def check_grid(self, grid: Mapping[str, Any]) -> None:
        """Names in ``grid`` must be declared parameters and each axis non-empty."""
        if not isinstance(grid, Mapping) or not grid:
            raise ValueError(f"grid must be a non-empty dict of parameter lists; {self.owner} takes "
                             f"{', '.join(self.params) or 'no parameters'}")
        for name, values in grid.items():
            self._param(name)
            if isinstance(values, (list, tuple, range)) and len(values) == 0:
                raise ValueError(f"grid parameter {name!r} has no values; give at least one")


def parse_axis(name: str, text: str, param: Param) -> list[Any]:
    """One grid axis: ``start:stop:step`` (stop included when on the grid), ``a|b|c`` or one value; each value
    parsed and checked by ``param`` (bounds, choices). Duplicates are dropped keeping order."""
    raw = str(text).strip()
    if ":" in raw:
        if param.kind not in ("int", "float"):
            raise ValueError(f"grid range {name}={raw!r}: {name} is not numeric; list values as {name}=a|b")
        parts = raw.split(":")
        if len(parts) != 3:
            raise ValueError(f"grid range {name}={raw!r} must be start:stop:step (e.g. {name}=5:50:5)")
        cast = int if param.kind == "int" else float
        try:
            start, stop, step = (cast(p.strip()) if cast is float else _int_text(p.strip()) for p in parts)
        except ValueError:
            raise ValueError(f"grid range {name}={raw!r}: start, stop and step must be "
                             f"{'integers' if cast is int else 'numbers'}") from None
        if not all(math.isfinite(v) for v in (start, stop, step)) or step <= 0 or stop < start:
            raise ValueError(f"grid range {name}={raw!r} needs finite values, step > 0 and stop >= start")
        count = int((stop - start) / step + 1e-9) + 1
        if count > MAX_AXIS:
            raise ValueError(f"grid range {name}={raw!r} has {count:,} values (at most {MAX_AXIS:,}); use a "
                             "larger step")
        values = [start + i * step if cast is int else round(start + i * step, 12) for i in range(count)]
    else:
        values = [v.strip() for v in raw.split("|")]
        if any(not v for v in values):
            raise ValueError(f"grid values {name}={raw!r}: empty value; list values as {name}=a|b|c")
    out: list[Any] = []
    for v in values:
        parsed = param.parse(name, v)
        if parsed not in out:
            out.append(parsed)
    return out


def grid_size(grid: Mapping[str, Any]) -> int:
    """Number of combinations of ``grid`` (lists multiply; scalars count once)."""
    n = 1
    for values in grid.values():
        n *= len(values) if isinstance(values, (list, tuple, range)) else 1
    return n
