"""How much of a sweep's best result is selection luck: the deflated Sharpe ratio and PBO of a sweep.

``sweep_overfitting(table, bars, "trend")`` takes the table ``backtest.sweep`` returned (parameter columns +
metric columns, one row per valid combination) and the same bars and costs, and computes

* the **deflated Sharpe ratio** (Bailey & Lopez de Prado 2014, ``backtest.stats.deflated_sharpe_ratio``) of
  the best combination (the top row by ``metric``: the one the sweep shows first): the probability that its
  true Sharpe ratio beats the expected best of ``N`` skill-less trials, with ``N`` = every combination with a
  defined Sharpe ratio (zero-volatility ones are left out, as in ``stats.deflated_sharpe``), ``V`` = the
  variance of their per-bar Sharpe ratios (from the table's ``sharpe`` column, so the whole grid counts however
  large it is) and the skewness/kurtosis of the best combination's per-bar returns;
* the **probability of backtest overfitting** (``backtest.stats.pbo``, CSCV with 16 partitions, Sharpe
  ratio) over the per-bar returns of the combinations. Grids larger than ``max_trials`` (1,000) use a seeded
  subset: the best combination plus ``max_trials - 1`` others drawn without replacement by
  ``numpy.random.default_rng(seed)`` (``seed=0``), so the same sweep always gives the same PBO.

Per-bar returns are re-simulated here for the combinations that need them (the best one, the PBO set) from
the decision-maker's registered batched function or its ``decide``, through ``backtest.run`` with the same
costs: this works whatever the sweep kernel keeps in memory. A re-simulated Sharpe ratio must equal the table's
(checked: a table from other bars or costs is refused).
"""
from __future__ import annotations

import math
from typing import Any, NamedTuple

import numpy as np

__all__ = ["SweepOverfitting", "combination_returns", "sweep_overfitting"]

MAX_TRIALS = 1000
_BLOCK = 128  # combinations simulated per backtest.run call (bounds the (P, T, N) temporaries)


class SweepOverfitting(NamedTuple):
    """Overfitting statistics of a sweep (``sweep_overfitting``).

    best: parameters of the selected (top) combination. deflated: ``backtest.stats.DeflatedSharpe`` of it
    (``dsr``, annualized ``sharpe`` and ``sr0``, ``n_trials``, ``var_trials`` per bar, ``skew``, ``kurtosis``,
    ``n_obs``). pbo: ``backtest.stats.PBOResult`` or None (fewer than 2 combinations, or too few bars for the
    partitions). n_combinations: rows of the sweep table. n_pbo_trials: combinations in the PBO (all, or the
    seeded subset). seed: the subset's seed. note: one line on what was left out, or "".
    """

    best: dict[str, Any]
    deflated: Any
    pbo: Any
    n_combinations: int
    n_pbo_trials: int
    seed: int
    note: str

    def lines(self) -> list[str]:
        """Two lines for people (the CLI and the dashboard show them under the sweep table)."""
        d = self.deflated
        verdict = "passes the 0.95 bar" if d.dsr >= 0.95 else "below the 0.95 bar: not a discovery"
        out = [(f"deflated Sharpe ratio of the best: {_f(d.dsr)} ({verdict}); its Sharpe {_f(d.sharpe)} vs "
                f"{_f(d.sr0)} expected from the best of {int(d.n_trials)} skill-less trials (returns skew "
                f"{_f(d.skew)}, kurtosis {_f(d.kurtosis)})")]
        if self.pbo is None:
            out.append(f"probability of backtest overfitting: n/a ({self.note or 'needs 2 or more combinations'})")
        else:
            p = self.pbo
            subset = (f"a seeded subset of {self.n_pbo_trials} of {self.n_combinations} combinations"
                      if self.n_pbo_trials < self.n_combinations else f"{self.n_pbo_trials} combinations")
            out.append(f"probability of backtest overfitting: {_f(p.pbo)} (CSCV, {p.n_partitions} partitions, "
                       f"{subset}): the in-sample best is at or below the out-of-sample median in "
                       f"{_pct(p.pbo)} of {len(p.logits):,} splits and loses money out of sample in "
                       f"{_pct(p.prob_loss)}")
        return out

    def to_json(self) -> dict[str, Any]:
        """Flat JSON-able summary (``dsr``, ``sharpe``, ``sr0``, ``n_trials``, ``pbo``, ``prob_loss`` ...)."""
        from backtest.jsonable import jsonable

        d, p = self.deflated, self.pbo
        return jsonable({"best": self.best, "dsr": d.dsr, "sharpe": d.sharpe, "sr0": d.sr0, "n_trials": d.n_trials,
                         "var_trials": d.var_trials, "skew": d.skew, "kurtosis": d.kurtosis, "n_obs": d.n_obs,
                         "pbo": None if p is None else p.pbo, "prob_loss": None if p is None else p.prob_loss,
                         "pbo_partitions": None if p is None else p.n_partitions,
                         "n_combinations": self.n_combinations, "n_pbo_trials": self.n_pbo_trials,
                         "seed": self.seed, "note": self.note})


