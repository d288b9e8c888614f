"""Small helpers shared by the CLI commands: one console, and turning user errors into one line + exit 2.

Kept free of heavy imports: ``drex --help`` imports this module. Also the helpers every command shares: loading
bars under a spinner, tables, option checks.
"""
from __future__ import annotations

import contextlib
import math
import numbers
import re
import sys
import warnings
from typing import Any

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text
from typer.core import TyperGroup

from app.errors import UserError, describe, one_line

__all__ = [
    "EXECUTIONS", "OPTIONAL_VALUES", "RAY_HELP", "USER_ERROR_EXIT", "DrexGroup", "UserError", "check_costs",
    "check_execution", "check_positive", "check_run_options", "connect_ray", "console", "err_console", "fail", "fmt", "frame_table", "load_bars",
    "metrics_table", "optional_values", "say", "slug", "user_errors",
]

# emoji=False: user text such as "a:b:c" must never turn into an emoji (":b:" is one); user text is printed
# as rich Text (never parsed as markup) wherever it can contain brackets.
console = Console(emoji=False)
err_console = Console(stderr=True, emoji=False)

USER_ERROR_EXIT = 2
EXECUTIONS = ("next_open", "next_close")


def say(text: str, *, err: bool = False, style: str | None = None) -> None:
    """Print ``text`` as plain text (no markup, no emoji, never wrapped): safe for user-supplied values."""
    (err_console if err else console).print(Text(str(text), style=style or ""), soft_wrap=True, highlight=False)


def _error_line(message: str) -> Text:
    return Text.assemble(("error:", "bold red"), " ", one_line(message))


def fail(message: str, code: int = USER_ERROR_EXIT):
    """Print ``error: <message>`` (one line, stderr) and exit with ``code``."""
    err_console.print(_error_line(message), soft_wrap=True, highlight=False)
    raise typer.Exit(code)


@contextlib.contextmanager
def user_errors():
    """Run a command body; user and environment errors print ``error: <one line>`` and exit with code 2.

    The classification is ``app.errors.describe`` (bad input; missing, unwritable or full files; memory;
    YAML; ledger database errors...). Anything else propagates: a bug deserves its traceback.
    """
    try:
        yield
    except typer.Exit:
        raise
    except Exception as exc:
        message = describe(exc)
        if message is None:
            raise
        fail(message)


# ------------------------------------------------------------------------------------- usage and help
def _click_exception() -> type[BaseException]:
    try:
        from typer._click.exceptions import ClickException  # typer >= 0.22 vendors click
    except ImportError:  # pragma: no cover - older typer on click
        from click.exceptions import ClickException
    return ClickException


_METAVARS = {"str": "TEXT", "int": "INT", "float": "NUMBER", "Path": "PATH", "bool": ""}


def _metavar(param: Any) -> str | None:
    bare = param.bare_type() if hasattr(param, "bare_type") else "str"
    bare = bare[5:-1] if bare.startswith("list[") else bare
    if getattr(param, "is_flag", False):
        return ""
    desc = getattr(param, "type_descriptor", None)
    if desc is not None and getattr(desc, "is_choice", False):
        return None  # typer lists the choices
    return _METAVARS.get(bare, bare.upper())


def _tidy_params(command: Any) -> None:
    """Plain metavars for ``--help``: nothing after a flag (not ``<bool>``), TEXT/INT/NUMBER/PATH otherwise."""
    params = list(getattr(command, "params", []))
    with contextlib.suppress(Exception):  # the lazily created --help option (its type column said <bool>)
        from types import SimpleNamespace

        params.append(command.get_help_option(SimpleNamespace(help_option_names=["--help"])))
    for param in filter(None, params):
        kind = getattr(param, "param_type_name", "")
        if kind == "option" and param.metavar is None:
            param.metavar = _metavar(param)
        elif kind == "argument" and param.metavar is None:
            param.metavar = str(param.name).upper()
            param.display_type_rich = lambda ctx: None  # the name column already says SPEC
    for sub in getattr(command, "commands", {}).values():
        _tidy_params(sub)


OPTIONAL_VALUES = {"--ray": "local"}
"""Options whose value may be left out (typer has no optional option values): ``--ray`` alone, last or
followed by another option, means ``--ray=local``; ``--ray auto`` / ``--ray HOST:PORT`` give an address."""


def optional_values(args: list[str]) -> list[str]:
    """``args`` with every ``OPTIONAL_VALUES`` option that has no value given its default value."""
    out = []
    for i, arg in enumerate(args):
        if arg == "--":
            return out + args[i:]
        following = args[i + 1] if i + 1 < len(args) else None
        if arg in OPTIONAL_VALUES and (following is None or following.startswith("-")):
            arg = f"{arg}={OPTIONAL_VALUES[arg]}"
        out.append(arg)
    return out


