"""Hostile-input probes (issue #9): every bad input and environment fault gives ONE line ``error: ...`` on
stderr, exit code 2, no traceback, and nothing written half.

Each row of ``PROBES`` is a ``drex`` command line (run in-process through the real CLI with typer's
``CliRunner``) plus the state it needs: bad data files, specs, parameters, grids, dates, costs, output paths,
paper configs, run names, corrupted and read-only ledgers, read-only folders (``chmod``, or ``chattr +i``
when the tests run as root, whom ``chmod`` does not stop) and a full disk (a small ``RLIMIT_FSIZE`` with
``SIGXFSZ`` ignored, so a write past the limit fails with ``EFBIG`` exactly as on a full disk). For every row:

* exit code 2, stderr exactly one non-empty line, starting with ``error:`` and containing the row's fragments;
* no traceback, and the exception the runner saw is the ``SystemExit`` of that exit;
* nothing written half: no file under the probe's working folder or ``DREX_HOME`` is new or changed, except
  the paper ledger's own SQLite files (transactional; rows with ``after`` reopen the ledger and check it).

Paths in the rows: ``{in}`` the shared inputs (bad files, configs, ledgers), ``{ws}`` the probe's working
folder (the current directory), ``{home}`` its ``DREX_HOME``.
"""
from __future__ import annotations

import contextlib
import os
import random
import resource
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from typer.testing import CliRunner

from app.cli import app
from tests.app.test_paper_support import make_bars, write_bars

runner = CliRunner()
ROOT = Path(__file__).resolve().parents[2]
LEDGER_FILES = (".sqlite", ".sqlite-wal", ".sqlite-shm", ".sqlite-journal", ".lock")


@dataclass(frozen=True)
class Probe:
    """One hostile command: ``args`` (with ``{in}``/``{ws}``/``{home}``), fragments expected in the error
    line, ``setup`` tokens (``ledger:KIND``, ``file:PATH``, ``dir:PATH``, ``readonly:PATH``), a file-size
    limit in bytes, and an ``after`` check."""

    id: str
    args: tuple[str, ...]
    expect: tuple[str, ...] = ()
    setup: tuple[str, ...] = ()
    fsize: int | None = None
    after: Callable[[Path, Path], None] | None = None


def P(id_: str, *args: str, expect: tuple[str, ...] | str = (), setup: tuple[str, ...] = (),
      fsize: int | None = None, after: Callable[[Path, Path], None] | None = None) -> Probe:
    return Probe(id_, tuple(args), (expect,) if isinstance(expect, str) else tuple(expect), setup, fsize, after)


# --------------------------------------------------------------------------------------------- inputs
GOOD_CSV = "timestamp,open,high,low,close,volume\n" + "".join(
    f"2020-01-{d:02d},{100 + d},{101 + d},{99 + d},{100.5 + d},1000\n" for d in range(1, 29))
BAD_FILES: dict[str, str | bytes] = {
    "empty.csv": "",
    "header_only.csv": "timestamp,open,high,low,close,volume\n",
    "no_time.csv": "open,high,low,close,volume\n1,2,0.5,1.5,10\n2,3,1,2,10\n3,4,2,3,10\n",
    "no_close.csv": "timestamp,open,high,low,volume\n2020-01-01,1,2,0.5,10\n2020-01-02,1,2,0.5,10\n",
    "no_volume.csv": "timestamp,open,high,low,close\n2020-01-01,1,2,0.5,1.5\n2020-01-02,1,2,0.5,1.5\n",
    "text_price.csv": GOOD_CSV.replace("105.5", "abc"),
    "negative.csv": GOOD_CSV.replace("105.5", "-105.5"),
    "zero.csv": GOOD_CSV.replace(",105.5,", ",0,"),
    "high_low.csv": GOOD_CSV.replace("2020-01-05,105,106,104", "2020-01-05,105,90,104"),
    "close_outside.csv": GOOD_CSV.replace("2020-01-05,105,106,104,105.5", "2020-01-05,105,106,104,200"),
    "nan.csv": GOOD_CSV.replace("105.5", "NaN"),
    "inf.csv": GOOD_CSV.replace("105.5", "inf"),
    "huge.csv": GOOD_CSV.replace("105.5", "1e400"),
    "dup_time.csv": GOOD_CSV.replace("2020-01-06", "2020-01-05"),
    "unsorted.csv": GOOD_CSV.splitlines(keepends=True)[0] + "".join(reversed(GOOD_CSV.splitlines(keepends=True)[1:])),
    "one_row.csv": "".join(GOOD_CSV.splitlines(keepends=True)[:2]),
    "garbage.csv": bytes(random.Random(3).randrange(256) for _ in range(3000)),
    "latin1.csv": "timestamp,open,high,low,close,volume,note\n2020-01-01,1,2,0.5,1.5,10,caf\xe9\n".encode("latin-1"),
    "mixed_tz.csv": ("timestamp,open,high,low,close,volume\n2020-01-01T00:00:00+00:00,1,2,0.5,1.5,1\n"
                     "2020-01-02T00:00:00,1,2,0.5,1.5,1\n2020-01-03T00:00:00,1,2,0.5,1.5,1\n"),
    "dayfirst.csv": "".join(f"0{d}.0{m}.2017 00:00:00.000,1,2,0.5,1.5,1\n" for m in (1, 2) for d in (1, 2, 3))
    .join(["Gmt time,Open,High,Low,Close,Volume\n", ""]),
    "close_Close.csv": "timestamp,open,high,low,close,Close,volume\n" + "".join(
        f"2020-01-0{d},1,2,0.5,1.5,1.6,1\n" for d in range(1, 6)),
    "date_Date.csv": "date,Date,open,high,low,close,volume\n" + "".join(
        f"2020-01-0{d},2020-01-0{d},1,2,0.5,1.5,1\n" for d in range(1, 6)),
    "semicolon.csv": GOOD_CSV.replace(",", ";"),
    "same_time.csv": "timestamp,open,high,low,close,volume\n" + "2020-01-01,1,2,0.5,1.5,1\n" * 5,
    "bad_time.csv": GOOD_CSV.replace("2020-01-07", "not-a-date"),
    "epoch_huge.csv": "timestamp,open,high,low,close,volume\n1e30,1,2,0.5,1.5,1\n2e30,1,2,0.5,1.5,1\n",
    "whitespace.csv": "   \n\n  \n",
    "bad.parquet": b"PAR1 this is not parquet PAR1",
    "bars.xlsx": b"PK\x03\x04 not really",
    "tabs.tsv": "a\tb\n1\t2\n",
    "adj_missing.csv": GOOD_CSV,
    "good.csv": GOOD_CSV,
}

