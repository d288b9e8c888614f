"""The ``drex`` command line: data, strategies, backtests and sweeps.

Start-up stays light (``drex --help`` answers in well under a second): this module imports only typer, rich
and ``app._common``; pandas, numpy, the markets sources and the backtest engine are imported inside the
commands. User errors (bad spec, dates, strategy, parameter, data) print one line and exit 2.

Parameter syntax (``--param``, repeatable): ``k=v``; the value is parsed with the type of the strategy's
default for ``k`` (int, float, bool: true/false/yes/no/1/0, or str). Grid syntax (``--grid``, repeatable or
comma-separated): ``name=start:stop:step`` is a range that includes ``stop`` when it lands on the grid
(``fast=5:50:5`` -> 5, 10, ..., 50); ``name=a|b|c`` lists values (``ma=sma|ema``); ``name=v`` one value.
"""
from __future__ import annotations

import numbers
import re
import warnings
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from app._common import UserError, console, err_console, user_errors

__all__ = ["app", "main", "parse_grid", "parse_params"]
_ROLE = re.compile(r"``([^`]*)``|:\w+:`([^`]*)`")

app = typer.Typer(name="drex", help="DREX: trading research and decision-making with reinforcement learning.",
                  no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)
data_app = typer.Typer(help="Market data: bundled samples, downloads into the cache, quick looks.",
                       no_args_is_help=True)
app.add_typer(data_app, name="data")

_EXECUTIONS = ("next_open", "next_close")
_KEY_METRICS = ("sharpe", "total_return", "cagr", "max_drawdown", "n_trades")  # the sweep table's columns


# --------------------------------------------------------------------------------------------- parsing
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


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-") or "data"


# --------------------------------------------------------------------------------------------- helpers
def _load(spec: str, start: str | None, end: str | None, offline: bool | None = None):
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


def _fmt(value: Any, digits: int = 6) -> str:
    """Floats (numpy ones too) with ``digits`` significant digits; everything else as str."""
    if isinstance(value, numbers.Real) and not isinstance(value, (bool, numbers.Integral)):
        return f"{float(value):.{digits}g}"
    return str(value)


def _metrics_table(metrics: dict[str, Any], title: str) -> Table:
    table = Table(title=title, show_header=True, header_style="bold")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key, value in metrics.items():
        table.add_row(str(key), _fmt(value))
    return table


def _frame_table(frame, title: str, *, max_cols: int = 12, digits: int = 6) -> Table:
    table = Table(title=title, header_style="bold")
    cols = list(frame.columns)[:max_cols]
    table.add_column(str(frame.index.name or ""))
    for c in cols:
        table.add_column(str(c), justify="right")
    for idx, row in frame[cols].iterrows():
        table.add_row(str(idx), *(_fmt(v, digits) for v in row.tolist()))
    return table


def _check_execution(execution: str) -> str:
    if execution not in _EXECUTIONS:
        raise UserError(f"--execution must be one of {', '.join(_EXECUTIONS)}, got {execution!r}")
    return execution


def _check_costs(**costs: float) -> None:
    for name, value in costs.items():
        if not value >= 0:
            raise UserError(f"--{name.replace('_', '-')} must be >= 0 (a fraction: 0.001 = 10 bps), got {value}")


# --------------------------------------------------------------------------------------------- commands
def _plain_doc(text: str) -> str:
    """Docstring text for a terminal: reST roles and double back-quotes dropped."""
    return _ROLE.sub(lambda m: m.group(1) if m.group(1) is not None else m.group(2), text)


@app.command("strategies")
def strategies_cmd() -> None:
    """List the registered decision-makers (rule-based and learned) with their parameters and defaults."""
    with user_errors():
        from rich.markup import escape

        from backtest.decisions import entries

        table = Table(title="decision-makers (-s NAME)", header_style="bold", show_lines=True)
        table.add_column("name", style="bold")
        table.add_column("parameters: default (accepted)")
        table.add_column("description")
        for entry in entries():
            params = "\n".join(f"{k}={p.default!r} ({p.describe()})" for k, p in entry.space.params.items())
            tags = [t for t, on in (("batched sweep", entry.batched), ("trainable", entry.trainable)) if on]
            extra = f" [dim]({', '.join(tags)}; from {entry.source})[/]" if tags else f" [dim](from {entry.source})[/]"
            table.add_row(escape(entry.name), escape(params), escape(_plain_doc(entry.description)) + extra)
        console.print(table)


@data_app.command("list")
def data_list() -> None:
    """List the bundled samples and the datasets in the local cache."""
    with user_errors():
        import pandas as pd

        import markets

        samples = markets.samples()
        table = Table(title="bundled samples (spec sample:NAME)", header_style="bold")
        for col in ("name", "kind", "assets", "start", "end", "rows", "description"):
            table.add_column(col)
        for name, row in samples.iterrows():
            table.add_row(str(name), str(row["kind"]), str(row["assets"]), str(row["start"]), str(row["end"]),
                          str(row["rows"]), str(row["description"]))
        console.print(table)
        cache = markets.data_home("cache", create=False)
        files = sorted(cache.rglob("*.parquet")) if cache.exists() else []
        ctable = Table(title=f"cached datasets ({cache})", header_style="bold")
        for col in ("source", "file", "rows", "start", "end"):
            ctable.add_column(col)
        for f in files:
            try:
                frame = pd.read_parquet(f)
                rows, lo, hi = str(len(frame)), str(frame.index.min()), str(frame.index.max())
            except (OSError, ValueError) as exc:  # an unreadable cache file is reported, not fatal
                rows, lo, hi = "unreadable", type(exc).__name__, ""
            ctable.add_row(f.parent.name, f.name, rows, lo, hi)
        if files:
            console.print(ctable)
        else:
            console.print(f"no cached datasets in {cache} (drex data fetch yf:AAPL fills it)")


