"""The ``drex`` command line: the root app, ``data`` and ``strategies``; each other command group lives in its
own module (``app.backtest_cli``: backtest, sweep; ``app.paper.cli``: paper) and is registered here.

Start-up stays light (``drex --help`` answers in well under a second): these modules import only typer, rich
and ``app._common``; pandas, numpy, the markets sources and the backtest engine are imported inside the
commands. User errors (bad spec, dates, strategy, parameter, data) print one line and exit 2.

Parameters (``-p k=v``) and grids (``--grid``) are parsed and checked by the decision-maker's declared
parameters (``backtest.params``): ``name=start:stop:step`` is a range that includes ``stop`` when it lands on
the grid (``fast=5:50:5`` -> 5, 10, ..., 50); ``name=a|b|c`` lists values; ``name=v`` one value.
"""
from __future__ import annotations

import re

import typer
from rich.table import Table
from rich.text import Text

from app._common import DrexGroup, console, frame_table, load_bars, say, user_errors

__all__ = ["app", "main"]
_ROLE = re.compile(r"``([^`]*)``|:\w+:`([^`]*)`")

app = typer.Typer(name="drex", help="DREX: trading research and decision-making with reinforcement learning.",
                  no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False, cls=DrexGroup)
data_app = typer.Typer(help="Market data: bundled samples, downloads into the cache, quick looks.",
                       no_args_is_help=True, cls=DrexGroup)
app.add_typer(data_app, name="data")


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
        ctable = Table(title=Text(f"cached datasets ({cache})"), header_style="bold")
        for col in ("source", "file", "rows", "start", "end"):
            ctable.add_column(col)
        for f in files:
            try:
                frame = pd.read_parquet(f)
                rows, lo, hi = str(len(frame)), str(frame.index.min()), str(frame.index.max())
            except (OSError, ValueError) as exc:  # an unreadable cache file is reported, not fatal
                rows, lo, hi = "unreadable", type(exc).__name__, ""
            ctable.add_row(Text(f.parent.name), Text(f.name), rows, lo, hi)
        if files:
            console.print(ctable)
        else:
            say(f"no cached datasets in {cache} (drex data fetch yf:AAPL fills it)")


@data_app.command("fetch")
def data_fetch(
    spec: str = typer.Argument(..., help="data spec, e.g. yf:AAPL, ccxt:binance:BTC/USDT:1h, sample:SP500"),
    start: str | None = typer.Option(None, help="first date (inclusive, UTC), e.g. 2020-01-01"),
    end: str | None = typer.Option(None, help="last date (inclusive, UTC)"),
    offline: bool = typer.Option(False, "--offline", help="use the cache only, never the network"),
) -> None:
    """Download bars into the cache (network sources) and print rows and range."""
    with user_errors():
        bars = load_bars(spec, start, end, offline=offline or None)
        import markets

        assets = markets.assets(bars)
        say(f"{spec}: {len(bars)} rows, {bars.index[0]} .. {bars.index[-1]}, "
            f"{len(assets)} asset(s): {', '.join(assets[:10])}{' ...' if len(assets) > 10 else ''}")


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

        bars = load_bars(spec, start, end, offline=offline or None)
        multi = isinstance(bars.columns, pd.MultiIndex)
        shown = markets.fields(bars, "close") if multi else bars
        label = "close" if multi else "bars"
        console.print(frame_table(shown.head(rows), f"{spec}: first {rows} {label}"))
        console.print(frame_table(shown.tail(rows), f"{spec}: last {rows} {label}"))
        close = markets.fields(bars, "close")
        logret = np.log(close / close.shift(1))
        from backtest.metrics import infer_periods_per_year

        per_bar = logret.std(ddof=1)
        summary = pd.DataFrame({
            "first_close": close.iloc[0], "last_close": close.iloc[-1],
            "total_return": close.iloc[-1] / close.iloc[0] - 1.0,
            _vol_label(bars.index): per_bar,
            "ann_vol": per_bar * np.sqrt(infer_periods_per_year(bars.index)),
        })
        summary.index.name = "asset"
        console.print(frame_table(summary, f"{len(bars)} rows, {bars.index[0]} .. {bars.index[-1]}"))


def _vol_label(index) -> str:
    """``daily_vol`` for daily bars, else the volatility of one bar named by the bar length (``bar_vol_1h``)."""
    import pandas as pd

    step = pd.Series(index).diff().median()
    if pd.isna(step) or step == pd.Timedelta(days=1):
        return "daily_vol"
    try:
        name = pd.tseries.frequencies.to_offset(step).freqstr
    except ValueError:
        name = str(step).replace(" ", "")
    return f"bar_vol_{name if name[:1].isdigit() else '1' + name}"


# --------------------------------------------------------------- the command groups, one module each
from app.backtest_cli import backtest_cmd, sweep_cmd
from app.evaluate_cli import evaluate_cmd, lookahead_cmd
from app.paper.cli import paper_app
from app.train import train_app

app.command("backtest")(backtest_cmd)
app.command("sweep")(sweep_cmd)
app.command("evaluate")(evaluate_cmd)
app.command("lookahead")(lookahead_cmd)
app.add_typer(paper_app, name="paper")
app.add_typer(train_app, name="train")


@app.command("dashboard")
def dashboard(
    host: str = typer.Option("127.0.0.1", help="Address to bind; the default keeps it on this machine."),
    port: int = typer.Option(8501, help="Port to serve on."),
    headless: bool = typer.Option(True, help="Do not try to open a browser window."),
) -> None:
    """Open the Streamlit dashboard (backtest, sweep, training monitor, paper trading)."""
    with user_errors():
        from app.dashboard.launch import launch

        code = launch(host, port, headless=headless)
    raise typer.Exit(code)


def main() -> None:
    """Console-script entry point (``drex``)."""
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
