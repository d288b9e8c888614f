"""Shared helpers of the paper-trading tests (no tests here): synthetic bars, configs, a multi-asset strategy.

Imported by the test modules and, as a config ``plugins`` entry, by the ``python -m app.paper.cli``
subprocesses, which is how the ``paper_test_rotation`` strategy gets registered there.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import ClassVar

import numpy as np
import pandas as pd
import yaml

import markets
from backtest import decisions
from backtest.decisions import Decision, Param, trace_frame

REPO = Path(__file__).resolve().parents[2]
START = pd.Timestamp("2024-01-01", tz="UTC")


def make_bars(n: int = 40, *, seed: int = 0, assets: tuple[str, ...] = (), freq: str = "1h") -> pd.DataFrame:
    """Seeded random-walk OHLCV bars, canonical format; several ``assets`` give a multi-asset frame."""
    rng = np.random.default_rng(seed)
    index = pd.date_range(START, periods=n, freq=freq, tz="UTC", name="timestamp")

    def one() -> pd.DataFrame:
        close = 100.0 * np.exp(np.cumsum(rng.normal(0.0, 0.02, n)))
        open_ = close * np.exp(rng.normal(0.0, 0.01, n))
        high = np.maximum(open_, close) * (1.0 + rng.uniform(0.0, 0.01, n))
        low = np.minimum(open_, close) * (1.0 - rng.uniform(0.0, 0.01, n))
        vol = rng.uniform(1e3, 1e4, n)
        return pd.DataFrame({"open": open_, "high": high, "low": low, "close": close, "volume": vol}, index=index)

    if not assets:
        frame = one()
        frame.attrs["symbol"] = "TEST"
        return frame
    frame = pd.concat({a: one() for a in assets}, axis=1, names=["asset", "field"])
    return frame


def write_bars(path: Path, bars: pd.DataFrame) -> Path:
    bars.to_parquet(path)
    return path


def write_config(tmp: Path, bars_path: Path, **overrides) -> Path:
    cfg = {
        "strategy": "trend",
        "params": {"fast": 3, "slow": 8},
        "data": f"file:{bars_path}",
        "interval": "1h",
        "initial_cash": 10_000.0,
        "fees": 0.001,
        "slippage": 0.0005,
        "mode": "replay",
    }
    cfg.update(overrides)
    path = tmp / "paper.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def cli(*args: str, home: Path, timeout: float = 60) -> subprocess.CompletedProcess:
    """``python -m app.paper.cli ARGS`` in a subprocess with ``DREX_HOME=home``."""
    env = {**os.environ, "DREX_HOME": str(home)}  # PYTHONPATH: the repo and the test plugin (tests/conftest.py)
    return subprocess.run([sys.executable, "-m", "app.paper.cli", *args], check=False, cwd=REPO, env=env, text=True,
                          capture_output=True, timeout=timeout)


def ledger_rows(ledger, name: str) -> dict[str, list[tuple]]:
    """Every table of a run without wall-clock columns, as sorted tuples (for exact comparisons)."""
    out = {
        "decisions": ledger.decisions(name).assign(explanation=lambda f: f["explanation"].map(repr)),
        "orders": ledger.orders(name),
        "fills": ledger.fills(name),
        "positions": ledger.positions(name),
        "snapshots": ledger.equity_curve(name).reset_index(),
    }
    return {k: sorted(map(tuple, v.astype(object).itertuples(index=False))) for k, v in out.items()}


def rotation(bars: pd.DataFrame, *, lookback: int = 3) -> Decision:
    """Hold (weight 0.9) the asset with the best ``lookback``-bar return, flat during warm-up.

    Works on single-asset bars too (it is in the global registry while the app tests run: every registered
    strategy must render on the dashboard's default single-asset data). Trace per asset: the lookback return.
    """
    close = markets.fields(bars, "close")
    ret = close / close.shift(lookback) - 1.0
    best = ret.to_numpy().argmax(axis=1)
    weights = np.zeros(close.shape)
    weights[np.arange(len(close)), best] = 0.9
    weights[ret.isna().any(axis=1).to_numpy()] = np.nan
    out = pd.DataFrame(weights, index=bars.index, columns=close.columns.astype(str))
    w = out if isinstance(bars.columns, pd.MultiIndex) else out.iloc[:, 0]
    return Decision(w, trace_frame(bars, {"ret": ret.to_numpy()}))


if "paper_test_rotation" not in decisions._REGISTRY:
    decisions.register("paper_test_rotation", params={"lookback": Param(3, low=1, doc="return lookback")})(rotation)


class SlowTrend(decisions.DecisionMaker):
    """``trend`` that takes ``seconds`` per decide call: keeps a tick busy so concurrency tests can race it."""

    params: ClassVar[dict] = {"seconds": Param(2.0, low=0.0, doc="sleep per decide call")}

    def decide(self, bars: pd.DataFrame, *, start: int = 0) -> Decision:
        import time

        time.sleep(self.config["seconds"])
        return decisions.decide("trend", bars, {"fast": 3, "slow": 8}, start=start)


if "paper_test_slow" not in decisions._REGISTRY:
    decisions.register("paper_test_slow")(SlowTrend)
