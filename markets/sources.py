"""Data specs (``scheme:body?key=value``), the source registry, and ``load``.

Every source is one function ``loader(body, params, *, start, end, offline) -> bars`` registered under its
scheme; ``load`` parses the spec, calls the loader, clips to ``[start, end]`` and validates.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from urllib.parse import parse_qsl

from markets.errors import DataError

__all__ = ["SOURCES", "Source", "list_sources", "load", "parse_spec", "register_source"]

Loader = Callable[..., "object"]


@dataclass(frozen=True)
class Source:
    """One registered data source: ``scheme`` (before the first ``:``), its ``form`` and an ``example``."""

    scheme: str
    loader: Loader
    form: str
    example: str
    description: str
    network: bool


SOURCES: dict[str, Source] = {}


def register_source(
    scheme: str, loader: Loader, *, form: str, example: str, description: str, network: bool = False
) -> Source:
    """Add a source under ``scheme``; a scheme can be registered only once."""
    if scheme in SOURCES:
        raise ValueError(f"source scheme {scheme!r} is already registered")
    SOURCES[scheme] = src = Source(scheme, loader, form, example, description, network)
    return src


def list_sources() -> list[Source]:
    """The registered sources, in registration order."""
    return list(SOURCES.values())


def _valid_forms() -> str:
    return "; ".join(s.form for s in SOURCES.values())


def parse_spec(spec: str) -> tuple[str, str, dict[str, str]]:
    """``"yf:AAPL?interval=1h"`` -> ``("yf", "AAPL", {"interval": "1h"})``; DataError lists valid forms."""
    if not isinstance(spec, str) or ":" not in spec:
        raise DataError(
            f"malformed data spec {spec!r}; valid forms: {_valid_forms()}", asset=str(spec), rule="bad-spec"
        )
    scheme, rest = spec.split(":", 1)
    scheme = scheme.strip().lower()
    if scheme not in SOURCES:
        raise DataError(
            f"unknown data source {scheme!r}; valid forms: {_valid_forms()}", asset=spec, rule="bad-spec"
        )
    body, _, query = rest.partition("?")
    try:
        params = dict(parse_qsl(query, keep_blank_values=True, strict_parsing=bool(query)))
    except ValueError as exc:
        raise DataError(
            f"malformed options {query!r} in {spec!r}: use ?key=value&key=value", asset=spec, rule="bad-spec"
        ) from exc
    if not body.strip():
        raise DataError(f"empty {scheme}: spec; form: {SOURCES[scheme].form}", asset=spec, rule="bad-spec")
    return scheme, body.strip(), params


def _bound(value, name: str):
    """A start/end argument as a UTC Timestamp (naive = UTC); a date-only ``end`` covers its whole day."""
    import pandas as pd

    if value is None:
        return None
    try:
        ts = pd.Timestamp(value)
    except (ValueError, TypeError) as exc:
        raise DataError(
            f"{name}={value!r} is not a date; use e.g. 2020-01-31 or 2020-01-31T14:00Z", rule=f"bad-{name}"
        ) from exc
    if ts is pd.NaT:
        raise DataError(f"{name}={value!r} is not a date; use e.g. 2020-01-31", rule=f"bad-{name}")
    if not 1678 <= ts.year <= 2261:  # datetime64[ns], the bars' time type, spans 1677-09-21 .. 2262-04-11
        raise DataError(
            f"{name}={value!r} is read as the year {ts.year}, outside 1678..2261; use a date such as 2020-01-31",
            rule=f"bad-{name}",
        )
    ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
    date_only = (isinstance(value, str) and len(value.strip()) <= 10) or (
        isinstance(value, date) and not isinstance(value, datetime)
    )
    if name == "end" and date_only:
        ts = ts + pd.Timedelta(days=1) - pd.Timedelta(1, "ns")
    return ts


def _offline(offline: bool | None) -> bool:
    if offline is not None:
        return bool(offline)
    return os.environ.get("DREX_OFFLINE", "").strip().lower() in ("1", "true", "yes")


def load(spec: str, start=None, end=None, *, offline: bool | None = None):
    """Canonical bars for a data spec.

    Args:
        spec: ``sample:SP500``, ``sample:AAPL,JPM``, ``yf:AAPL?interval=1d&auto_adjust=true``,
            ``ccxt:binance:BTC/USDT:1h``, ``file:bars.csv?tz=America/New_York``,
            ``synth:regimes?seed=1&n=2520``, ``synth:pairs?seed=1&n=20000&freq=1min``.
        start, end: inclusive bounds (str, datetime or Timestamp; naive = UTC; a date-only end includes the
            whole day).
        offline: True never touches the network (cache only); None reads ``$DREX_OFFLINE``.

    Returns:
        ``(T, 5)`` single-asset bars with ``attrs["symbol"]`` or a ``(T, 5N)`` ``(asset, field)`` frame,
        validated. Raises ``DataError`` for bad specs, bad dates, bad data or unavailable data; warns
        ``OfflineFallback`` when a network source failed and cached bars were returned.
    """
    from markets.validation import validate

    scheme, body, params = parse_spec(spec)
    lo, hi = _bound(start, "start"), _bound(end, "end")
    if lo is not None and hi is not None and lo > hi:
        raise DataError(f"start {lo} is after end {hi}", asset=spec, rule="bad-range")
    bars = SOURCES[scheme].loader(body, params, start=lo, end=hi, offline=_offline(offline))
    attrs = dict(bars.attrs)
    if lo is not None or hi is not None:
        span = f"{bars.index[0].date()} .. {bars.index[-1].date()}" if len(bars) else "nothing"
        bars = bars.loc[lo:hi]
        if len(bars) < 2:
            raise DataError(
                f"only {len(bars)} bar(s) between {start} and {end} (the data spans {span}); widen the range",
                asset=spec,
                rule="too-short",
            )
    bars.attrs = {**attrs, "spec": spec}
    return validate(bars, asset=attrs.get("symbol") or spec)


def _register_builtins() -> None:
    from markets import bundled, crypto, files, synthetic, yahoo

    register_source(
        "sample",
        bundled.load_sample,
        form="sample:NAME[,NAME...]",
        example="sample:SP500",
        description="bundled real daily bars (markets.samples() lists them)",
    )
    register_source(
        "yf",
        yahoo.load_yahoo,
        form="yf:TICKER[?interval=1d&auto_adjust=true]",
        example="yf:AAPL",
        description="Yahoo Finance via yfinance, cached",
        network=True,
    )
    register_source(
        "ccxt",
        crypto.load_ccxt,
        form="ccxt:EXCHANGE:BASE/QUOTE:TIMEFRAME",
        example="ccxt:binance:BTC/USDT:1h",
        description="crypto exchange OHLCV via ccxt, cached",
        network=True,
    )
    register_source(
        "file",
        files.load_file,
        form="file:PATH[?tz=ZONE&format=FMT&dayfirst=true&volume=0&adjusted=true&repair=true|reorder]",
        example="file:bars.csv",
        description="your CSV or parquet bars",
    )
    register_source(
        "synth",
        synthetic.load_synth,
        form="synth:regimes?seed=1&n=2520 | synth:pairs?seed=1&n=20000&freq=1min",
        example="synth:regimes?seed=1&n=2520",
        description="synthetic bars with ground truth: regimes (markets.synthetic.regimes) or cointegrated "
        "minute pairs with breaks (markets.synthetic.pairs)",
    )


_register_builtins()
