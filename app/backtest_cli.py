"""``drex backtest`` and ``drex sweep``: a registered decision-maker on a data spec, one run or a parameter grid.

Registered on the root app by ``app.cli``. Light at import (typer, rich): the engine loads inside the commands.
"""
from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any

import typer
from rich.text import Text

from app._common import (
    RAY_HELP,
    UserError,
    check_run_options,
    connect_ray,
    console,
    err_console,
    frame_table,
    load_bars,
    metrics_table,
    say,
    slug,
    user_errors,
)

__all__ = ["backtest_cmd", "parse_grid", "parse_params", "sweep_cmd"]

_KEY_METRICS = ("sharpe", "total_return", "cagr", "max_drawdown", "n_trades")  # the sweep table's columns


def _entry(strategy: str):
    from backtest.decisions import get

    return get(strategy)


def parse_params(strategy: str, items: list[str]) -> dict[str, Any]:
    """``["fast=10", "ma=ema"]`` -> every parameter of ``strategy``, typed and validated (the one parameter
    layer: ``backtest.params``); bad names, values and combinations raise a one-line error."""
    space = _entry(strategy).space
    return space.bind(space.parse_items(items))


def parse_grid(strategy: str, items: list[str]) -> dict[str, list[Any]]:
    """``["fast=5:50:5,slow=20:200:10", "ma=sma|ema"]`` -> ``{"fast": [5, ..., 50], ...}`` (``backtest.params``
    grid syntax: ranges include ``stop`` when it lands on the grid; ``a|b|c`` lists values)."""
    return _entry(strategy).space.parse_grid(items)


def backtest_cmd(
    spec: str = typer.Argument(..., help="data spec, e.g. sample:SP500 or yf:AAPL"),
    strategy: str = typer.Option(..., "--strategy", "-s", help="registered strategy (see drex strategies)"),
    param: list[str] = typer.Option([], "--param", "-p", help="strategy parameter k=v (repeatable)"),
    start: str | None = typer.Option(None, help="first date (inclusive, UTC)"),
    end: str | None = typer.Option(None, help="last date (inclusive, UTC)"),
    fees: float = typer.Option(0.001, help="fee as a fraction of traded notional (0.001 = 10 bps)"),
    slippage: float = typer.Option(0.0, help="slippage fraction: buy at p(1+s), sell at p(1-s)"),
    execution: str = typer.Option("next_open", help="next_open or next_close: when bar t's decision fills"),
    init_cash: float = typer.Option(10_000.0, "--init-cash", help="initial equity"),
    leverage: float | None = typer.Option(None, help="cap on gross exposure (sum of |weights|)"),
    periods_per_year: float | None = typer.Option(None, "--periods-per-year",
                                                     help="annualization (default: inferred from the bars)"),
    report: Path | None = typer.Option(None, "--report", help="report folder (default reports/<spec>-<strategy>)"),
    no_report: bool = typer.Option(False, "--no-report", help="skip writing the report"),
    as_json: bool = typer.Option(False, "--json", help="print the metrics as JSON instead of a table"),
    offline: bool = typer.Option(False, "--offline", help="use the cache only, never the network"),
) -> None:
    """Backtest a strategy on a data spec: metrics table and a report folder (HTML, PNG, JSON, CSV)."""
    with user_errors():
        params = parse_params(strategy, param)
        check_run_options(execution=execution, fees=fees, slippage=slippage, init_cash=init_cash,
                          periods_per_year=periods_per_year, leverage=leverage)
        out = None
        if not no_report:
            out = report or Path("reports") / f"{slug(spec)}-{slug(strategy)}"
            check_out_dir(out, "--report")
        dm = _build(strategy, params)
        bars, first = _load_with_warmup(spec, start, end, dm.warmup, offline=offline or None)
        import backtest
        from backtest.report import metrics_to_json, report_summary, write_report

        costs = {"fees": fees, "slippage": slippage, "execution": execution, "init_cash": init_cash,
                 "periods_per_year": periods_per_year, "leverage": leverage}
        with console.status(Text(f"running {strategy} on {spec} ...")):
            run = backtest.run_strategy(bars, strategy, params, start=first, **costs)
            bench = backtest.benchmark(bars, start=first, **costs)
        _warn_if_flat(run.decision.weights, strategy, dm.warmup, first)
        decided = bars.iloc[first:]
        settings = run_settings(spec, strategy, params, decided, costs, ppy=run.result.periods_per_year,
                                warmup=first)
        paths = None
        if out is not None:
            with console.status(Text(f"writing report to {out} ...")):
                shown = ", ".join(f"{k}={v}" for k, v in params.items())
                paths = write_report(run.result, out, bars=decided, benchmark=bench.equity,
                                     title=f"{strategy}({shown}) on {spec}", periods_per_year=periods_per_year,
                                     trace=run.decision.trace, run=settings)
            summary = json.loads(paths["metrics"].read_text(encoding="utf-8"))
        else:
            summary = json.loads(metrics_to_json(report_summary(run.result, bars=decided, run=settings)))
        if as_json:
            typer.echo(json.dumps(summary, indent=2))
        else:
            scalars = {k: v for k, v in summary.items() if k not in ("units", "run")}
            console.print(metrics_table(scalars, f"{strategy} on {spec}", units=summary.get("units")))
            if paths:
                say(f"report: {paths['html']}")


