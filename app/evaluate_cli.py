"""``drex evaluate`` (walk-forward evaluation) and ``drex lookahead`` (look-ahead analysis), and the overfitting
lines ``drex sweep`` prints under its table: the commands that keep a backtest honest.

Registered on the root app by ``app.cli``. Light at import (typer, rich): the engine loads inside the commands.
Exit codes: 0 success; 2 user error (one ``error:`` line); ``drex lookahead`` exits 1 when it finds look-ahead.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Self

import typer

from app._common import (
    RAY_HELP,
    UserError,
    check_run_options,
    connect_ray,
    console,
    err_console,
    frame_table,
    load_bars,
    user_errors,
)

__all__ = ["evaluate_cmd", "lookahead_cmd", "print_sweep_overfitting", "split_named"]

LOOKAHEAD_EXIT = 1


def split_named(item: str, what: str) -> tuple[str, str]:
    """``"NAME:rest"`` -> ``(NAME, rest)`` where NAME is the longest registered decision-maker name followed by
    ``:`` (names may contain ``:``, e.g. ``expert:trend``)."""
    from backtest.decisions import names

    hits = [n for n in names() if item.startswith(n + ":")]
    if not hits:
        raise UserError(f"{what} {item!r} must start with a registered name and a colon, e.g. "
                        f"{'trend:fast=5:50:5,slow=20:200:10' if what == '--optimize' else 'trend:fast=10'}; "
                        "see drex strategies")
    name = max(hits, key=len)
    return name, item[len(name) + 1:]


def _strategies(strategy: list[str], param: list[str], optimize: list[str]):
    """(name, params) pairs and the optimization grids from the -s / -p / --optimize options."""
    from backtest.decisions import entries, get

    names = list(dict.fromkeys(strategy))
    if not names and not optimize:  # default: the rule-based decision-makers (functions), not the benchmark
        names = [e.name for e in entries() if not e.is_class and e.name != "buy_and_hold"]
    fixed: dict[str, list[str]] = {}
    for item in param:
        name, rest = split_named(item, "-p")
        fixed.setdefault(name, []).append(rest)
    grids = {}
    for item in optimize:
        name, rest = split_named(item, "--optimize")
        if name in grids:
            raise UserError(f"--optimize {name} is given twice; put all its axes in one grid")
        grids[name] = get(name).space.parse_grid([rest])
    for name in [*fixed, *grids]:
        if name not in names:
            names.append(name)
    pairs = [(n, get(n).space.parse_items(fixed.get(n, []))) for n in names]
    return pairs, grids


class _Progress:
    """Progress over folds: a rich bar on a terminal, plain lines otherwise (logs, CI)."""

    def __init__(self) -> None:
        self.bar = None
        self.task = None

    def __enter__(self) -> Self:
        if err_console.is_terminal:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self.bar = Progress(TextColumn("walk-forward"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                                console=err_console, transient=True)
            self.bar.__enter__()
        return self

    def __call__(self, done: int, total: int, fold: Any) -> None:
        if self.bar is not None:
            if self.task is None:
                self.task = self.bar.add_task("folds", total=total)
            self.bar.update(self.task, completed=done)
        elif fold is not None:
            err_console.print(f"fold {done}/{total} done (test bars {int(fold.test[0])}..{int(fold.test[-1])})",
                              highlight=False)

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.__exit__(*exc)


def evaluate_cmd(
    spec: str = typer.Argument(..., help="data spec, e.g. sample:SP500"),
    strategy: list[str] = typer.Option([], "--strategy", "-s",
                                       help="decision-maker to evaluate (repeatable; default: the rule-based ones)"),
    param: list[str] = typer.Option([], "--param", "-p", help="fixed parameter NAME:k=v, e.g. trend:fast=10"),
    optimize: list[str] = typer.Option([], "--optimize",
                                       help="pick NAME's parameters per fold by an in-sample sweep: "
                                            "NAME:'fast=5:50:5,slow=20:200:10'"),
    metric: str = typer.Option("sharpe", help="in-sample metric that --optimize maximizes"),
    folds: int | None = typer.Option(None, "--folds", "-k", min=1, help="number of test folds (default 5)"),
    train_bars: int | None = typer.Option(None, "--train-bars", min=1, help="train window length in bars"),
    test_bars: int | None = typer.Option(None, "--test-bars", min=1, help="test block length in bars"),
    expanding: bool = typer.Option(False, "--expanding", help="train windows all start at the first bar"),
    start: str | None = typer.Option(None, help="first date (inclusive, UTC)"),
    end: str | None = typer.Option(None, help="last date (inclusive, UTC)"),
    fees: float = typer.Option(0.001, help="fee as a fraction of traded notional (0.001 = 10 bps)"),
    slippage: float = typer.Option(0.0, help="slippage fraction"),
    execution: str = typer.Option("next_open", help="next_open or next_close"),
    init_cash: float = typer.Option(10_000.0, "--init-cash", help="initial equity"),
    leverage: float | None = typer.Option(None, help="cap on gross exposure (sum of |weights|)"),
    periods_per_year: float | None = typer.Option(None, "--periods-per-year", help="annualization"),
    ci: str = typer.Option("hac", "--ci", help="Sharpe confidence interval: hac, iid or bootstrap"),
    json_path: Path | None = typer.Option(None, "--json", help="write one JSON object per strategy here"),
    report: Path | None = typer.Option(None, "--report", help="report folder (report.html, evaluation.json)"),
    offline: bool = typer.Option(False, "--offline", help="use the cache only, never the network"),
    ray: str | None = typer.Option(None, "--ray", metavar="[ADDRESS]", help=RAY_HELP.replace("same numbers",
                                   "folds x decision-makers as tasks, same numbers")),
) -> None:
    """Walk-forward evaluation: fit/tune on each train window, decide the next test block, backtest the test
    blocks net of costs; Sharpe with a confidence interval vs buy-and-hold and the equal-weight mix."""
    with user_errors():
        check_run_options(execution=execution, fees=fees, slippage=slippage, init_cash=init_cash,
                          periods_per_year=periods_per_year, leverage=leverage)
        pairs, grids = _strategies(strategy, param, optimize)
        if ray is not None:
            from backtest.distributed import import_ray

            import_ray()  # without Ray: one line naming the extra, before any data loads
        bars = load_bars(spec, start, end, offline=offline or None)
        from backtest.atomic import write_text_atomic
        from backtest.evaluate import evaluate
        from backtest.evaluate_report import evaluation_json, write_evaluation_report

        run = evaluate
        if ray is not None:
            from functools import partial

            from backtest import distributed

            connect_ray(ray)
            run = partial(distributed.evaluate, address=ray)
        with _Progress() as progress:
            ev = run(bars, pairs, folds=folds, train_bars=train_bars, test_bars=test_bars, expanding=expanding,
                          optimize=grids, metric=metric, fees=fees, slippage=slippage, execution=execution,
                          init_cash=init_cash, periods_per_year=periods_per_year, leverage=leverage,
                          ci_method=ci, progress=progress)
        _print_evaluation(ev, spec)
        if json_path is not None:
            write_text_atomic(json_path, evaluation_json(ev))
            console.print(f"json: {json_path}", highlight=False, soft_wrap=True)
        if report is not None:
            paths = write_evaluation_report(ev, report, title=f"Walk-forward evaluation on {spec}")
            console.print(f"report: {paths['html']}", highlight=False, soft_wrap=True)


def _pct(x: float | None) -> str:
    if x is None or not math.isfinite(x):
        return "n/a"
    return f"{100 * x:.0f}%" if abs(x) >= 1 else f"{100 * x:.1f}%"


def _num(x: float | None) -> str:
    return "n/a" if x is None or not math.isfinite(x) else f"{x:.2f}"


def _wide() -> Any:
    """The console for tables: the terminal's width, or 120 columns for piped output (logs, CI) instead of
    rich's default 80, which would truncate the columns."""
    if console.is_terminal:
        return console
    from rich.console import Console

    return Console(width=max(console.width, 120), highlight=False)


