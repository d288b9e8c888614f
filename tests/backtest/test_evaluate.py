"""Walk-forward evaluation: its numbers equal hand-assembled ``backtest.run`` calls over the same test windows,
trainable decision-makers see their train windows only, in-sample optimization picks the in-sample best, and
``equal_weight`` mixes the evaluated decision-makers (or a router's components)."""
from __future__ import annotations

import json
from typing import ClassVar

import numpy as np
import pandas as pd
import pytest

import backtest
from backtest import decisions, splits, stats
from backtest.evaluate import evaluate
from backtest.evaluate_report import write_evaluation_report

RULES = ["trend", "reversal", "breakout", "positioning"]
FEES, CASH = 0.001, 10_000.0


@pytest.fixture(scope="module")
def sp500() -> pd.DataFrame:
    import markets

    return markets.load("sample:SP500")


@pytest.fixture(scope="module")
def evaluation(sp500):
    return evaluate(sp500, [*RULES, "buy_and_hold"], folds=5, fees=FEES, init_cash=CASH)


def _hand_weights(bars, name, params, folds):
    """Each test block decided with all earlier bars as history, concatenated (what evaluate must do)."""
    parts = []
    for f in folds:
        d = decisions.decide(decisions.build(name, params), bars.iloc[: f.test[-1] + 1], start=int(f.test[0]))
        parts.append(d.weights)
    return pd.concat(parts)


def test_rule_based_numbers_equal_hand_assembled_runs(sp500, evaluation):
    folds = splits.walk_forward(len(sp500), folds=5)
    first, last = int(folds[0].test[0]), int(folds[-1].test[-1]) + 1
    assert (first, last) == (841, 5031)  # five 838-bar test blocks, 2002-05-10 .. 2018-12-31
    assert list(evaluation.strategies) == [*RULES, "equal_weight", "buy_and_hold"]
    test_bars = sp500.iloc[first:last]
    mix = []
    for name in RULES:
        w = _hand_weights(sp500, name, {}, folds)
        mix.append(w.fillna(0.0))
        hand = backtest.run(test_bars, w, fees=FEES, init_cash=CASH)
        got = evaluation.strategies[name].result
        np.testing.assert_array_equal(got.equity.to_numpy(), hand.equity.to_numpy())
        assert got.metrics == hand.metrics
        # rule-based decisions are the full-history ones sliced: the same as one backtest from the first test bar
        direct = backtest.run_strategy(sp500, name, start=first, fees=FEES, init_cash=CASH).result
        np.testing.assert_allclose(got.equity.to_numpy(), direct.equity.to_numpy(), rtol=1e-12)
        ci = stats.sharpe_ci(hand.returns.to_numpy(), periods_per_year=252)
        assert evaluation.strategies[name].ci == ci
    bench = backtest.benchmark(sp500, start=first, fees=FEES, init_cash=CASH)
    assert evaluation.strategies["buy_and_hold"].result.metrics == pytest.approx(bench.metrics, rel=1e-12)
    hand_mix = backtest.run(test_bars, sum(mix) / len(mix), fees=FEES, init_cash=CASH)
    np.testing.assert_allclose(evaluation.strategies["equal_weight"].result.equity.to_numpy(),
                               hand_mix.equity.to_numpy(), rtol=1e-12)


def test_table_json_and_the_interval_comparison(evaluation):
    out = evaluation.to_json()
    assert list(out) == [*RULES, "equal_weight", "buy_and_hold"]
    bench = evaluation.strategies["buy_and_hold"].ci
    for label, s in evaluation.strategies.items():
        rec = out[label]
        m = s.result.metrics
        assert (rec["sharpe"], rec["total_return"], rec["cagr"], rec["max_drawdown"], rec["turnover"]) == (
            m["sharpe"], m["total_return"], m["cagr"], m["max_drawdown"], m["turnover_annual"])
        assert rec["sharpe_ci_low"] < rec["sharpe"] < rec["sharpe_ci_high"]
        want = ("benchmark" if label == "buy_and_hold" else "above" if s.ci.low > bench.high
                else "below" if s.ci.high < bench.low else "overlaps")
        assert rec["vs_buy_and_hold"] == want
        assert [f["fold"] for f in rec["folds"]] == [0, 1, 2, 3, 4]
    # 17 years of the S&P 500 cannot tell any of these strategies from buy and hold
    assert {out[k]["vs_buy_and_hold"] for k in RULES} == {"overlaps"}
    table = evaluation.table()
    assert list(table.index) == list(out) and table.loc["trend", "sharpe"] == out["trend"]["sharpe"]
    json.dumps(out, allow_nan=False)  # strict JSON


