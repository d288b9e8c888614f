"""No look-ahead: weights (and explanations) up to bar t never change when any bar after t changes.

A hard rule of the project: a decision for bar t uses data up to bar t's close (the engine executes it at
t+1). For several t, every bar after t is replaced by random, large OHLCV changes, for every strategy and
its main variants, single- and multi-asset, and for the batched sweep path.
"""
from __future__ import annotations

import numpy as np
import pytest

from backtest.decisions import get
from backtest.lookahead import perturb_after
from tests.backtest.registry_helpers import explain, weights
from tests.backtest.test_strategies import make_bars, make_multi

CASES = [
    ("trend", {}),
    ("trend", {"fast": 5, "slow": 30, "ma": "ema", "mode": "long_short"}),
    ("trend", {"signal": "momentum", "lookback": 40, "mode": "long_short"}),
    ("reversal", {"mode": "long_short"}),
    ("reversal", {"method": "bollinger", "entry_z": 1.0, "mode": "long_short"}),
    ("breakout", {"mode": "long_short"}),
    ("breakout", {"entry_window": 10, "exit_window": 5, "atr_mult": 0.5}),
    ("positioning", {"periods_per_year": 252}),
    ("positioning", {"trend_window": 30, "mode": "long_short", "periods_per_year": 252}),
    ("buy_and_hold", {}),
]
CUTS = [0, 1, 25, 60, 119, 180, 238]


@pytest.mark.parametrize("name, params", CASES, ids=[f"{n}-{i}" for i, (n, _) in enumerate(CASES)])
@pytest.mark.parametrize("multi", [False, True], ids=["single", "multi"])
def test_weights_up_to_t_ignore_the_future(name, params, multi):
    bars = make_multi(240, seeds=(11, 12)) if multi else make_bars(240, 11)
    base = weights(name, bars, **params)
    base_expl = explain(name, bars, **params)
    for k, t in enumerate(CUTS):
        changed = perturb_after(bars, t, seed=100 + k)
        got = weights(name, changed, **params)
        # bit-for-bit: nothing after t may enter the decision at t
        np.testing.assert_array_equal(np.asarray(got)[: t + 1], np.asarray(base)[: t + 1],
                                      err_msg=f"{name} {params}: weights up to bar {t} changed")
        if k % 2:  # explanations (slower: Python dicts) at every other cut
            expl = explain(name, changed, **params)
            assert expl.iloc[: t + 1].tolist() == base_expl.iloc[: t + 1].tolist(), f"explain up to bar {t}"
            if name != "buy_and_hold":  # the perturbation is real: later explanations do move
                assert expl.iloc[t + 1:].tolist() != base_expl.iloc[t + 1:].tolist()


def test_batched_trend_ignores_the_future():
    bars = make_multi(240, seeds=(21, 22))
    grid = {"fast": np.array([3, 5, 10, 20, 8]), "slow": np.array([10, 30, 50, 60, 8]),
            "ma": np.array(["sma", "ema", "sma", "ema", "sma"]), "mode": "long_short"}
    base = get("trend").batched(bars, **grid).weights
    for k, t in enumerate(CUTS):
        got = get("trend").batched(perturb_after(bars, t, seed=7 + k), **grid).weights
        np.testing.assert_array_equal(got[:, : t + 1], base[:, : t + 1], err_msg=f"bar {t}")


def test_sma_crossover_weight_by_hand_at_one_bar():
    bars = make_bars(240, 13)
    c = bars["close"].to_numpy()
    t = 150
    fast, slow = c[t - 9: t + 1].mean(), c[t - 49: t + 1].mean()  # the windows END at bar t (inclusive)
    w = weights("trend", bars, fast=10, slow=50, mode="long_short")
    assert w.iloc[t] == (1.0 if fast > slow else -1.0)
    # and the same through the explanation
    e = explain("trend", bars, fast=10, slow=50).iloc[t]
    assert e["fast_ma"] == pytest.approx(fast, rel=1e-12) and e["slow_ma"] == pytest.approx(slow, rel=1e-12)


@pytest.mark.parametrize("name, params", CASES[::2] + CASES[5:6], ids=lambda x: x if isinstance(x, str) else "")
def test_real_bundled_data_ignores_the_future(name, params):
    import markets

    bars = markets.load("sample:SP500", "2015-01-01", "2016-12-31")  # real index OHLCV, ~500 bars
    base = np.asarray(weights(name, bars, **params))
    for k, t in enumerate((30, 250, len(bars) - 3)):
        got = np.asarray(weights(name, perturb_after(bars, t, seed=k), **params))
        np.testing.assert_array_equal(got[: t + 1], base[: t + 1], err_msg=f"{name}: bar {t}")
    # real data gives real decisions: the strategy is not trivially flat
    assert np.abs(base).sum() > 0