CONFIG = """strategy: trend
params: {{fast: 3, slow: 8}}
data: file:{bars}
interval: 1h
initial_cash: 10000
fees: 0.001
mode: replay
"""
BOMB = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, "
    f"*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}]\n" for i in range(8)
) + "strategy: trend\ndata: sample:SP500\nparams: {x: *i}\n"


def _config_variants(bars: str) -> dict[str, str | bytes]:
    base = CONFIG.format(bars=bars)

    def sub(old: str, new: str) -> str:
        assert old in base, old
        return base.replace(old, new)

    return {
        "empty.yaml": "", "list.yaml": "- strategy\n- trend\n", "scalar.yaml": "trend\n",
        "invalid.yaml": "strategy: [trend\n", "tabs.yaml": "strategy:\ttrend\n\tdata: x\n",
        "bomb.yaml": BOMB, "recursive.yaml": "a: &a [*a]\nstrategy: trend\n",
        "deep.yaml": "x: " + "[" * 50_000 + "]" * 50_000 + "\n",
        "big.yaml": "strategy: trend\n# " + "x" * (1 << 21) + "\n",
        "latin1.yaml": "strategy: caf\xe9\n".encode("latin-1"),
        "unknown_key.yaml": base + "colour: red\n",
        "no_strategy.yaml": base.replace("strategy: trend\n", ""),
        "no_data.yaml": sub(f"data: file:{bars}\n", ""),
        "strategy_nope.yaml": sub("strategy: trend", "strategy: nope"),
        "data_nope.yaml": sub(f"file:{bars}", "sample:NOPE"),
        "data_scheme.yaml": sub(f"file:{bars}", "nope:XYZ"),
        "data_missing.yaml": sub(f"file:{bars}", "file:/nonexistent/bars.csv"),
        "fast_slow.yaml": sub("{fast: 3, slow: 8}", "{fast: 200, slow: 50}"),
        "fast_text.yaml": sub("{fast: 3, slow: 8}", "{fast: abc}"),
        "param_unknown.yaml": sub("{fast: 3, slow: 8}", "{colour: red}"),
        "params_list.yaml": sub("{fast: 3, slow: 8}", "[3, 8]"),
        "cash_inf.yaml": sub("initial_cash: 10000", "initial_cash: .inf"),
        "cash_nan.yaml": sub("initial_cash: 10000", "initial_cash: .nan"),
        "cash_zero.yaml": sub("initial_cash: 10000", "initial_cash: 0"),
        "cash_negative.yaml": sub("initial_cash: 10000", "initial_cash: -5"),
        "cash_text.yaml": sub("initial_cash: 10000", "initial_cash: lots"),
        "fees_negative.yaml": sub("fees: 0.001", "fees: -0.1"),
        "fees_one.yaml": sub("fees: 0.001", "fees: 1.5"),
        "fees_nan.yaml": sub("fees: 0.001", "fees: .nan"),
        "slippage_big.yaml": base + "slippage: 2\n",
        "interval_bad.yaml": sub("interval: 1h", "interval: 1x"),
        "interval_zero.yaml": sub("interval: 1h", "interval: 0d"),
        "mode_bad.yaml": sub("mode: replay", "mode: turbo"),
        "end_before_start.yaml": base + "start: 2024-02-01\nend: 2024-01-01\n",
        "history_after_start.yaml": base + "history_start: 2024-03-01\nstart: 2024-01-02\n",
        "start_text.yaml": base + "start: yesterday\n",
        "start_after_data.yaml": base + "start: 2030-01-01\n",
        "live_sample.yaml": sub("mode: replay", "mode: live"),
        "plugin_missing.yaml": base + "plugins: [no_such_module_xyz]\n",
        "lease_zero.yaml": base + "lease_seconds: 0\n",
        "ledger_bogus.yaml": base + "ledger: 'bogus://x'\n",
        "good.yaml": base,
    }


