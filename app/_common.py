"""Small helpers shared by the CLI commands: one console, and turning user errors into one line + exit 2.

Kept free of heavy imports: ``drex --help`` imports this module. Also the helpers every command shares: loading
bars under a spinner, tables, option checks.
"""
from __future__ import annotations

import contextlib
import numbers
import re
import sys
import warnings
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

console = Console()
err_console = Console(stderr=True)

USER_ERROR_EXIT = 2
EXECUTIONS = ("next_open", "next_close")


class UserError(Exception):
    """A mistake in what the user asked for (bad spec, bad dates, bad parameter): one line, exit 2."""


def _user_error_types() -> tuple[type[BaseException], ...]:
    types: list[type[BaseException]] = [UserError, ValueError, KeyError, FileNotFoundError]
    if "markets.errors" in sys.modules:  # already imported by whatever raised
        types.append(sys.modules["markets.errors"].DataError)
    return tuple(types)


@contextlib.contextmanager
def user_errors():
    """Run a command body; user errors print ``error: <one line>`` to stderr and exit with code 2.

    Anything else propagates (a bug deserves its traceback). ``KeyError`` messages lose their quotes.
    """
    try:
        yield
    except typer.Exit:
        raise
    except _user_error_types() as exc:
        msg = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
        # escape: messages such as DataError's "[asset X, rule Y] ..." must not be read as rich markup
        err_console.print(f"[bold red]error:[/] {escape(str(msg))}", highlight=False, soft_wrap=True)
        raise typer.Exit(USER_ERROR_EXIT) from None


# ----------------------------------------------------------------------------------- shared by the commands
def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-") or "data"


# --------------------------------------------------------------------------------------------- helpers
def load_bars(spec: str, start: str | None, end: str | None, offline: bool | None = None):
    """``markets.load`` under a spinner; OfflineFallback warnings become one yellow line each."""
    import markets

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", markets.OfflineFallback)
        with console.status(f"loading {spec} ..."):
            bars = markets.load(spec, start, end, offline=offline)
    for w in caught:
        if issubclass(w.category, markets.OfflineFallback):
            err_console.print(f"[yellow]offline fallback:[/] {w.message}", highlight=False, soft_wrap=True)
        else:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    return bars


def fmt(value: Any, digits: int = 6) -> str:
    """Floats (numpy ones too) with ``digits`` significant digits; everything else as str."""
    if isinstance(value, numbers.Real) and not isinstance(value, (bool, numbers.Integral)):
        return f"{float(value):.{digits}g}"
    return str(value)


def metrics_table(metrics: dict[str, Any], title: str) -> Table:
    table = Table(title=title, show_header=True, header_style="bold")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key, value in metrics.items():
        table.add_row(str(key), fmt(value))
    return table


def frame_table(frame, title: str, *, max_cols: int = 12, digits: int = 6) -> Table:
    table = Table(title=title, header_style="bold")
    cols = list(frame.columns)[:max_cols]
    table.add_column(str(frame.index.name or ""))
    for c in cols:
        table.add_column(str(c), justify="right")
    for idx, row in frame[cols].iterrows():
        table.add_row(str(idx), *(fmt(v, digits) for v in row.tolist()))
    return table


def check_execution(execution: str) -> str:
    if execution not in EXECUTIONS:
        raise UserError(f"--execution must be one of {', '.join(EXECUTIONS)}, got {execution!r}")
    return execution


def check_costs(**costs: float) -> None:
    for name, value in costs.items():
        if not value >= 0:
            raise UserError(f"--{name.replace('_', '-')} must be >= 0 (a fraction: 0.001 = 10 bps), got {value}")


# --------------------------------------------------------------------------------------------- commands
