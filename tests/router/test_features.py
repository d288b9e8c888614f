"""router.features: hand-computed values, no look-ahead (truncation and perturbation), volume-less data."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import markets
from backtest.lookahead import perturb_after
from router.features import CHUNK_FEATURES, NOW_FEATURES, TemporalSpec, standardize, temporal_inputs

SPEC = TemporalSpec(chunks=4, chunk=3, baseline=100)


@pytest.fixture(scope="module")
def bars():
    return markets.load("synth:regimes?seed=3&n=400")


def _now(now, name):
    return now[:, NOW_FEATURES.index(name)]


def test_values_match_hand_computations(bars):
    chunks, now = temporal_inputs(bars, spec=SPEC)
    c, h, lo, v = (bars[f].to_numpy() for f in ("close", "high", "low", "volume"))
    t = 250
    r = np.diff(np.log(c))  # r[i] = log return of bar i + 1
    assert _now(now, "ret20")[t] == pytest.approx(np.log(c[t] / c[t - 20]), rel=1e-6)
    assert _now(now, "log_vol10")[t] == pytest.approx(np.log(np.std(r[t - 10:t], ddof=1)), rel=1e-5)
    window = r[t - 20:t]  # returns of bars t-19..t
    prev = r[t - 21:t - 1]
    assert _now(now, "autocorr20")[t] == pytest.approx((window * prev).sum() / (window**2).sum(), rel=1e-5)
    assert _now(now, "range5")[t] == pytest.approx(np.log(h[t - 4:t + 1].max() / lo[t - 4:t + 1].min()), rel=1e-6)
    base = np.log(v[t - 99:t + 1]).mean()  # 100-bar baseline
    assert _now(now, "volume5")[t] == pytest.approx(np.log(v[t - 4:t + 1]).mean() - base, rel=1e-5)
    # chunk token j of row t covers bars t - 3(3 - j) - 2 .. t - 3(3 - j): the last one ends at t
    last, first = chunks[t, -1], chunks[t, 0]
    assert last[CHUNK_FEATURES.index("ret")] == pytest.approx(np.log(c[t] / c[t - 3]), rel=1e-6)
    assert first[CHUNK_FEATURES.index("ret")] == pytest.approx(np.log(c[t - 9] / c[t - 12]), rel=1e-6)
    assert first[CHUNK_FEATURES.index("volume")] == pytest.approx(np.log(v[t - 11:t - 8]).mean() - base, rel=1e-5)
    ref_rsi = markets.features.rsi(bars["close"], 14).to_numpy()[t] / 100
    assert _now(now, "rsi14")[t] == pytest.approx(ref_rsi, rel=1e-6)


def test_warmup_is_nan_and_rows_select(bars):
    chunks, now = temporal_inputs(bars, spec=SPEC)
    assert np.isnan(_now(now, "ret60")[:60]).all() and np.isfinite(_now(now, "ret60")[60:]).all()
    assert np.isnan(chunks[5, 0]).all()  # its first chunk would start before bar 0
    rows = np.array([399, 7, 123])
    c2, n2 = temporal_inputs(bars, spec=SPEC, rows=rows)
    np.testing.assert_array_equal(c2, chunks[rows])
    np.testing.assert_array_equal(n2, now[rows])


@pytest.mark.parametrize("cut", [30, 150, 398])
def test_no_lookahead(bars, cut):
    full = temporal_inputs(bars)
    short = temporal_inputs(bars.iloc[: cut + 1])
    moved = temporal_inputs(perturb_after(bars, cut, seed=cut))
    for a, b, c in zip(full, short, moved):
        np.testing.assert_array_equal(a[: cut + 1], b)  # bit-identical, NaN included
        np.testing.assert_array_equal(a[: cut + 1], c[: cut + 1])


def test_assets_without_volume_get_zero_volume_features():
    close = markets.load("sample:AAPL").iloc[:300]
    assert (close["volume"] == 0).all()
    chunks, now = temporal_inputs(close)
    assert (_now(now, "volume20") == 0).all()
    assert np.nan_to_num(chunks[..., CHUNK_FEATURES.index("volume")]).max() == 0


def test_standardize_maps_nan_to_zero_and_clips():
    x = np.array([[1.0, np.nan], [100.0, 3.0]], dtype=np.float32)
    z = standardize(x, np.array([1.0, 1.0]), np.array([2.0, 0.0]))
    np.testing.assert_array_equal(z, np.array([[0.0, 0.0], [8.0, 2.0]], dtype=np.float32))


def test_accepts_an_array():
    bars = markets.load("synth:regimes?seed=1&n=300")
    a = temporal_inputs(bars)
    b = temporal_inputs(bars[["open", "high", "low", "close", "volume"]].to_numpy())
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    assert isinstance(bars, pd.DataFrame)
