"""Training data of an expert: prompts, teacher and hindsight labels, rewards' prices, a purged time split.

For each bundled (or any) data spec, up to ``end``: one example per (bar, asset) with

* ``prompt``: the style's prompt (:mod:`experts.prompts`);
* ``teacher``: the per-asset position of the rule-based teacher of the same style (``backtest.rules``,
  default parameters, the 1/N sleeve undone) at bar t;
* ``hindsight``: the grid exposure with the best net return over the next H bars (``experts.rewards``; ties
  go to the smaller exposure);
* ``target``: the SFT label, the teacher's direction sized by hindsight: ``sign(teacher) * |teacher| * (1 -
  w + w * agree)`` where ``agree`` is 1 when the hindsight exposure has the teacher's sign (``w`` =
  ``hindsight_weight``), snapped to the grid with non-zero targets kept at least one step from 0. The
  teacher's direction (long / flat / short) is never changed, so agreement with the teacher is learnable;
  hindsight only lowers the size where the teacher's call went wrong;
* ``t``, ``exec_price``, ``mark_price``: where the example sits in the concatenated price arrays of all
  assets, for :func:`experts.rewards.horizon_rewards`; ``start`` the teacher's exposure at t-1.

Split by time: the last ``val_fraction`` of the dates (common to all assets) is validation; training rows
end ``horizon`` bars before the first validation date (the purge gap: no training label window overlaps the
validation period); rows whose H-bar window would leave the data are dropped.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

__all__ = ["ExpertData", "blend_targets", "build_dataset", "teacher_positions"]


class ExpertData(NamedTuple):
    """M examples (see the module docstring); arrays are (M,) unless said otherwise."""

    prompts: np.ndarray  # object (M,)
    teacher: np.ndarray
    hindsight: np.ndarray
    target: np.ndarray
    start: np.ndarray  # teacher exposure at t-1
    t: np.ndarray  # int rows into exec_price / mark_price
    split: np.ndarray  # 0 train, 1 validation
    exec_price: np.ndarray  # (L,) all assets concatenated
    mark_price: np.ndarray  # (L,)
    horizon: int
    fees: float
    slippage: float
    execution: str

    def subset(self, mask: np.ndarray) -> ExpertData:
        per_row = ("prompts", "teacher", "hindsight", "target", "start", "t", "split")
        return self._replace(**{k: getattr(self, k)[mask] for k in per_row})


def teacher_positions(style: str, bars, *, risk_budget: float = 0.15) -> np.ndarray:
    """The rule-based teacher's per-asset positions ``(T, N)`` (weights times N: the 1/N sleeve undone)."""
    import markets
    from backtest.decisions import decide

    params = {"target_vol": risk_budget} if style == "positioning" else {}
    w = np.asarray(decide(style, bars, params).weights, dtype=np.float64).reshape(len(bars), -1)
    return np.nan_to_num(w) * len(markets.assets(bars))


def blend_targets(teacher: np.ndarray, hindsight: np.ndarray, weight: float, levels: int = 10) -> np.ndarray:
    """SFT labels: the teacher's direction, its size lowered by ``weight`` where hindsight disagrees; snapped to
    the grid, non-zero labels at least one grid step from 0 (so the direction survives rounding)."""
    from experts.answers import snap

    if not 0.0 <= weight <= 1.0:
        raise ValueError(f"hindsight_weight must be in [0, 1], got {weight}")
    sign = np.sign(teacher)
    agree = (np.sign(hindsight) == sign).astype(np.float64)
    size = np.minimum(np.abs(teacher), 1.0) * (1.0 - weight + weight * agree)
    out = snap(sign * size, levels)
    step = 1.0 / levels
    return np.where((sign != 0) & (out == 0), sign * step, out) + 0.0


def _best_exposure(exec_price, mark_price, t, start, horizon, *, fees, slippage, execution, levels) -> np.ndarray:
    from experts.answers import answer_grid
    from experts.rewards import horizon_rewards

    grid = answer_grid(levels)  # (K,)
    K = len(grid)
    rewards = horizon_rewards(exec_price, mark_price, np.repeat(t, K), np.tile(grid, len(t)), horizon,
                              fees=fees, slippage=slippage, start_exposure=np.repeat(start, K),
                              execution=execution).reshape(len(t), K)
    # ties (e.g. flat markets) go to the smallest |exposure|: order candidates by |h|
    order = np.argsort(np.abs(grid), kind="stable")
    return grid[order][np.argmax(rewards[:, order], axis=1)]


def build_dataset(style: str, specs: Sequence[str], *, end: str | None = "2014-12-31", horizon: int = 5,
                  fees: float = 0.001, slippage: float = 0.0, execution: str = "next_open",
                  val_fraction: float = 0.2, hindsight_weight: float = 0.5, risk_budget: float = 0.15,
                  levels: int = 10) -> ExpertData:
    """Examples of ``style`` from every spec in ``specs`` up to ``end`` (see the module docstring)."""
    import markets
    from experts.prompts import build_prompts

    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
    if horizon < 1:
        raise ValueError(f"horizon must be >= 1 bar, got {horizon}")
    frames = [markets.load(spec, end=end) for spec in specs]
    dates = np.unique(np.concatenate([f.index.asi8 for f in frames]))
    cutoff = dates[int(len(dates) * (1.0 - val_fraction))]
    parts: dict[str, list] = {k: [] for k in ("prompts", "teacher", "start", "t", "split", "exec", "mark")}
    offset = 0
    for bars in frames:
        pr = build_prompts(style, bars, risk_budget=risk_budget).text  # (T, N)
        teach = teacher_positions(style, bars, risk_budget=risk_budget)  # (T, N)
        opens = markets.fields(bars, "open").to_numpy(dtype=np.float64)
        closes = markets.fields(bars, "close").to_numpy(dtype=np.float64)
        exec_p = opens if execution == "next_open" else closes
        T, N = pr.shape
        pos = np.arange(T)
        first_val = int(np.searchsorted(bars.index.asi8, cutoff))
        train = (pos >= 1) & (pos + horizon < first_val)
        val = (pos >= first_val) & (pos + horizon <= T - 1)
        prev = np.vstack([np.zeros((1, N)), teach[:-1]])
        for j in range(N):
            keep = train | val
            rows = pos[keep]
            parts["prompts"].append(pr[rows, j])
            parts["teacher"].append(teach[rows, j])
            parts["start"].append(prev[rows, j])
            parts["t"].append(rows + offset)
            parts["split"].append(val[rows].astype(np.int8))
            parts["exec"].append(exec_p[:, j])
            parts["mark"].append(closes[:, j])
            offset += T
    cat = {k: np.concatenate(v) for k, v in parts.items()}
    hind = _best_exposure(cat["exec"], cat["mark"], cat["t"], cat["start"], horizon, fees=fees,
                          slippage=slippage, execution=execution, levels=levels)
    return ExpertData(
        prompts=cat["prompts"].astype(object), teacher=cat["teacher"], hindsight=hind,
        target=blend_targets(cat["teacher"], hind, hindsight_weight, levels), start=cat["start"],
        t=cat["t"].astype(np.int64), split=cat["split"], exec_price=cat["exec"], mark_price=cat["mark"],
        horizon=horizon, fees=fees, slippage=slippage, execution=execution,
    )
