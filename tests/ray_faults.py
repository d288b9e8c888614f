"""Decision-makers that fail on purpose inside Ray workers, for the retry tests (a ``DREX_PLUGINS`` module).

Each is ``trend`` (same parameters, batched sweep function and decisions) plus a fault that fires only where
``DREX_TEST_FAULTS`` names a folder, i.e. in the Ray workers of the test session (``tests/conftest.py``'s
``ray_session``), never in the test process itself:

* ``fault_die``: the first call in the session kills its worker process (``os._exit``), as an OOM kill or a
  lost node would; Ray retries the task on a new worker;
* ``fault_oserror``: the first call raises ``OSError`` (a transient I/O fault; retried);
* ``fault_value``: every call raises ``ValueError`` (a deterministic error; never retried).

Every call appends a line to ``<folder>/<name>.calls``, so a test can count the attempts.
"""
from __future__ import annotations

import os
from pathlib import Path

from backtest.decisions import register
from backtest.rules import trend

__all__ = ["FAULTS", "calls"]

FAULTS = ("fault_die", "fault_oserror", "fault_value")


def calls(folder: str | os.PathLike, name: str) -> int:
    """How many times ``name`` was called in the workers."""
    path = Path(folder) / f"{name}.calls"
    return len(path.read_text().splitlines()) if path.exists() else 0


def _first_time(folder: str, name: str) -> bool:
    try:
        os.close(os.open(os.path.join(folder, f"{name}.fired"), os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except FileExistsError:
        return False
    return True


def _fault(name: str) -> None:
    folder = os.environ.get("DREX_TEST_FAULTS")
    if not folder:
        return
    with open(os.path.join(folder, f"{name}.calls"), "a") as fh:
        fh.write(f"{os.getpid()}\n")
    if name == "fault_value":
        raise ValueError("fault_value: a deterministic error (bad parameter); fix the input")
    if not _first_time(folder, name):
        return
    if name == "fault_die":
        os._exit(1)
    raise OSError(f"{name}: a transient fault (injected once)")


def _make(name: str) -> None:
    def batched(bars, **arrays):
        _fault(name)
        return trend.trend_batched(bars, **arrays)

    def decision(bars, **params):
        _fault(name)
        return trend.trend_decision(bars, **params)

    register(name, params=trend.PARAMS, batched=batched, warmup=trend.trend_warmup,
             description=f"trend with an injected fault ({name}; tests only)")(decision)


for _name in FAULTS:
    _make(_name)