def _print_evaluation(ev: Any, spec: str) -> None:
    from rich import box
    from rich.markup import escape
    from rich.table import Table

    s = ev.setup
    level = round(100 * s["ci_level"])
    table = Table(title=f"walk-forward on {spec}: {s['n_folds']} folds, test {ev.index[0].date()} .. "
                        f"{ev.index[-1].date()} ({len(ev.index)} bars), net of fees {s['fees']:g}",
                  header_style="bold", box=box.SIMPLE_HEAD, pad_edge=False, padding=(0, 1, 0, 0))
    for col in ("strategy", f"Sharpe [{level}% CI]", "vs b&h", "return", "CAGR", "max DD", "turn/yr"):
        table.add_column(col, justify="left" if col in ("strategy", "vs b&h") else "right", no_wrap=True)
    for label, st in ev.strategies.items():
        row = st.summary()
        table.add_row(escape(label), f"{_num(row['sharpe'])} [{_num(row['sharpe_ci_low'])}, "
                                     f"{_num(row['sharpe_ci_high'])}]", st.vs_benchmark,
                      _pct(row["total_return"]), _pct(row["cagr"]), _pct(row["max_drawdown"]), _num(row["turnover"]))
    _wide().print(table)
    console.print(f"Sharpe interval: {s['ci_method']}. 'vs b&h' is above/below only when the two intervals do not "
                  "overlap; 'overlaps': the data cannot tell the strategy from buy and hold.",
                  highlight=False, soft_wrap=True)
    for label, st in ev.strategies.items():
        chosen = [f.get("params") for f in st.folds if f.get("params") is not None]
        if chosen:
            shown = "; ".join(", ".join(f"{k}={v}" for k, v in p.items() if k in _varied(chosen)) for p in chosen)
            console.print(f"{label}: in-sample choice per fold: {shown}", highlight=False, soft_wrap=True)
    if s.get("note"):
        console.print(s["note"], highlight=False, soft_wrap=True)