# --------------------------------------------------------------------------------------------- the table
def _data_probes() -> list[Probe]:
    specs = [
        ("nope:XYZ", "unknown data source 'nope'"), ("XYZ", "malformed data spec"), (":", "unknown data source"),
        ("sample:", "empty sample: spec"), ("sample:NOPE", "unknown sample 'NOPE'"),
        ("sample:SP500,SP20", "SP20 is itself a 20-stock panel"), ("sample:SP500,SP500", "repeats a name"),
        ("sample:SP500?x=1", "takes no options"), ("sample:,,", "needs a name"), ("yf:", "empty yf: spec"),
        ("synth:nope", "unknown synthetic generator"), ("synth:regimes?seed=-1", "seed must be an integer >= 0"),
        ("synth:regimes?seed=x", "must be integers"), ("synth:regimes?n=1", "n_bars must be an int >= 2"),
        ("synth:regimes?n=abc", "must be integers"), ("synth:regimes?n=3000000000&freq=1s", "more than 10,000,000"),
        ("synth:regimes?bogus=1", "options are seed, n, start, freq"), ("synth:regimes?freq=1x", "1x"),
        ("synth:regimes?start=nope", "nope"), ("synth:pairs?assets=1", "n_assets must be an int >= 2"),
        ("synth:pairs?hedge=a", "wrong type"), ("synth:pairs?n=99999999999", "more than 10,000,000"),
        ("synth:pairs?seed=-2", "seed must be an integer >= 0"), ("synth:pairs?half_life=-1", "half_life"),
        ("synth:pairs?bogus=1", "synth:pairs options are"), ("sample:SP500?a=1&&b", "malformed options"),
        ("file:", "empty file: spec"), ("file:{ws}/missing.csv", "no such file"), ("file:{in}", "no such file"),
        ("file:" + "a" * 5000 + ".csv", "path too long"), ("file:{in}/bars.xlsx", "unsupported file type"),
        ("file:{in}/good.csv?tz=Mars/Olympus", "Mars/Olympus"), ("file:{in}/good.csv?dayfirst=maybe", "must be true or false"),
        ("file:{in}/good.csv?repair=maybe", "repair='maybe'"), ("file:{in}/good.csv?volume=5", "volume='5'"),
        ("file:{in}/good.csv?bogus=1", "file: options are"), ("file:{in}/good.csv?adjusted=true", "Adj Close"),
        ("file:{in}/good.csv?format=%Y", "%Y"), ("ccxt:nope", "ccxt"), ("yf:ZZZZ", "offline and no cached bars"),
        ("yf:CORRUPT", "cache file"),
    ]
    out = [P(f"spec-{i:02d}", "data", "show", spec, expect=frag, setup=("cache:CORRUPT",) if "CORRUPT" in spec else ())
           for i, (spec, frag) in enumerate(specs)]
    files = {
        "empty.csv": "cannot read", "header_only.csv": "", "no_time.csv": "no time column",
        "no_close.csv": "no 'close' column", "no_volume.csv": "?volume=0", "text_price.csv": "non-number",
        "negative.csv": "rule", "zero.csv": "rule", "high_low.csv": "high", "close_outside.csv": "rule",
        "nan.csv": "rule", "inf.csv": "rule", "huge.csv": "rule", "dup_time.csv": "duplicate",
        "unsorted.csv": "unsorted", "one_row.csv": "", "garbage.csv": "", "latin1.csv": "",
        "mixed_tz.csv": "", "dayfirst.csv": "dayfirst", "close_Close.csv": "both name 'close'",
        "date_Date.csv": "both name 'date'", "semicolon.csv": "", "same_time.csv": "", "bad_time.csv": "not-a-date",
        "epoch_huge.csv": "", "whitespace.csv": "", "bad.parquet": "cannot read", "tabs.tsv": "",
    }
    for cmd in (("data", "show"), ("backtest",)):
        tail = ("-s", "trend", "--no-report") if cmd == ("backtest",) else ()
        out += [P(f"file-{cmd[0]}-{name}", *cmd, f"file:{{in}}/{name}", *tail, expect=frag or ())
                for name, frag in files.items()]
    return out


def _param_probes() -> list[Probe]:
    cases = [
        ("nope", (), "unknown decision-maker 'nope'"), ("", (), "unknown decision-maker"),
        ("trend", ("fast=ten",), "fast='ten' is not an integer"), ("trend", ("fast=-1",), "parameter fast must be"),
        ("trend", ("fast=0",), "parameter fast must be"), ("trend", ("fast=1.5",), "fast"),
        ("trend", ("fast=nan",), "fast"), ("trend", ("fast=inf",), "fast"),
        ("trend", ("fast=1e99",), "must be smaller than slow"), ("trend", ("fast=200",), "must be smaller than slow"),
        ("trend", ("colour=red",), "no parameter 'colour'"), ("trend", ("fast",), "is not name=value"),
        ("trend", ("=5",), "is not name=value"), ("trend", ("fast=5", "fast=6"), "given twice"),
        ("trend", ("ma=xyz",), "must be one of 'sma', 'ema'"), ("trend", ("mode=sideways",), "mode"),
        ("trend", ("fast=[bold]x",), "fast='[bold]x'"), ("trend", ("fast=:smile:",), "fast=':smile:'"),
        ("trend", ("fast=a:b:c",), "fast='a:b:c'"), ("trend", ("signal=momentum", "lookback=0"), "lookback"),
        ("reversal", ("rsi_window=0",), "rsi_window"), ("reversal", ("lower=0",), "lower"),
        ("reversal", ("lower=80", "upper=20"), "lower"), ("reversal", ("method=macd",), "method"),
        ("reversal", ("entry_z=0",), "entry_z"), ("reversal", ("upper=101",), "upper"),
        ("breakout", ("entry_window=0",), "entry_window"), ("breakout", ("atr_mult=-1",), "atr_mult"),
        ("positioning", ("target_vol=0",), "target_vol"), ("positioning", ("vol_window=1",), "vol_window"),
        ("positioning", ("max_leverage=0",), "max_leverage"), ("buy_and_hold", ("weight=11",), "weight"),
        ("buy_and_hold", ("weight=nan",), "weight"), ("buy_and_hold", ("weight=true",), "weight"),
    ]
    return [P(f"param-{i:02d}", "backtest", "sample:SP500", "-s", s, *[x for p in ps for x in ("-p", p)],
              "--no-report", expect=frag) for i, (s, ps, frag) in enumerate(cases)]


