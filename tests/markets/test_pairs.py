"""markets.synthetic.pairs / ``synth:pairs``: canonical minute bars and a ground truth that Engle-Granger confirms.

statsmodels' ``coint`` (augmented Engle-Granger, lag 2: the spread is AR(1)) must find cointegration in every
complete cointegrated segment and, across breaks, reject it about as rarely as the test's size says.
"""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest

import markets
from markets import DataError
from markets.synthetic import pairs

stattools = pytest.importorskip("statsmodels.tsa.stattools")  # the pairs-selection dependency (issue #13)


def _pvalue(y: np.ndarray, x: np.ndarray) -> float:
    return float(stattools.coint(y, x, autolag=None, maxlag=2)[1])


def _segments(truth) -> list[tuple[int, int, bool]]:
    """(first row, end row, cointegrated) of each segment; the last one is dropped when cut short by T."""
    c = truth.cointegrated.to_numpy()
    edges = np.flatnonzero(np.diff(np.r_[-1, c.astype(int), -1]) != 0)
    return [(int(a), int(b), bool(c[a])) for a, b in itertools.pairwise(edges)][:-1]


def test_bars_are_canonical_minute_bars_with_aligned_truth():
    bars, truth = pairs(12_000, seed=1, n_assets=3)
    markets.validate(bars)
    assert list(bars.columns.names) == ["asset", "field"] and markets.assets(bars) == ["A", "B", "C"]
    assert str(bars.index.tz) == "UTC" and (np.diff(bars.index.asi8) == 60 * 10**9).all()
    assert bars.index[0] == pd.Timestamp("2024-01-01", tz="UTC")
    assert list(truth.hedge_ratio.index) == ["B", "C"] and truth.spread.index.equals(bars.index)
    log_close = np.log(markets.fields(bars, "close"))
    rebuilt = (
        log_close[["B", "C"]] - truth.intercept - log_close[["A"]].to_numpy() * truth.hedge_ratio.to_numpy()
    )
    np.testing.assert_allclose(rebuilt.to_numpy(), truth.spread.to_numpy(), atol=1e-12)
    c = truth.cointegrated.to_numpy()
    first, last = truth.breaks[0]
    assert not c[bars.index.get_loc(first)] and not c[bars.index.get_loc(last)] and c[0]
    assert truth.spread_mean[~truth.cointegrated].isna().all().all()


def test_deterministic_and_spec_matches_function():
    a, ta = pairs(2000, seed=5, hedge_ratio=1.3)
    b, _ = pairs(2000, seed=5, hedge_ratio=1.3)
    pd.testing.assert_frame_equal(a, b)
    assert not a.equals(pairs(2000, seed=6, hedge_ratio=1.3)[0])
    assert ta.hedge_ratio["B"] == 1.3
    spec = markets.load("synth:pairs?seed=5&n=2000&hedge=1.3&freq=1min")
    pd.testing.assert_frame_equal(spec, a, check_freq=False)
    five = markets.load("synth:pairs?seed=1&n=500&freq=5min&assets=3&hedge=0.8,1.2&mean_break=0")
    assert five.index[1] - five.index[0] == pd.Timedelta("5min") and markets.assets(five) == ["A", "B", "C"]


def test_no_breaks_when_mean_break_is_zero():
    _, truth = pairs(5000, seed=2, mean_break=0)
    assert truth.breaks == () and truth.cointegrated.all()


@pytest.mark.parametrize(
    ("spec", "match"),
    [
        ("synth:pairs?seed=1&hedges=1", "synth:pairs options are seed, n"),
        ("synth:pairs?n=ten", "wrong type"),
        ("synth:pairs?assets=3&hedge=1", None),  # one ratio for every asset is fine
        ("synth:pairs?hedge=1,2", "hedge_ratio must be one or 1"),
        ("synth:pairs?assets=1", "n_assets must be an int >= 2"),
        ("synth:pairs?half_life=0", "half_life"),
        ("synth:pair", "unknown synthetic generator 'pair'"),
    ],
)
def test_bad_options_are_named(spec, match):
    if match is None:
        assert markets.assets(markets.load(spec + "&n=300")) == ["A", "B", "C"]
        return
    with pytest.raises(DataError, match=match):
        markets.load(spec)


def test_engle_granger_finds_cointegration_in_segments_and_not_across_breaks():
    inside, across, broken, betas = [], [], [], []
    for seed in range(4):
        bars, truth = pairs(40_000, seed=seed)
        x, y = (np.log(bars[a, "close"].to_numpy()) for a in ("A", "B"))
        for lo, hi, cointegrated in _segments(truth):
            if cointegrated:
                inside.append(_pvalue(y[lo:hi], x[lo:hi]))
                betas.append(np.polyfit(x[lo:hi], y[lo:hi], 1)[0] - truth.hedge_ratio["B"])
            else:
                broken.append(_pvalue(y[lo:hi], x[lo:hi]))
                a, b = max(0, lo - 1000), hi + 1000  # the break with 1000 cointegrated bars on each side
                across.append(_pvalue(y[a:b], x[a:b]))
    assert len(inside) >= 16 and len(broken) >= 16
    assert max(inside) < 0.01  # every complete cointegrated segment (>= 3000 bars)
    assert np.abs(betas).max() < 0.08  # OLS hedge ratio near the truth
    # no cointegration: at the 5% level Engle-Granger rejects about as often as its size says
    assert np.mean(np.array(broken) < 0.05) <= 0.15 and np.median(broken) > 0.3
    assert np.mean(np.array(across) < 0.05) <= 0.2 and np.median(across) > 0.2