def _varied(chosen: list[dict[str, Any]]) -> set[str]:
    keys = set().union(*chosen)
    varied = {k for k in keys if len({repr(p.get(k)) for p in chosen}) > 1}
    return varied or keys


# ------------------------------------------------------------------------------------------- lookahead
def _ranges(rows: list[int]) -> str:
    """``[3, 4, 5, 9]`` -> ``"3-5, 9"``."""
    out, i = [], 0
    while i < len(rows):
        j = i
        while j + 1 < len(rows) and rows[j + 1] == rows[j] + 1:
            j += 1
        out.append(str(rows[i]) if i == j else f"{rows[i]}-{rows[j]}")
        i = j + 1
    return ", ".join(out)


def lookahead_cmd(
    spec: str = typer.Argument(..., help="data spec, e.g. sample:SP500"),
    strategy: str = typer.Option(..., "--strategy", "-s", help="registered decision-maker (see drex strategies)"),
    param: list[str] = typer.Option([], "--param", "-p", help="parameter k=v (repeatable)"),
    cuts: int = typer.Option(8, "--cuts", min=2, help="cut points spread over the bars (first and last included)"),
    last: int | None = typer.Option(None, "--last", min=10, help="analyze only the last N bars (faster)"),
    start: str | None = typer.Option(None, help="first date (inclusive, UTC)"),
    end: str | None = typer.Option(None, help="last date (inclusive, UTC)"),
    seed: int = typer.Option(0, help="seed of the random bars that replace the future"),
    as_json: bool = typer.Option(False, "--json", help="print the full report as JSON"),
    offline: bool = typer.Option(False, "--offline", help="use the cache only, never the network"),
) -> None:
    """Look-ahead analysis: re-decide on truncated and perturbed histories at many cut points and report every
    bar whose decision or trace changed (exit 1), plus warm-up dependence. Exit 0 when clean."""
    with user_errors():
        from app.backtest_cli import parse_params

        params = parse_params(strategy, param)
        bars = load_bars(spec, start, end, offline=offline or None)
        if last is not None:
            bars = bars.iloc[-last:]
        if len(bars) < 10:
            raise UserError(f"{len(bars)} bars are too few for a look-ahead analysis; load at least 10")
        from backtest.decisions import build
        from backtest.lookahead import analyze, default_cuts

        dm = build(strategy, params)
        with console.status(f"analyzing {strategy} on {len(bars)} bars of {spec} ..."):
            rep = analyze(dm, bars, cuts=default_cuts(len(bars), cuts), seed=seed)
        if as_json:
            typer.echo(_lookahead_json(rep, spec, strategy, params, dm.warmup, bars.index))
        else:
            _print_lookahead(rep, dm.warmup, bars.index)
        if not rep.ok:
            raise typer.Exit(LOOKAHEAD_EXIT)