def run_settings(spec: str, strategy: str, params: dict[str, Any], bars, costs: dict[str, Any], *,
                 ppy: float, warmup: int = 0) -> dict[str, Any]:
    """What a report records about how it was made (``metrics.json`` ``run``, the HTML's settings table)."""
    return {"spec": spec, "strategy": strategy, "params": dict(params), **costs, "periods_per_year": ppy,
            "start": str(bars.index[0]), "end": str(bars.index[-1]), "bars": len(bars), "warmup_bars": warmup}


def check_out_dir(path: Path, option: str) -> None:
    """A report folder must be a folder (or not exist yet) and its path must not run through a file."""
    for parent in [path, *path.parents]:
        if parent.exists():
            if not parent.is_dir():
                what = "is a file" if parent == path else f"runs through the file {parent}"
                raise UserError(f"{option} {path} {what}: choose a folder path")
            return


def _build(strategy: str, params: dict[str, Any]):
    """The decision-maker (built once per process; a model loads here), under a spinner."""
    from backtest.decisions import build

    with console.status(f"loading {strategy} ..."):
        return build(strategy, params)


def _load_with_warmup(spec: str, start: str | None, end: str | None, warmup: int, *,
                      offline: bool | None) -> tuple[Any, int]:
    """Bars from ``start`` to ``end`` plus up to ``warmup`` bars of history before ``start`` (indicators need
    them; decisions start at ``start``) -> ``(bars, index of the first bar >= start)``."""
    bars = load_bars(spec, start, end, offline)
    if not start or warmup <= 0 or len(bars) < 2:
        return bars, 0
    import pandas as pd

    step = pd.Series(bars.index).diff().median()
    early = bars.index[0] - step * (2 * warmup + 10)  # calendar gaps (weekends, holidays) need extra room
    more = load_bars(spec, early.isoformat(), end, offline)
    first = int(more.index.searchsorted(bars.index[0]))
    keep = max(0, first - warmup)
    return more.iloc[keep:], first - keep


def _warn_if_flat(weights, strategy: str, warmup: int, history: int) -> None:
    """One yellow line when the decision-maker never takes a position (e.g. its warm-up never fills)."""
    import numpy as np

    w = np.nan_to_num(np.asarray(weights, dtype=float))
    if np.any(w != 0):
        return
    why = (f"it needs {warmup} bars of history and got {history} before the first decision plus "
           f"{w.shape[0]} decided" if warmup > history else "no signal fired")
    err_console.print(f"[yellow]warning:[/] {strategy} is flat on every bar ({why})", highlight=False,
                      soft_wrap=True)


