"""Sweeps and walk-forward evaluations as Ray tasks: the same tables as in one process, on many cores or nodes.

``sweep(strategy, grid, bars, address=...)`` is ``backtest.sweep.sweep`` with every chunk of combinations
(``backtest.sweep.plan_sweep`` / ``run_chunk``) a Ray task; ``evaluate(bars, strategies, address=...)`` is
``backtest.evaluate.evaluate`` with every (fold, decision-maker) pair (``backtest.evaluate.FoldJob``) a Ray
task. The bars (and a sweep's checked plan: grid axes, price arrays, options) go into Ray's object store ONCE
(``ray.put``); a task receives references and the indices of its combinations, which it decodes itself
(``backtest.sweep.combos``), so no task ships a list of combinations or a copy of the bars. Results are gathered in task order, so the tables
are exactly those of the in-process functions (tests hold them equal): sweep rows do not depend on how the
grid is chunked, and a fold's decisions depend on the bars and the fold only.

Ray (``pip install -e ".[ray]"``) is imported only here and only when called: ``backtest`` stays importable
and fast without it, and ``--ray`` without Ray is the one-line error :class:`RayMissing`. ``connect``: with
no address (or ``"local"``) a local Ray is started (``ray.init(num_cpus=...)``); with ``"auto"`` or
``"HOST:PORT"`` / ``"ray://HOST:10001"`` it joins a running cluster (``ray start --head`` on the head node,
``ray start --address=HEAD:6379`` on the others); a Ray already initialised in this process is reused.
Workers need DREX importable (the same install on every node, or a ``runtime_env``).

Failures. A task whose worker dies (killed, out of memory, node lost) is retried by Ray up to
``MAX_RETRIES`` times; a task that raises one of ``RETRY_EXCEPTIONS`` (environment faults: ``OSError``,
``MemoryError``) is retried too. Rows and decisions are deterministic, so a retried task returns exactly what
the first try would have. Other exceptions (a ``ValueError`` from a bad parameter) are not retried: they are
re-raised here as themselves (the CLI's one line), as is the last exception of a task that kept failing; a
task whose worker kept dying raises :class:`TaskFailed` (an ``OSError``: an environment fault, one line in
the CLI), one killed by Ray's memory monitor a ``MemoryError``.

Each task runs its kernels on ``DREX_THREADS`` = the task's CPUs (one by default): Ray runs one task per CPU.
"""
from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Callable, Iterator, Sequence
from typing import Any

__all__ = [
    "INSTALL",
    "MAX_RETRIES",
    "RETRY_EXCEPTIONS",
    "RayMissing",
    "TaskFailed",
    "connect",
    "evaluate",
    "import_ray",
    "sweep",
    "sweep_tasks",
]

INSTALL = 'Ray is not installed: pip install -e ".[ray]" (or pip install "ray[default]"), or run without --ray'
MAX_RETRIES = 3
"""Retries of a task whose worker died or that raised one of ``RETRY_EXCEPTIONS``."""
RETRY_EXCEPTIONS: tuple[type[BaseException], ...] = (OSError, MemoryError)
"""Exceptions worth another try (environment faults); anything else fails at once."""
TASKS_PER_CPU = 4
"""A sweep is cut into at least this many tasks per CPU (load balance), each at most one memory chunk."""
IN_FLIGHT_PER_CPU = 2
"""Tasks submitted and not yet gathered, per cluster CPU (one running, one queued)."""


class RayMissing(ImportError, ValueError):
    """Ray is not installed (an ``ImportError``; also a ``ValueError``, so the CLI prints its one line)."""


class TaskFailed(OSError):
    """A Ray task's worker died more than ``MAX_RETRIES`` times (killed, node lost): an environment fault."""


def import_ray():
    """The ``ray`` module, or :class:`RayMissing` naming the extra to install."""
    try:
        import ray
    except ImportError:
        raise RayMissing(INSTALL) from None
    return ray