def _group(findings: list[Any]) -> dict[tuple[str, int], list[Any]]:
    groups: dict[tuple[str, int], list[Any]] = {}
    for f in findings:
        groups.setdefault((f.check, f.cut), []).append(f)
    return groups


def _print_lookahead(rep: Any, warmup: int, index: Any) -> None:
    import pandas as pd
    from rich.markup import escape

    if rep.violations:
        rows = []
        for (check, cut), fs in _group(rep.violations).items():
            cols = sorted({c for f in fs for c in f.columns})
            rows.append({"check": check, "cut row": cut, "cut at": str(index[cut].date()), "bars changed": len(fs),
                         "rows": _ranges(sorted(f.row for f in fs)), "columns": ", ".join(cols)})
        frame = pd.DataFrame(rows).set_index("check")
        _wide().print(frame_table(frame, f"{rep.name}: bars whose decision or trace changed", max_cols=8))
    if rep.warmup:
        rows = []
        for (_, s), fs in _group(rep.warmup).items():
            deltas = [f.delta for f in fs if f.delta == f.delta]
            rows.append({"bars dropped": s, "last bars changed": len(fs),
                         "first changed": str(fs[0].timestamp.date()), "max |change|": max(deltas, default=float("nan")),
                         "columns": ", ".join(sorted({c for f in fs for c in f.columns}))})
        frame = pd.DataFrame(rows).set_index("bars dropped")
        _wide().print(frame_table(frame, "warm-up dependence (information, not look-ahead): the last bars decided "
                                         "with less history loaded", max_cols=8, digits=3))
    console.print(escape(rep.summary()), highlight=False, soft_wrap=True)
    console.print(f"declared warm-up: {warmup} bars. Checks: truncated (decide on bars[:t+1]), perturbed (random "
                  "bars after t), newest (decide(bars, start=t)) at the cuts.", highlight=False, soft_wrap=True)


def _lookahead_json(rep: Any, spec: str, strategy: str, params: dict[str, Any], warmup: int, index: Any) -> str:
    from backtest.jsonable import dumps

    def rec(f: Any) -> dict[str, Any]:
        return {"check": f.check, "cut": f.cut, "cut_timestamp": index[f.cut], "row": f.row,
                "timestamp": f.timestamp, "columns": list(f.columns), "delta": f.delta}

    return dumps({"spec": spec, "strategy": strategy, "params": params, "ok": rep.ok, "n_bars": rep.n_bars,
                  "declared_warmup": warmup, "cuts": [{"row": c, "timestamp": index[c]} for c in rep.cuts],
                  "bars_changed": rep.bars, "summary": rep.summary(),
                  "violations": [rec(f) for f in rep.violations],
                  "warmup": [{**rec(f), "history_start": f.cut} for f in rep.warmup]})


# --------------------------------------------------------------------------------- sweep overfitting
def print_sweep_overfitting(table: Any, bars: Any, strategy: str, **options: Any) -> Any:
    """Print the deflated Sharpe ratio of the sweep's best combination and its PBO (``backtest.overfitting``)
    under the sweep table; ``options``: the sweep's metric/ascending and engine options. Returns the
    ``SweepOverfitting`` (None, with one line saying why, when it does not apply)."""
    from backtest.overfitting import sweep_overfitting

    try:
        with console.status("deflated Sharpe ratio and PBO ..."):
            result = sweep_overfitting(table, bars, strategy, **options)
    except ValueError as exc:  # e.g. a single combination: say why, keep the sweep's own output
        console.print(f"overfitting statistics: n/a ({exc})", highlight=False, soft_wrap=True)
        return None
    for line in result.lines():
        console.print(line, highlight=False, soft_wrap=True)
    return result
