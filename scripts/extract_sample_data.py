"""One-off: write the bundled sample bars (markets/data/*.parquet + manifest.json) from pip-packaged datasets.

Run once by a maintainer (needs the ``extract`` extra: arch, pmdarima, skfolio; those are NOT runtime
dependencies):

    .venv/bin/python scripts/extract_sample_data.py

Every frame is converted to canonical bars (UTC midnight timestamps, float64 lower-case columns) and checked
with ``markets.validate``; rows failing validation would be dropped and named in the manifest (none are in
the current package versions). The 20-stock panel is stored close-only as a (T, 20) frame and expanded to
open=high=low=close, volume=0 at load time.
"""

from __future__ import annotations

import json
import sys
from importlib.metadata import version
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from markets.errors import DataError
from markets.validation import validate

OUT = ROOT / "markets" / "data"


def _canonical(raw: pd.DataFrame, symbol: str) -> pd.DataFrame:
    bars = raw.rename(columns=str.lower)[["open", "high", "low", "close", "volume"]].astype("float64")
    bars.index = pd.DatetimeIndex(pd.to_datetime(bars.index)).tz_localize("UTC").as_unit("ns")
    bars.index.name = "timestamp"
    bars.attrs = {"symbol": symbol}
    return bars


def _drop_invalid(bars: pd.DataFrame, symbol: str) -> tuple[pd.DataFrame, list[str]]:
    """Drop rows that fail validation one at a time, returning the dropped timestamps."""
    dropped = []
    while True:
        try:
            validate(bars, asset=symbol)
            return bars, dropped
        except DataError as err:
            if err.timestamp is None:
                raise
            dropped.append(f"{err.timestamp} ({err.rule})")
            bars = bars.drop(index=err.timestamp)


def main() -> None:
    from arch.data import nasdaq, sp500
    from pmdarima.datasets import load_msft
    from skfolio.datasets import load_sp500_dataset

    OUT.mkdir(parents=True, exist_ok=True)
    manifest: dict[str, dict] = {}

    def save(name: str, bars: pd.DataFrame, meta: dict) -> None:
        bars.attrs = {}
        bars.to_parquet(OUT / f"{name.lower()}.parquet", engine="pyarrow", compression="zstd")
        manifest[name] = {
            "rows": len(bars),
            "start": str(bars.index[0].date()),
            "end": str(bars.index[-1].date()),
            **meta,
        }

    for name, mod, label in (
        ("SP500", sp500, "S&P 500 index (^GSPC)"),
        ("NASDAQ", nasdaq, "NASDAQ Composite index (^IXIC)"),
    ):
        raw = mod.load()  # Open High Low Close Adj Close Volume; Adj Close == Close for an index
        bars, dropped = _drop_invalid(_canonical(raw, name), name)
        save(
            name,
            bars,
            {
                "kind": "ohlcv",
                "assets": [name],
                "description": f"{label} daily OHLCV",
                "package": f"arch {version('arch')}",
                "module": f"arch.data.{mod.__name__.split('.')[-1]}",
                "origin": "not stated by arch (Yahoo Finance export layout: Adj Close column)",
                "licence": "NCSA (arch package licence)",
                "dropped": dropped,
            },
        )

    raw = load_msft().set_index("Date")  # Date Open High Low Close Volume OpenInt(all 0)
    bars, dropped = _drop_invalid(_canonical(raw, "MSFT"), "MSFT")
    save(
        "MSFT",
        bars,
        {
            "kind": "ohlcv",
            "assets": ["MSFT"],
            "description": "Microsoft daily OHLCV",
            "package": f"pmdarima {version('pmdarima')}",
            "module": "pmdarima.datasets.load_msft",
            "origin": "Kaggle 'Price Volume Data for All US Stocks & ETFs' (Boris Marjanovic)",
            "licence": "MIT (pmdarima package licence)",
            "dropped": dropped,
        },
    )

    panel = load_sp500_dataset().astype("float64")  # (T, 20) adjusted close
    panel.index = pd.DatetimeIndex(panel.index).tz_localize("UTC").as_unit("ns")
    panel.index.name = "timestamp"
    panel.columns = pd.Index([str(c) for c in panel.columns], name="asset")
    if panel.isna().any().any() or (panel <= 0).any().any():
        raise SystemExit("skfolio panel has NaN or non-positive prices: decide how to clean them first")
    panel.to_parquet(OUT / "sp20.parquet", engine="pyarrow", compression="zstd")
    manifest["SP20"] = {
        "rows": len(panel),
        "start": str(panel.index[0].date()),
        "end": str(panel.index[-1].date()),
        "kind": "close-only",
        "assets": list(panel.columns),
        "description": "20 S&P 500 stocks, daily adjusted close (open=high=low=close, volume=0)",
        "package": f"skfolio {version('skfolio')}",
        "module": "skfolio.datasets.load_sp500_dataset",
        "origin": "not stated by skfolio (daily adjusted closes)",
        "licence": "BSD-3-Clause (skfolio package licence)",
        "dropped": [],
    }
    (OUT / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    for name, meta in manifest.items():
        print(
            f"{name:7s} {meta['rows']:6d} rows {meta['start']} .. {meta['end']}"
            f"  dropped {len(meta['dropped'])}"
        )


if __name__ == "__main__":
    main()