def _f(x: float) -> str:
    return "n/a" if x is None or not math.isfinite(x) else f"{x:.3g}"


def _pct(x: float) -> str:
    return "n/a" if x is None or not math.isfinite(x) else f"{100 * x:.0f}%"


def _param_columns(table: Any, entry: Any) -> list[str]:
    cols = [c for c in table.columns if c in entry.space.params]
    if not cols:
        raise ValueError(f"the sweep table has no parameter columns of {entry.name!r} (columns: "
                         f"{', '.join(map(str, table.columns))}); pass the table backtest.sweep returned")
    return cols


def _py(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def _plain(table: Any) -> Any:
    """A shallow copy of a sweep table without its ``attrs``: pandas deep-copies ``attrs`` on every column
    access, and a sweep's attrs list every dropped combination (seconds over a large grid)."""
    out = table.copy(deep=False)
    out.attrs = {}
    return out


def _combos(table: Any, cols: list[str], rows: np.ndarray) -> list[dict[str, Any]]:
    """The parameter dicts of the table's ``rows`` (positions), as Python values."""
    values = {c: table[c].to_numpy() for c in cols}
    return [{c: _py(values[c][int(r)]) for c in cols} for r in rows]


def _weights(entry: Any, bars: Any, combos: list[dict[str, Any]], n_assets: int) -> np.ndarray:
    """``(P, T, N)`` weights of ``combos`` from the batched function, or stacked ``decide`` calls."""
    from backtest.decisions import build, decide

    T = len(bars.index)
    if entry.batched is not None:
        arrays = {k: np.asarray([c[k] for c in combos]) for k in combos[0]}
        out = entry.batched(bars, **arrays)
        w = np.asarray(out.weights if hasattr(out, "weights") else out, dtype=np.float64)
        return w.reshape(len(combos), T, n_assets)
    rows = []
    for combo in combos:
        w = decide(build(entry.name, combo), bars).weights
        rows.append(np.asarray(w, dtype=np.float64).reshape(T, n_assets))
    return np.stack(rows)


def combination_returns(table: Any, bars: Any, strategy: str, rows: Any, **engine_kw: Any) -> np.ndarray:
    """Per-bar returns ``(T, len(rows))`` of the sweep table's ``rows`` (positions), re-simulated through
    ``backtest.run`` with ``engine_kw`` (the sweep's costs and options)."""
    from backtest.decisions import get
    from backtest.engine import run
    from markets.frames import assets

    entry = get(strategy)
    table = _plain(table)
    cols = _param_columns(table, entry)
    rows = np.asarray(rows, dtype=np.int64)
    n_assets = len(assets(bars))
    out = np.empty((len(bars.index), rows.size))
    for a in range(0, rows.size, _BLOCK):
        block = rows[a:a + _BLOCK]
        w = _weights(entry, bars, _combos(table, cols, block), n_assets)
        res = run(bars, w, **engine_kw)
        out[:, a:a + block.size] = res.returns.to_numpy()
    return out


def sweep_overfitting(table: Any, bars: Any, strategy: str, *, metric: str = "sharpe", ascending: bool = False,
                      fees: float = 0.0, slippage: float = 0.0, execution: str = "next_open",
                      init_cash: float = 1.0, periods_per_year: float | None = None, leverage: float | None = None,
                      max_trials: int = MAX_TRIALS, partitions: int = 16, seed: int = 0) -> SweepOverfitting:
    """Deflated Sharpe ratio of the best combination and PBO of a sweep (module docstring).

    table: ``backtest.sweep(strategy, grid, bars, ...)``'s result (needs its parameter columns and ``sharpe``).
    bars, fees ... leverage: exactly what the sweep used (``periods_per_year`` defaults to
    ``table.attrs["periods_per_year"]``). metric, ascending: the ranking that selects the best combination.
    max_trials: the most combinations in the PBO (a seeded subset above it). partitions: CSCV's ``S``.
    """
    from backtest import stats
    from backtest.decisions import get

    entry = get(strategy)
    attrs_ppy = table.attrs.get("periods_per_year")
    table = _plain(table)
    for col in ("sharpe", metric):
        if col not in table.columns:
            raise ValueError(f"the sweep table has no {col!r} column; pass the table backtest.sweep returned")
    P = len(table)
    if P < 2:
        raise ValueError(f"the deflated Sharpe ratio and PBO compare combinations; this sweep has {P} "
                         "(widen the grid)")
    if int(max_trials) < 2:
        raise ValueError(f"max_trials must be >= 2, got {max_trials}")
    ppy = periods_per_year or attrs_ppy
    if not ppy:
        from backtest.metrics import infer_periods_per_year

        ppy = infer_periods_per_year(bars.index)
    ppy = float(ppy)
    engine_kw = {"fees": fees, "slippage": slippage, "execution": execution, "init_cash": init_cash,
                 "periods_per_year": ppy, "leverage": leverage}
    values = table[metric].to_numpy(dtype=np.float64)
    key = np.where(np.isnan(values), np.inf if ascending else -np.inf, values)
    best = int(np.argmin(key) if ascending else np.argmax(key))  # the first on ties, as a stable sort
    sharpe = table["sharpe"].to_numpy(dtype=np.float64)
    ok = np.isfinite(sharpe)
    if ok.sum() < 2:
        raise ValueError(f"only {int(ok.sum())} combination(s) have a defined Sharpe ratio (the others never "
                         "trade); the deflated Sharpe ratio needs 2 or more")
    if not ok[best]:
        raise ValueError("the best combination never trades (its Sharpe ratio is undefined); rank by another "
                         "metric or widen the grid")
    notes = []
    if P > max_trials:
        others = np.delete(np.arange(P), best)
        picked = np.random.default_rng(seed).choice(others, size=int(max_trials) - 1, replace=False)
        rows = np.concatenate([[best], np.sort(picked)])
        notes.append(f"PBO on a seeded subset (seed {seed}) of {max_trials} of {P} combinations")
    else:
        rows = np.arange(P)
    R = combination_returns(table, bars, strategy, rows, **engine_kw)  # (T, len(rows)); column 0 or best
    col = int(np.flatnonzero(rows == best)[0])
    got = stats.sharpe_ratio(R[:, col], periods_per_year=ppy)
    if not np.isclose(got, sharpe[best], rtol=1e-6, atol=1e-9):
        raise ValueError(f"the re-simulated Sharpe ratio of the best combination ({got:.6g}) differs from the "
                         f"table's ({sharpe[best]:.6g}); pass the bars and costs the sweep used")
    sr = sharpe[ok] / math.sqrt(ppy)  # per-bar Sharpe ratios of every trial that has one
    deflated = _deflated(R[:, col], float(sharpe[best]), float(ok.sum()), float(np.var(sr, ddof=1)), ppy, best)
    pbo = None
    T = R.shape[0]
    if T // partitions * partitions // 2 >= 2:
        pbo = stats.pbo(R, partitions=partitions, periods_per_year=ppy)
    else:
        notes.append(f"{T} bars are too few for {partitions} CSCV partitions")
    best_params = _combos(table, _param_columns(table, entry), np.array([best]))[0]
    return SweepOverfitting(best_params, deflated, pbo, P, rows.size, int(seed), "; ".join(notes))


def _deflated(r: np.ndarray, sharpe_ann: float, n_trials: float, var_trials: float, ppy: float, best: int):
    """``stats.DeflatedSharpe`` from summary statistics (``V`` per bar) and the best's returns ``r (T,)``."""
    from backtest import stats

    a = math.sqrt(ppy)
    m = r - r.mean()
    m2 = float(np.mean(m * m))
    g3 = float(np.mean(m ** 3) / m2 ** 1.5)
    g4 = float(np.mean(m ** 4) / m2 ** 2)
    sr0 = stats.expected_max_sharpe(n_trials, var_trials)
    dsr = stats.deflated_sharpe_ratio(sharpe_ann, r.size, n_trials=n_trials, var_trials=var_trials * ppy,
                                      skew=g3, kurtosis=g4, periods_per_year=ppy)
    return stats.DeflatedSharpe(float(dsr), int(best), sharpe_ann, sr0 * a, var_trials, n_trials, g3, g4, r.size)
