"""No look-ahead, for EVERY registered decision-maker: rule-based, learned and plugins alike.

The parameter list is read from the registry at collection time (``backtest.decisions.names()``, which loads
the ``drex.plugins`` entry points: the test plugin package, and experts/router once installed), so a new
decision-maker is covered the moment it registers. Each runs with its default parameters on the last bars of
its ``example_spec``; ``backtest.lookahead.analyze`` truncates and perturbs the history at 8 cut points and
checks newest-bar decisions (``decide(bars, start=k)``). Toy decision-makers that tests register for
themselves (source ``tests.*``) are left out; a planted look-ahead one must be caught at every cut.
"""
from __future__ import annotations

import functools

import numpy as np
import pandas as pd
import pytest

from backtest import decisions
from backtest.lookahead import analyze, default_cuts

N_BARS = 300


def _covered() -> list[str]:
    return [e.name for e in decisions.entries() if not e.source.startswith("tests.")]


@functools.cache
def _bars(spec: str) -> pd.DataFrame:
    import markets

    return markets.load(spec).iloc[-N_BARS:]


@pytest.mark.parametrize("name", _covered())
def test_registered_decision_maker_has_no_lookahead(name):
    entry = decisions.get(name)
    bars = _bars(entry.example_spec)
    report = analyze(name, bars, warmup_starts=[])
    assert report.ok, report.summary()
    assert len(report.cuts) >= 8


def test_the_registry_covers_the_project_and_installed_plugins():
    covered = set(_covered())
    assert {"trend", "reversal", "breakout", "positioning", "buy_and_hold", "plugin_ema"} <= covered


def _planted(bars: pd.DataFrame, *, lead: int = 1) -> decisions.Decision:
    """Long when TOMORROW's close is higher: a look-ahead bug of the classic kind (shift(-1))."""
    close = bars["close"]
    w = (close.shift(-lead) > close).astype(float).rename("weight")
    return decisions.Decision(w, pd.DataFrame({"next_close": close.shift(-lead)}))


def test_a_planted_lookahead_is_caught_at_every_cut(monkeypatch):
    entry = decisions.Entry("planted", _planted, decisions.ParamSpace({}, owner="planted"), source="tests.planted")
    monkeypatch.setitem(decisions._REGISTRY, "planted", entry)
    bars = _bars("sample:SP500")
    report = analyze("planted", bars, warmup_starts=[])
    assert not report.ok
    cuts = default_cuts(len(bars))
    for check in ("truncated", "perturbed"):
        caught = {f.cut for f in report.violations if f.check == check}
        assert caught == set(cuts), (check, sorted(set(cuts) - caught))
    first = next(f for f in report.violations if f.check == "perturbed")
    assert first.row == first.cut  # the decision AT the cut moved: it read the bar after it
    assert "LOOK-AHEAD" in report.summary()


def test_warmup_dependence_is_reported_not_failed():
    bars = _bars("sample:SP500")
    ema = analyze("trend", bars, params={"ma": "ema", "fast": 5, "slow": 60}, cuts=[10])
    assert ema.ok and ema.warmup  # an EMA remembers its start: reported as warm-up dependence
    sma = analyze("trend", bars, params={"fast": 5, "slow": 30}, cuts=[10])
    assert sma.ok and not sma.warmup  # a 30-bar SMA forgets everything older than 30 bars
    assert np.isfinite(len(sma.cuts))
