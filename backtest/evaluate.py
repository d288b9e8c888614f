"""Walk-forward evaluation: every decision-maker fitted (or tuned) on past bars only, judged on the bars after.

``evaluate(bars, ["trend", "reversal"], folds=5)`` cuts the bars with ``backtest.splits.walk_forward`` and,
fold by fold (train window ``bars[lo:hi]``, test block ``bars[hi:e]``):

* a **trainable** decision-maker (one with ``fit``) is built fresh (``decisions.build(name, params,
  fresh=True)``) and fitted on ``bars.iloc[lo:hi]`` only. Its optional ``horizon`` (label horizon in bars)
  becomes the purge of ``walk_forward``: the last ``horizon`` bars of the window have no complete label
  without the test block, so they are not train samples (reported per fold as ``train_samples``; a learner
  that labels from the bars it is given gets this by construction);
* a rule-based one with an ``optimize`` grid picks its parameters by an in-sample sweep
  (``backtest.sweep`` on ``bars.iloc[lo:hi]``, same costs, best ``metric``): classic walk-forward
  optimization;
* then it decides the test block with all earlier bars as warm-up: ``decide(bars.iloc[:e], start=hi)``
  (decisions only for test rows; each uses bars up to itself).

The test blocks' weights are concatenated and the union of the test blocks (consecutive bars) is backtested
in ONE ``backtest.run`` per strategy, net of costs (default 10 bps), so a position carries across fold
boundaries as it would in live trading. ``buy_and_hold`` (the benchmark) and ``equal_weight`` (the average of
the evaluated decision-makers' target weights, rebalanced every bar; a decision-maker with ``components``,
e.g. a router, contributes its parts instead of itself) are always included. Each strategy gets the engine's
metrics over the whole test period and per fold, and a Sharpe confidence interval (``backtest.stats.sharpe_ci``,
HAC by default); ``vs_buy_and_hold`` is ``"above"``/``"below"`` only when the two intervals do not overlap,
else ``"overlaps"``: overlapping intervals are never called different.

Pure: no printing, no files (``backtest.evaluate_report`` writes the HTML/JSON). numpy at import time.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np

__all__ = ["BENCHMARK", "MIX", "SUMMARY_KEYS", "Candidate", "Evaluation", "StrategyResult", "evaluate"]

BENCHMARK = "buy_and_hold"
MIX = "equal_weight"
SUMMARY_KEYS = ("sharpe", "sharpe_ci_low", "sharpe_ci_high", "total_return", "cagr", "max_drawdown", "turnover")
_FOLD_METRICS = ("sharpe", "total_return", "cagr", "max_drawdown", "turnover_annual", "n_trades")


class Candidate(NamedTuple):
    """One decision-maker to evaluate: ``label`` (its key in tables and JSON), registered ``name``, bound
    ``params`` and an optional in-sample optimization ``grid`` (name -> values; None: fixed parameters)."""

    label: str
    name: str
    params: dict[str, Any]
    grid: dict[str, list[Any]] | None = None


class StrategyResult(NamedTuple):
    """The evaluation of one strategy over the union of the test blocks.

    result: the ``backtest.run`` result (equity, returns, positions, turnover, trades, metrics).
    weights: the concatenated test-block weights (Series for one asset, DataFrame (T_test, N) otherwise).
    ci: ``backtest.stats.SharpeCI`` of ``result.returns``. folds: one dict per fold (dates, fitted/chosen
    parameters, per-fold metrics). vs_benchmark: ``"above"``, ``"below"``, ``"overlaps"`` or ``"benchmark"``.
    """

    label: str
    name: str
    params: dict[str, Any]
    result: Any
    weights: Any
    ci: Any
    folds: list[dict[str, Any]]
    vs_benchmark: str

    def summary(self) -> dict[str, Any]:
        """``SUMMARY_KEYS`` (``turnover`` = annual turnover: traded notional per year over equity)."""
        m = self.result.metrics
        return {"sharpe": m["sharpe"], "sharpe_ci_low": self.ci.low, "sharpe_ci_high": self.ci.high,
                "total_return": m["total_return"], "cagr": m["cagr"], "max_drawdown": m["max_drawdown"],
                "turnover": m["turnover_annual"]}


class Evaluation(NamedTuple):
    """All strategies (evaluated ones, then ``equal_weight``, then ``buy_and_hold``), the folds and the setup."""

    strategies: dict[str, StrategyResult]
    folds: list[Any]
    index: Any
    horizon: int
    setup: dict[str, Any]

    def table(self):
        """One row per strategy: Sharpe, its interval, the comparison with buy and hold, returns, drawdown,
        turnover (a DataFrame indexed by label)."""
        import pandas as pd

        rows = {label: {**s.summary(), "vs_buy_and_hold": s.vs_benchmark} for label, s in self.strategies.items()}
        cols = ["sharpe", "sharpe_ci_low", "sharpe_ci_high", "vs_buy_and_hold", "total_return", "cagr",
                "max_drawdown", "turnover"]
        frame = pd.DataFrame.from_dict(rows, orient="index")[cols]
        frame.index.name = "strategy"
        return frame

    def to_json(self) -> dict[str, Any]:
        """One JSON-able object per strategy keyed by its label: ``SUMMARY_KEYS``, ``sharpe_ci_level``,
        ``sharpe_ci_method``, ``vs_buy_and_hold``, ``name``, ``params``, every engine metric under ``metrics``,
        the per-fold records under ``folds`` and, for ``equal_weight``, its ``members`` (NaN/inf -> null)."""
        from backtest.jsonable import jsonable

        out = {}
        for label, s in self.strategies.items():
            out[label] = {**s.summary(), "sharpe_ci_level": s.ci.level, "sharpe_ci_method": s.ci.method,
                          "vs_buy_and_hold": s.vs_benchmark, "name": s.name, "params": s.params,
                          "metrics": s.result.metrics, "folds": s.folds}
            if label == MIX:
                out[label]["members"] = self.setup["equal_weight_members"]
        return jsonable(out)


# ------------------------------------------------------------------------------------------ candidates
def _label(name: str, params: dict[str, Any], defaults: dict[str, Any]) -> str:
    changed = {k: v for k, v in params.items() if defaults.get(k) != v}
    return name if not changed else f"{name}({', '.join(f'{k}={v}' for k, v in changed.items())})"


def _candidates(strategies: Sequence[Any], optimize: Mapping[str, Mapping[str, Any]] | None) -> list[Candidate]:
    """Bound candidates in order, de-duplicated, ``optimize`` names added, the benchmark last."""
    from backtest.decisions import get

    optimize = dict(optimize or {})
    wanted: list[tuple[str, dict[str, Any]]] = []
    for item in strategies:
        name, params = (item, {}) if isinstance(item, str) else (item[0], dict(item[1] or {}))
        wanted.append((name, params))
    names = [n for n, _ in wanted]
    wanted += [(n, {}) for n in optimize if n not in names]
    if BENCHMARK not in [n for n, _ in wanted]:
        wanted.append((BENCHMARK, {}))
    out: list[Candidate] = []
    for name, params in wanted:
        entry = get(name)
        grid = optimize.get(name)
        if grid is not None:
            entry.space.check_grid(grid)
            grid = {k: list(v) if isinstance(v, (list, tuple, range, np.ndarray)) else [v] for k, v in grid.items()}
        bound = entry.space.bind(params)
        label = name if not any(c.label == name for c in out) else _label(name, bound, entry.defaults)
        if any(c.name == name and c.params == bound and c.grid == grid for c in out):
            continue
        if label in (c.label for c in out) or label == MIX:
            raise ValueError(f"strategy {label!r} is listed twice with different settings; evaluate one of them")
        out.append(Candidate(label, name, bound, grid))
    return out


def _components(dm: Any) -> list[tuple[str, dict[str, Any]]]:
    """The optional ``components`` of a decision-maker (names or ``(name, params)`` pairs) as pairs."""
    parts = getattr(dm, "components", None) or ()
    out = []
    for p in parts:
        if isinstance(p, str):
            out.append((p, {}))
        elif isinstance(p, (tuple, list)) and len(p) == 2 and isinstance(p[0], str):
            out.append((p[0], dict(p[1] or {})))
        else:
            raise TypeError(f"{dm!r}.components must list names or (name, params) pairs, got {p!r}")
    return out


def _expand(cands: list[Candidate]) -> tuple[list[Candidate], list[str]]:
    """Add the components of the evaluated decision-makers; return all candidates and the ``equal_weight``
    members (labels): each non-benchmark candidate, or its components when it has some."""
    from backtest.decisions import build, get

    out = list(cands)
    members: list[str] = []
    for c in cands:
        if c.name == BENCHMARK:
            continue
        parts = _components(build(c.name, c.params))
        if not parts:
            if c.label not in members:
                members.append(c.label)
            continue
        for name, params in parts:
            entry = get(name)
            bound = entry.space.bind(params)
            found = next((o for o in out if o.name == name and o.params == bound and o.grid is None), None)
            if found is None:
                label = name if all(o.label != name for o in out) else _label(name, bound, entry.defaults)
                found = Candidate(label, name, bound, None)
                out.insert(len(out) - 1, found)  # before the benchmark
            if found.label not in members:
                members.append(found.label)
    return out, members


# ---------------------------------------------------------------------------------------------- folds
def _weights_frame(weights: Any, assets: list[str]):
    """Decision weights as a float DataFrame (rows, N) with the asset names as columns (NaN kept)."""
    import pandas as pd

    if isinstance(weights, pd.Series):
        if len(assets) != 1:
            raise TypeError(f"a weights Series fits one asset; these bars have {len(assets)}")
        return weights.astype("float64").to_frame(assets[0])
    frame = weights.astype("float64").copy()
    if len(assets) == 1 and frame.shape[1] == 1:
        frame.columns = assets
        return frame
    frame.columns = [str(c) for c in frame.columns]
    return frame[assets]


def _pick(table: Any, metric: str) -> dict[str, Any]:
    """The best row of an in-sample sweep by ``metric`` (NaN last; first row on ties)."""
    if metric not in table.columns:
        raise ValueError(f"unknown metric {metric!r} for --optimize; use a sweep metric such as sharpe, cagr, "
                         "calmar or total_return")
    if table.empty:
        raise ValueError("the in-sample sweep left no valid combination; widen the grid")
    values = table[metric].to_numpy(dtype=np.float64)
    if np.isnan(values).all():
        best = 0
    else:
        best = int(np.nanargmax(np.where(np.isnan(values), -np.inf, values)))
    return table.iloc[best].to_dict()


def _fold_params(cand: Candidate, train: Any, metric: str, engine_kw: dict[str, Any]) -> dict[str, Any]:
    """The candidate's parameters for one fold: fixed, or the in-sample sweep's best on ``train``."""
    if cand.grid is None:
        return cand.params
    from backtest.decisions import bind
    from backtest.sweep import sweep

    grid = {**cand.params, **cand.grid}
    table = sweep(cand.name, grid, train, **engine_kw)
    best = _pick(table, metric)
    return bind(cand.name, {k: _py(best[k]) for k in cand.grid})


def _py(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def _fold_record(bars: Any, fold: Any, fitted: bool, params: dict[str, Any] | None) -> dict:
    idx = bars.index
    lo, hi = fold.window
    rec = {"fold": int(fold.fold), "train_start": idx[lo].isoformat(), "train_end": idx[hi - 1].isoformat(),
           "train_samples": int(fold.train.size), "test_start": idx[fold.test[0]].isoformat(),
           "test_end": idx[fold.test[-1]].isoformat(), "fitted": fitted}
    if params is not None:
        rec["params"] = params
    return rec


# ------------------------------------------------------------------------------------------ the run
def _ci_side(ci: Any, bench: Any) -> str:
    if not (np.isfinite(ci.low) and np.isfinite(bench.low)):
        return "overlaps"  # an undefined interval (a flat strategy) is not evidence of a difference
    if ci.low > bench.high:
        return "above"
    if ci.high < bench.low:
        return "below"
    return "overlaps"


def _per_fold_metrics(result: Any, folds: list[Any], offset: int, ppy: float) -> list[dict[str, float]]:
    """Engine metrics of each test block's rows of the one continuous backtest."""
    from backtest import metrics

    trades = result.trades
    index = result.returns.index
    out = []
    for f in folds:
        a, b = int(f.test[0]) - offset, int(f.test[-1]) + 1 - offset
        lo, hi = index[a], index[b - 1]
        n = int(((trades["timestamp"] >= lo) & (trades["timestamp"] <= hi)).sum()) if len(trades) else 0
        m = metrics.compute(result.returns.iloc[a:b].to_numpy(), ppy, result.positions.iloc[a:b].to_numpy(),
                            turnover=result.turnover.iloc[a:b].to_numpy(), trades=n)
        out.append({k: m[k] for k in _FOLD_METRICS})
    return out


