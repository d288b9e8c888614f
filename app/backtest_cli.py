"""``drex backtest`` and ``drex sweep``: a registered decision-maker on a data spec, one run or a parameter grid.

Registered on the root app by ``app.cli``. Light at import (typer, rich): the engine loads inside the commands.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from app._common import (
    UserError,
    check_costs,
    check_execution,
    console,
    err_console,
    frame_table,
    load_bars,
    metrics_table,
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
        check_execution(execution)
        check_costs(fees=fees, slippage=slippage)
        if init_cash <= 0:
            raise UserError(f"--init-cash must be > 0, got {init_cash}")
        dm = _build(strategy, params)
        bars, first = _load_with_warmup(spec, start, end, dm.warmup, offline=offline or None)
        import backtest
        from backtest.report import metrics_to_json, write_report

        costs = {"fees": fees, "slippage": slippage, "execution": execution, "init_cash": init_cash,
                 "periods_per_year": periods_per_year, "leverage": leverage}
        with console.status(f"running {strategy} on {spec} ..."):
            run = backtest.run_strategy(bars, strategy, params, start=first, **costs)
            bench = backtest.benchmark(bars, start=first, **costs)
        _warn_if_flat(run.decision.weights, strategy, dm.warmup, first)
        paths = None
        if not no_report:
            out = report or Path("reports") / f"{slug(spec)}-{slug(strategy)}"
            with console.status(f"writing report to {out} ..."):
                shown = ", ".join(f"{k}={v}" for k, v in params.items())
                paths = write_report(run.result, out, bars=bars.iloc[first:], benchmark=bench.equity,
                                     title=f"{strategy}({shown}) on {spec}", periods_per_year=periods_per_year,
                                     trace=run.decision.trace)
        if as_json:
            typer.echo(metrics_to_json(run.result.metrics))
        else:
            console.print(metrics_table(run.result.metrics, f"{strategy} on {spec}"))
            if paths:
                console.print(f"report: {paths['html']}", highlight=False, soft_wrap=True)


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


def sweep_cmd(
    spec: str = typer.Argument(..., help="data spec, e.g. sample:SP500"),
    strategy: str = typer.Option(..., "--strategy", "-s", help="registered strategy (see drex strategies)"),
    grid: list[str] = typer.Option(..., "--grid", "-g",
                                   help="'fast=5:50:5,slow=20:200:10' (start:stop:step, stop included when on "
                                        "the grid) or 'ma=sma|ema' (value list); repeatable"),
    metric: str = typer.Option("sharpe", help="metric that ranks the combinations"),
    ascending: bool = typer.Option(False, "--ascending", help="rank lowest first (e.g. for volatility)"),
    top: int = typer.Option(10, min=1, help="rows shown"),
    out: Path | None = typer.Option(None, "--out", help="CSV path (default reports/<spec>-<strategy>-sweep.csv); "
                                                           "a .json twin is written next to it"),
    start: str | None = typer.Option(None, help="first date (inclusive, UTC)"),
    end: str | None = typer.Option(None, help="last date (inclusive, UTC)"),
    fees: float = typer.Option(0.001, help="fee as a fraction of traded notional (0.001 = 10 bps)"),
    slippage: float = typer.Option(0.0, help="slippage fraction"),
    execution: str = typer.Option("next_open", help="next_open or next_close"),
    init_cash: float = typer.Option(10_000.0, "--init-cash", help="initial equity"),
    periods_per_year: float | None = typer.Option(None, "--periods-per-year", help="annualization"),
    offline: bool = typer.Option(False, "--offline", help="use the cache only, never the network"),
) -> None:
    """Evaluate a parameter grid in one vectorized pass; rank by a metric; write CSV and JSON."""
    with user_errors():
        grid_ = parse_grid(strategy, grid)
        check_execution(execution)
        check_costs(fees=fees, slippage=slippage)
        bars = load_bars(spec, start, end, offline=offline or None)
        import backtest
        from backtest.report import metrics_to_json

        n = 1
        for values in grid_.values():
            n *= len(values)
        with console.status(f"sweeping {n} combinations of {strategy} on {spec} ..."):
            table = backtest.sweep(strategy, grid_, bars, fees=fees, slippage=slippage, execution=execution,
                                   init_cash=init_cash, periods_per_year=periods_per_year)
        if metric not in table.columns:
            cols = [c for c in table.columns if c not in grid_]
            raise UserError(f"unknown metric {metric!r}; available: {', '.join(map(str, cols))}")
        ranked = table.sort_values(metric, ascending=ascending, na_position="last", kind="stable")
        path = out or Path("reports") / f"{slug(spec)}-{slug(strategy)}-sweep.csv"
        path.parent.mkdir(parents=True, exist_ok=True)
        ranked.to_csv(path, index=False)
        records = ranked.to_dict(orient="records")
        json_path = path.with_suffix(".json")
        json_path.write_text("[" + ",\n".join(metrics_to_json(r) for r in records) + "]\n", encoding="utf-8")
        key = [metric] + [m for m in _KEY_METRICS if m != metric and m in ranked.columns]
        shown = ranked[list(grid_) + key].head(top).reset_index(drop=True)
        shown.index.name = "rank"
        shown.index = shown.index + 1
        console.print(frame_table(shown, f"top {min(top, len(ranked))} of {len(ranked)} by {metric}", max_cols=14,
                                   digits=3))
        from app.evaluate_cli import print_sweep_overfitting  # deflated Sharpe ratio and PBO of this sweep

        print_sweep_overfitting(table, bars, strategy, metric=metric, ascending=ascending, fees=fees,
                                slippage=slippage, execution=execution, init_cash=init_cash,
                                periods_per_year=periods_per_year)
        console.print(f"results: {path} and {json_path}", highlight=False, soft_wrap=True)
