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


def test_every_changed_bar_is_reported_not_only_the_first(monkeypatch):
    """Looking 3 bars ahead changes the last 3 decided bars before each cut (truncated: the future is missing;
    perturbed: the future is different): all of them are reported, with every changed column."""
    entry = decisions.Entry("planted3", functools.partial(_planted, lead=3), decisions.ParamSpace({}, owner="p3"),
                            source="tests.planted")
    monkeypatch.setitem(decisions._REGISTRY, "planted3", entry)
    bars = _bars("sample:SP500")
    report = analyze("planted3", bars, warmup_starts=[])
    T = len(bars)
    for t in report.cuts:  # rows t-2..t read bars after t; those with r + 3 > T - 1 read nothing in either run
        want = {r for r in range(max(0, t - 2), t + 1) if r + 3 <= T - 1}
        truncated = {f.row for f in report.violations if f.check == "truncated" and f.cut == t}
        assert truncated == want, t  # next_close is NaN there without the future: always differs
        perturbed = [f for f in report.violations if f.check == "perturbed" and f.cut == t]
        assert {f.row for f in perturbed} == want, t
        assert all("next_close" in f.columns and f.delta > 0 for f in perturbed)
        assert len(want) == min(3, t + 1) or t == T - 2
    assert report.bars == sorted({r for t in report.cuts for r in range(max(0, t - 2), t + 1) if r + 3 <= T - 1})

def test_a_future_statistic_changes_every_bar_before_the_cut(monkeypatch):
    """Normalizing by the full-sample mean (a classic leak) changes every bar up to each cut; all are listed."""
    def leak(bars):
        close = bars["close"]
        w = (close > close.mean()).astype(float).rename("weight")
        return decisions.Decision(w, pd.DataFrame({"mean": close * 0 + close.mean()}))

    entry = decisions.Entry("leak", leak, decisions.ParamSpace({}, owner="leak"), source="tests.leak")
    monkeypatch.setitem(decisions._REGISTRY, "leak", entry)
    bars = _bars("sample:SP500")
    report = analyze("leak", bars, cuts=[50, 200], warmup_starts=[], newest=False)
    for t in (50, 200):
        rows = {f.row for f in report.violations if f.check == "perturbed" and f.cut == t}
        assert rows == set(range(t + 1))
