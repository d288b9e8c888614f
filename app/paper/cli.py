"""``drex paper ...``: the typer sub-app ``paper_app`` (init, tick, run, status, report, list).

Also runnable alone: ``python -m app.paper.cli tick NAME``. Start-up stays light: only typer and
``app._common`` are imported here; the ledger (SQLAlchemy), pandas and the strategies load inside commands.

Exit codes: 0 ok; 2 user error (one line: unknown run, bad config, bad option); ``tick`` 1 on failure
(the run is locked by another tick, data unavailable, ...).
"""
from __future__ import annotations

import os
from pathlib import Path

import typer

from app._common import console, err_console, user_errors

__all__ = ["paper_app"]

paper_app = typer.Typer(
    name="paper",
    help="Paper trading: scheduled strategy decisions with simulated fills, recorded in a durable ledger.",
    no_args_is_help=True,
    add_completion=False,
)

_LEDGER_HELP = "ledger SQLAlchemy URL (default: sqlite under $DREX_HOME/paper; env DREX_PAPER_LEDGER)"
LedgerOpt = typer.Option(None, "--ledger", envvar="DREX_PAPER_LEDGER", help=_LEDGER_HELP)


def _fail(message: str, code: int = 1) -> None:
    err_console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


@paper_app.command("init")
def init_cmd(
    name: str = typer.Argument(..., help="run name"),
    config: Path = typer.Option(..., "--config", "-c", help="YAML config (see examples/paper.yaml)"),
    force: bool = typer.Option(False, "--force", help="replace an existing run of that name (its history is deleted)"),
    ledger: str | None = LedgerOpt,
) -> None:
    """Validate a config and create the run in the ledger."""
    with user_errors():
        from app.paper.config import load_config
        from app.paper.engine import decision_maker
        from app.paper.ledger import open_ledger

        cfg = load_config(config)
        try:
            decision_maker(cfg)  # plugins load, the name resolves, the parameters bind and pass their checks
        except (KeyError, ValueError) as exc:
            msg = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
            raise ValueError(f"{config}: strategy {cfg.strategy!r} with params {cfg.params}: {msg}") from None
        url = ledger or cfg.ledger
        with open_ledger(url) as led:
            led.create_run(name, cfg, force=force)
            console.print(f"created paper run {name} ({cfg.mode}, {cfg.strategy} on {cfg.data}, {cfg.interval}) in {led.url}",
                          highlight=False, soft_wrap=True)
        if url and not ledger and url != os.environ.get("DREX_PAPER_LEDGER"):
            console.print(f"note: pass --ledger {url} (or set DREX_PAPER_LEDGER) to the other paper commands")


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
    except Exception as exc:  # noqa: BLE001 - every failure of a tick is exit 1 with one line
        from app.paper.lock import RunLocked

        if not isinstance(exc, RunLocked):
            led.record_tick(name, error=f"{type(exc).__name__}: {exc}")
        led.close()
        _fail(str(exc) if isinstance(exc, RunLocked) else f"tick of run {name} failed: {type(exc).__name__}: {exc}")
    led.close()
    console.print(result.line(), highlight=False, soft_wrap=True)


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
        echo = lambda line: console.print(line, highlight=False, soft_wrap=True)
        res = run_loop(name, url=ledger, interval_s=period, offset_s=off, max_ticks=max_ticks, echo=echo)
    console.print(f"stopped ({res.stopped_by}): {res.ticks} tick(s), {res.bars} bar(s), {res.failures} failure(s)")


@paper_app.command("status")
def status_cmd(name: str = typer.Argument(..., help="run name"), ledger: str | None = LedgerOpt) -> None:
    """Positions, cash, equity, last tick and status of a run."""
    with user_errors():
        from rich.table import Table

        from app.paper.ledger import open_ledger

        with open_ledger(ledger) as led:
            summ = led.run_summary(name)
            pos = led.positions(name)
        head = Table(title=f"paper run {name}", show_header=False)
        for key, val in [
            ("status", summ.status), ("mode", summ.mode), ("strategy", summ.config["strategy"]),
            ("data", summ.config["data"]), ("bars processed", str(summ.bars_processed)),
            ("last bar", summ.last_bar.isoformat() if summ.last_bar else "-"),
            ("last tick", summ.last_tick_at.isoformat(timespec="seconds") if summ.last_tick_at else "-"),
            ("cash", f"{summ.cash:,.2f}"), ("positions value", f"{summ.positions_value:,.2f}"),
            ("equity", f"{summ.equity:,.2f}"), ("last error", summ.last_error or "-"),
        ]:
            head.add_row(key, val)
        console.print(head)
        table = Table("asset", "qty", "avg price", title="positions")
        for row in pos.itertuples():
            table.add_row(row.asset, f"{row.qty:.8g}", f"{row.avg_price:,.4f}")
        console.print(table)


@paper_app.command("report")
def report_cmd(
    name: str = typer.Argument(..., help="run name"),
    out: Path | None = typer.Option(None, "--out", help="output folder (default $DREX_HOME/reports/paper-NAME)"),
    ledger: str | None = LedgerOpt,
) -> None:
    """Write the equity curve, orders, fills, decisions (CSV), a summary (JSON) and an equity chart (HTML)."""
    with user_errors():
        from app.paper.ledger import open_ledger
        from app.paper.report import write_report
        from markets.home import data_home

        folder = out or data_home("reports") / f"paper-{name}"
        with open_ledger(ledger) as led:
            paths = write_report(led, name, folder)
        console.print(f"wrote {len(paths)} files to {folder}")


@paper_app.command("list")
def list_cmd(ledger: str | None = LedgerOpt) -> None:
    """All paper runs in the ledger."""
    with user_errors():
        from rich.table import Table

        from app.paper.ledger import open_ledger

        with open_ledger(ledger) as led:
            runs = led.list_runs()
        if runs.empty:
            console.print(f"no paper runs yet in {led.url}; create one with `drex paper init NAME --config FILE`")
            return
        table = Table("name", "status", "mode", "strategy", "data", "last bar", "equity")
        for r in runs.itertuples():
            last = "-" if r.last_bar is None or str(r.last_bar) == "NaT" else r.last_bar.isoformat()
            table.add_row(r.name, r.status, str(r.mode), str(r.strategy), str(r.data), last, f"{r.equity:,.2f}")
        console.print(table)


if __name__ == "__main__":
    paper_app(prog_name="drex paper")
