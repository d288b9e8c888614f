"""Small helpers shared by the CLI commands: one console, and turning user errors into one line + exit 2.

Kept free of heavy imports: ``drex --help`` imports this module.
"""
from __future__ import annotations

import contextlib
import sys

import typer
from rich.console import Console
from rich.markup import escape

console = Console()
err_console = Console(stderr=True)

USER_ERROR_EXIT = 2


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