def _grid_probes() -> list[Probe]:
    cases = [
        ("fast=5:50", "start:stop:step"), ("fast=5:50:0", "step > 0"), ("fast=50:5:5", "stop >= start"),
        ("fast=a:b:c", "fast='a:b:c'"), ("fast=1:2:1,fast=3|4", "given twice"), ("nope=1|2", "no parameter 'nope'"),
        ("", "empty grid"), ("fast=", "is not name=values"), ("fast=|", "empty value"),
        ("ma=a:b:c", "not numeric"), ("fast=1:1000000000:1", "at most 100,000"),
        ("fast=1:3163:1,slow=1:3163:1", "10,004,569 combinations"), ("fast=60:70:5,slow=20:50:10", "no valid combination"),
        ("fast=5:50:nan", "must be integers"), ("fast=inf:5:1", "must be integers"), ("fast=-5:5:1", "parameter fast must be"),
        ("ma=sma|xxx", "must be one of"), ("mode=long_only|bad", "mode"), ("fast=[red]1|2", "fast='[red]1'"),
        ("fast=20:50:5,slow=20", "no valid combination"), ("=1|2", "is not name=values"), ("fast 5|10", "not name=values"),
    ]
    out = [P(f"grid-{i:02d}", "sweep", "sample:SP500", "-s", "trend", "--grid", g, "--end", "2001-12-31",
             expect=frag) for i, (g, frag) in enumerate(cases)]
    out += [
        P("grid-metric", "sweep", "sample:SP500", "-s", "trend", "--grid", "fast=5|10", "--metric", "nope",
          "--end", "2001-12-31", expect="unknown metric 'nope'"),
        P("grid-top0", "sweep", "sample:SP500", "-s", "trend", "--grid", "fast=5|10", "--top", "0", expect="--top"),
        P("grid-max0", "sweep", "sample:SP500", "-s", "trend", "--grid", "fast=5|10", "--max-combinations", "0",
          expect="--max-combinations"),
        P("grid-max", "sweep", "sample:SP500", "-s", "trend", "--grid", "fast=5:50:5", "--max-combinations", "5",
          expect="more than --max-combinations 5"),
        P("grid-strategy", "sweep", "sample:SP500", "-s", "nope", "--grid", "fast=5|10", expect="unknown decision-maker"),
        P("grid-reversal", "sweep", "sample:SP500", "-s", "reversal", "--grid", "lower=80:90:5,upper=20:30:5",
          "--end", "2001-12-31", expect="no valid combination"),
    ]
    return out


def _date_probes() -> list[Probe]:
    dates = [
        ("-1", "outside 1678..2261"), ("0", "is not a date"), ("99999", "is not a date"),
        ("2018-13-45", "2018-13-45"), ("nan", "is not a date"), ("yesterday", "is not a date"),
        ("2020-02-30", "2020-02-30"), ("1500-01-01", "outside 1678..2261"), ("2300-01-01", "outside 1678..2261"),
        ("   ", "is not a date"), ("2030-01-01", "only 0 bar(s)"),
    ]
    out = []
    for cmd in (("data", "show", "sample:SP500"), ("backtest", "sample:SP500", "-s", "trend", "--no-report"),
                ("sweep", "sample:SP500", "-s", "trend", "--grid", "fast=5|10")):
        out += [P(f"date-{cmd[0]}-start{i:02d}", *cmd, "--start", d, expect=frag) for i, (d, frag) in enumerate(dates)]
    out += [
        P("date-order", "data", "show", "sample:SP500", "--start", "2018-01-01", "--end", "2017-01-01",
          expect="is after end"),
        P("date-end-early", "data", "show", "sample:SP500", "--end", "1990-01-01", expect="only 0 bar(s)"),
        P("date-one-bar", "backtest", "sample:SP500", "-s", "trend", "--start", "2018-12-31", "--end", "2018-12-31",
          "--no-report", expect="only 1 bar(s)"),
        P("date-end-text", "backtest", "sample:SP500", "-s", "trend", "--end", "soon", "--no-report",
          expect="end='soon'"),
    ]
    return out


def _cost_probes() -> list[Probe]:
    bt = ("backtest", "sample:SP500", "-s", "trend", "--no-report")
    sw = ("sweep", "sample:SP500", "-s", "trend", "--grid", "fast=5|10")
    values = {
        "--fees": (("-1", "--fees must be a fraction"), ("nan", "--fees must be a fraction"),
                   ("inf", "--fees must be a fraction"), ("1", "--fees must be a fraction"),
                   ("1.5", "--fees must be a fraction"), ("abc", "--fees")),
        "--slippage": (("-0.1", "--slippage must be a fraction"), ("nan", "--slippage"), ("2", "--slippage")),
        "--init-cash": (("0", "--init-cash must be a finite number > 0"), ("-1", "--init-cash must be"),
                        ("nan", "--init-cash must be"), ("inf", "--init-cash must be"), ("x", "--init-cash")),
        "--periods-per-year": (("0", "--periods-per-year must be a finite number > 0"),
                               ("-252", "--periods-per-year must be"), ("nan", "--periods-per-year must be"),
                               ("inf", "--periods-per-year must be")),
        "--execution": (("now", "--execution must be one of"), ("", "--execution must be one of")),
    }
    out = []
    for cmd in (bt, sw):
        for opt, cases in values.items():
            out += [P(f"cost-{cmd[0]}{opt}{i}", *cmd, opt, v, expect=frag) for i, (v, frag) in enumerate(cases)]
    out += [P(f"cost-leverage{i}", *bt, "--leverage", v, expect="--leverage must be")
            for i, v in enumerate(("0", "-1", "nan", "inf"))]
    out += [P("cost-rows0", "data", "show", "sample:SP500", "--rows", "0", expect="--rows"),
            P("cost-rows-x", "data", "show", "sample:SP500", "--rows", "x", expect="--rows")]
    return out