MAX_COMBINATIONS = 1_000_000
"""Default cap on a sweep's grid (``--max-combinations`` overrides): memory stays bounded whatever the grid
(the sweep runs in chunks), but time and the result files grow with it."""


def sweep_cmd(
    spec: str = typer.Argument(..., help="data spec, e.g. sample:SP500"),
    strategy: str = typer.Option(..., "--strategy", "-s", help="registered strategy (see drex strategies)"),
    grid: list[str] = typer.Option(..., "--grid", "-g",
                                   help="'fast=5:50:5,slow=20:200:10' (start:stop:step, stop included when on "
                                        "the grid) or 'ma=sma|ema' (value list); repeatable"),
    metric: str = typer.Option("sharpe", help="metric that ranks the combinations"),
    ascending: bool = typer.Option(False, "--ascending", help="rank lowest first (e.g. for volatility)"),
    top: int = typer.Option(10, min=1, help="rows shown"),
    out: Path | None = typer.Option(None, "--out", help="results file, .csv or .json; its twin of the other kind is "
                                                           "written next to it (default "
                                                           "reports/<spec>-<strategy>-sweep.csv)"),
    report: Path | None = typer.Option(None, "--report", help="also write a report folder: heatmap of the metric, "
                                                              "top table, the best combination's equity"),
    as_json: bool = typer.Option(False, "--json", help="print the ranking as JSON instead of a table"),
    max_combinations: int = typer.Option(MAX_COMBINATIONS, "--max-combinations", min=1,
                                         help="refuse larger grids (memory is bounded; time and files grow)"),
    start: str | None = typer.Option(None, help="first date (inclusive, UTC)"),
    end: str | None = typer.Option(None, help="last date (inclusive, UTC)"),
    fees: float = typer.Option(0.001, help="fee as a fraction of traded notional (0.001 = 10 bps)"),
    slippage: float = typer.Option(0.0, help="slippage fraction"),
    execution: str = typer.Option("next_open", help="next_open or next_close"),
    init_cash: float = typer.Option(10_000.0, "--init-cash", help="initial equity"),
    periods_per_year: float | None = typer.Option(None, "--periods-per-year", help="annualization"),
    offline: bool = typer.Option(False, "--offline", help="use the cache only, never the network"),
    ray: str | None = typer.Option(None, "--ray", metavar="[ADDRESS]", help=RAY_HELP),
) -> None:
    """Evaluate a parameter grid in one vectorized pass; rank by a metric; write CSV and JSON."""
    with user_errors():
        from backtest.params import grid_size

        grid_ = parse_grid(strategy, grid)
        if ray is not None:
            from backtest.distributed import import_ray

            import_ray()  # without Ray: one line naming the extra, before any data loads
        check_run_options(execution=execution, fees=fees, slippage=slippage, init_cash=init_cash,
                          periods_per_year=periods_per_year)
        n = grid_size(grid_)
        if n > max_combinations:
            raise UserError(f"the grid has {n:,} combinations, more than --max-combinations {max_combinations:,}: "
                            f"use larger steps or fewer values, or pass --max-combinations {n} (memory stays "
                            "bounded; time and the result files grow with the grid)")
        csv_path, json_path = sweep_paths(out, spec, strategy)
        if report is not None:
            check_out_dir(report, "--report")
        bars = load_bars(spec, start, end, offline=offline or None)
        import backtest

        costs = {"fees": fees, "slippage": slippage, "execution": execution, "init_cash": init_cash,
                 "periods_per_year": periods_per_year}
        if ray is None:
            with sweep_progress(n, f"{strategy} on {spec}") as progress:
                table = backtest.sweep(strategy, grid_, bars, progress=progress, **costs)
        else:
            from backtest import distributed

            cpus = connect_ray(ray)
            with sweep_progress(n, f"{strategy} on {spec} (Ray, {cpus:g} CPUs)") as progress:
                table = distributed.sweep(strategy, grid_, bars, address=ray, progress=progress, **costs)
        note = str(table.attrs.get("note") or "")
        if len(table) == 0:
            raise UserError(f"no valid combination to rank: {note or 'the grid is empty'}; change the grid")
        if metric not in table.columns:
            cols = [c for c in table.columns if c not in grid_]
            raise UserError(f"unknown metric {metric!r}; available: {', '.join(map(str, cols))}")
        ranked = table.sort_values(metric, ascending=ascending, na_position="last", kind="stable")
        from backtest.atomic import StagedFiles

        folder = None
        with StagedFiles() as stage:  # results and report: all written, or none
            write_sweep_results(ranked, csv_path, json_path, stage=stage)
            if report is not None:
                folder = _sweep_report(ranked, report, bars=bars, spec=spec, strategy=strategy, grid=grid_,
                                       metric=metric, ascending=ascending, top=top, costs=costs, note=note, n=n,
                                       stage=stage)
        key = [metric] + [m for m in _KEY_METRICS if m != metric and m in ranked.columns]
        shown = ranked[list(grid_) + key].head(top).reset_index(drop=True)
        if as_json:
            from backtest.jsonable import jsonable

            doc = {"spec": spec, "strategy": strategy, "metric": metric, "ascending": ascending,
                   "combinations": n, "valid": len(ranked), "dropped": n - len(ranked), "note": note,
                   "csv": str(csv_path), "json": str(json_path), "report": str(folder) if folder else None,
                   "top": jsonable(ranked.head(top).to_dict(orient="records")),
                   "overfitting": _overfitting_doc(table, bars, strategy, metric=metric, ascending=ascending,
                                                   **costs)}
            typer.echo(json.dumps(doc, indent=2))
            return
        shown.index.name = "rank"
        shown.index = shown.index + 1
        console.print(frame_table(shown, f"top {min(top, len(ranked))} of {len(ranked)} by {metric}", max_cols=14,
                                  digits=3))
        from app.evaluate_cli import print_sweep_overfitting  # deflated Sharpe ratio and PBO of this sweep

        print_sweep_overfitting(table, bars, strategy, metric=metric, ascending=ascending, **costs)
        if note:
            err_console.print(Text.assemble(("note:", "yellow"), " ", note), soft_wrap=True, highlight=False)
        say(f"results: {csv_path} and {json_path}")
        if folder is not None:
            say(f"report: {folder / 'report.html'}")