def test_per_fold_metrics_are_the_fold_rows_of_the_one_backtest(sp500, evaluation):
    s = evaluation.strategies["trend"]
    eq = s.result.equity.to_numpy() / CASH
    folds = evaluation.folds
    first = int(folds[0].test[0])
    for f, rec in zip(folds, s.folds):
        a, b = int(f.test[0]) - first, int(f.test[-1]) + 1 - first
        start_equity = 1.0 if a == 0 else eq[a - 1]
        assert rec["total_return"] == pytest.approx(eq[b - 1] / start_equity - 1.0, rel=1e-9)
        assert rec["test_start"] == sp500.index[f.test[0]].isoformat()
        assert rec["train_end"] == sp500.index[f.window[1] - 1].isoformat()
        assert rec["fitted"] is False and "params" not in rec


def test_trainable_plugin_is_fitted_on_its_train_windows_only(monkeypatch):
    from drex_testplugin import PluginEMA

    import markets

    seen = []
    original = PluginEMA.fit

    def spy(self, bars):
        seen.append((bars.index[0], bars.index[-1], len(bars)))
        original(self, bars)

    monkeypatch.setattr(PluginEMA, "fit", spy)
    bars = markets.load("sample:MSFT").iloc[-1500:]
    ev = evaluate(bars, ["plugin_ema"], folds=4, fees=FEES)
    folds = splits.walk_forward(len(bars), folds=4)
    assert seen == [(bars.index[f.window[0]], bars.index[f.window[1] - 1], f.window[1] - f.window[0]) for f in folds]
    assert all(bars.index[f.window[1] - 1] < bars.index[f.test[0]] for f in folds)  # never a test bar
    # each test block is decided by the model fitted on the window just before it
    w = ev.strategies["plugin_ema"].weights
    for f in folds:
        lo, hi = f.window
        vol = float(np.log(bars["close"].iloc[lo:hi]).diff().std())
        scale = min(1.0, 0.02 / vol)
        block = w.loc[bars.index[f.test[0]]:bars.index[f.test[-1]]].to_numpy()
        np.testing.assert_allclose(np.abs(block[block != 0]), scale, rtol=1e-12)
    assert [r["fitted"] for r in ev.strategies["plugin_ema"].folds] == [True] * 4
    assert decisions.build("plugin_ema").scale == 1.0  # fresh instances were fitted, not the shared one

    seen.clear()
    evaluate(bars, ["plugin_ema"], train_bars=300, test_bars=200, expanding=True, fees=FEES)
    assert [s[0] for s in seen] == [bars.index[0]] * len(seen) and len(seen) == 6  # anchored windows
    assert [s[2] for s in seen] == [300 + 200 * k for k in range(6)]


def test_a_declared_label_horizon_purges_the_train_samples(monkeypatch):
    from drex_testplugin import PluginEMA

    import markets

    monkeypatch.setattr(PluginEMA, "horizon", 5, raising=False)
    bars = markets.load("sample:MSFT").iloc[-600:]
    ev = evaluate(bars, ["plugin_ema"], folds=3)
    assert ev.horizon == 5
    for f, rec in zip(ev.folds, ev.strategies["plugin_ema"].folds):
        assert rec["train_samples"] == f.window[1] - f.window[0] - 5 == f.train.size


