"""``sample:NAME[,NAME...]``: real daily bars bundled in ``markets/data`` (no network, no extra packages).

Datasets (see ``markets/data/README.md`` for provenance and licences): ``SP500`` and ``NASDAQ`` index OHLCV
1999-2018 (``SPY``/``QQQ`` are aliases: index levels, not the ETFs), ``MSFT`` OHLCV 1986-2017, ``SP20`` the
20-stock adjusted-close panel 1990-2022 (close-only: open=high=low=close, volume=0) and its members by ticker.
"""

from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources

import pandas as pd

from markets.errors import DataError

__all__ = ["ALIASES", "load_sample", "samples"]

ALIASES = {"SPY": "SP500", "QQQ": "NASDAQ"}
"""Aliases for convenience: these are the index levels, not the ETFs (no fees, no dividends)."""


@lru_cache(maxsize=1)
def _manifest() -> dict[str, dict]:
    return json.loads(resources.files("markets").joinpath("data", "manifest.json").read_text())


@lru_cache(maxsize=8)
def _read(name: str) -> pd.DataFrame:
    with resources.as_file(resources.files("markets").joinpath("data", f"{name.lower()}.parquet")) as path:
        return pd.read_parquet(path)


def _members() -> list[str]:
    return list(_manifest()["SP20"]["assets"])


def samples() -> pd.DataFrame:
    """One row per name accepted by ``sample:`` (index ``name``): spec, kind, assets, start, end, rows,
    description, source, licence."""
    manifest = _manifest()
    rows = []
    for name, meta in manifest.items():
        rows.append(
            {
                "name": name,
                "spec": f"sample:{name}",
                "kind": meta["kind"],
                "assets": len(meta["assets"]),
                "start": meta["start"],
                "end": meta["end"],
                "rows": meta["rows"],
                "description": meta["description"],
                "source": f"{meta['module']} ({meta['package']}), originally {meta['origin']}",
                "licence": meta["licence"],
            }
        )
    for alias, target in ALIASES.items():
        meta = manifest[target]
        rows.append(
            {
                "name": alias,
                "spec": f"sample:{alias}",
                "kind": meta["kind"],
                "assets": 1,
                "start": meta["start"],
                "end": meta["end"],
                "rows": meta["rows"],
                "description": f"alias of {target}: the index level, NOT the ETF",
                "source": f"see {target}",
                "licence": meta["licence"],
            }
        )
    meta = manifest["SP20"]
    for ticker in _members():
        if ticker in manifest:
            continue  # sample:MSFT is the OHLCV dataset; the panel's MSFT is in sample:SP20
        rows.append(
            {
                "name": ticker,
                "spec": f"sample:{ticker}",
                "kind": "close-only",
                "assets": 1,
                "start": meta["start"],
                "end": meta["end"],
                "rows": meta["rows"],
                "description": f"{ticker} adjusted close from SP20",
                "source": "see SP20",
                "licence": meta["licence"],
            }
        )
    return pd.DataFrame(rows).set_index("name")


def _close_only(close: pd.Series, symbol: str) -> pd.DataFrame:
    values = close.to_numpy(dtype="float64")
    bars = pd.DataFrame(
        {"open": values, "high": values, "low": values, "close": values, "volume": 0.0}, index=close.index
    )
    bars.attrs = {"symbol": symbol}
    return bars


def _panel(names: list[str]) -> pd.DataFrame:
    """Close-only members as one ``(T, 5N)`` multi-asset frame, built in one array (no per-asset join)."""
    import numpy as np

    from markets.frames import FIELDS

    close = _read("SP20")[names].to_numpy(dtype="float64")  # (T, N)
    x = np.repeat(close[:, :, None], len(FIELDS), axis=2)  # (T, N, 5)
    x[:, :, FIELDS.index("volume")] = 0.0
    columns = pd.MultiIndex.from_product([names, list(FIELDS)], names=["asset", "field"])
    return pd.DataFrame(x.reshape(len(close), -1), index=_read("SP20").index, columns=columns)


def _one(name: str) -> pd.DataFrame:
    key = ALIASES.get(name, name)
    manifest = _manifest()
    if key in manifest and manifest[key]["kind"] == "ohlcv":
        bars = _read(key).copy()
        bars.attrs = {"symbol": name}
        return bars
    if key in _members():
        return _close_only(_read("SP20")[key], name)
    valid = sorted({*manifest, *ALIASES, *_members()})
    raise DataError(
        f"unknown sample {name!r}; valid names: {', '.join(valid)} (comma lists allowed)",
        asset=name,
        rule="unknown-sample",
    )


def load_sample(
    body: str, params: dict[str, str], *, start=None, end=None, offline: bool = False
) -> pd.DataFrame:
    """``SP20`` -> the 20-stock multi-asset frame; ``A,B`` -> a multi-asset frame of those; else one asset."""
    from markets.frames import combine

    if params:
        raise DataError(f"sample: takes no options, got {sorted(params)}", rule="bad-option")
    names = [n.strip().upper() for n in body.split(",") if n.strip()]
    if not names:
        raise DataError("sample: needs a name, e.g. sample:SP500 or sample:AAPL,JPM", rule="bad-spec")
    if names == ["SP20"]:
        return _panel(_members())
    if len(names) == 1:
        return _one(names[0])
    if len(set(names)) != len(names):
        raise DataError(f"sample list repeats a name: {','.join(names)}", rule="bad-spec")
    if "SP20" in names:
        raise DataError(
            f"sample:{','.join(names)}: SP20 is itself a 20-stock panel and cannot be listed with other names; "
            f"use sample:SP20 alone, or list its members (e.g. sample:{','.join(_members()[:3])})",
            rule="bad-spec",
        )
    return combine({n: _one(n) for n in names})
