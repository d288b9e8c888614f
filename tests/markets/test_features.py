"""markets.features: hand-computed values, textbook reference loops, and causality for every feature."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from markets import DataError
from markets import features as F
from markets.synthetic import regimes


@pytest.fixture(scope="module")
def ohlc():
    bars, _ = regimes(300, seed=3)
    return bars


# ---- textbook references (scalar loops, written independently of the vectorized code) ----


def wilder_ref(values: list[float], n: int) -> list[float]:
    """Wilder: first = mean of the first n values, then s = (s * (n - 1) + x) / n. NaN inputs lead."""
    out = [math.nan] * len(values)
    start = next(i for i, v in enumerate(values) if not math.isnan(v))
    s = sum(values[start : start + n]) / n
    out[start + n - 1] = s
    for t in range(start + n, len(values)):
        s = (s * (n - 1) + values[t]) / n
        out[t] = s
    return out


def rsi_ref(close: list[float], n: int) -> list[float]:
    gains = [math.nan] + [max(close[t] - close[t - 1], 0.0) for t in range(1, len(close))]
    losses = [math.nan] + [max(close[t - 1] - close[t], 0.0) for t in range(1, len(close))]
    g, lo = wilder_ref(gains, n), wilder_ref(losses, n)
    return [
        math.nan if math.isnan(a) else (100.0 if b == 0 else 100.0 - 100.0 / (1.0 + a / b))
        for a, b in zip(g, lo, strict=True)
    ]


def tr_ref(h, l, c):
    return [math.nan] + [
        max(h[t] - l[t], abs(h[t] - c[t - 1]), abs(l[t] - c[t - 1])) for t in range(1, len(c))
    ]


def adx_ref(h, l, c, n):
    tr = tr_ref(h, l, c)
    pdm, mdm = [math.nan], [math.nan]
    for t in range(1, len(c)):
        up, down = h[t] - h[t - 1], l[t - 1] - l[t]
        pdm.append(up if up > down and up > 0 else 0.0)
        mdm.append(down if down > up and down > 0 else 0.0)
    atr_, p, m = wilder_ref(tr, n), wilder_ref(pdm, n), wilder_ref(mdm, n)
    dx = []
    for a, b, d in zip(atr_, p, m, strict=True):
        if math.isnan(a):
            dx.append(math.nan)
            continue
        pdi, mdi = 100 * b / a, 100 * d / a
        dx.append(0.0 if pdi + mdi == 0 else 100 * abs(pdi - mdi) / (pdi + mdi))
    return wilder_ref(dx, n)


def assert_close(got, ref, **kw):
    np.testing.assert_allclose(
        np.asarray(got, dtype=float),
        np.asarray(ref, dtype=float),
        equal_nan=True,
        rtol=1e-10,
        atol=1e-10,
        **kw,
    )


# ---- hand values on tiny inputs ----


def test_returns_hand_values():
    c = pd.Series([100.0, 110.0, 99.0])
    assert_close(F.returns(c), [np.nan, 0.1, -0.1])
    assert_close(F.returns(c, log=True), [np.nan, math.log(1.1), math.log(0.9)])


def test_sma_ema_hand_values():
    x = pd.Series([1.0, 2.0, 3.0, 4.0])
    assert_close(F.sma(x, 2), [np.nan, 1.5, 2.5, 3.5])
    # span 3 -> alpha 0.5; e0 = 1, e1 = 1.5, e2 = 2.25, e3 = 3.125; NaN before span - 1
    assert_close(F.ema(x, 3), [np.nan, np.nan, 2.25, 3.125])


def test_rsi_hand_values():
    # diffs +1, -1, +2 (window 2): avg gain seed (1+0)/2 = .5, loss .5 -> 50; then gain (.5+2)/2 = 1.25,
    # loss (.5+0)/2 = .25 -> 100 - 100/(1+5) = 83.333...
    c = pd.Series([10.0, 11.0, 10.0, 12.0])
    assert_close(F.rsi(c, 2), [np.nan, np.nan, 50.0, 100 - 100 / 6])
    assert F.rsi(pd.Series([1.0, 2.0, 3.0, 4.0]), 2).iloc[-1] == 100.0
    assert F.rsi(pd.Series([5.0] * 5), 2).iloc[-1] == 50.0


def test_atr_hand_values():
    h = pd.Series([10.0, 12.0, 11.0])
    l = pd.Series([9.0, 10.0, 8.0])
    c = pd.Series([9.5, 11.0, 9.0])
    # TR1 = max(2, 2.5, .5) = 2.5; TR2 = max(3, 0, 3) = 3 -> ATR(2) first at bar 2 = 2.75
    assert_close(F.atr(h, l, c, 2), [np.nan, np.nan, 2.75])


def test_bollinger_and_zscore_hand_values():
    x = pd.Series([1.0, 2.0, 3.0])
    # mean 2, population std sqrt(2/3), sample std 1
    assert_close(F.bollinger_z(x, 3), [np.nan, np.nan, 1.0 / math.sqrt(2.0 / 3.0)])
    assert_close(F.rolling_zscore(x, 3), [np.nan, np.nan, 1.0])
    assert np.isnan(F.rolling_zscore(pd.Series([2.0, 2.0, 2.0]), 3).iloc[-1])


def test_donchian_hand_values():
    h = pd.Series([3.0, 5.0, 4.0, 2.0])
    l = pd.Series([1.0, 2.0, 0.5, 1.5])
    up, lo, mid = F.donchian(h, l, 2)
    assert_close(up, [np.nan, 5, 5, 4])
    assert_close(lo, [np.nan, 1, 0.5, 0.5])
    assert_close(mid, [np.nan, 3, 2.75, 2.25])


def test_realized_vol_hand_values():
    c = pd.Series([100.0, 110.0, 99.0])
    r = [math.log(1.1), math.log(0.9)]
    sd = np.std(r, ddof=1)
    assert_close(F.realized_vol(c, 2), [np.nan, np.nan, sd])
    assert_close(F.realized_vol(c, 2, periods_per_year=252), [np.nan, np.nan, sd * math.sqrt(252)])


# ---- references on realistic data ----


def test_rsi_matches_textbook_loop(ohlc):
    c = ohlc["close"]
    assert_close(F.rsi(c, 14), rsi_ref(c.tolist(), 14))


def test_atr_matches_textbook_loop(ohlc):
    h, l, c = ohlc["high"], ohlc["low"], ohlc["close"]
    got = F.atr(h, l, c, 14)
    assert_close(got, wilder_ref(tr_ref(h.tolist(), l.tolist(), c.tolist()), 14))
    assert got.first_valid_index() == c.index[14]


def test_adx_matches_textbook_loop(ohlc):
    h, l, c = ohlc["high"], ohlc["low"], ohlc["close"]
    got = F.adx(h, l, c, 14)
    assert_close(got, adx_ref(h.tolist(), l.tolist(), c.tolist(), 14))
    assert got.first_valid_index() == c.index[27]  # 2 * window - 1, as TA-Lib
    assert ((got.dropna() >= 0) & (got.dropna() <= 100)).all()


def test_ema_matches_recursive_loop(ohlc):
    x = ohlc["close"].tolist()
    alpha, e, ref = 2 / 11, x[0], []
    for v in x:
        e = e + alpha * (v - e)
        ref.append(e)
    ref[:9] = [np.nan] * 9
    assert_close(F.ema(ohlc["close"], 10), ref)


def test_rolling_stats_match_numpy(ohlc):
    c = ohlc["close"].to_numpy()
    t = 100
    win = c[t - 19 : t + 1]
    assert F.sma(ohlc["close"], 20).iloc[t] == pytest.approx(win.mean(), rel=1e-12)
    assert F.bollinger_z(ohlc["close"], 20).iloc[t] == pytest.approx(
        (c[t] - win.mean()) / win.std(), rel=1e-9
    )
    assert F.rolling_zscore(ohlc["close"], 20).iloc[t] == pytest.approx(
        (c[t] - win.mean()) / win.std(ddof=1), rel=1e-9
    )


def test_dataframe_input_is_columnwise(ohlc):
    c2 = pd.DataFrame({"A": ohlc["close"], "B": ohlc["close"] * 2.0})
    c2.iloc[:5, 1] = np.nan  # B starts later: its Wilder seed moves with it
    out = F.rsi(c2, 14)
    assert list(out.columns) == ["A", "B"]
    assert_close(out["A"], F.rsi(ohlc["close"], 14))
    assert_close(out["B"], F.rsi(c2["B"], 14))
    assert out["B"].first_valid_index() == c2.index[19]
    h2, l2 = c2 * 1.01, c2 * 0.99
    assert F.adx(h2, l2, c2, 5).shape == c2.shape


# ---- causality: perturbing bars after t never changes values up to t ----

CASES = {
    "returns": lambda b: F.returns(b["close"]),
    "sma": lambda b: F.sma(b["close"], 10),
    "ema": lambda b: F.ema(b["close"], 10),
    "rsi": lambda b: F.rsi(b["close"]),
    "atr": lambda b: F.atr(b["high"], b["low"], b["close"]),
    "bollinger_z": lambda b: F.bollinger_z(b["close"]),
    "donchian": lambda b: pd.concat(F.donchian(b["high"], b["low"]), axis=1),
    "adx": lambda b: F.adx(b["high"], b["low"], b["close"]),
    "realized_vol": lambda b: F.realized_vol(b["close"], periods_per_year=252),
    "rolling_zscore": lambda b: F.rolling_zscore(b["volume"], 15),
}


@pytest.mark.parametrize("name", list(CASES))
def test_causal(ohlc, name):
    t = 150
    base = CASES[name](ohlc)
    shocked = ohlc.copy()
    rng = np.random.default_rng(0)
    shocked.iloc[t + 1 :] *= rng.uniform(0.5, 1.5, size=shocked.iloc[t + 1 :].shape)
    after = CASES[name](shocked)
    pd.testing.assert_frame_equal(pd.DataFrame(base).iloc[: t + 1], pd.DataFrame(after).iloc[: t + 1])
    assert not pd.DataFrame(base).iloc[t + 1 :].equals(pd.DataFrame(after).iloc[t + 1 :])


def test_bad_window():
    with pytest.raises(DataError, match="window must be a positive int"):
        F.sma(pd.Series([1.0, 2.0]), 0)
    with pytest.raises(DataError, match="same type, shape and index"):
        F.atr(pd.Series([1.0, 2.0]), pd.Series([1.0]), pd.Series([1.0, 2.0]))
