"""``drex paper run``: an APScheduler loop that ticks a run at every bar close + an offset.

The trigger is an ``IntervalTrigger`` anchored at the Unix epoch + ``offset``, so it fires at
``k * interval + offset`` (UTC) - just after each bar of an epoch-aligned interval closes. Each firing is one
tick (in replay mode one simulated bar). SIGTERM/SIGINT stop the loop gracefully: the tick in progress
finishes, the scheduler shuts down, the run is marked ``stopped`` and the loop returns (exit code 0).
A tick that fails is reported, recorded as the run's ``last_error``, and retried at the next firing.
"""
from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

__all__ = ["LoopResult", "run_loop"]


def _human(delta: timedelta) -> str:
    """``timedelta`` as ``1d 2h``, ``3h 5m``, ``4m 10s``, ``12s`` or ``0.2s``."""
    if delta.total_seconds() < 10:
        return f"{max(0.0, delta.total_seconds()):.2g}s"
    secs = max(0, round(delta.total_seconds()))
    d, rem = divmod(secs, 86400)
    h, rem = divmod(rem, 3600)
    m, sec = divmod(rem, 60)
    parts = [f"{v}{u}" for v, u in ((d, "d"), (h, "h"), (m, "m"), (sec, "s")) if v]
    return " ".join(parts[:2]) or "0s"


@dataclass
class LoopResult:
    """What a loop did: ticks attempted, bars processed, failures, and why it stopped."""

    ticks: int = 0
    bars: int = 0
    failures: int = 0
    stopped_by: str = ""
    lines: list[str] = field(default_factory=list)


def run_loop(
    name: str,
    *,
    url: str | None = None,
    interval_s: float | None = None,
    offset_s: float = 5.0,
    max_ticks: int | None = None,
    echo: Callable[[str], Any] = print,
    install_signals: bool = True,
) -> LoopResult:
    """Tick run ``name`` on a schedule until SIGTERM/SIGINT, ``max_ticks`` ticks, or the end of replay data.

    Args:
        name: the run.
        url: ledger URL (default ledger if None).
        interval_s: seconds between firings (default: the run's bar interval).
        offset_s: seconds after each bar close to fire (data sources need a moment to publish the bar).
        max_ticks: stop after this many ticks (None: run until stopped).
        echo: where status lines go.
        install_signals: handle SIGTERM/SIGINT (only possible from the main thread).
    """
    from apscheduler.executors.pool import ThreadPoolExecutor
    from apscheduler.schedulers.background import BackgroundScheduler
    from apscheduler.triggers.interval import IntervalTrigger

    from app.paper.engine import tick
    from app.paper.ledger import open_ledger
    from app.paper.lock import RunLocked

    if max_ticks is not None and max_ticks < 1:
        raise ValueError(f"--max-ticks must be >= 1, got {max_ticks}")
    if offset_s < 0:
        raise ValueError(f"--offset must be >= 0 seconds, got {offset_s}")
    with open_ledger(url) as ledger:
        cfg = ledger.config(name)  # unknown run: KeyError before anything starts
        ledger.set_status(name, "running")
    period = float(interval_s or cfg.interval_seconds)
    if period <= 0:
        raise ValueError(f"--interval must be positive, got {interval_s}")
    result, stop = LoopResult(), threading.Event()

    anchor = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(seconds=offset_s)

    def next_due() -> str:
        now = datetime.now(UTC)
        k = -(-(now - anchor).total_seconds() // period)  # the first firing strictly after now
        due = anchor + timedelta(seconds=k * period)
        if due <= now:
            due += timedelta(seconds=period)
        return f"{due:%Y-%m-%d %H:%M:%S} UTC (in {_human(due - now)})"

    def job() -> None:
        if stop.is_set():
            return
        result.ticks += 1
        try:
            with open_ledger(url) as ledger:
                out = tick(ledger, name)
                replay_done = cfg.mode == "replay" and out.bars_processed == 0
            result.bars += out.bars_processed
            result.lines.append(out.line())
            echo(out.line())
            if replay_done:
                result.stopped_by = result.stopped_by or "end of replay data"
                stop.set()
        except RunLocked as exc:
            result.failures += 1
            echo(f"skipped: {exc}")
        except Exception as exc:  # noqa: BLE001 - a failed tick is reported, recorded and retried
            result.failures += 1
            echo(f"tick failed: {type(exc).__name__}: {exc}")
            with open_ledger(url) as ledger:
                ledger.record_tick(name, error=f"{type(exc).__name__}: {exc}")
        if max_ticks is not None and result.ticks >= max_ticks:
            result.stopped_by = result.stopped_by or f"max ticks ({max_ticks})"
            stop.set()
        if not stop.is_set():
            echo(f"next tick at {next_due()}")

    def on_signal(signum: int, _frame: Any) -> None:
        result.stopped_by = result.stopped_by or signal.Signals(signum).name
        stop.set()

    previous = {}
    if install_signals:
        for sig in (signal.SIGTERM, signal.SIGINT):
            previous[sig] = signal.signal(sig, on_signal)
    scheduler = BackgroundScheduler(
        executors={"default": ThreadPoolExecutor(max_workers=1)},
        job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": max(1, int(period))},
        timezone=UTC,
    )
    scheduler.add_job(job, IntervalTrigger(seconds=period, start_date=anchor, timezone=UTC), id=f"paper:{name}")
    scheduler.start()
    echo(f"{name}: ticking every {_human(timedelta(seconds=period))} at bar close + {offset_s:g}s; first tick at "
         f"{next_due()}; SIGTERM/SIGINT stop it")
    if cfg.mode == "replay" and period >= 60:
        echo(f"replay: one bar per tick; --interval 5s replays faster, `drex paper tick {name} --now ISO` "
             "processes every bar up to ISO at once")
    try:
        while not stop.wait(0.5):
            pass
    finally:
        scheduler.shutdown(wait=True)  # lets the tick in progress finish
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        with open_ledger(url) as ledger:
            ledger.set_status(name, "stopped")
    return result
