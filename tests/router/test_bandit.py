"""The bandit router: delayed feedback (a fit at bar s has seen only rewards matured by s), logged rewards and
propensities are the ones used, pick/weight modes, it learns the better arm, no look-ahead, components in
drex evaluate, and the CLI."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import markets
from backtest import decisions
from backtest.accounting import horizon_rewards
from backtest.lookahead import analyze

decisions.discover(["router.bandit_plugin"])  # until the entry point is installed (then this is a no-op)

from router import bandit as rb


@pytest.fixture(scope="module")
def sp500():
    return markets.load("sample:SP500").iloc[-900:]


def _router(**params):
    return decisions.build("bandit", params, fresh=True)


def test_fits_see_only_rewards_matured_by_then(sp500, monkeypatch):
    events = []
    real = rb._policy

    class Spy:
        def __init__(self, inner):
            self.inner = inner

        def fit(self, data):
            events.append(("fit", data.rounds.copy()))
            self.inner.fit(data)

        def act(self, contexts):
            events.append(("act", len(contexts)))
            return self.inner.act(contexts)

    monkeypatch.setattr(rb, "_policy", lambda *a: Spy(real(*a)))
    H, G = 7, 25
    dm = _router(horizon=H, refit_every=G)
    dm.decide(sp500)
    T = len(sp500)
    ok = np.isfinite(rb.context_features(sp500).to_numpy()).all(axis=1)
    acted_bars = np.flatnonzero(ok)
    round_bar = acted_bars[acted_bars + H <= T - 1]  # round id k was logged at bar round_bar[k]
    seen, n_fits = 0, 0
    for kind, value in events:
        if kind == "act":
            seen += value
            continue
        n_fits += 1
        next_bar = acted_bars[seen]  # the first bar decided with this fit
        s = next_bar - next_bar % G  # the block it opens
        assert round_bar[value].max() + H <= s  # every reward it learned from was known at bar s's close
        assert np.array_equal(value, np.arange(value.size))  # and all of them (rounds in order, none missing)
        assert round_bar[value.size - 1] + H <= s < round_bar[min(value.size, len(round_bar) - 1)] + H + G
    assert n_fits >= 20


def test_logged_rewards_and_propensities_are_the_ones_used(sp500):
    dm = _router(horizon=5, fees=0.002)
    d = dm.decide(sp500)
    data = dm.log.data()
    arms = d.trace["arm"].to_numpy()
    probs = d.trace[[f"p/{a}" for a in dm.arms]].to_numpy()
    T = len(sp500)
    bars_ = np.flatnonzero(np.isfinite(arms) & (arms >= 0) & (np.arange(T) + 5 <= T - 1))
    assert data.n_rounds == bars_.size  # every round's reward matured inside these bars
    np.testing.assert_array_equal(data.actions, arms[bars_].astype(int))
    np.testing.assert_array_equal(data.propensities, probs[bars_, data.actions])
    w = dm._arm_weights(sp500)[:, :, 0]  # (K, T)
    want = horizon_rewards(sp500["open"].to_numpy(), sp500["close"].to_numpy(), bars_,
                           w[data.actions, bars_], 5, fees=0.002) * 100.0
    np.testing.assert_allclose(data.rewards, want, rtol=1e-12)
    import backtest  # one of them by hand: holding the arm's weight for 5 bars in a backtest

    t, a = bars_[10], data.actions[10]
    ww = np.zeros(T)
    ww[t:t + 5] = w[a, t]
    eq = backtest.run(sp500, ww, fees=0.002).equity.to_numpy()
    assert data.rewards[10] == pytest.approx(100.0 * (eq[t + 5] / eq[t] - 1.0), rel=1e-9)


def test_weight_and_pick_modes(sp500):
    w = _router().decide(sp500)
    p = _router(mode="pick").decide(sp500)
    arm_w = _router()._arm_weights(sp500)[:, :, 0]
    probs = w.trace[[f"p/{a}" for a in rb.ARMS["rules"]]].to_numpy()
    rows = np.flatnonzero(np.isfinite(probs).all(axis=1))
    np.testing.assert_allclose(w.weights.to_numpy()[rows], (probs[rows] * arm_w[:, rows].T).sum(1), rtol=1e-12)
    arms = p.trace["arm"].to_numpy()[rows].astype(int)
    np.testing.assert_array_equal(p.weights.to_numpy()[rows], arm_w[arms, rows])
    np.testing.assert_array_equal(w.trace["arm"], p.trace["arm"])  # same seeded draws either way
    assert (w.weights.to_numpy()[:200] == 0).all()  # no context yet: flat


def test_it_learns_the_better_arm():
    idx = pd.date_range("2000-01-03", periods=1500, freq="B", tz="UTC", name="timestamp")
    rng = np.random.default_rng(0)
    close = 100 * np.exp(np.cumsum(0.002 + rng.normal(0, 0.005, len(idx))))  # a steady up-trend
    bars = pd.DataFrame({"open": close, "high": close * 1.002, "low": close * 0.998, "close": close,
                         "volume": 1.0}, index=idx)
    dm = _router(horizon=5, refit_every=10)
    dm.arms = ("buy_and_hold", "reversal")  # long all the time vs a mean-reversion rule that fights the trend
    d = dm.decide(bars)
    p = d.trace["p/buy_and_hold"].to_numpy()
    early, late = np.nanmean(p[200:300]), np.nanmean(p[-300:])
    assert early < 0.8 and late > 0.9


@pytest.mark.parametrize("params", [{}, {"policy": "linucb", "mode": "pick"}])
def test_no_lookahead(sp500, params):
    report = analyze("bandit", sp500.iloc[-500:], params=params, warmup_starts=[])
    assert report.ok, report.summary()


def test_components_go_into_equal_weight_and_the_cli_runs(sp500, tmp_path):
    from backtest.evaluate import evaluate

    ev = evaluate(markets.load("sample:SP500").iloc[-1500:], ["bandit"], folds=2)
    assert ev.setup["equal_weight_members"] == list(rb.ARMS["rules"])
    assert {"bandit", "equal_weight", "buy_and_hold", *rb.ARMS["rules"]} <= set(ev.strategies)

    from typer.testing import CliRunner

    from app.cli import app

    res = CliRunner().invoke(app, ["backtest", "sample:SP500", "-s", "bandit", "-p", "horizon=10",
                                   "--start", "2015-01-01", "--json", "--no-report"])
    assert res.exit_code == 0, res.output
    assert '"sharpe"' in res.output
    bad = CliRunner().invoke(app, ["backtest", "sample:SP500", "-s", "bandit", "-p", "policy=ucb9"])
    assert bad.exit_code == 2 and "policy" in bad.output
