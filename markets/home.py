"""The DREX data home: ``$DREX_HOME`` or ``~/.drex``."""

from __future__ import annotations

import os
from pathlib import Path


def data_home(*parts: str, create: bool = True) -> Path:
    """``$DREX_HOME/<parts...>`` (default ``~/.drex``), created on demand.

    Layout: ``cache/`` downloaded bars, ``runs/`` training runs, ``paper/`` paper-trading ledgers,
    ``reports/`` default report folder.
    """
    root = Path(os.environ.get("DREX_HOME") or Path.home() / ".drex").expanduser()
    path = root.joinpath(*parts)
    if create:
        path.mkdir(parents=True, exist_ok=True)
    return path
