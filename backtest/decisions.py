"""The decision-maker contract: one registry for rule-based strategies and trained models alike.

A decision-maker turns bars into target weights. It is built ONCE from its declared, validated parameters
(and a checkpoint, for trained ones) and then reused: ``build(name, params)`` returns a per-process cached
instance, so a model is loaded once however many backtests, sweeps or paper ticks use it.

``decide(bars, *, start=0) -> Decision(weights, trace)`` is the one call. It returns the decisions for rows
``start .. T-1`` of ``bars`` (``bars[:start]`` is history: warm-up), weights and the per-bar trace together
(the trace is what a rule's explanation, an expert's prompt and answer, or the router's routing record is).
The decision of row ``t`` may use ``bars[: t + 1]`` only; the engine executes it at ``t + 1``. Paper trading
calls ``decide(all_completed_bars, start=first_new_row)`` once per tick, so a decision-maker that computes
only the rows ``>= start`` makes a catch-up cost O(new bars). The registry-wide look-ahead test
(``tests/test_lookahead_registry.py``, ``backtest.lookahead``) truncates and perturbs the bars after many cut
points for EVERY registered decision-maker and requires identical weights and traces up to the cut.

* weights: a ``Series`` (single-asset bars) or ``DataFrame (rows, N)`` with the assets as columns, indexed by
  ``bars.index[start:]``; NaN means flat.
* trace: a ``DataFrame`` with the same index, one column per traced quantity, JSON-able scalar values;
  per-asset quantities of a multi-asset decision-maker are named ``"ASSET/quantity"``. ``trace_record``
  turns one row into the dict the paper ledger stores.

Registering: ``@register("name", params=..., check=...)`` on a function ``fn(bars, **params) -> Decision``
(rule-based: it decides the whole history; ``start`` slices it) or on a ``DecisionMaker`` subclass (params
declared as a class attribute; ``__init__(**bound_params)`` loads models; optional ``fit(train_bars)`` for
trainable ones, which walk-forward evaluation calls on train windows only; optional ``state_dict`` /
``load_state_dict`` for ``save``/``load``; optional ``horizon``, the label horizon in bars of a learner whose
training labels look ``horizon`` bars ahead, which walk-forward evaluation purges; optional ``components``,
the parts of a composite decision-maker such as a router, as names or ``(name, params)`` pairs, which
``drex evaluate`` reports one by one and mixes into its ``equal_weight`` baseline instead of the composite).
Plugins in other installed packages register through the entry-point group ``drex.plugins`` (the value is a
module whose import registers, or a class/function registered under the entry point's name) or the
``DREX_PLUGINS`` environment variable (comma-separated modules); ``discover()`` loads them the first time the
registry is read, so the CLI, dashboard, sweeps and paper trading all see the same registry and ``backtest``
never imports a learner.

Example of a stateful decision-maker (see docs/ARCHITECTURE.md)::

    @register("ma_model")
    class MovingAverageModel(DecisionMaker):
        params = {"window": Param(20, low=2), "checkpoint": Param("none")}
        def __init__(self, **params):
            super().__init__(**params)
            self.scale = 1.0                       # a loaded model would live here, loaded once
        def fit(self, bars):                       # optional: trainable
            self.scale = float(markets.fields(bars, "close").pct_change().std().iloc[0])
        def decide(self, bars, *, start=0):
            close = bars["close"]
            w = (close > close.rolling(self.config["window"]).mean()).astype(float).iloc[start:]
            return Decision(w, pd.DataFrame({"weight": w}))
"""
from __future__ import annotations

import importlib
import inspect
import json
import os
import threading
import warnings
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, NamedTuple

from backtest.params import Param, ParamSpace

__all__ = [
    "ENTRY_POINT_GROUP",
    "Decision",
    "DecisionMaker",
    "Entry",
    "Param",
    "ParamSpace",
    "bind",
    "build",
    "decide",
    "discover",
    "entries",
    "get",
    "load",
    "names",
    "register",
    "resolve_checkpoint",
    "save",
    "trace_frame",
    "trace_record",
]

