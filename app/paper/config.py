"""The paper-trading run configuration: one frozen pydantic model, loaded from YAML.

A run's config is validated once (``drex paper init``), stored as JSON in the ledger's ``runs`` row and
re-validated on every tick, so a run keeps trading with exactly the settings it was created with.

Example (``examples/paper.yaml``)::

    strategy: trend            # a registered decision-maker (drex strategies lists them)
    params: {fast: 20, slow: 100}
    data: sample:SP500         # a markets spec: sample:..., file:PATH, yf:..., ccxt:EXCHANGE:BASE/QUOTE:TF
    interval: 1d               # bar length: <int><s|m|h|d|w>
    history_start: 2015-01-01  # first bar loaded (warm-up history for the strategy)
    start: 2017-01-03          # first bar traded (replay: default the first bar loaded)
    initial_cash: 100000
    fees: 0.001                # fraction of filled notional
    slippage: 0.0005           # buy at p(1+s), sell at p(1-s)
    band: 0.1                  # no-trade band relative to the target (backtest.accounting); 0 = every drift
    mode: replay               # replay (simulated clock over stored bars) | live (markets.load on each tick)

Only stdlib + pydantic here: the CLI imports this module lazily, but cheaply.
"""
from __future__ import annotations

import itertools
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

__all__ = ["MAX_CONFIG_BYTES", "MAX_YAML_NODES", "PaperConfig", "load_config", "parse_interval", "to_utc",
           "validate_config"]

MAX_CONFIG_BYTES = 1 << 20
"""Largest config file read (1 MiB): a run's settings fit in a few hundred bytes."""
MAX_YAML_NODES = 10_000
"""Most YAML nodes a config may hold once its aliases (``*name``) are expanded: a config with nested aliases
(an "alias bomb": 700 bytes can expand to billions of nodes) is refused before anything expands it."""