def _output_probes() -> list[Probe]:
    bt = ("backtest", "sample:SP500", "-s", "trend", "--start", "2018-01-01")
    sw = ("sweep", "sample:SP500", "-s", "trend", "--grid", "fast=5|10", "--start", "2018-01-01")
    long = "b" * 300
    return [
        P("out-report-file", *bt, "--report", "{ws}/afile", setup=("file:afile",), expect="is a file"),
        P("out-report-under-file", *bt, "--report", "{ws}/afile/sub", setup=("file:afile",),
          expect="runs through the file"),
        P("out-report-long", *bt, "--report", f"{{ws}}/{long}", expect="path too long"),
        P("out-report-readonly", *bt, "--report", "{ws}/ro/rep", setup=("dir:ro", "readonly:ro"),
          expect=("ro",)),
        P("out-default-readonly-cwd", *bt, setup=("readonly:.",), expect="reports"),
        P("out-report-fullfs", *bt, "--report", "{ws}/rep", fsize=64_000, expect="file too large"),
        P("out-sweep-txt", *sw, "--out", "{ws}/x.txt", expect="end the file name in .csv or .json"),
        P("out-sweep-noext", *sw, "--out", "{ws}/x", expect="end the file name in .csv or .json"),
        P("out-sweep-dir", *sw, "--out", "{ws}/adir.csv", setup=("dir:adir.csv",), expect="is a folder"),
        P("out-sweep-under-file", *sw, "--out", "{ws}/afile/x.csv", setup=("file:afile",), expect="is a file"),
        P("out-sweep-long", *sw, "--out", f"{{ws}}/{long}.csv", expect="path too long"),
        P("out-sweep-readonly", *sw, "--out", "{ws}/ro/x.csv", setup=("dir:ro", "readonly:ro"), expect="ro"),
        P("out-sweep-default-readonly", *sw, setup=("readonly:.",), expect="reports"),
        P("out-sweep-fullfs", *sw, "--out", "{ws}/res.csv", fsize=300, expect="file too large"),
        P("out-sweep-report-file", *sw, "--report", "{ws}/afile", setup=("file:afile",), expect="is a file"),
        P("out-sweep-report-readonly", *sw, "--report", "{ws}/ro/rep", "--out", "{ws}/res.csv",
          setup=("dir:ro", "readonly:ro"), expect="ro"),
        P("out-sweep-report-fullfs", *sw, "--report", "{ws}/rep", "--out", "{ws}/o/res.csv", fsize=100_000,
          expect="file too large"),
        P("out-paper-report-file", "paper", "report", "demo", "--out", "{ws}/afile",
          setup=("ledger:good", "file:afile"), expect="afile"),
        P("out-paper-report-readonly", "paper", "report", "demo", "--out", "{ws}/ro",
          setup=("ledger:good", "dir:ro", "readonly:ro"), expect="ro"),
        P("out-paper-report-fullfs", "paper", "report", "demo", "--out", "{ws}/rep", setup=("ledger:good",),
          fsize=40_000, expect="file too large"),  # above SQLite's 32 kB -shm file, below plotly.js
        P("out-fetch-readonly-home", "data", "fetch", "yf:AAPL", "--offline", setup=("readonly:{home}",),
          expect="cache"),
        P("out-init-readonly-home", "paper", "init", "run1", "--config", "{in}/configs/good.yaml",
          setup=("readonly:{home}",), expect="paper"),
        P("out-list-readonly-home", "paper", "list", setup=("readonly:{home}",), expect="paper"),
        P("out-report-default-readonly-home", "paper", "report", "demo", setup=("ledger:good", "readonly:{home}"),
          expect="reports"),
    ]


def _usage_probes() -> list[Probe]:
    return [
        P("usage-unknown-option", "backtest", "sample:SP500", "-s", "trend", "--bogus", expect="No such option: --bogus"),
        P("usage-missing-arg", "backtest", "-s", "trend", expect="Missing argument"),
        P("usage-missing-strategy", "backtest", "sample:SP500", expect="Missing option '--strategy'"),
        P("usage-unknown-command", "frobnicate", expect="No such command 'frobnicate'"),
        P("usage-data-unknown", "data", "explode", expect="No such command 'explode'"),
        P("usage-paper-unknown", "paper", "explode", expect="No such command 'explode'"),
        P("usage-top-text", "sweep", "sample:SP500", "-s", "trend", "--grid", "fast=5|10", "--top", "many",
          expect="--top"),
        P("usage-extra-arg", "backtest", "sample:SP500", "extra", "-s", "trend", expect="unexpected extra argument"),
        P("usage-tick-no-name", "paper", "tick", expect="Missing argument"),
        P("usage-init-no-config", "paper", "init", "x", expect="Missing option '--config'"),
        P("usage-grid-missing", "sweep", "sample:SP500", "-s", "trend", expect="Missing option '--grid'"),
        P("usage-port-text", "dashboard", "--port", "http", expect="--port"),
        P("usage-port-zero", "dashboard", "--port", "0", expect="port must be an integer in 1..65535"),
        P("usage-port-big", "dashboard", "--port", "70000", expect="port must be an integer in 1..65535"),
        P("usage-host-empty", "dashboard", "--host", " ", expect="host must not be empty"),
        P("usage-max-ticks", "paper", "run", "demo", "--max-ticks", "0", setup=("ledger:good",),
          expect="--max-ticks must be >= 1"),
        P("usage-interval", "paper", "run", "demo", "--interval", "1x", setup=("ledger:good",),
          expect="--interval '1x'"),
        P("usage-offset", "paper", "run", "demo", "--offset", "-5s", setup=("ledger:good",), expect="--offset"),
        P("usage-run-unknown", "paper", "run", "nope", setup=("ledger:good",), expect="no paper run named 'nope'"),
        P("usage-tick-now", "paper", "tick", "demo", "--now", "yesterday", setup=("ledger:good",),
          expect="bad time 'yesterday'"),
        P("usage-tick-unknown", "paper", "tick", "nope", setup=("ledger:good",), expect="no paper run named 'nope'"),
        P("usage-status-unknown", "paper", "status", "nope", setup=("ledger:good",), expect="no paper run named"),
    ]


