"""The routed strategy ``drex``: the projection, the decision's internal consistency, newest-bar decisions,
several assets, expert sets with text answers, and the backtest path."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import markets
import router.plugin  # noqa: F401  (registers "drex" until the drex.plugins entry point is installed)
from backtest import decisions
from backtest.decisions import Decision, build, decide, trace_record
from backtest.runner import run_strategy
from router.experts import EXPERT_SETS, label, parse_experts
from router.strategy import project, resolve_router


@pytest.fixture(scope="module")
def bars():
    return markets.load("sample:SP500").iloc[-300:]


@pytest.fixture(scope="module")
def full(bars):
    return decide("drex", bars)


def test_project_by_hand():
    raw = np.array([[0.5, 0.7], [0.6, -0.2], [-0.3, 0.1], [1.5, 0.0]])
    np.testing.assert_allclose(project(raw, gross_cap=1.0, long_only=False, turnover_penalty=0.0),
                               [[0.5 / 1.2, 0.7 / 1.2], [0.6, -0.2], [-0.3, 0.1], [1.0, 0.0]])
    np.testing.assert_allclose(project(raw, gross_cap=10.0, long_only=True, turnover_penalty=0.0),
                               [[0.5, 0.7], [0.6, 0.0], [0.0, 0.1], [1.5, 0.0]])
    # turnover penalty 0.2: p_t = p_{t-1} + sign(d) max(|d| - 0.2, 0) per asset, from 0
    want = np.array([[0.3, 0.5], [0.4, 0.0], [-0.1, 0.0], [1.3, 0.0]])
    np.testing.assert_allclose(project(raw, gross_cap=10.0, long_only=False, turnover_penalty=0.2), want)


def test_decision_is_the_projected_weighted_sum(bars, full):
    tr = full.trace
    labels = [label(s) for s in EXPERT_SETS["llm"]]
    w = tr[[f"w_{k}" for k in labels]].to_numpy()
    h = tr[[f"h_{k}" for k in labels]].to_numpy()
    np.testing.assert_allclose(w.sum(1), 1.0, rtol=1e-12)
    np.testing.assert_allclose(tr["raw"], (w * h).sum(1), rtol=1e-12)
    np.testing.assert_array_equal(full.weights.to_numpy(), tr["position"].to_numpy())
    np.testing.assert_allclose(tr["position"], project(tr[["raw"]].to_numpy(), gross_cap=1.0, long_only=False,
                                                       turnover_penalty=0.0)[:, 0])
    # the shipped default routes over the LLM experts; checkpoint=rules over the long/short rule experts
    expert = decide("expert:trend", bars).weights
    np.testing.assert_array_equal(tr["h_trend"].to_numpy(), expert.fillna(0).to_numpy())
    rules = decide("drex", bars, {"checkpoint": "rules"}).trace
    teacher = decide("trend", bars, {"mode": "long_short", "fast": 5, "slow": 20}).weights
    np.testing.assert_array_equal(rules["h_trend"].to_numpy(), teacher.fillna(0).to_numpy())
    assert not np.array_equal(rules["w_trend"].to_numpy(), tr["w_trend"].to_numpy())  # two different routers
    regimes = ["up", "down", "sideways", "breakout"]
    probs = tr[[f"p_{r}" for r in regimes]].to_numpy()
    assert (tr["regime"].to_numpy() == np.array(regimes)[probs.argmax(1)]).all()
    assert tr["chart_last"].iloc[-1] == bars.index[-1].isoformat()
    assert tr["chart_first"].iloc[-1] == bars.index[-64].isoformat()
    rec = trace_record(tr, 299)
    assert rec["regime"] in regimes and isinstance(rec["w_trend"], float)


@pytest.mark.parametrize("params", [{}, {"turnover_penalty": 0.1, "long_only": True, "gross_cap": 0.5}])
def test_newest_rows_equal_the_full_history(bars, params):
    ref = decide("drex", bars, params)
    for k in (1, 150, 299):
        part = decide("drex", bars, params, start=k)
        pd.testing.assert_series_equal(part.weights, ref.weights.iloc[k:])
        pd.testing.assert_frame_equal(part.trace, ref.trace.iloc[k:])


def test_constraints_hold_and_the_band_cuts_turnover(bars, full):
    capped = decide("drex", bars, {"gross_cap": 0.3, "long_only": True}).weights
    assert capped.max() <= 0.3 + 1e-12 and capped.min() >= 0.0
    banded = decide("drex", bars, {"turnover_penalty": 0.2})
    assert banded.weights.diff().abs().sum() < full.weights.diff().abs().sum()
    raw = banded.trace[["raw"]].to_numpy()
    np.testing.assert_allclose(banded.weights.to_numpy(),
                               project(raw, gross_cap=1.0, long_only=False, turnover_penalty=0.2)[:, 0])


def test_expert_sets(bars):
    dm = build("drex", {"experts": "rules"})
    assert [s.name for s in dm.experts] == ["trend", "reversal", "breakout", "positioning"]
    with pytest.raises(ValueError, match="lists 2 experts but the router"):
        build("drex", {"experts": "trend,breakout"})
    with pytest.raises(KeyError, match="unknown decision-maker 'nope'"):
        decide("drex", bars, {"experts": "nope,trend,reversal,breakout"})
    specs = parse_experts("trend?mode=long_short&fast=10,buy_and_hold")
    assert specs[0].params == {"mode": "long_short", "fast": "10"} and specs[1].text == "buy_and_hold"
    with pytest.raises(ValueError, match="twice"):
        parse_experts("trend,trend")


def _texty(bars, **params) -> Decision:
    """A test expert that answers in text (like the LLM experts): long half the time."""
    close = bars["close"]
    w = (close > close.shift(1)).astype(float).rename("weight")
    answers = np.where(w > 0, " 1.0", " 0.0").astype(object)
    return Decision(w, pd.DataFrame({"answer": answers, "exposure": w}, index=bars.index))


def test_answers_of_text_experts_are_traced(bars, monkeypatch):
    entry = decisions.Entry("tests_texty", _texty, decisions.ParamSpace({}, owner="tests_texty"),
                            source="tests.router")
    monkeypatch.setitem(decisions._REGISTRY, "tests_texty", entry)
    d = decide("drex", bars.iloc[-80:], {"experts": "trend,reversal,breakout,tests_texty"})
    assert set(d.trace["answer_tests_texty"]) <= {" 1.0", " 0.0"}
    assert d.trace["answer_trend"].isna().all()  # rule-based experts give no text


def test_several_assets():
    panel = markets.load("sample:AAPL,JPM").iloc[-120:]
    d = decide("drex", panel)
    assert list(d.weights.columns) == ["AAPL", "JPM"]
    assert {"AAPL/w_trend", "JPM/position", "AAPL/regime", "JPM/chart_last"} <= set(d.trace.columns)
    np.testing.assert_array_equal(d.weights["JPM"].to_numpy(), d.trace["JPM/position"].to_numpy())
    assert (d.weights.abs().sum(axis=1) <= 1.0 + 1e-12).all()
    rec = trace_record(d.trace, 5)
    assert set(rec) == {"AAPL", "JPM"} and "w_breakout" in rec["AAPL"]


def test_backtest_and_checkpoint_folders(bars, tmp_path):
    run = run_strategy(bars, "drex", {"turnover_penalty": 0.05}, fees=0.001)
    assert np.isfinite(run.result.metrics["sharpe"])
    default = resolve_router("default")
    assert (default / "model.safetensors").is_file()
    run_dir = tmp_path / "run"
    import shutil

    shutil.copytree(default, run_dir / "model")
    assert resolve_router(str(run_dir)) == run_dir / "model"
    with pytest.raises(FileNotFoundError, match="holds no router"):
        resolve_router(str(tmp_path))


def test_router_outputs_are_cached_on_disk(bars, monkeypatch):
    """A new process (memo cleared, fresh instance) reuses the on-disk cache: no network pass at all."""
    import router.model
    import router.strategy as rs

    first = decide("drex", bars.iloc[-50:], {"gross_cap": 0.9})
    monkeypatch.setattr(rs, "_MEMOS", {})

    def boom(*a, **k):
        raise AssertionError("the router ran although every row was cached")

    monkeypatch.setattr(router.model, "route", boom)
    again = decisions.build("drex", {"gross_cap": 0.9}, fresh=True).decide(bars.iloc[-50:])
    pd.testing.assert_frame_equal(again.trace, first.trace)
    monkeypatch.setattr(rs, "_MEMOS", {})  # cache=False turns off the disk only; a new process has no memo
    with pytest.raises(AssertionError, match="the router ran"):
        decisions.build("drex", {"gross_cap": 0.9, "cache": False}, fresh=True).decide(bars.iloc[-50:])