PROGRESS_AFTER_S = 2.0
"""Plain progress lines (output not a terminal) start once a sweep has run this long..."""
PROGRESS_EVERY_S = 10.0
"""...and come at most this often."""


@contextlib.contextmanager
def sweep_progress(total: int, what: str):
    """A ``progress(done, total)`` callback for ``backtest.sweep``: a progress bar on a terminal (stderr),
    otherwise plain lines ``sweep: 12,000 of 50,000 combinations (24%), 8 s`` on stderr for sweeps that run
    longer than ``PROGRESS_AFTER_S`` (at most every ``PROGRESS_EVERY_S``); short sweeps print nothing."""
    import time

    if err_console.is_terminal:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        with Progress(TextColumn(Text(f"sweeping {what}")), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                      console=err_console, transient=True) as bar:
            task = bar.add_task("sweep", total=total)
            yield lambda done, _total: bar.update(task, completed=done)
        return
    start, last = time.monotonic(), [0.0]

    def line(done: int, _total: int) -> None:
        now = time.monotonic() - start
        if done < total and (now < PROGRESS_AFTER_S or now - last[0] < PROGRESS_EVERY_S):
            return
        if done == total and not last[0]:
            return  # finished before the first line was due: stay quiet
        last[0] = now
        err_console.print(Text(f"sweep: {done:,} of {total:,} combinations ({done / total:.0%}), {now:.0f} s"),
                          soft_wrap=True, highlight=False)

    yield line


