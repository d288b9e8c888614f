"""Engle-Granger pair selection (against statsmodels' coint directly) and the z-score rule (hand-made cases)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import markets
from experts.pairs import rank_pairs, select_pair, zscore_positions


@pytest.fixture(scope="module")
def panel():
    """A, B, C cointegrated with A (synth:pairs), D an independent random walk."""
    bars = markets.load("synth:pairs?seed=2&n=1500&assets=3&mean_break=0&half_life=20")
    rng = np.random.default_rng(0)
    close = 50 * np.exp(np.cumsum(rng.normal(0, 0.001, len(bars))))
    d = pd.DataFrame({"open": close, "high": close, "low": close, "close": close, "volume": 1.0}, index=bars.index)
    out = pd.concat([bars, pd.concat({"D": d}, axis=1)], axis=1)
    out.columns = out.columns.set_names(["asset", "field"])
    return out


def test_rank_pairs_finds_the_cointegrated_pairs_on_the_formation_window_only(panel):
    from statsmodels.tsa.stattools import coint

    ranked = rank_pairs(panel, formation=(0, 1000), top=3)
    assert len(ranked) == 6 and list(ranked["stage"][:3]) == ["aic"] * 3
    best = ranked.iloc[0]
    assert "D" not in (best.y, best.x) and best.pvalue < 0.01
    with_d = ranked[(ranked.y == "D") | (ranked.x == "D")]
    assert (with_d.pvalue > 0.05).all()
    close = np.log(markets.fields(panel, "close").iloc[:1000])
    assert best.pvalue == pytest.approx(coint(close[best.y], close[best.x], trend="c", autolag="aic")[1], rel=1e-12)
    choice = select_pair(panel, formation=(0, 1000))
    assert (choice.y, choice.x) == (best.y, best.x) and choice.half_life > 0
    moved = panel.copy()
    moved.iloc[1000:] = moved.iloc[1000:].to_numpy()[::-1]  # the bars after the formation window do not matter
    pd.testing.assert_frame_equal(rank_pairs(moved, formation=(0, 1000), top=3), ranked)


def test_zscore_rule_by_hand():
    nan = np.nan
    z = np.array([nan, 0.0, 2.1, 1.0, 0.4, -2.5, -4.2, -3.0, -1.0, -2.2, 0.0, 2.0, 2.0, 2.0, 2.0])
    side = zscore_positions(z, entry=2.0, exit=0.5, stop=4.0, max_hold=3)
    #  z:     nan  0   2.1  1  .4  -2.5 -4.2 -3  -1  -2.2  0   2   2   2   2
    want = [0, 0, -1, -1, 0, 1, 0, 0, 0, 1, 0, -1, -1, -1, 0]
    # 2.1 opens short; 0.4 <= exit closes; -2.5 opens long; -4.2 stops (and blocks); -3 still blocked (|z| >= 2);
    # -1 unblocks; -2.2 opens long; 0 closes; 2 opens short, held 3 bars, closed by max_hold
    assert side.tolist() == want


def test_pairs_zscore_weights_use_the_hedge_at_entry():
    from backtest.decisions import decide
    from backtest.envs.features import spread_weights

    bars = markets.load("synth:pairs?seed=1&n=2000")
    d = decide("pairs_zscore", bars, {"hedge_window": 100})
    side, hedge = d.trace["side"].to_numpy(), d.trace["hedge"].to_numpy()
    w = d.weights.to_numpy()
    opened = np.flatnonzero((side != 0) & (np.r_[0, side[:-1]] != side))
    assert len(opened) >= 5
    for t in opened:
        end = t + int(np.argmax(side[t:] != side[t])) if (side[t:] != side[t]).any() else len(side)
        np.testing.assert_allclose(w[t:end], np.tile(spread_weights(side[[t]], hedge[[t]], 1.0), (end - t, 1)))
    assert (w[side == 0] == 0).all()