@data_app.command("fetch")
def data_fetch(
    spec: str = typer.Argument(..., help="data spec, e.g. yf:AAPL, ccxt:binance:BTC/USDT:1h, sample:SP500"),
    start: str | None = typer.Option(None, help="first date (inclusive, UTC), e.g. 2020-01-01"),
    end: str | None = typer.Option(None, help="last date (inclusive, UTC)"),
    offline: bool = typer.Option(False, "--offline", help="use the cache only, never the network"),
) -> None:
    """Download bars into the cache (network sources) and print rows and range."""
    with user_errors():
        bars = _load(spec, start, end, offline=offline or None)
        import markets

        assets = markets.assets(bars)
        console.print(f"{spec}: {len(bars)} rows, {bars.index[0]} .. {bars.index[-1]}, "
                      f"{len(assets)} asset(s): {', '.join(assets[:10])}{' ...' if len(assets) > 10 else ''}",
                      highlight=False)


@data_app.command("show")
def data_show(
    spec: str = typer.Argument(..., help="data spec, e.g. sample:SP500"),
    start: str | None = typer.Option(None, help="first date (inclusive, UTC)"),
    end: str | None = typer.Option(None, help="last date (inclusive, UTC)"),
    rows: int = typer.Option(5, "--rows", "-n", min=1, help="rows shown at the head and at the tail"),
    offline: bool = typer.Option(False, "--offline", help="use the cache only, never the network"),
) -> None:
    """Show the first and last bars and a summary (per asset: first/last close, return, volatility)."""
    with user_errors():
        import numpy as np
        import pandas as pd

        import markets

        bars = _load(spec, start, end, offline=offline or None)
        multi = isinstance(bars.columns, pd.MultiIndex)
        shown = markets.fields(bars, "close") if multi else bars
        label = "close" if multi else "bars"
        console.print(_frame_table(shown.head(rows), f"{spec}: first {rows} {label}"))
        console.print(_frame_table(shown.tail(rows), f"{spec}: last {rows} {label}"))
        close = markets.fields(bars, "close")
        logret = np.log(close / close.shift(1))
        summary = pd.DataFrame({
            "first_close": close.iloc[0], "last_close": close.iloc[-1],
            "total_return": close.iloc[-1] / close.iloc[0] - 1.0,
            "daily_vol": logret.std(ddof=1),
        })
        summary.index.name = "asset"
        console.print(_frame_table(summary, f"{len(bars)} rows, {bars.index[0]} .. {bars.index[-1]}"))


@app.command("backtest")
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
        _check_execution(execution)
        _check_costs(fees=fees, slippage=slippage)
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
            out = report or Path("reports") / f"{_slug(spec)}-{_slug(strategy)}"
            with console.status(f"writing report to {out} ..."):
                shown = ", ".join(f"{k}={v}" for k, v in params.items())
                paths = write_report(run.result, out, bars=bars.iloc[first:], benchmark=bench.equity,
                                     title=f"{strategy}({shown}) on {spec}", periods_per_year=periods_per_year,
                                     trace=run.decision.trace)
        if as_json:
            typer.echo(metrics_to_json(run.result.metrics))
        else:
            console.print(_metrics_table(run.result.metrics, f"{strategy} on {spec}"))
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
    bars = _load(spec, start, end, offline)
    if not start or warmup <= 0 or len(bars) < 2:
        return bars, 0
    import pandas as pd

    step = pd.Series(bars.index).diff().median()
    early = bars.index[0] - step * (2 * warmup + 10)  # calendar gaps (weekends, holidays) need extra room
    more = _load(spec, early.isoformat(), end, offline)
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


@app.command("sweep")
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
        _check_execution(execution)
        _check_costs(fees=fees, slippage=slippage)
        bars = _load(spec, start, end, offline=offline or None)
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
        path = out or Path("reports") / f"{_slug(spec)}-{_slug(strategy)}-sweep.csv"
        path.parent.mkdir(parents=True, exist_ok=True)
        ranked.to_csv(path, index=False)
        records = ranked.to_dict(orient="records")
        json_path = path.with_suffix(".json")
        json_path.write_text("[" + ",\n".join(metrics_to_json(r) for r in records) + "]\n", encoding="utf-8")
        key = [metric] + [m for m in _KEY_METRICS if m != metric and m in ranked.columns]
        shown = ranked[list(grid_) + key].head(top).reset_index(drop=True)
        shown.index.name = "rank"
        shown.index = shown.index + 1
        console.print(_frame_table(shown, f"top {min(top, len(ranked))} of {len(ranked)} by {metric}", max_cols=14,
                                   digits=3))
        console.print(f"results: {path} and {json_path}", highlight=False, soft_wrap=True)


# ------------------------------------------------------------------------------------ paper, dashboard
from app.paper.cli import paper_app

app.add_typer(paper_app, name="paper")


@app.command("dashboard")
def dashboard(
    host: str = typer.Option("127.0.0.1", help="Address to bind; the default keeps it on this machine."),
    port: int = typer.Option(8501, help="Port to serve on."),
    headless: bool = typer.Option(True, help="Do not try to open a browser window."),
) -> None:
    """Open the Streamlit dashboard (backtest, sweep, training monitor, paper trading)."""
    from app.dashboard.launch import launch

    raise typer.Exit(launch(host, port, headless=headless))


def main() -> None:
    """Console-script entry point (``drex``)."""
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