def connect(address: str | None = None, *, num_cpus: int | None = None):
    """Ray, initialised: the running session if this process has one, else a new local Ray
    (``address`` None or ``"local"``; ``num_cpus``: its CPUs, default all) or the cluster at ``address``
    (``"auto"``, ``"HOST:PORT"``, ``"ray://HOST:10001"``). Returns the ``ray`` module."""
    ray = import_ray()
    if ray.is_initialized():
        return ray
    import logging

    quiet = {"include_dashboard": False, "logging_level": logging.WARNING, "log_to_driver": False}
    try:
        if address in (None, "", "local"):
            if num_cpus is not None and int(num_cpus) < 1:
                raise ValueError(f"num_cpus must be >= 1, got {num_cpus}")
            ray.init(num_cpus=num_cpus, **quiet)
        else:
            ray.init(address=address, **quiet)
    except (ConnectionError, TimeoutError, RuntimeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ValueError(f"cannot connect to Ray at {address!r} ({first}): start a cluster with `ray start "
                         "--head` and pass --ray auto or --ray HOST:6379, or give --ray no address (write it "
                         "last, or --ray=local) to start a local Ray") from None
    return ray


def _cpus(ray) -> int:
    return max(1, int(ray.cluster_resources().get("CPU", 1)))


def _remote(ray, fn: Callable, *, num_cpus: float, max_retries: int):
    return ray.remote(fn).options(num_cpus=num_cpus, max_retries=max_retries,
                                  retry_exceptions=list(RETRY_EXCEPTIONS))


def _threads(num_cpus: float) -> None:
    """Kernels of this task on its own CPUs (a Ray worker runs one task at a time)."""
    os.environ["DREX_THREADS"] = str(max(1, int(num_cpus)))


def _as_completed(ray, submit: Callable[[int], Any], n: int, what: str) -> Iterator[tuple[int, Any]]:
    """``(index, result)`` of tasks ``0 .. n - 1`` as they finish; ``submit(i)`` starts task i. At most
    ``IN_FLIGHT_PER_CPU`` tasks per cluster CPU are submitted at a time (the driver's bookkeeping and the
    results waiting in the object store stay bounded, whatever the grid); a task's own exception is re-raised
    as itself."""
    window = max(4, IN_FLIGHT_PER_CPU * _cpus(ray))
    pending: dict[Any, int] = {}
    started = 0
    try:
        while started < n or pending:
            while started < n and len(pending) < window:
                pending[submit(started)] = started
                started += 1
            ready, _ = ray.wait(list(pending), num_returns=1)
            for ref in ready:
                i = pending.pop(ref)
                yield i, _get(ray, ref, f"{what} {i + 1} of {n}")
    finally:
        for ref in pending:  # an error or an interrupt: do not leave the other tasks running
            with contextlib.suppress(Exception):  # finished meanwhile, or Ray is shutting down
                ray.cancel(ref, force=True)


def _get(ray, ref: Any, what: str) -> Any:
    from ray import exceptions as rex

    try:
        return ray.get(ref)
    except rex.RayTaskError as exc:  # the task raised (after its retries): the original exception, not Ray's
        cause = getattr(exc, "cause", None)
        if isinstance(cause, ModuleNotFoundError):  # a node without DREX (or a plugin) installed
            raise ValueError(f"a Ray worker cannot import {cause.name!r} ({cause}): install the same DREX and "  # noqa: TRY004
                             "plugins on every node (pip install -e \".[ray]\")") from None
        if isinstance(cause, BaseException):
            raise cause from None
        raise
    except rex.OutOfMemoryError as exc:
        raise MemoryError(f"a Ray worker ran out of memory in {what} ({str(exc).strip().splitlines()[0]}); use "
                          "smaller chunks (DREX_SWEEP_CHUNK_MB) or more memory per worker") from None
    except (rex.WorkerCrashedError, rex.NodeDiedError, rex.ObjectLostError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise TaskFailed(f"{what}: its Ray worker kept dying ({first}); check the workers' memory and "
                         "logs (/tmp/ray/session_latest/logs)") from None


# ------------------------------------------------------------------------------------------------ sweeps
def _sweep_task(plan, bars, start: int, stop: int, num_cpus: float):
    """One chunk of a sweep on a worker: the driver's plan and the bars both come from the object store."""
    from backtest.sweep import run_chunk

    _threads(num_cpus)
    return run_chunk(plan, bars, start, stop)


def sweep_tasks(total: int, chunk: int, cpus: int) -> int:
    """Combinations per task: at most one memory chunk (``chunk``), and small enough that there are at least
    ``TASKS_PER_CPU`` tasks per CPU when the grid allows (a multiple of 8, the kernels' row block)."""
    want = math.ceil(total / max(1, TASKS_PER_CPU * cpus))
    return max(1, min(chunk, 8 * math.ceil(want / 8)))


def sweep(strategy: str, grid: dict[str, Any], bars, *, address: str | None = None, num_cpus: int | None = None,
          cpus_per_task: float = 1.0, max_retries: int = MAX_RETRIES,
          progress: Callable[[int, int], None] | None = None, **options: Any):
    """``backtest.sweep.sweep`` on Ray: the same table, every chunk of combinations a task.

    address / num_cpus: ``connect``. cpus_per_task: Ray CPUs of each task (its kernel threads). options: the
    options of ``backtest.sweep.sweep`` (costs, ``fused``, ``chunk_bytes``...). progress: ``progress(done,
    total)`` in combinations, each time a task completes. The grid and options are checked here, before any
    task starts (the same errors as ``backtest.sweep.sweep``).
    """
    from backtest.sweep import gather, plan_sweep

    plan = plan_sweep(strategy, grid, bars, **options)
    ray = connect(address, num_cpus=num_cpus)
    ranges = plan.chunks(sweep_tasks(plan.total, plan.size, _cpus(ray)))
    task = _remote(ray, _sweep_task, num_cpus=cpus_per_task, max_retries=max_retries)
    bars_ref, plan_ref = ray.put(bars), ray.put(plan)  # once: every task reads the same copies
    parts: list[Any] = [None] * len(ranges)
    done = 0
    submit = lambda i: task.remote(plan_ref, bars_ref, *ranges[i], cpus_per_task)
    for i, part in _as_completed(ray, submit, len(ranges), "sweep task"):
        parts[i] = part
        done += ranges[i][1] - ranges[i][0]
        if progress is not None:
            progress(done, plan.total)
    return gather(plan, parts)


# ------------------------------------------------------------------------------------------- evaluation
def _fold_task(bars, job, context: dict[str, Any], num_cpus: float):
    from backtest.evaluate import decide_fold

    _threads(num_cpus)
    return decide_fold(bars, job, **context)


def evaluate(bars, strategies: Sequence[Any] = (), *, address: str | None = None, num_cpus: int | None = None,
             cpus_per_task: float = 1.0, max_retries: int = MAX_RETRIES, **options: Any):
    """``backtest.evaluate.evaluate`` on Ray: every (fold, decision-maker) pair a task, the same ``Evaluation``.

    address / num_cpus: ``connect``. cpus_per_task: Ray CPUs of each task. options: those of
    ``backtest.evaluate.evaluate`` (``folds``, ``optimize``, costs, ``progress``...). Candidates, folds and
    options are checked here before any task starts; the final backtests of the concatenated test blocks
    (cheap) run here.
    """
    from backtest.evaluate import evaluate as _evaluate

    ray = connect(address, num_cpus=num_cpus)
    task = _remote(ray, _fold_task, num_cpus=cpus_per_task, max_retries=max_retries)

    def runner(bars_: Any, jobs: Sequence[Any], context: dict[str, Any]) -> Iterator[tuple[int, Any]]:
        bars_ref = ray.put(bars_)  # once for all folds and decision-makers
        submit = lambda i: task.remote(bars_ref, jobs[i], context, cpus_per_task)
        yield from _as_completed(ray, submit, len(jobs), "walk-forward task")

    return _evaluate(bars, strategies, runner=runner, **options)
