"""Read RL training runs for the training monitor (no Streamlit here).

A run is a folder ``<runs_root>/<run-name>/`` (or ``<runs_root>/<group>/<run-name>/``, named
``group/run-name``) holding ``metrics.jsonl`` (one JSON object per optimizer step,
written by ``rl.trainer``) and usually ``config.json``. ``runs_root`` defaults to
``markets.home.data_home("runs")``. A run being written may end in a partial line: it is ignored (and
reported), as is any other line that is not a JSON object (reported by line number).
"""
from __future__ import annotations

import fnmatch
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

__all__ = [
    "METRIC_GROUPS",
    "RunMetrics",
    "group_columns",
    "list_runs",
    "read_config",
    "read_metrics",
    "smooth",
]

METRICS_FILE = "metrics.jsonl"
CONFIG_FILE = "config.json"

#: Chart title -> glob patterns of metric keys, in display order (a key lands in its first matching group).
METRIC_GROUPS: dict[str, tuple[str, ...]] = {
    "Reward": ("reward/mean", "reward/std", "reward/*"),
    "Entropy": ("entropy",),
    "Entropy change": ("entropy/change", "entropy/*"),
    "Clip fractions": ("clipfrac_low", "clipfrac_high", "clipfrac*"),
    "KL": ("approx_kl", "kl", "kl/*"),
    "Covariance": ("cov/*", "*_cov/*", "*cov*"),
    "Gradient norm": ("grad_norm",),
    "Throughput": ("tokens_per_s",),
}


@dataclass(frozen=True)
class RunMetrics:
    """One run's metrics: ``frame`` (S steps x K numeric metric columns) indexed by ``step``.

    ``partial_tail``: the last line was incomplete (run still being written) and was skipped.
    ``bad_lines``: 1-based numbers of other lines that were not JSON objects (skipped).
    """

    name: str
    frame: pd.DataFrame
    config: dict[str, Any] = field(default_factory=dict)
    partial_tail: bool = False
    bad_lines: tuple[int, ...] = ()


def _runs_root(root: str | Path | None) -> Path:
    if root is not None:
        return Path(root)
    from markets.home import data_home

    return data_home("runs")


def list_runs(root: str | Path | None = None) -> list[str]:
    """Names of run folders under ``root`` that contain ``metrics.jsonl``, most recently updated first.

    A run is ``<root>/<name>/`` or one level deeper, ``<root>/<group>/<name>/`` (named ``group/name``): a
    command that trains several models at once writes one run per model into its output folder (``drex train
    experts --expert all --out runs/x`` writes ``runs/x/trend``, ``runs/x/reversal``, ...).
    """
    base = _runs_root(root)
    if not base.is_dir():
        return []
    runs: list[tuple[Path, str]] = []
    for p in base.iterdir():
        if not p.is_dir():
            continue
        if (p / METRICS_FILE).is_file():
            runs.append((p, p.name))
        runs.extend((c, f"{p.name}/{c.name}") for c in p.iterdir() if c.is_dir() and (c / METRICS_FILE).is_file())
    runs.sort(key=lambda r: ((r[0] / METRICS_FILE).stat().st_mtime_ns, r[1]), reverse=True)
    return [name for _, name in runs]


def read_config(run_dir: str | Path) -> dict[str, Any]:
    """The run's ``config.json`` as a dict (``{}`` when absent); a malformed file raises ``ValueError``."""
    path = Path(run_dir) / CONFIG_FILE
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno}); fix or delete it") from None
    return data if isinstance(data, dict) else {"config": data}


def _to_float(value: Any) -> float:
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):  # "nan", "inf" written by some loggers
        try:
            return float(value)
        except ValueError:
            return math.nan
    return math.nan


def read_metrics(run_dir: str | Path, *, name: str | None = None) -> RunMetrics:
    """Parse ``<run_dir>/metrics.jsonl`` into a ``RunMetrics``.

    Rows are steps (``step`` key, else the line's position), sorted by step; a step logged twice (a resumed
    run) keeps its last record. Columns are every key that is numeric in at least one record; non-numeric
    values become NaN. Raises ``FileNotFoundError`` naming the path when the file is missing.
    """
    run_dir = Path(run_dir)
    path = run_dir / METRICS_FILE
    if not path.is_file():
        raise FileNotFoundError(f"no {METRICS_FILE} in {run_dir}; is this a training run folder?")
    raw = path.read_bytes()
    lines = raw.split(b"\n")
    ends_clean = raw.endswith(b"\n") or not raw
    records: list[dict[str, Any]] = []
    bad: list[int] = []
    partial = False
    last = len(lines) - 1
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except (json.JSONDecodeError, UnicodeDecodeError):
            obj = None
        if not isinstance(obj, dict):
            if i == last and not ends_clean:
                partial = True
            else:
                bad.append(i + 1)
            continue
        records.append(obj)
    keys: list[str] = []  # every scalar key, first-seen order; all-NaN columns are dropped below
    for rec in records:
        keys.extend(k for k, v in rec.items() if isinstance(v, (int, float, str)) and k not in keys)
    data = {k: [_to_float(rec.get(k)) for rec in records] for k in keys}
    frame = pd.DataFrame(data, dtype="float64")
    frame = frame.loc[:, frame.notna().any(axis=0)] if len(frame) else frame
    if "step" in frame.columns:
        steps = frame.pop("step")
        if steps.isna().any():
            first = int(steps.isna().to_numpy().argmax())
            raise ValueError(f"{path}: record {first + 1} has no numeric 'step'; every line needs one")
        frame.index = pd.Index(steps.astype("int64"), name="step")
    else:
        frame.index = pd.RangeIndex(len(frame), name="step")
    frame = frame[~frame.index.duplicated(keep="last")].sort_index()
    return RunMetrics(name or run_dir.name, frame, read_config(run_dir), partial, tuple(bad))


def group_columns(columns: list[str] | pd.Index) -> dict[str, list[str]]:
    """Assign metric keys to ``METRIC_GROUPS`` (first match wins); unmatched keys go to ``"Other"``."""
    out: dict[str, list[str]] = {g: [] for g in METRIC_GROUPS}
    out["Other"] = []
    for col in columns:
        for group, patterns in METRIC_GROUPS.items():
            if any(col == p or fnmatch.fnmatchcase(col, p) for p in patterns):
                out[group].append(col)
                break
        else:
            out["Other"].append(col)
    return {g: cols for g, cols in out.items() if cols}


def smooth(frame: pd.DataFrame, weight: float) -> pd.DataFrame:
    """TensorBoard-style exponential smoothing: ``s_t = w s_{t-1} + (1 - w) x_t`` (bias-corrected, NaN-aware).

    ``weight`` in [0, 1); 0 returns ``frame`` unchanged.
    """
    if not 0.0 <= weight < 1.0:
        raise ValueError(f"smoothing weight must be in [0, 1), got {weight}")
    if weight == 0.0:
        return frame
    return frame.ewm(alpha=1.0 - weight, adjust=True, ignore_na=True).mean()
