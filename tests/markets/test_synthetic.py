"""markets.synthetic.regimes: determinism, valid bars, and each regime's statistical signature."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import markets
from markets.synthetic import REGIMES, RegimeParams, regimes


@pytest.fixture(scope="module")
def long_run():
    return regimes(20_000, seed=0)


def _within(labels: pd.Series, r: pd.Series, name: str) -> tuple[pd.Series, pd.Series]:
    """Returns at bars t (and t-1) where both bars belong to regime ``name``."""
    same = (labels == name) & (labels.shift(1) == name) & r.shift(1).notna()
    return r[same], r.shift(1)[same]


def test_deterministic_and_seed_sensitive():
    a, la = regimes(500, seed=7)
    b, lb = regimes(500, seed=7)
    c, _ = regimes(500, seed=8)
    pd.testing.assert_frame_equal(a, b)
    pd.testing.assert_series_equal(la, lb)
    assert not a.equals(c)


def test_bars_are_canonical_and_labels_aligned(long_run):
    bars, labels = long_run
    markets.validate(bars)
    assert bars.index.equals(labels.index) and labels.name == "regime"
    assert set(labels.unique()) == set(REGIMES)
    assert bars.index[0] == pd.Timestamp("2010-01-01", tz="UTC") and (bars["volume"] > 0).all()
    # episodes last about mean_duration=60 bars
    episodes = (labels != labels.shift()).sum()
    assert 20_000 / episodes == pytest.approx(60, rel=0.15)


def test_regime_signatures(long_run):
    bars, labels = long_run
    r = np.log(bars["close"]).diff()
    up, _ = _within(labels, r, "trend_up")
    down, _ = _within(labels, r, "trend_down")
    mr, mr_prev = _within(labels, r, "mean_reversion")
    bo, _ = _within(labels, r, "breakout")
    # drifts: t-stat far from zero with the right sign
    assert up.mean() / (up.std() / np.sqrt(len(up))) > 5
    assert down.mean() / (down.std() / np.sqrt(len(down))) < -5
    # mean reversion: clearly negative lag-1 autocorrelation; trends are not
    assert np.corrcoef(mr, mr_prev)[0, 1] < -0.3
    up_ac = np.corrcoef(*_within(labels, r, "trend_up"))[0, 1]
    assert up_ac > -0.05
    # breakout: at least twice the volatility of every other regime, and higher volume
    assert bo.std() > 2 * max(up.std(), down.std(), mr.std())
    assert bars["volume"][labels == "breakout"].mean() > 1.5 * bars["volume"][labels == "trend_up"].mean()


def test_params_override_and_errors():
    flat = {name: RegimeParams(drift=0.0, vol=0.01) for name in REGIMES}
    bars, _ = regimes(300, seed=1, params=flat)
    markets.validate(bars)
    with pytest.raises(markets.DataError, match="unknown regime"):
        regimes(10, params={"sideways": RegimeParams(0.0, 0.01)})
    with pytest.raises(markets.DataError, match="n_bars"):
        regimes(1)


def test_spec_returns_the_same_bars():
    bars = markets.load("synth:regimes?seed=1&n=400")
    ref, _ = regimes(400, seed=1)
    pd.testing.assert_frame_equal(bars, ref, check_freq=False)
    assert markets.load("synth:regimes?seed=1&n=50&freq=1h&start=2021-01-01").index[1] == pd.Timestamp(
        "2021-01-01 01:00", tz="UTC"
    )
    with pytest.raises(markets.DataError, match="options are seed, n"):
        markets.load("synth:regimes?sed=1")


def test_index_past_pandas_range_is_a_clear_error():
    with pytest.raises(markets.DataError, match="use a shorter freq or fewer bars"):
        regimes(100_000, seed=0)