def _overfitting_doc(table, bars, strategy: str, **options: Any) -> dict[str, Any] | None:
    """The deflated Sharpe ratio of the best and the PBO (``backtest.overfitting``) for ``--json``; None with
    the reason when they do not apply (e.g. one combination)."""
    from backtest.jsonable import jsonable
    from backtest.overfitting import sweep_overfitting

    try:
        res = sweep_overfitting(table, bars, strategy, **options)
    except ValueError as exc:
        return {"error": str(exc)}
    d, p = res.deflated, res.pbo
    return jsonable({"deflated_sharpe": d.dsr, "sharpe": d.sharpe, "sr0": d.sr0, "n_trials": d.n_trials,
                     "pbo": None if p is None else p.pbo, "n_pbo_trials": res.n_pbo_trials, "note": res.note})


def sweep_paths(out: Path | None, spec: str, strategy: str) -> tuple[Path, Path]:
    """``--out`` -> (CSV path, JSON path): ``x.csv`` or ``x.json`` names one, the other is its twin."""
    path = out or Path("reports") / f"{slug(spec)}-{slug(strategy)}-sweep.csv"
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".json"):
        raise UserError(f"--out {path}: end the file name in .csv or .json (the other is written next to it)")
    if path.is_dir():
        raise UserError(f"--out {path} is a folder: give a file name ending in .csv or .json")
    check_out_dir(path.parent, "--out's folder")
    return (path, path.with_suffix(".json")) if suffix == ".csv" else (path.with_suffix(".csv"), path)


def write_sweep_results(ranked, csv_path: Path, json_path: Path, *, stage=None) -> None:
    """The ranked table as CSV and as a JSON list of rows (strict JSON), both or neither (atomic; staged in
    ``stage`` when given, committed by the caller)."""
    import contextlib

    from backtest.atomic import StagedFiles
    from backtest.report import metrics_to_json

    with contextlib.nullcontext(stage) if stage is not None else StagedFiles() as staged:
        ranked.to_csv(staged.path(csv_path), index=False)
        with open(staged.path(json_path), "w", encoding="utf-8") as fh:  # streamed: memory stays bounded
            fh.write("[")
            for start in range(0, len(ranked), 10_000):
                rows = ranked.iloc[start:start + 10_000].to_dict(orient="records")
                fh.write(("" if start == 0 else ",\n") + ",\n".join(metrics_to_json(r) for r in rows))
            fh.write("]\n")


def _sweep_report(ranked, folder: Path, *, bars, spec: str, strategy: str, grid: dict[str, list[Any]],
                  metric: str, ascending: bool, top: int, costs: dict[str, Any], note: str, n: int,
                  stage=None) -> Path:
    """``--report``: the best combination backtested again (same bars and costs) and the sweep report."""
    import backtest
    from backtest.sweep_report import write_sweep_report

    best = {k: (v.item() if hasattr(v, "item") else v) for k, v in ranked.iloc[0][list(grid)].items()}
    with console.status(Text(f"writing the sweep report to {folder} ...")):
        run = backtest.run_strategy(bars, strategy, best, **costs)
        bench = backtest.benchmark(bars, **costs)
        from backtest.decisions import bind

        settings = run_settings(spec, strategy, bind(strategy, best), bars, costs, ppy=run.result.periods_per_year)
        settings.update(grid={k: list(v) for k, v in grid.items()}, metric=metric, ascending=ascending,
                        combinations=n, valid=len(ranked), note=note)
        write_sweep_report(ranked, folder, grid=list(grid), metric=metric, ascending=ascending, top=top,
                           best=run.result, benchmark=bench.equity, bars=bars, run=settings,
                           title=f"{strategy} sweep on {spec}: {metric}", stage=stage)
    return folder