ENTRY_POINT_GROUP = "drex.plugins"
_CHECKPOINT_FORMAT = 1
_CACHE_SIZE = 16


class Decision(NamedTuple):
    """Weights and the per-bar trace of rows ``start .. T-1`` (module doc)."""

    weights: Any
    trace: Any


class DecisionMaker:
    """Base class of stateful decision-makers (rule functions are wrapped in ``FunctionDecisionMaker``).

    Subclasses declare ``params`` (name -> ``Param``), may override ``check`` (cross-parameter rules) and
    ``warmup`` (bars of history wanted), and implement ``decide``. ``self.config`` holds the bound parameters.
    """

    name: ClassVar[str] = ""
    params: ClassVar[Mapping[str, Param]] = {}
    example_spec: ClassVar[str] = "sample:SP500"
    description: ClassVar[str] = ""
    horizon: ClassVar[int] = 0  # label horizon in bars (trainable ones; walk-forward purges it)
    components: ClassVar[tuple] = ()  # parts of a composite (router): names or (name, params) pairs

    def __init__(self, **params: Any) -> None:
        self.config: dict[str, Any] = dict(params)

    @classmethod
    def check(cls, params: dict[str, Any]) -> None:
        """Cross-parameter rules on the complete bound dict; raise ``ValueError`` naming the fix."""

    @property
    def warmup(self) -> int:
        """Bars of history wanted before the first meaningful decision (the CLI loads them before --start)."""
        return 0

    def decide(self, bars: Any, *, start: int = 0) -> Decision:
        raise NotImplementedError

    def __repr__(self) -> str:
        shown = ", ".join(f"{k}={v!r}" for k, v in self.config.items())
        return f"{self.name or type(self).__name__}({shown})"


class FunctionDecisionMaker(DecisionMaker):
    """A registered pure function ``fn(bars, **params) -> Decision`` (whole history) as a decision-maker."""

    def __init__(self, entry: Entry, **params: Any) -> None:
        super().__init__(**params)
        self.entry = entry
        self.name = entry.name

    @property
    def warmup(self) -> int:
        return int(self.entry.warmup(self.config)) if self.entry.warmup else 0

    def decide(self, bars: Any, *, start: int = 0) -> Decision:
        full = self.entry.target(bars, **self.config)
        if start == 0:
            return full
        return Decision(full.weights.iloc[start:], full.trace.iloc[start:])


@dataclass(frozen=True)
class Entry:
    """What the registry knows about one decision-maker.

    target: the registered class (``DecisionMaker`` subclass) or function. space: its declared parameters.
    batched: optional ``(bars, **arrays) -> BatchedWeights(weights (P, T, N), valid (P,))`` for fast sweeps
    (each parameter a scalar or a length-P array of the expanded grid). warmup: optional ``params -> bars``
    for functions (classes use their ``warmup`` property). trainable: has ``fit``. source: the module.
    """

    name: str
    target: Any
    space: ParamSpace
    description: str = ""
    batched: Callable[..., Any] | None = None
    warmup: Callable[[dict[str, Any]], int] | None = None
    example_spec: str = "sample:SP500"
    trainable: bool = False
    source: str = ""

    @property
    def is_class(self) -> bool:
        return inspect.isclass(self.target)

    @property
    def defaults(self) -> dict[str, Any]:
        return self.space.defaults

    def create(self, params: dict[str, Any]) -> DecisionMaker:
        """A new instance from already bound ``params``."""
        if self.is_class:
            dm = self.target(**params)
            dm.name = self.name
            return dm
        return FunctionDecisionMaker(self, **params)


_REGISTRY: dict[str, Entry] = {}
_LOCK = threading.RLock()
_LOADED = {"builtin": False, "plugins": False}
_INSTANCES: OrderedDict[tuple[str, str], DecisionMaker] = OrderedDict()