def evaluate(bars: Any, strategies: Sequence[Any] = (), *, folds: int | None = None, train_bars: int | None = None,
             test_bars: int | None = None, expanding: bool = False,
             optimize: Mapping[str, Mapping[str, Any]] | None = None, metric: str = "sharpe", fees: float = 0.001,
             slippage: float = 0.0, execution: str = "next_open", init_cash: float = 1.0,
             periods_per_year: float | None = None, leverage: float | None = None, ci_method: str = "hac",
             level: float = 0.95, progress: Callable[[int, int, Any], None] | None = None) -> Evaluation:
    """Walk-forward evaluation of registered decision-makers (module docstring).

    bars: canonical bars, ``T`` rows. strategies: names, or ``(name, params)`` pairs (params: text or typed
    values over the defaults); ``buy_and_hold`` is added when absent. folds / train_bars / test_bars /
    expanding: as ``backtest.splits.walk_forward`` (``folds=5`` when none is given). optimize: name -> grid
    (name -> list of values) for in-sample parameter selection by ``metric`` (a sweep metric; higher is
    better); fixed ``params`` of that name hold the other parameters. fees ... leverage: ``backtest.run``
    options. ci_method, level: ``backtest.stats.sharpe_ci``. progress: ``progress(done, total, fold)``, called
    with ``(0, total, None)`` first and after each fold. Returns an ``Evaluation``.
    """
    from backtest import metrics as _metrics
    from backtest import splits, stats
    from backtest.decisions import build, decide, get
    from backtest.engine import run
    from markets.frames import assets as asset_names

    if ci_method not in stats.CI_METHODS:
        raise ValueError(f"ci_method must be one of {', '.join(stats.CI_METHODS)}, got {ci_method!r}")
    cands, members = _expand(_candidates(strategies, optimize))
    trainable = {c.label: get(c.name).trainable for c in cands}
    horizon = max([int(getattr(build(c.name, c.params), "horizon", 0) or 0) for c in cands if trainable[c.label]],
                  default=0)
    if folds is None and (train_bars is None or test_bars is None):
        folds = 5
    wf = splits.walk_forward(len(bars), horizon=horizon, folds=folds, train_bars=train_bars, test_bars=test_bars,
                             expanding=expanding)
    ppy = float(periods_per_year) if periods_per_year is not None else _metrics.infer_periods_per_year(bars.index)
    engine_kw = {"fees": fees, "slippage": slippage, "execution": execution, "init_cash": init_cash,
                 "periods_per_year": ppy, "leverage": leverage}
    assets = asset_names(bars)
    if progress is not None:
        progress(0, len(wf), None)
    pieces: dict[str, list[Any]] = {c.label: [] for c in cands}
    records: dict[str, list[dict[str, Any]]] = {c.label: [] for c in cands}
    for k, fold in enumerate(wf):
        lo, hi = fold.window
        end = int(fold.test[-1]) + 1
        train = bars.iloc[lo:hi]
        for c in cands:
            params = _fold_params(c, train, metric, engine_kw)
            if trainable[c.label]:
                dm = build(c.name, params, fresh=True)
                dm.fit(train)
            else:
                dm = build(c.name, params)
            d = decide(dm, bars.iloc[:end], start=hi)
            pieces[c.label].append(_weights_frame(d.weights, assets))
            records[c.label].append(_fold_record(bars, fold, trainable[c.label],
                                                 params if c.grid is not None else None))
        if progress is not None:
            progress(k + 1, len(wf), fold)

    import pandas as pd

    first, last = int(wf[0].test[0]), int(wf[-1].test[-1]) + 1
    test_bars_ = bars.iloc[first:last]
    weights = {label: pd.concat(p) for label, p in pieces.items()}
    for label, w in weights.items():
        if not w.index.equals(test_bars_.index):  # walk_forward without step tiles the test range
            raise AssertionError(f"{label}: the test blocks' decisions do not tile the test range")
    order = [c.label for c in cands if c.name != BENCHMARK]
    bench_label = next(c.label for c in cands if c.name == BENCHMARK)
    setup = {"n_folds": len(wf), "horizon": horizon, "expanding": bool(expanding), "metric": metric,
             "ci_method": ci_method, "ci_level": level, "equal_weight_members": members, **engine_kw}
    if members:
        weights[MIX] = sum(weights[m].fillna(0.0) for m in members) / len(members)
        records[MIX] = [_fold_record(bars, f, False, None) for f in wf]
        order.append(MIX)
    else:
        setup["note"] = "equal_weight is left out: no decision-maker other than buy_and_hold was evaluated"
    order.append(bench_label)
    info = {c.label: c for c in cands}
    out: dict[str, StrategyResult] = {}
    cis = {}
    for label in order:
        w = weights[label]
        w = w.iloc[:, 0].rename("weight") if len(assets) == 1 else w
        res = run(test_bars_, w, **engine_kw)
        cis[label] = stats.sharpe_ci(res.returns.to_numpy(), method=ci_method, level=level, periods_per_year=ppy)
        for rec, m in zip(records[label], _per_fold_metrics(res, wf, first, ppy)):
            rec.update(m)
        c = info.get(label)
        out[label] = StrategyResult(label, c.name if c else MIX, c.params if c else {}, res, w, cis[label],
                                    records[label], "")
    bench = cis[bench_label]
    out = {label: s._replace(vs_benchmark="benchmark" if label == bench_label else _ci_side(s.ci, bench))
           for label, s in out.items()}
    return Evaluation(out, wf, test_bars_.index, horizon, setup)
