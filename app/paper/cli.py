"""``drex paper ...``: the typer sub-app ``paper_app`` (init, tick, run, status, report, list).

Also runnable alone: ``python -m app.paper.cli tick NAME``. Start-up stays light: only typer and
``app._common`` are imported here; the ledger (SQLAlchemy), pandas and the strategies load inside commands.

Exit codes: 0 ok; 2 user or environment error (one line: unknown run, bad config, bad option, a corrupt,
read-only or missing ledger, a full disk); ``tick`` 1 on a failure the next tick may not have (the run is
locked by another tick, data unavailable, ...), recorded as the run's last error.

The read commands (``status``, ``list``, ``report``) open the ledger read-only, so they work on a read-only
ledger file or folder.
"""
from __future__ import annotations

import os
from pathlib import Path

import typer

from app._common import DrexGroup, console, fail, say, user_errors

__all__ = ["paper_app"]

paper_app = typer.Typer(
    name="paper",
    help="Paper trading: scheduled strategy decisions with simulated fills, recorded in a durable ledger.",
    no_args_is_help=True,
    add_completion=False,
    cls=DrexGroup,
)

_LEDGER_HELP = "ledger SQLAlchemy URL (default: sqlite under $DREX_HOME/paper; env DREX_PAPER_LEDGER)"
LedgerOpt = typer.Option(None, "--ledger", envvar="DREX_PAPER_LEDGER", help=_LEDGER_HELP)


@paper_app.command("init")
def init_cmd(
    name: str = typer.Argument(..., help="run name"),
    config: Path = typer.Option(..., "--config", "-c", help="YAML config (see examples/paper.yaml)"),
    force: bool = typer.Option(False, "--force", help="replace an existing run of that name (its history is deleted)"),
    ledger: str | None = LedgerOpt,
) -> None:
    """Validate a config (everything a tick needs: strategy, parameters, data, dates) and create the run."""
    with user_errors():
        from app.paper.config import load_config
        from app.paper.engine import check_runnable
        from app.paper.ledger import check_run_name, open_ledger

        check_run_name(name)
        cfg = load_config(config)
        try:
            what = check_runnable(cfg)
        except (KeyError, ValueError) as exc:
            msg = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
            raise ValueError(f"{config}: {msg}") from None
        url = ledger or cfg.ledger
        with open_ledger(url) as led:
            led.create_run(name, cfg, force=force)
            say(f"created paper run {name} ({cfg.mode}, {cfg.strategy} on {cfg.data}, {cfg.interval}; {what}) "
                f"in {led.url}")
        if url and not ledger and url != os.environ.get("DREX_PAPER_LEDGER"):
            say(f"note: pass --ledger {url} (or set DREX_PAPER_LEDGER) to the other paper commands")


@paper_app.command("tick")
def tick_cmd(
    name: str = typer.Argument(..., help="run name"),
    now: str | None = typer.Option(None, "--now", help="ISO time to act as now (replay default: next bar's close)"),
    ledger: str | None = LedgerOpt,
) -> None:
    """Process every newly completed bar once (fetch -> decide -> simulated fill -> persist)."""
    with user_errors():
        from app.paper.config import to_utc
        from app.paper.ledger import open_ledger

        at = to_utc(now) if now else None
        led = open_ledger(ledger)
        led.config(name)  # unknown run or bad stored config: user error, exit 2
    try:
        from app.paper.engine import tick

        result = tick(led, name, now=at)
    except Exception as exc:  # noqa: BLE001 - every failure of a tick is one line: exit 2 or 1
        _tick_failed(led, name, exc)
    finally:
        led.close()
    say(result.line())


def _tick_failed(led, name: str, exc: Exception) -> None:
    """A failed tick: the ledger or the machine (read-only, corrupt, full disk, memory) -> exit 2, nothing
    recorded; another tick holds the run -> exit 1; anything else is recorded as the run's last error, exit 1."""
    from app.errors import describe
    from app.paper.ledger import LedgerError
    from app.paper.lock import RunLocked

    if isinstance(exc, RunLocked):
        fail(str(exc), 1)
    if isinstance(exc, (LedgerError, OSError, MemoryError)):
        fail(describe(exc) or str(exc))
    try:
        led.record_tick(name, error=f"{type(exc).__name__}: {exc}")
    except (LedgerError, OSError) as rec:
        fail(describe(rec) or str(rec))
    fail(f"tick of run {name} failed: {type(exc).__name__}: {exc}", 1)