class DrexGroup(TyperGroup):
    """The ``drex`` command groups: a usage error (unknown option, missing argument, bad value) prints ONE
    line ``error: ...`` naming the ``--help`` to read and exits 2 (not click's Rich box); ``--help`` shows
    plain metavars."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        _tidy_params(self)
        args = optional_values(list(sys.argv[1:] if args is None else args))
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        try:
            rv = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except _click_exception() as exc:
            ctx = getattr(exc, "ctx", None)
            hint = f" (see {ctx.command_path} --help)" if ctx is not None else ""
            err_console.print(_error_line(exc.format_message() + hint), soft_wrap=True, highlight=False)
            code = getattr(exc, "exit_code", USER_ERROR_EXIT)
            sys.exit(USER_ERROR_EXIT if code in (1, 2) else code)
        except typer.Abort:
            err_console.print(_error_line("aborted"), soft_wrap=True, highlight=False)
            sys.exit(1)
        sys.exit(rv if isinstance(rv, int) and not isinstance(rv, bool) else 0)


# ----------------------------------------------------------------------------------- shared by the commands
def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-") or "data"


# --------------------------------------------------------------------------------------------- helpers
def load_bars(spec: str, start: str | None, end: str | None, offline: bool | None = None):
    """``markets.load`` under a spinner; OfflineFallback warnings become one yellow line each."""
    import markets

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", markets.OfflineFallback)
        with console.status(Text(f"loading {spec} ...")):
            bars = markets.load(spec, start, end, offline=offline)
    for w in caught:
        if issubclass(w.category, markets.OfflineFallback):
            err_console.print(Text.assemble(("offline fallback:", "yellow"), " ", str(w.message)),
                              highlight=False, soft_wrap=True)
        else:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    return bars


def fmt(value: Any, digits: int = 6) -> str:
    """Floats (numpy ones too) with ``digits`` significant digits; everything else as str."""
    if isinstance(value, numbers.Real) and not isinstance(value, (bool, numbers.Integral)):
        return f"{float(value):.{digits}g}"
    return str(value)


def metrics_table(metrics: dict[str, Any], title: str, *, units: dict[str, str] | None = None) -> Table:
    """One row per metric; ``units`` (metric -> unit) are shown after the value (e.g. ``bars``)."""
    table = Table(title=Text(title), show_header=True, header_style="bold")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key, value in metrics.items():
        unit = (units or {}).get(key) if value is not None else None  # an undefined value has no unit
        table.add_row(Text(str(key)), Text("n/a" if value is None else fmt(value) + (f" {unit}" if unit else "")))
    return table


def frame_table(frame, title: str, *, max_cols: int = 12, digits: int = 6) -> Table:
    table = Table(title=Text(title), header_style="bold")
    cols = list(frame.columns)[:max_cols]
    table.add_column(Text(str(frame.index.name or "")))
    for c in cols:
        table.add_column(Text(str(c)), justify="right")
    for idx, row in frame[cols].iterrows():
        table.add_row(Text(str(idx)), *(Text(fmt(v, digits)) for v in row.tolist()))
    return table


RAY_HELP = ("run as Ray tasks (pip install -e \".\\[ray]\"): no ADDRESS (write --ray last, or --ray=local) starts a "
            "local Ray; auto or HOST:6379 joins a cluster (ray start --head); same numbers")


def connect_ray(address: str) -> float:
    """Connect to (or start) Ray under a spinner; returns the cluster's CPU count."""
    from backtest.distributed import connect

    where = "starting a local Ray" if address in ("", "local") else f"connecting to Ray at {address}"
    with console.status(Text(f"{where} ...")):
        ray = connect(address)
        return float(ray.cluster_resources().get("CPU", 0))


def check_execution(execution: str) -> str:
    if execution not in EXECUTIONS:
        raise UserError(f"--execution must be one of {', '.join(EXECUTIONS)}, got {execution!r}")
    return execution


def check_costs(**costs: float) -> None:
    """Fees and slippage: finite fractions in [0, 1) (0.001 = 10 bps)."""
    for name, value in costs.items():
        if not (math.isfinite(value) and 0 <= value < 1):
            raise UserError(f"--{name.replace('_', '-')} must be a fraction in [0, 1) (0.001 = 10 bps), got {value}")


def check_run_options(*, execution: str, fees: float, slippage: float, init_cash: float,
                      periods_per_year: float | None, leverage: float | None = None) -> None:
    """The simulation options every backtesting command shares (backtest, sweep, evaluate), checked alike."""
    check_execution(execution)
    check_costs(fees=fees, slippage=slippage)
    check_positive("--init-cash", init_cash, allow_none=False, what="the starting equity")
    check_positive("--periods-per-year", periods_per_year, what="bars per year, e.g. 252 for daily stocks")
    check_positive("--leverage", leverage, what="a cap on the sum of |weights|, e.g. 1.0")


def check_positive(option: str, value: float | None, *, what: str = "", allow_none: bool = True) -> None:
    """``value`` must be a finite number > 0 (None allowed when ``allow_none``): ``--periods-per-year``,
    ``--init-cash``, ``--leverage``."""
    if value is None and allow_none:
        return
    if value is None or not (math.isfinite(value) and value > 0):
        raise UserError(f"{option} must be a finite number > 0{f' ({what})' if what else ''}, got {value}")