def _first_paragraph(obj: Any) -> str:
    return (inspect.getdoc(obj) or "").split("\n\n")[0].replace("\n", " ").strip()


def register(name: str, *, params: Mapping[str, Param] | ParamSpace | None = None,
             check: Callable[[dict[str, Any]], None] | None = None, batched: Callable[..., Any] | None = None,
             warmup: Callable[[dict[str, Any]], int] | None = None, example_spec: str | None = None,
             description: str | None = None):
    """Register a ``DecisionMaker`` subclass or a function ``fn(bars, **params) -> Decision`` under ``name``.

    For a class, ``params``/``check``/``example_spec`` default to its class attributes; for a function,
    ``params`` (a mapping name -> Param, or a ``ParamSpace`` with its rule) is required. Duplicate names raise
    ``ValueError``.
    """
    if isinstance(params, ParamSpace):
        check, params = check or params.check, params.params
    if not isinstance(name, str) or not name.strip() or any(c.isspace() for c in name):
        raise ValueError(f"decision-maker name must be non-empty text without spaces, got {name!r}")

    def deco(target: Any) -> Any:
        if inspect.isclass(target):
            if not issubclass(target, DecisionMaker):
                raise TypeError(f"{target.__name__} must subclass backtest.decisions.DecisionMaker")
            declared = dict(params if params is not None else target.params)
            rule = check or (target.check if target.check.__func__ is not DecisionMaker.check.__func__ else None)
            spec = example_spec or target.example_spec
            text = description or target.description or _first_paragraph(target)
            trainable = callable(getattr(target, "fit", None))
        else:
            if params is None:
                raise TypeError(f"register({name!r}) on a function needs params= (name -> Param)")
            declared, rule, spec = dict(params), check, example_spec or "sample:SP500"
            text = description or _first_paragraph(target)
            trainable = False
        entry = Entry(name, target, ParamSpace(declared, rule, owner=name), text, batched, warmup, spec,
                      trainable, getattr(target, "__module__", ""))
        with _LOCK:
            if name in _REGISTRY:
                raise ValueError(f"decision-maker {name!r} is already registered (by {_REGISTRY[name].source})")
            _REGISTRY[name] = entry
        if inspect.isclass(target):
            target.name = name
        return target

    return deco


def _ensure_loaded() -> None:
    if not _LOADED["builtin"]:
        _LOADED["builtin"] = True
        importlib.import_module("backtest.strategies")
    if not _LOADED["plugins"]:
        _LOADED["plugins"] = True
        discover()


def discover(modules: list[str] | tuple[str, ...] = ()) -> list[str]:
    """Load plugins: the ``drex.plugins`` entry points, the ``DREX_PLUGINS`` modules and ``modules``.

    Idempotent (a module imports once). A plugin that fails to load is reported as one warning and skipped,
    so one broken package never hides the others. Returns the names registered by this call.
    """
    from importlib.metadata import entry_points

    before = set(_REGISTRY)
    env = [m.strip() for m in os.environ.get("DREX_PLUGINS", "").split(",") if m.strip()]
    for module in [*env, *modules]:
        importlib.import_module(module)  # an explicitly named module must exist: errors propagate
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            obj = ep.load()
        except Exception as exc:  # noqa: BLE001 - a broken plugin must not break the registry
            warnings.warn(f"drex plugin {ep.name!r} ({ep.value}) failed to load: {type(exc).__name__}: {exc}",
                          RuntimeWarning, stacklevel=2)
            continue
        if not inspect.ismodule(obj) and ep.name not in _REGISTRY:
            register(ep.name)(obj)
    return sorted(set(_REGISTRY) - before)


def get(name: str) -> Entry:
    """The entry registered under ``name``; an unknown name lists the valid ones."""
    _ensure_loaded()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown decision-maker {name!r}; registered: {', '.join(names())}") from None


def names() -> list[str]:
    """Registered names, sorted."""
    _ensure_loaded()
    return sorted(_REGISTRY)