CONFIG_ERRORS = {
    "missing.yaml": "not found", "empty.yaml": "expected a mapping", "list.yaml": "expected a mapping",
    "scalar.yaml": "expected a mapping", "invalid.yaml": "not valid YAML", "tabs.yaml": "not valid YAML",
    "bomb.yaml": "alias bomb", "recursive.yaml": "recursive YAML alias", "deep.yaml": "",
    "big.yaml": "too large for a paper config", "latin1.yaml": "not UTF-8", "unknown_key.yaml": "field 'colour'",
    "no_strategy.yaml": "field 'strategy'", "no_data.yaml": "field 'data'",
    "strategy_nope.yaml": "unknown decision-maker 'nope'", "data_nope.yaml": "unknown sample 'NOPE'",
    "data_scheme.yaml": "unknown data source 'nope'", "data_missing.yaml": "no such file",
    "fast_slow.yaml": "must be smaller than slow", "fast_text.yaml": "fast='abc'",
    "param_unknown.yaml": "no parameter 'colour'", "params_list.yaml": "field 'params'",
    "cash_inf.yaml": "field 'initial_cash'", "cash_nan.yaml": "field 'initial_cash'",
    "cash_zero.yaml": "field 'initial_cash'", "cash_negative.yaml": "field 'initial_cash'",
    "cash_text.yaml": "field 'initial_cash'", "fees_negative.yaml": "field 'fees'", "fees_one.yaml": "field 'fees'",
    "fees_nan.yaml": "field 'fees'", "slippage_big.yaml": "field 'slippage'", "interval_bad.yaml": "bad interval",
    "interval_zero.yaml": "bad interval", "mode_bad.yaml": "field 'mode'", "end_before_start.yaml": "is after end",
    "history_after_start.yaml": "history_start", "start_text.yaml": "bad time 'yesterday'",
    "start_after_data.yaml": "before start", "live_sample.yaml": "live mode needs a network source",
    "plugin_missing.yaml": "no_such_module_xyz", "lease_zero.yaml": "field 'lease_seconds'",
    "ledger_bogus.yaml": "bad ledger URL",
}


def _paper_probes() -> list[Probe]:
    out = [P(f"config-{name}", "paper", "init", "run1", "--config", f"{{in}}/configs/{name}", expect=frag or ())
           for name, frag in CONFIG_ERRORS.items()]
    out.append(P("config-dir", "paper", "init", "run1", "--config", "{in}/configs", expect="not found"))
    names = {"": "bad run name ''", " ": "bad run name", "\t": "bad run name", "a/b": "bad run name",
             "a\\b": "bad run name", "bad\nname": "bad run name", "x" * 101: "bad run name", "-lead": "bad run name",
             ".hidden": "bad run name", "with space": "bad run name", "bell\x07": "bad run name",
             "emoji\U0001f171": "bad run name", "[bold]x": "bad run name '[bold]x'", "../up": "bad run name"}
    out += [P(f"name-{i:02d}", "paper", "init", "--config", "{in}/configs/good.yaml", "--", n, expect=frag)
            for i, (n, frag) in enumerate(names.items())]
    out += [P("name-exists", "paper", "init", "demo", "--config", "{in}/configs/good.yaml", setup=("ledger:good",),
              expect="already exists")]
    out += [P(f"name-report-{i}", "paper", "report", n, expect="bad run name") for i, n in enumerate(("a/b", ".."))]
    return out


def _intact(ws: Path, home: Path) -> None:
    """The ledger a failed tick touched still opens, holds the run's 5 processed bars, and ticks again."""
    res = runner.invoke(app, ["paper", "status", "demo"])
    assert res.exit_code == 0 and "bars processed" in res.stdout and " 5 " in res.stdout, res.output
    res = runner.invoke(app, ["paper", "tick", "demo"])
    assert res.exit_code == 0 and "processed 1 bar(s)" in res.stdout, res.output


CORRUPTIONS = ("garbage", "truncated_half", "header_zeroed", "pages_scrambled", "text", "truncated_100")


