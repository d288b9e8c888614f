"""Measurements behind the default no-trade band of ``backtest.accounting`` (``DEFAULT_BAND``).

    .venv/bin/python benchmarks/accounting_band.py [--out PATH]

For each case (bundled data, a rule-based strategy with its defaults, fees 10 bps, next-open execution, initial
cash 10,000: the CLI's defaults) and each band (relative to the target weight: an asset's order is skipped
while ``|target - drifted| < band |target|``), runs ``backtest.run`` and reports the number of orders, the
annual turnover, CAGR, Sharpe, volatility, max drawdown, mean gross exposure and the tracking error against
the same strategy without a band (annualized std of the difference of daily returns). Writes
``benchmarks/results/accounting_band.md``.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import backtest
import markets
from backtest.strategies import STRATEGIES

CASES = [("sample:SP20", "positioning"), ("sample:SP20", "trend"), ("sample:SP20", "buy_and_hold"),
         ("sample:SP500", "positioning"), ("sample:SP500", "trend")]
BANDS = (0.0, 0.02, 0.05, 0.1, 0.2, 0.5)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=str(ROOT / "benchmarks/results/accounting_band.md"))
    args = ap.parse_args()
    rows = []
    for spec, strategy in CASES:
        bars = markets.load(spec)
        weights = STRATEGIES[strategy](bars)
        base = None
        for band in BANDS:
            res = backtest.run(bars, weights, fees=0.001, init_cash=10_000.0, band=band)
            r = res.returns.to_numpy()
            base = r if base is None else base
            m = res.metrics
            rows.append({"data": spec, "strategy": strategy, "band": band, "orders": int(m["n_trades"]),
                         "turnover/yr": m["turnover_annual"], "CAGR": m["cagr"], "Sharpe": m["sharpe"],
                         "vol": m["ann_volatility"], "max DD": m["max_drawdown"], "gross": m["gross_exposure"],
                         "TE vs band 0": float(np.std(r - base, ddof=1) * np.sqrt(res.periods_per_year))})
    table = pd.DataFrame(rows)
    fmt = {"band": "{:g}", "orders": "{:,}", "turnover/yr": "{:.2f}", "CAGR": "{:.2%}", "Sharpe": "{:.3f}",
           "vol": "{:.2%}", "max DD": "{:.1%}", "gross": "{:.3f}", "TE vs band 0": "{:.2%}"}
    head = "| " + " | ".join(table.columns) + " |"
    lines = ["# No-trade band: orders and metrics by band", "",
             f"Command: `.venv/bin/python benchmarks/accounting_band.py` ({time.strftime('%Y-%m-%d %H:%M')})",
             ("Full bundled history, fees 10 bps, next-open execution, initial cash 10,000, strategy defaults; "
              "band relative to the target weight (`backtest.accounting`)."), "",
             head, "|" + "---|" * len(table.columns)]
    for row in table.itertuples(index=False):
        cells = [fmt.get(c, "{}").format(v) for c, v in zip(table.columns, row)]
        lines.append("| " + " | ".join(cells) + " |")
    text = "\n".join(lines) + "\n"
    print(text)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text)


if __name__ == "__main__":
    main()
