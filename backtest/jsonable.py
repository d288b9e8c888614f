"""The one clean-up of values to strict JSON, used by reports, sweeps, traces, the paper ledger and the dashboard.

Rules: numpy scalars/arrays become Python numbers/lists; NaN and +-inf become ``null`` (a metric that is not
defined, e.g. the Sharpe ratio of a flat line, has no value; strict JSON has no NaN/inf); timestamps and
timedeltas become ISO text; mappings get string keys; anything else falls back to ``str``.

Stdlib only at import (numpy/pandas objects are recognised by duck typing).
"""
from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

__all__ = ["dumps", "jsonable"]


def jsonable(obj: Any) -> Any:
    """``obj`` as plain JSON types (module doc); recursive over mappings, lists, tuples and arrays."""
    if obj is None or isinstance(obj, (bool, str)):
        return obj
    if isinstance(obj, int):
        return int(obj)
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, Mapping):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set, frozenset)):
        return [jsonable(v) for v in obj]
    if hasattr(obj, "tolist") and hasattr(obj, "dtype"):  # numpy scalar or array
        return jsonable(obj.tolist())
    if hasattr(obj, "isoformat"):  # datetime, date, pandas Timestamp
        return obj.isoformat()
    if type(obj).__name__ == "Timedelta" or hasattr(obj, "total_seconds"):
        return str(obj)
    try:
        f = float(obj)
    except (TypeError, ValueError):
        return str(obj)
    return f if math.isfinite(f) else None


def dumps(obj: Any, *, indent: int | None = 2) -> str:
    """``json.dumps(jsonable(obj))``, strict (never NaN/Infinity tokens)."""
    return json.dumps(jsonable(obj), indent=indent, allow_nan=False)