def _ledger_probes() -> list[Probe]:
    cmds = {"list": ("paper", "list"), "status": ("paper", "status", "demo"), "tick": ("paper", "tick", "demo"),
            "report": ("paper", "report", "demo", "--out", "{ws}/rep"),
            "init": ("paper", "init", "other", "--config", "{in}/configs/good.yaml")}
    out = [P(f"ledger-{kind}-{c}", *args, setup=(f"ledger:{kind}",), expect="is corrupt")
           for kind in CORRUPTIONS for c, args in cmds.items()]
    out += [P(f"ledger-foreign-{c}", *args, setup=("ledger:foreign",), expect="not a DREX paper ledger")
            for c, args in cmds.items() if c != "list"]
    out += [P(f"ledger-newer-{c}", *args, setup=("ledger:newer",), expect="newer than this DREX supports")
            for c, args in cmds.items()]
    out += [P(f"ledger-readonly-{c}", *cmds[c], setup=("ledger:good", "readonly:{home}/paper"), expect="read-only")
            for c in ("tick", "init")]
    out.append(P("ledger-tick-fullfs", *cmds["tick"], setup=("ledger:good",), fsize=4_096, expect="ledger",
                 after=_intact))
    out.append(P("ledger-init-fullfs", *cmds["init"], fsize=2_048, expect="ledger"))
    urls = {"bogus://x": "bad ledger URL", "not a url": "bad ledger URL", "sqlite:////nonexistent/dir/x.sqlite":
            "ledger folder /nonexistent/dir does not exist", "postgresql+nodriver://u@h/db": "bad ledger URL",
            "sqlite:///{in}": "cannot open ledger", "mysql+mysqldb://u@h/db": "needs the database driver"}
    for i, (url, frag) in enumerate(urls.items()):
        out += [P(f"url-{i}-{c}", *args, "--ledger", url, expect=frag) for c, args in cmds.items()]
    return out


def _evaluate_probes() -> list[Probe]:
    ev = ("evaluate", "sample:SP500", "-s", "trend")
    cases = [("--init-cash", "0", "--init-cash must be"), ("--init-cash", "nan", "--init-cash must be"),
             ("--periods-per-year", "0", "--periods-per-year must be"), ("--periods-per-year", "inf",
                                                                          "--periods-per-year must be"),
             ("--leverage", "-1", "--leverage must be"), ("--fees", "nan", "--fees must be a fraction"),
             ("--slippage", "1", "--slippage must be a fraction"), ("--execution", "later", "--execution must be")]
    out = [P(f"evaluate{opt}-{v}", *ev, opt, v, expect=frag) for opt, v, frag in cases]
    out += [P("evaluate-strategy", "evaluate", "sample:SP500", "-s", "nope", expect="nope"),
            P("evaluate-spec", "evaluate", "sample:NOPE", "-s", "trend", expect="unknown sample 'NOPE'")]
    return out


PROBES: list[Probe] = [*_evaluate_probes(), *_data_probes(), *_param_probes(), *_grid_probes(), *_date_probes(), *_cost_probes(),
                       *_output_probes(), *_usage_probes(), *_paper_probes(), *_ledger_probes()]


# --------------------------------------------------------------------------------------------- fixtures
def _corrupt(good: bytes, kind: str) -> bytes:
    rnd = random.Random(kind)
    n = len(good)
    return {
        "garbage": bytes(rnd.randrange(256) for _ in range(n)),
        "truncated_half": good[: n // 2],
        "header_zeroed": b"\0" * 100 + good[100:],
        "pages_scrambled": good[:4096] + bytes(rnd.randrange(256) for _ in range(n - 4096)),
        "text": b"hello, this is not a database\n" * 50,
        "truncated_100": good[:100],
    }[kind]


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> Path:
    """Bad files, configs and ledgers (one set per test worker)."""
    from sqlalchemy import create_engine, text

    from app.paper.config import load_config
    from app.paper.engine import tick
    from app.paper.ledger import open_ledger

    root = tmp_path_factory.mktemp("probe_inputs")
    for name, content in BAD_FILES.items():
        (root / name).write_bytes(content.encode() if isinstance(content, str) else content)
    bars = write_bars(root / "bars.parquet", make_bars(30))
    (root / "configs").mkdir()
    for name, content in _config_variants(str(bars)).items():
        (root / "configs" / name).write_bytes(content.encode() if isinstance(content, str) else content)
    ledgers = root / "ledgers"
    ledgers.mkdir()
    with open_ledger(f"sqlite:///{ledgers / 'good.sqlite'}") as led:
        led.create_run("demo", load_config(root / "configs" / "good.yaml"))
        for _ in range(5):
            tick(led, "demo")
    with open_ledger(f"sqlite:///{ledgers / 'good.sqlite'}") as led, led.engine.connect() as conn:
        conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")  # fold the WAL into the file
    good = (ledgers / "good.sqlite").read_bytes()
    for kind in CORRUPTIONS:
        (ledgers / f"{kind}.sqlite").write_bytes(_corrupt(good, kind))
    engine = create_engine(f"sqlite:///{ledgers / 'foreign.sqlite'}")
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE runs (id INTEGER PRIMARY KEY, x TEXT)"))
    engine.dispose()
    shutil.copy(ledgers / "good.sqlite", ledgers / "newer.sqlite")
    engine = create_engine(f"sqlite:///{ledgers / 'newer.sqlite'}")
    with engine.begin() as conn:
        conn.execute(text("UPDATE schema_version SET version = 99"))
    engine.dispose()
    return root


@pytest.fixture(scope="module", autouse=True)
def _one_click_command():
    """Build the click command tree of ``drex`` once for the module (typer rebuilds it on every invoke: 2/3 of
    a probe's time); the commands are stateless, as in a real process that builds them once."""
    import typer.testing
    from typer.main import get_command

    built = get_command(app)
    original = typer.testing._get_command
    typer.testing._get_command = lambda target: built if target is app else original(target)
    yield
    typer.testing._get_command = original


@contextlib.contextmanager
def file_size_limit(limit: int | None) -> Iterator[None]:
    """Writes past ``limit`` bytes fail with EFBIG (as on a full disk) while inside; SIGXFSZ ignored."""
    if limit is None:
        yield
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    previous = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, previous)