_INTERVAL_RE = re.compile(r"^\s*(\d+)\s*([smhdw])\s*$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_interval(text: str) -> int:
    """``"15m"`` -> 900: a bar length in whole seconds (units s, m, h, d, w).

    >>> parse_interval("1d"), parse_interval("4h"), parse_interval("30s")
    (86400, 14400, 30)
    """
    match = _INTERVAL_RE.match(str(text))
    if not match or int(match.group(1)) <= 0:
        raise ValueError(
            f"bad interval {text!r}: write a positive integer and a unit s, m, h, d or w, e.g. '1d' or '15m'"
        )
    return int(match.group(1)) * _UNIT_SECONDS[match.group(2)]


def to_utc(value: Any) -> datetime:
    """A date/datetime/ISO string as a tz-aware UTC ``datetime`` (naive values are taken as UTC)."""
    if isinstance(value, str):
        text = value.strip().replace("Z", "+00:00")
        try:
            value = datetime.fromisoformat(text)
        except ValueError:
            raise ValueError(f"bad time {value!r}: use ISO 8601, e.g. 2024-01-31 or 2024-01-31T21:00:00Z") from None
    elif hasattr(value, "to_pydatetime"):  # pandas Timestamp
        value = value.to_pydatetime()
    elif not isinstance(value, datetime) and hasattr(value, "year"):  # date
        value = datetime(value.year, value.month, value.day)
    if not isinstance(value, datetime):
        raise ValueError(f"bad time {value!r}: use ISO 8601, e.g. 2024-01-31")
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class PaperConfig(BaseModel):
    """Everything a paper-trading run needs; frozen, unknown keys refused."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    strategy: str = Field(description="a registered decision-maker (drex strategies)")
    params: dict[str, Any] = Field(default_factory=dict, description="the decision-maker's parameters")
    data: str = Field(description="markets spec: sample:SP500, file:PATH, yf:AAPL, ccxt:binance:BTC/USDT:1h")
    interval: str = Field("1d", description="bar length <int><s|m|h|d|w>; a bar is complete at ts + interval")
    history_start: datetime | None = Field(None, description="first bar loaded (strategy warm-up history)")
    start: datetime | None = Field(
        None, description="first bar traded; replay default: first bar loaded; live default: init time"
    )
    end: datetime | None = Field(None, description="last bar loaded (replay only)")
    initial_cash: float = Field(100_000.0, gt=0, allow_inf_nan=False, description="starting cash")
    fees: float = Field(0.001, ge=0, lt=1, allow_inf_nan=False, description="fee, fraction of filled notional")
    slippage: float = Field(0.0, ge=0, lt=1, allow_inf_nan=False,
                            description="fill price moves against the trade by this fraction")
    band: float = Field(0.1, ge=0, lt=1, allow_inf_nan=False,
                        description="no-trade band relative to the target weight: a position "
                        "within this fraction of its target size is left alone (= backtest.accounting.DEFAULT_BAND)")
    borrow: float = Field(0.0, ge=0, description="cash the account may borrow for buys, fraction of its value "
                          "(0 = cash account: buys cut to the cash left; .inf = never cut)")
    mode: Literal["replay", "live"] = Field("replay", description="replay: simulated clock; live: wall clock")
    ledger: str | None = Field(None, description="SQLAlchemy URL; default sqlite under $DREX_HOME/paper")
    plugins: tuple[str, ...] = Field((), description="modules imported first (to register decision-makers)")
    lease_seconds: float = Field(600.0, gt=0, allow_inf_nan=False, description="DB lease lifetime of a tick's run lock")

    @field_validator("interval")
    @classmethod
    def _check_interval(cls, value: str) -> str:
        parse_interval(value)
        return value.strip()

    @field_validator("history_start", "start", "end", mode="before")
    @classmethod
    def _utc(cls, value: Any) -> datetime | None:
        return None if value is None else to_utc(value)

    @field_validator("strategy", "data")
    @classmethod
    def _non_empty(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be empty")
        return value.strip()

    @model_validator(mode="after")
    def _date_order(self) -> PaperConfig:
        named = [(k, getattr(self, k)) for k in ("history_start", "start", "end") if getattr(self, k) is not None]
        for (k1, v1), (k2, v2) in itertools.pairwise(named):
            if v1 > v2:
                raise ValueError(f"{k1} ({v1:%Y-%m-%d %H:%M}) is after {k2} ({v2:%Y-%m-%d %H:%M}); "
                                 "order them history_start <= start <= end")
        return self

    @property
    def interval_seconds(self) -> int:
        """The bar length in seconds."""
        return parse_interval(self.interval)

    def to_json(self) -> dict[str, Any]:
        """A JSON-able dict (times as ISO strings) that ``PaperConfig.model_validate`` reads back."""
        return self.model_dump(mode="json")


def _format_validation_error(exc: ValidationError, source: str) -> str:
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first["loc"]) or "<root>"
    more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
    msg = first["msg"].removeprefix("Value error, ")
    hint = " (remove it; valid keys: " + ", ".join(PaperConfig.model_fields) + ")" if first["type"] == "extra_forbidden" else ""
    if not first["loc"]:  # a rule across fields (date order)
        return f"{source}: {msg}{more}"
    return f"{source}: field {where!r}: {msg}{hint}{more}"


def validate_config(data: Any, *, source: str = "config") -> PaperConfig:
    """``PaperConfig`` from a mapping; any problem becomes one ``ValueError`` line naming the field."""
    if not isinstance(data, dict):
        raise ValueError(f"{source}: expected a mapping of settings (strategy, data, ...), got {type(data).__name__}")
    try:
        return PaperConfig.model_validate(data)
    except ValidationError as exc:
        raise ValueError(_format_validation_error(exc, source)) from None


def _expanded_nodes(root: Any, limit: int) -> int:
    """Nodes of the YAML node graph ``root`` once every alias is expanded (an alias is the SAME node object
    reached twice), counted without expanding anything; stops counting past ``limit``; a recursive alias
    raises ``ValueError``."""
    import yaml

    sizes: dict[int, int] = {}
    active: set[int] = set()

    def size(node: Any) -> int:
        key = id(node)
        if key in sizes:
            return sizes[key]
        if key in active:
            raise ValueError("a recursive YAML alias (an anchor used inside itself)")
        active.add(key)
        total = 1
        if isinstance(node, yaml.SequenceNode):
            for child in node.value:
                total = min(limit + 1, total + size(child))
        elif isinstance(node, yaml.MappingNode):
            for k, v in node.value:
                total = min(limit + 1, total + size(k) + size(v))
        active.discard(key)
        sizes[key] = total
        return total

    return size(root) if root is not None else 0


def load_config(path: str | Path) -> PaperConfig:
    """Read and validate a YAML config file; errors name the file and the field.

    Safe YAML only; files over ``MAX_CONFIG_BYTES`` and configs whose aliases expand to more than
    ``MAX_YAML_NODES`` nodes are refused before anything is expanded.
    """
    import yaml

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"config file {path} not found: pass --config PATH (see examples/paper.yaml)")
    if path.stat().st_size > MAX_CONFIG_BYTES:
        raise ValueError(f"{path}: {path.stat().st_size:,} bytes is too large for a paper config (at most "
                         f"{MAX_CONFIG_BYTES:,}); see examples/paper.yaml")
    try:
        text = path.read_text(encoding="utf-8")
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        n = _expanded_nodes(node, MAX_YAML_NODES)
        if n > MAX_YAML_NODES:
            raise ValueError(f"its aliases expand to more than {MAX_YAML_NODES:,} values (an alias bomb?); write "
                             "the settings out without nested aliases")
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ValueError(f"{path}: not valid YAML: {str(exc).splitlines()[0]}") from None
    except RecursionError:
        raise ValueError(f"{path}: refused: nested too deeply to be a paper config") from None
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start}); save it as UTF-8") from None
    except ValueError as exc:
        raise ValueError(f"{path}: refused: {exc}") from None
    return validate_config(data, source=str(path))