def _seconds(text: str, option: str) -> float:
    from app.paper.config import parse_interval

    try:
        return float(parse_interval(text))
    except ValueError:
        raise ValueError(f"{option} {text!r}: write an integer and a unit s, m, h, d or w, e.g. 5s or 1m") from None


@paper_app.command("run")
def run_cmd(
    name: str = typer.Argument(..., help="run name"),
    interval: str | None = typer.Option(None, "--interval", help="time between ticks (default: the bar interval)"),
    offset: str = typer.Option("5s", "--offset", help="fire this long after each bar close"),
    max_ticks: int | None = typer.Option(None, "--max-ticks", help="stop after N ticks"),
    ledger: str | None = LedgerOpt,
) -> None:
    """Tick on a schedule aligned to bar closes until SIGTERM/SIGINT (graceful: the current tick finishes)."""
    with user_errors():
        from app.paper.scheduler import run_loop

        period = _seconds(interval, "--interval") if interval else None
        off = 0.0 if offset.strip() in ("0", "0s") else _seconds(offset, "--offset")
        res = run_loop(name, url=ledger, interval_s=period, offset_s=off, max_ticks=max_ticks, echo=say)
    say(f"stopped ({res.stopped_by}): {res.ticks} tick(s), {res.bars} bar(s), {res.failures} failure(s)")


@paper_app.command("status")
def status_cmd(name: str = typer.Argument(..., help="run name"), ledger: str | None = LedgerOpt) -> None:
    """Positions, cash, equity, last tick and status of a run."""
    with user_errors():
        from rich.table import Table
        from rich.text import Text

        from app.paper.ledger import open_ledger

        with open_ledger(ledger, readonly=True) as led:
            summ = led.run_summary(name)
            pos = led.positions(name)
        head = Table(title=Text(f"paper run {name}"), show_header=False)
        for key, val in [
            ("status", summ.status), ("mode", summ.mode), ("strategy", summ.config["strategy"]),
            ("data", summ.config["data"]), ("bars processed", str(summ.bars_processed)),
            ("last bar", summ.last_bar.isoformat() if summ.last_bar else "-"),
            ("last tick", summ.last_tick_at.isoformat(timespec="seconds") if summ.last_tick_at else "-"),
            ("cash", f"{summ.cash:,.2f}"), ("positions value", f"{summ.positions_value:,.2f}"),
            ("equity", f"{summ.equity:,.2f}"), ("last error", summ.last_error or "-"),
        ]:
            head.add_row(key, Text(val))
        console.print(head)
        table = Table("asset", "qty", "avg price", title="positions")
        for row in pos.itertuples():
            table.add_row(Text(row.asset), f"{row.qty:.8g}", f"{row.avg_price:,.4f}")
        console.print(table)


@paper_app.command("report")
def report_cmd(
    name: str = typer.Argument(..., help="run name"),
    out: Path | None = typer.Option(None, "--out", help="reports folder: the run's files go to OUT/paper-NAME "
                                                        "(default $DREX_HOME/reports)"),
    ledger: str | None = LedgerOpt,
) -> None:
    """Write the equity curve, orders, fills, decisions (CSV), a summary (JSON) and an equity chart (HTML)
    into a folder of their own, OUT/paper-NAME."""
    with user_errors():
        from app.paper.ledger import check_run_name, open_ledger
        from app.paper.report import write_report
        from markets.home import data_home

        check_run_name(name)
        folder = (out if out is not None else data_home("reports")) / f"paper-{name}"
        with open_ledger(ledger, readonly=True) as led:
            paths = write_report(led, name, folder)
        say(f"wrote {len(paths)} files to {folder}")


@paper_app.command("list")
def list_cmd(ledger: str | None = LedgerOpt) -> None:
    """All paper runs in the ledger."""
    with user_errors():
        from rich.table import Table
        from rich.text import Text

        from app.paper.ledger import open_ledger

        with open_ledger(ledger, readonly=True) as led:
            runs = led.list_runs()
        if runs.empty:
            say(f"no paper runs yet in {led.url}; create one with `drex paper init NAME --config FILE`")
            return
        table = Table("name", "status", "mode", "strategy", "data", "last bar", "equity")
        for r in runs.itertuples():
            last = "-" if r.last_bar is None or str(r.last_bar) == "NaT" else r.last_bar.isoformat()
            table.add_row(*(Text(str(v)) for v in (r.name, r.status, r.mode, r.strategy, r.data, last)),
                          f"{r.equity:,.2f}")
        console.print(table)


if __name__ == "__main__":
    paper_app(prog_name="drex paper")