def _chattr(flag: str, path: Path) -> bool:
    return subprocess.run(["chattr", flag, str(path)], capture_output=True, check=False).returncode == 0


@contextlib.contextmanager
def read_only(paths: list[Path]) -> Iterator[None]:
    """``paths`` read-only: chmod (files 0o444, folders 0o555) or, as root (whom chmod does not stop),
    ``chattr +i``; restored afterwards."""
    done: list[tuple[Path, int | None]] = []
    try:
        for path in paths:
            if os.geteuid() == 0:
                if shutil.which("chattr") is None or not _chattr("+i", path):
                    pytest.skip("running as root without chattr +i: cannot make a path read-only")
                done.append((path, None))
            else:
                done.append((path, path.stat().st_mode))
                path.chmod(0o555 if path.is_dir() else 0o444)
        yield
    finally:
        for path, mode in reversed(done):
            if mode is None:
                _chattr("-i", path)
            else:
                path.chmod(mode)


def _files(*roots: Path) -> dict[Path, tuple[int, int]]:
    out = {}
    for root in roots:
        for path in root.rglob("*"):
            if path.is_file() and not path.name.endswith(LEDGER_FILES):
                st = path.stat()
                out[path] = (st.st_size, st.st_mtime_ns)
    return out


def _prepare(probe: Probe, ws: Path, home: Path, inputs: Path) -> list[Path]:
    """Apply the setup tokens; return the paths to make read-only."""
    ro = []
    for token in probe.setup:
        kind, _, arg = token.partition(":")
        arg = arg.replace("{home}", str(home))
        if kind == "ledger":
            (home / "paper").mkdir(parents=True, exist_ok=True)
            shutil.copy(inputs / "ledgers" / f"{arg}.sqlite", home / "paper" / "paper.sqlite")
        elif kind == "file":
            (ws / arg).write_text("not a folder\n")
        elif kind == "dir":
            (ws / arg).mkdir(parents=True)
        elif kind == "cache":
            (home / "cache" / "yf").mkdir(parents=True, exist_ok=True)
            (home / "cache" / "yf" / f"{arg}_1d.parquet").write_bytes(b"PAR1 corrupt PAR1")
        elif kind == "readonly":
            ro.append(Path(arg) if Path(arg).is_absolute() else ws / arg)
    return ro


# --------------------------------------------------------------------------------------------- the tests
def test_probe_table_covers_the_issue():
    """Hundreds of rows, unique ids (the README's reliability section quotes these counts)."""
    ids = [p.id for p in PROBES]
    assert len(ids) == len(set(ids))
    assert len(PROBES) >= 300, len(PROBES)


@pytest.mark.parametrize("probe", PROBES, ids=[p.id for p in PROBES])
def test_probe(probe: Probe, inputs: Path, tmp_path: Path, monkeypatch, _isolated_drex_home: Path):
    ws, home = tmp_path / "ws", _isolated_drex_home
    ws.mkdir()
    monkeypatch.chdir(ws)
    monkeypatch.setenv("DREX_OFFLINE", "1")  # never the network
    monkeypatch.delenv("DREX_PAPER_LEDGER", raising=False)
    ro = _prepare(probe, ws, home, inputs)
    args = [a.replace("{in}", str(inputs)).replace("{ws}", str(ws)).replace("{home}", str(home)) for a in probe.args]
    before = _files(ws, home)
    with read_only(ro), file_size_limit(probe.fsize):
        result = runner.invoke(app, args)
    assert result.exit_code == 2, (result.exit_code, result.output, result.exception)
    assert isinstance(result.exception, SystemExit), result.exception
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.output
    for fragment in probe.expect:
        frag = fragment.replace("{in}", str(inputs)).replace("{ws}", str(ws))
        assert frag in lines[0], (frag, lines[0])
    after = _files(ws, home)
    changed = sorted(str(p) for p in set(after) | set(before) if after.get(p) != before.get(p))
    assert not changed, f"files written or changed by a failing command: {changed}"
    if probe.after is not None:
        probe.after(ws, home)


def test_full_disk_in_a_real_process(tmp_path):
    """`drex backtest --report` under a 64 kB file-size limit in its own process: one line, exit 2, and no
    report file at all (staged files are removed)."""
    def limit() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (64_000, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))

    env = {**os.environ, "DREX_HOME": str(tmp_path / "home")}
    res = subprocess.run([sys.executable, "-m", "app", "backtest", "sample:SP500", "-s", "trend", "--start",
                          "2017-01-01", "--report", str(tmp_path / "rep")], cwd=ROOT, env=env, preexec_fn=limit,
                         capture_output=True, text=True, timeout=120, check=False)
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert res.returncode == 2 and len(lines) == 1 and lines[0].startswith("error: file too large"), res.stderr
    assert not (tmp_path / "rep").exists() and not list(tmp_path.glob("*.js"))


def test_read_commands_work_on_a_read_only_ledger(inputs: Path, tmp_path: Path, monkeypatch,
                                                   _isolated_drex_home: Path):
    """list, status and report only read: a read-only ledger file and folder do not stop them."""
    paper = _isolated_drex_home / "paper"
    paper.mkdir()
    shutil.copy(inputs / "ledgers" / "good.sqlite", paper / "paper.sqlite")
    monkeypatch.chdir(tmp_path)
    with read_only([paper / "paper.sqlite", paper]):
        for args in (["paper", "list"], ["paper", "status", "demo"],
                     ["paper", "report", "demo", "--out", str(tmp_path / "rep")]):
            res = runner.invoke(app, args)
            assert res.exit_code == 0, (args, res.output)
    assert (tmp_path / "rep" / "paper-demo" / "summary.json").is_file()