def test_optimize_picks_the_in_sample_best_per_fold(sp500):
    bars = sp500.iloc[-2000:]
    grid = {"fast": [5, 20, 50], "slow": [60, 120, 200]}
    ev = evaluate(bars, [], optimize={"trend": grid}, folds=3, fees=FEES)
    assert list(ev.strategies) == ["trend", "equal_weight", "buy_and_hold"]
    s = ev.strategies["trend"]
    parts = []
    for f, rec in zip(ev.folds, s.folds):
        lo, hi = f.window
        table = backtest.sweep("trend", grid, bars.iloc[lo:hi], fees=FEES, periods_per_year=252.0)
        best = table.sort_values("sharpe", ascending=False, kind="stable").iloc[0]
        assert (rec["params"]["fast"], rec["params"]["slow"]) == (best["fast"], best["slow"])
        params = {"fast": int(best["fast"]), "slow": int(best["slow"])}
        parts.append(decisions.decide("trend", bars.iloc[: f.test[-1] + 1], params, start=int(f.test[0])).weights)
    pd.testing.assert_series_equal(s.weights, pd.concat(parts), check_names=False)
    assert len({(r["params"]["fast"], r["params"]["slow"]) for r in s.folds}) > 1  # the choice moves over time


class _Router(decisions.DecisionMaker):
    """Half trend, half reversal: a stand-in for a router with experts (declares ``components``)."""

    params: ClassVar[dict] = {}
    components = (("trend", {}), ("reversal", {"method": "bollinger"}))

    def decide(self, bars, *, start=0):
        ws = [decisions.decide(n, bars, p, start=start).weights.fillna(0.0) for n, p in self.components]
        w = (ws[0] + ws[1]) / 2
        return decisions.Decision(w, pd.DataFrame({"weight": w}))


def test_equal_weight_of_a_router_mixes_its_components(monkeypatch, sp500):
    entry = decisions.Entry("toy_router", _Router, decisions.ParamSpace({}, owner="toy_router"), source="tests.x")
    monkeypatch.setitem(decisions._REGISTRY, "toy_router", entry)
    bars = sp500.iloc[-1200:]
    ev = evaluate(bars, ["toy_router", "trend"], folds=3, fees=FEES)
    assert list(ev.strategies) == ["toy_router", "trend", "reversal", "equal_weight", "buy_and_hold"]
    assert ev.setup["equal_weight_members"] == ["trend", "reversal"]  # the router's parts, not the router
    assert ev.strategies["reversal"].params["method"] == "bollinger"
    mix = (ev.strategies["trend"].weights.fillna(0) + ev.strategies["reversal"].weights.fillna(0)) / 2
    np.testing.assert_allclose(ev.strategies["equal_weight"].weights.to_numpy(), mix.to_numpy(), rtol=0, atol=0)
    # the toy router IS the equal-weight mix of its experts, so both backtests agree
    np.testing.assert_allclose(ev.strategies["toy_router"].result.equity.to_numpy(),
                               ev.strategies["equal_weight"].result.equity.to_numpy(), rtol=1e-12)


def test_bad_requests_name_the_fix(sp500):
    with pytest.raises(KeyError, match="unknown decision-maker 'nope'"):
        evaluate(sp500, ["nope"])
    with pytest.raises(ValueError, match="too few for"):
        evaluate(sp500.iloc[:20], ["trend"], folds=30)
    with pytest.raises(ValueError, match="ci_method"):
        evaluate(sp500, ["trend"], ci_method="magic")
    with pytest.raises(ValueError, match="unknown metric 'nope'"):
        evaluate(sp500.iloc[-600:], [], optimize={"trend": {"fast": [5, 10]}}, metric="nope", folds=2)
    only = evaluate(sp500.iloc[-600:], ["buy_and_hold"], folds=2)
    assert list(only.strategies) == ["buy_and_hold"] and "equal_weight is left out" in only.setup["note"]


def test_report_folder(tmp_path, evaluation):
    paths = write_evaluation_report(evaluation, tmp_path / "rep", title="t")
    assert json.loads(paths["json"].read_text()) == json.loads(json.dumps(evaluation.to_json()))
    page = paths["html"].read_text()
    assert "plotly" in page and "Sharpe per test fold" in page and "equal_weight" in page
    equity = pd.read_csv(paths["equity"], index_col=0)
    assert list(equity.columns) == list(evaluation.strategies)
    assert equity["trend"].iloc[-1] == pytest.approx(1 + evaluation.strategies["trend"].result.metrics["total_return"])
    assert sorted(p.name for p in (tmp_path / "rep").iterdir()) == ["equity.csv", "evaluation.json", "report.html"]