def entries() -> list[Entry]:
    """Registered entries, sorted by name."""
    return [_REGISTRY[n] for n in names()]


def bind(name: str, values: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Every parameter of ``name``, typed and validated (``ParamSpace.bind``): the one parameter layer."""
    return get(name).space.bind(values)


def build(name: str, params: Mapping[str, Any] | None = None, *, fresh: bool = False) -> DecisionMaker:
    """A decision-maker built from validated ``params`` (text or typed values over the defaults).

    Instances are cached per process by (name, bound params), so a model loads once; ``fresh=True`` builds a
    new, uncached instance (``fit`` mutates: walk-forward evaluation fits fresh ones).
    """
    entry = get(name)
    bound = entry.space.bind(params)
    if fresh:
        return entry.create(bound)
    key = (name, json.dumps(bound, sort_keys=True, default=str))
    with _LOCK:
        dm = _INSTANCES.get(key)
        if dm is not None:
            _INSTANCES.move_to_end(key)
            return dm
    dm = entry.create(bound)
    with _LOCK:
        _INSTANCES[key] = dm
        while len(_INSTANCES) > _CACHE_SIZE:
            _INSTANCES.popitem(last=False)
    return dm


def decide(dm: DecisionMaker | str, bars: Any, params: Mapping[str, Any] | None = None, *,
           start: int = 0) -> Decision:
    """``dm.decide(bars, start=start)`` (building ``dm`` when given a name), with the output checked against
    the contract: weights and trace indexed by ``bars.index[start:]``, one weight column per asset."""
    import pandas as pd

    if isinstance(dm, str):
        dm = build(dm, params)
    elif params:
        raise TypeError("params go with a decision-maker name; an instance already holds its parameters")
    T = len(bars.index)
    if not 0 <= start <= T:
        raise ValueError(f"start={start} is outside the {T} bars")
    out = dm.decide(bars, start=start)
    if not isinstance(out, Decision):
        if isinstance(out, tuple) and len(out) == 2:
            out = Decision(*out)
        else:
            raise TypeError(f"{dm!r}.decide must return Decision(weights, trace), got {type(out).__name__}")
    want = bars.index[start:]
    weights, trace = out.weights, out.trace
    if not isinstance(weights, (pd.Series, pd.DataFrame)) or not weights.index.equals(want):
        raise ValueError(f"{dm!r}.decide(start={start}) must return weights indexed by bars.index[start:] "
                         f"({len(want)} rows); got {type(weights).__name__} with {len(weights)} rows")
    if trace is None:
        trace = pd.DataFrame(index=want)
    elif not isinstance(trace, pd.DataFrame) or not trace.index.equals(want):
        raise ValueError(f"{dm!r}.decide(start={start}) must return a trace DataFrame indexed like its weights")
    if isinstance(bars.columns, pd.MultiIndex) and not isinstance(weights, pd.DataFrame):
        raise TypeError(f"{dm!r}: multi-asset bars need a weights DataFrame with one column per asset")
    return Decision(weights, trace)


# ----------------------------------------------------------------------------------------------- traces
def trace_frame(bars: Any, columns: Mapping[str, Any]) -> Any:
    """A trace ``DataFrame`` from named ``(T, N)`` arrays (per-asset quantities) indexed like ``bars``.

    Single-asset bars: one column per name; several assets: ``"ASSET/name"`` columns (asset-major).
    """
    import numpy as np
    import pandas as pd

    from markets.frames import assets

    names_ = list(columns)
    arrays = [np.asarray(v) for v in columns.values()]
    if not isinstance(bars.columns, pd.MultiIndex):
        return pd.DataFrame({n: a.reshape(len(bars.index), -1)[:, 0] for n, a in zip(names_, arrays)},
                            index=bars.index)
    data = {}
    for j, asset in enumerate(assets(bars)):
        for n, a in zip(names_, arrays):
            data[f"{asset}/{n}"] = a[:, j]
    return pd.DataFrame(data, index=bars.index)


def trace_record(trace: Any, i: int) -> dict[str, Any]:
    """Row ``i`` of a trace as a JSON-able dict; ``"ASSET/quantity"`` columns nest as ``{ASSET: {...}}``."""
    from backtest.jsonable import jsonable

    out: dict[str, Any] = {}
    row = trace.iloc[i]
    for col, value in zip(trace.columns, row.tolist()):
        key = str(col)
        head, sep, tail = key.partition("/")
        if sep and tail:
            out.setdefault(head, {})[tail] = value
        else:
            out[key] = value
    return jsonable(out)


# ------------------------------------------------------------------------------------------ checkpoints
def resolve_checkpoint(value: str, *, package: str, default: str) -> Path:
    """``"default"`` -> the checkpoint folder ``default`` shipped inside ``package`` (importlib.resources);
    anything else -> that local folder, which must exist. Errors name the fix."""
    if value == "default":
        from importlib.resources import files

        path = Path(str(files(package).joinpath("checkpoints", default)))
        if not path.exists():
            raise FileNotFoundError(f"the default checkpoint {default!r} is not shipped in {package} ({path}); "
                                    "reinstall DREX or pass checkpoint=PATH")
        return path
    path = Path(value).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"checkpoint {value!r} not found; pass a folder written by `drex train ...` "
                                "or checkpoint=default")
    return path


def save(dm: DecisionMaker, path: str | os.PathLike) -> Path:
    """Write ``dm`` to the folder ``path`` atomically: ``config.json`` ({format, name, params}) and, when ``dm``
    has ``state_dict()``, ``model.safetensors`` (torch tensors or numpy arrays). Returns the folder."""
    from backtest.atomic import staged_dir
    from backtest.jsonable import jsonable

    path = Path(path)
    with staged_dir(path) as tmp:
        config = {"format": _CHECKPOINT_FORMAT, "name": dm.name, "params": jsonable(dm.config)}
        (tmp / "config.json").write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
        state = dm.state_dict() if callable(getattr(dm, "state_dict", None)) else None
        if state:
            _save_tensors(state, tmp / "model.safetensors")
    return path


def _save_tensors(state: Mapping[str, Any], file: Path) -> None:
    values = list(state.values())
    if values and all(type(v).__module__.startswith("torch") for v in values):
        from safetensors.torch import save_file

        save_file({k: v.detach().cpu().contiguous() for k, v in state.items()}, str(file))
    else:
        import numpy as np
        from safetensors.numpy import save_file as save_np

        save_np({k: np.ascontiguousarray(np.asarray(v)) for k, v in state.items()}, str(file))


def load(path: str | os.PathLike) -> DecisionMaker:
    """A decision-maker saved by ``save``: its registered class built from the saved parameters (a fresh
    instance), then ``load_state_dict`` with ``model.safetensors`` when present. Never unpickles."""
    path = Path(path)
    cfg_file = path / "config.json"
    try:
        config = json.loads(cfg_file.read_text(encoding="utf-8"))
        name, params = config["name"], config.get("params", {})
    except FileNotFoundError:
        raise FileNotFoundError(f"{path} is not a DREX decision-maker checkpoint (no config.json)") from None
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"{cfg_file} is corrupt or not a DREX checkpoint config ({exc})") from None
    if config.get("format") != _CHECKPOINT_FORMAT:
        raise ValueError(f"{cfg_file}: unsupported checkpoint format {config.get('format')!r} "
                         f"(this DREX reads format {_CHECKPOINT_FORMAT})")
    dm = build(name, params, fresh=True)
    weights = path / "model.safetensors"
    if weights.exists():
        if not callable(getattr(dm, "load_state_dict", None)):
            raise ValueError(f"{path}: {name!r} has no load_state_dict but the checkpoint holds weights")
        from safetensors.numpy import load_file

        dm.load_state_dict(load_file(str(weights)))
    return dm
