"""Which exceptions are the user's (or the machine's) to fix, and the one line that tells them how.

``describe(exc)`` is the ONE mapping the CLI (``app._common.user_errors``: ``error: <line>``, exit 2), the
paper commands and the dashboard (``app.dashboard.ui.error_boundary``) share. It returns one line for:

* mistakes in what was asked: ``ValueError`` (``markets.DataError``, pydantic validation, pandas parse
  errors...), ``KeyError`` (unknown names), ``app._common.UserError``;
* the environment: every ``OSError`` (missing file, full disk ``ENOSPC``/``EFBIG``/``EDQUOT``, read-only or
  forbidden paths ``EROFS``/``EACCES``/``EPERM``, ``ENAMETOOLONG``, a file where a folder belongs...) named
  with the path and what to do; ``MemoryError``; a missing optional module (``ModuleNotFoundError``);
* YAML syntax errors, SQLAlchemy URL and database errors (a corrupt or unwritable ledger), and the numeric
  and not-implemented errors that bad option values used to reach (``ArithmeticError``,
  ``NotImplementedError``), as a last line of defence behind the option checks.

Anything else returns None: a bug, which keeps its traceback.

Stdlib only at import: the CLI imports this module at start-up; yaml and sqlalchemy are recognized only
when something already imported them.
"""
from __future__ import annotations

import errno
import sys

__all__ = ["MAX_LINE", "UserError", "describe", "one_line"]

MAX_LINE = 600
"""Longest message shown (characters); longer ones are cut with an ellipsis."""



class UserError(Exception):
    """A mistake in what the user asked for (bad spec, bad dates, bad option): one line, exit 2."""


_WRITE_FIX = "choose a writable folder (--out/--report) or set DREX_HOME to one"


def one_line(text: object) -> str:
    """The first non-empty line of ``text``, stripped, at most ``MAX_LINE`` characters."""
    lines = [s.strip() for s in str(text).splitlines() if s.strip()]
    line = lines[0] if lines else ""
    return line if len(line) <= MAX_LINE else line[: MAX_LINE - 1] + "…"


def _short_path(path: object, limit: int = 120) -> str:
    text = str(path)
    return text if len(text) <= limit else f"{text[: limit // 2]}…{text[-limit // 3:]} ({len(text)} characters)"


def _os_error(exc: OSError) -> str:
    """An OSError as one line naming the path and the fix (our own messages are kept as they are)."""
    code, name = exc.errno, exc.filename
    if code is None or (exc.strerror is None and not name):
        return one_line(exc) or type(exc).__name__  # raised by DREX with its own message
    where = _short_path(name) if name is not None else "a file"
    why = exc.strerror or type(exc).__name__
    if code in (errno.ENOSPC, errno.EDQUOT):
        return f"no space left on the device writing {where} ({why}): free some space or {_WRITE_FIX}"
    if code == errno.EFBIG:
        return f"file too large writing {where} ({why}: the file-size limit or the file system's): {_WRITE_FIX}"
    if code == errno.EROFS:
        return f"cannot write {where}: read-only file system; {_WRITE_FIX}"
    if code in (errno.EACCES, errno.EPERM):
        return f"permission denied on {where} ({why}): fix its permissions or {_WRITE_FIX}"
    if code == errno.ENAMETOOLONG:
        return f"path too long: {where}; use a shorter path"
    if code == errno.ENOENT:
        return f"no such file or folder: {where}; check the path"
    if code == errno.ENOTDIR:
        return f"{where}: part of this path is a file, not a folder; choose another path"
    if code == errno.EEXIST:
        return f"{where} already exists and is not a folder; choose another path"
    if code == errno.EISDIR:
        return f"{where} is a folder where a file was expected; choose a file path"
    if code in (errno.EMFILE, errno.ENFILE):
        return f"too many open files ({why}) opening {where}: raise the limit (ulimit -n) or close other programs"
    if code == errno.ENOMEM:
        return f"out of memory ({why}) at {where}: use a shorter date range, fewer bars or a smaller grid"
    return f"{why} ({where})"


def _sqlalchemy_error(exc: BaseException) -> str | None:
    sa = sys.modules.get("sqlalchemy.exc")
    if sa is None:
        return None
    if isinstance(exc, sa.ArgumentError):  # NoSuchModuleError too: an unknown dialect
        return (f"bad database URL ({one_line(exc)}): use sqlite:///PATH/ledger.sqlite or "
                "postgresql+psycopg://USER@HOST/DB")
    if isinstance(exc, sa.DBAPIError):
        orig = getattr(exc, "orig", None) or exc
        return (f"ledger database error: {one_line(orig)}: check the --ledger URL and the database "
                "(restore a damaged file from a backup)")
    if isinstance(exc, sa.SQLAlchemyError):
        return f"ledger database error: {one_line(exc)}"
    return None


def describe(exc: BaseException) -> str | None:
    """One line for a user or environment error (module doc), or None for a bug (keep the traceback)."""
    if isinstance(exc, KeyError):
        return one_line(exc.args[0] if exc.args else "unknown key")
    if isinstance(exc, MemoryError):
        what = one_line(exc)
        return (f"out of memory{f' ({what})' if what else ''}: use a shorter date range, fewer bars or a smaller "
                "grid (drex sweep --max-combinations)")
    if isinstance(exc, ModuleNotFoundError) and exc.name:
        return f"{one_line(exc)}: install it (pip install {exc.name.split('.')[0]}) or choose another option"
    if isinstance(exc, OSError):
        return _os_error(exc)
    yaml_mod = sys.modules.get("yaml")
    if yaml_mod is not None and isinstance(exc, yaml_mod.YAMLError):
        return f"not valid YAML: {one_line(exc)}"
    described = _sqlalchemy_error(exc)
    if described is not None:
        return described
    if isinstance(exc, (ValueError, UserError)):
        return one_line(exc) or type(exc).__name__
    if isinstance(exc, ArithmeticError):
        return (f"a numeric option is out of range ({type(exc).__name__}: {one_line(exc)}): check "
                "--periods-per-year, --init-cash, --fees, --slippage and --leverage")
    if isinstance(exc, NotImplementedError):
        return f"not supported: {one_line(exc) or 'this input'}; check the dates and options given"
    return None
