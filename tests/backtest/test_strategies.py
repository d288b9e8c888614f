"""Rule-based strategies: hand-computed values, the batched grid, parameter validation, output shapes."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from backtest.decisions import get
from backtest.rules._common import _hold_state, _sma_windows
from markets import features
from tests.backtest.registry_helpers import explain, weights

ALL = ["trend", "reversal", "breakout", "positioning", "buy_and_hold"]


def make_bars(n: int = 300, seed: int = 0, *, symbol: str = "TEST", start: str = "2020-01-01") -> pd.DataFrame:
    """Canonical single-asset bars (docs/ARCHITECTURE.md): a seeded random walk with consistent OHLC."""
    rng = np.random.default_rng(seed)
    close = 100.0 * np.exp(np.cumsum(rng.normal(0.0003, 0.015, n)))
    open_ = close * np.exp(rng.normal(0, 0.004, n))
    high = np.maximum(open_, close) * np.exp(np.abs(rng.normal(0, 0.006, n)))
    low = np.minimum(open_, close) * np.exp(-np.abs(rng.normal(0, 0.006, n)))
    volume = rng.uniform(1e5, 1e6, n)
    idx = pd.date_range(start, periods=n, freq="D", tz="UTC", name="timestamp")
    bars = pd.DataFrame({"open": open_, "high": high, "low": low, "close": close, "volume": volume}, index=idx)
    bars.attrs["symbol"] = symbol
    return bars


def make_multi(n: int = 300, seeds=(0, 1, 2)) -> pd.DataFrame:
    """A ``(asset, field)`` MultiIndex frame of len(seeds) assets on one index."""
    frames = {f"A{s}": make_bars(n, s) for s in seeds}
    out = pd.concat(frames, axis=1)
    out.columns = out.columns.set_names(["asset", "field"])
    return out


def bars_from_close(close) -> pd.DataFrame:
    close = np.asarray(close, dtype=float)
    idx = pd.date_range("2021-01-01", periods=len(close), freq="D", tz="UTC", name="timestamp")
    return pd.DataFrame({"open": close, "high": close, "low": close, "close": close,
                         "volume": np.zeros(len(close))}, index=idx)


# ---------------------------------------------------------------------------------------------- registry
def test_registry_has_every_strategy_with_docs_and_declared_params():
    for name in ALL:
        entry = get(name)
        assert entry.description, name
        assert entry.defaults, name
        assert all(p.doc for p in entry.space.params.values()), name
        assert not entry.trainable and entry.source.startswith("backtest.rules"), name


def test_unknown_strategy_lists_valid_names():
    with pytest.raises(KeyError, match="registered: .*trend"):
        get("nope")


@pytest.mark.parametrize("name", ALL)
def test_defaults_run_single_and_multi_asset(name):
    single = weights(name, make_bars(400))
    assert isinstance(single, pd.Series) and len(single) == 400
    assert np.isfinite(single.to_numpy()).all()  # warm-up NaN already mapped to 0
    multi_bars = make_multi(400)
    multi = weights(name, multi_bars)
    assert isinstance(multi, pd.DataFrame) and list(multi.columns) == ["A0", "A1", "A2"]
    assert multi.index.equals(multi_bars.index)
    # column-wise: each asset equals the single-asset computation on its own bars, in a 1/3 sleeve
    for asset in ("A0", "A1", "A2"):
        own = multi_bars[asset].copy()
        np.testing.assert_allclose(multi[asset].to_numpy() * 3.0, weights(name, own).to_numpy(), rtol=1e-15)


@pytest.mark.parametrize("name", ALL)
def test_explain_is_json_and_matches_weights(name):
    bars = make_bars(300)
    expl = explain(name, bars)
    assert len(expl) == len(bars) and expl.index.equals(bars.index)
    json.dumps(expl.tolist(), allow_nan=False)  # NaN must have become None
    np.testing.assert_allclose([d["weight"] for d in expl], weights(name, bars).to_numpy())
    multi = explain(name, make_multi(120))
    assert set(multi.iloc[-1]) == {"A0", "A1", "A2"}


# ------------------------------------------------------------------------------------------------- kernels
def test_sma_kernel_matches_pandas_rolling_and_markets_features_with_nans():
    rng = np.random.default_rng(3)
    x = 1000 + np.cumsum(rng.normal(size=(500, 3)), axis=0)
    x[:17, 1] = np.nan  # late listing
    x[200, 2] = np.nan  # a hole
    windows = [1, 2, 5, 20, 77, 500, 600]
    got = _sma_windows(x, windows)
    for k, w in enumerate(windows):
        ref = pd.DataFrame(x).rolling(w).mean().to_numpy()
        np.testing.assert_allclose(got[k], ref, rtol=1e-12, atol=0, equal_nan=True)
        if w <= len(x):
            feat = features.sma(pd.DataFrame(x), w).to_numpy()
            np.testing.assert_allclose(got[k], feat, rtol=1e-12, atol=0, equal_nan=True)


def test_hold_state_forward_fills_events():
    f, t = False, True
    enter = np.array([[f, t, f, f, f, t, f]]).T
    exit_ = np.array([[t, f, f, t, f, f, t]]).T
    np.testing.assert_array_equal(_hold_state(enter, exit_)[:, 0], [0, 1, 1, 0, 0, 1, 0])
    es = np.array([[f, f, t, f, f, f, f]]).T
    xs = np.array([[f, f, f, f, t, f, f]]).T
    # long entered at 1, short entry at 2 is more recent -> short until its exit at 4; long exit at 3
    np.testing.assert_array_equal(_hold_state(enter, exit_, es, xs)[:, 0], [0, 1, -1, -1, 0, 1, 0])


# --------------------------------------------------------------------------------------------------- trend
def test_trend_sma_hand_computed():
    close = [10, 11, 12, 11, 10, 9, 8, 9, 10, 12]
    w = weights("trend", bars_from_close(close), fast=2, slow=4, mode="long_short")
    # t=3: fast=(12+11)/2=11.5, slow=(10+11+12+11)/4=11 -> +1; t=5: fast=9.5, slow=(12+11+10+9)/4=10.5 -> -1
    # t=9: fast=11, slow=(8+9+10+12)/4=9.75 -> +1; warm-up t<3 -> 0
    assert w.iloc[:3].tolist() == [0, 0, 0]
    assert w.iloc[3] == 1 and w.iloc[5] == -1 and w.iloc[9] == 1
    # t=4: fast=(11+10)/2=10.5, slow=(11+12+11+10)/4=11 -> -1, long_only -> 0
    lo = weights("trend", bars_from_close(close), fast=2, slow=4)
    assert lo.iloc[4] == 0 and lo.iloc[3] == 1 and set(lo.unique()) <= {0.0, 1.0}


def test_trend_ema_matches_textbook_recursion():
    bars = make_bars(200, 5)
    close = bars["close"].to_numpy()
    expl = explain("trend", bars, fast=3, slow=10, ma="ema")

    def ema(x, span):
        a, out = 2 / (span + 1), np.empty_like(x)
        out[0] = x[0]
        for i in range(1, len(x)):
            out[i] = a * x[i] + (1 - a) * out[i - 1]
        out[: span - 1] = np.nan
        return out

    got_fast = np.array([d["fast_ma"] if d["fast_ma"] is not None else np.nan for d in expl])
    np.testing.assert_allclose(got_fast, ema(close, 3), rtol=1e-12, equal_nan=True)
    w = weights("trend", bars, fast=3, slow=10, ma="ema", mode="long_short")
    ref = np.sign(np.nan_to_num(ema(close, 3) - ema(close, 10)))
    np.testing.assert_array_equal(w.to_numpy(), ref)


def test_trend_momentum():
    bars = make_bars(300, 2)
    c = bars["close"]
    w = weights("trend", bars, signal="momentum", lookback=20, mode="long_short")
    t = 150
    assert w.iloc[t] == np.sign(c.iloc[t] / c.iloc[t - 20] - 1)
    assert (w.iloc[:20] == 0).all()


@pytest.mark.parametrize("params, match", [
    ({"fast": 100, "slow": 100}, "fast \\(100\\) must be smaller than slow \\(100\\)"),
    ({"fast": 0}, "fast must be an integer >= 1"),
    ({"fast": 2.5}, "fast must be an integer"),
    ({"ma": "wma"}, "ma must be one of 'sma', 'ema'"),
    ({"mode": "short"}, "mode must be one of"),
    ({"signal": "x"}, "signal must be one of"),
])
def test_trend_rejects_bad_parameters(params, match):
    with pytest.raises(ValueError, match=match):
        weights("trend", make_bars(50), **params)


def test_trend_batched_equals_stacked_single_runs():
    bars = make_multi(260, seeds=(4, 5))
    fast = np.array([5, 10, 20, 30, 30, 7, 12, 3])
    slow = np.array([20, 50, 20, 25, 60, 40, 40, 9])
    ma = np.array(["sma", "sma", "sma", "sma", "ema", "ema", "sma", "sma"])
    mode = np.array(["long_only", "long_short"] * 4)
    signal = np.array(["crossover"] * 7 + ["momentum"])
    out = get("trend").batched(bars, fast=fast, slow=slow, ma=ma, mode=mode, signal=signal, lookback=15)
    assert out.weights.shape == (8, 260, 2)
    np.testing.assert_array_equal(out.valid, fast < slow)
    for p in range(8):
        if not out.valid[p]:
            assert (out.weights[p] == 0).all()
            continue
        ref = weights("trend", bars, fast=int(fast[p]), slow=int(slow[p]), ma=str(ma[p]), mode=str(mode[p]),
                                  signal=str(signal[p]), lookback=15)
        np.testing.assert_array_equal(out.weights[p], ref.to_numpy(), err_msg=f"combo {p}")


def test_trend_batched_length_mismatch_is_clear():
    with pytest.raises(ValueError, match="share one length P"):
        get("trend").batched(make_bars(50), fast=[1, 2], slow=[10, 20, 30])


# ------------------------------------------------------------------------------------------------ reversal
def _wilder_loop(x, n):
    """Textbook Wilder smoothing: SMA of the first n values, then a = a + (x - a) / n."""
    out = np.full(len(x), np.nan)
    out[n - 1] = np.mean(x[:n])
    for i in range(n, len(x)):
        out[i] = out[i - 1] + (x[i] - out[i - 1]) / n
    return out


def test_reversal_rsi_matches_textbook_and_hysteresis():
    bars = make_bars(300, 7)
    c = bars["close"].to_numpy()
    d = np.diff(c)
    n = 14
    g, lo = _wilder_loop(np.maximum(d, 0), n), _wilder_loop(np.maximum(-d, 0), n)
    rsi = np.r_[np.nan, 100 - 100 / (1 + g / lo)]  # bar 0 has no change
    expl = explain("reversal", bars, mode="long_short")
    got = np.array([e["rsi"] if e["rsi"] is not None else np.nan for e in expl])
    np.testing.assert_allclose(got, rsi, rtol=1e-10, equal_nan=True)
    assert np.isnan(got[:n]).all() and np.isfinite(got[n:]).all()
    # reference state machine, written as the obvious loop
    pos, ref = 0.0, []
    for r in rsi:
        if pos == 0 and r < 30:
            pos = 1.0
        elif pos == 0 and r > 70:
            pos = -1.0
        elif pos == 1 and r >= 50:
            pos = 0.0 if not r > 70 else -1.0
        elif pos == -1 and r <= 50:
            pos = 0.0 if not r < 30 else 1.0
        ref.append(pos)
    w = weights("reversal", bars, mode="long_short")
    np.testing.assert_array_equal(w.to_numpy(), ref)
    assert (w != 0).any() and (w == 1).any() and (w == -1).any()
    lo_only = weights("reversal", bars)
    np.testing.assert_array_equal(lo_only.to_numpy(), [1.0 if x == 1 else 0.0 for x in ref])


def test_reversal_bollinger_hand_values():
    bars = make_bars(200, 8)
    c = bars["close"]
    z = (c - c.rolling(20).mean()) / c.rolling(20).std(ddof=0)
    w = weights("reversal", bars, method="bollinger", entry_z=1.5, exit_z=0.0)
    pos, ref = 0.0, []
    for x in z:
        if pos == 0 and x < -1.5:
            pos = 1.0
        elif pos == 1 and x >= 0:
            pos = 0.0
        ref.append(pos)
    np.testing.assert_array_equal(w.to_numpy(), ref)
    assert w.sum() > 0


@pytest.mark.parametrize("params, match", [
    ({"lower": 60}, "lower < 50 < upper"),
    ({"exit_z": 2.5}, "exit_z \\(2.5\\) must be smaller than entry_z"),
    ({"method": "macd"}, "method must be one of"),
    ({"rsi_window": 1}, "rsi_window must be an integer >= 2"),
])
def test_reversal_rejects_bad_parameters(params, match):
    with pytest.raises(ValueError, match=match):
        weights("reversal", make_bars(50), **params)


# ------------------------------------------------------------------------------------------------ breakout
def test_breakout_hand_example():
    close = [10, 11, 12, 11, 13, 12, 11, 10, 9, 10, 11]
    bars = bars_from_close(close)
    w = weights("breakout", bars, entry_window=3, exit_window=2)
    # t=4: 13 > max(12, 11, 12... of bars 1..3)=12 -> long; exit when close < min of previous 2 lows:
    # t=5: 12 < min(11, 13)? no; t=6: 11 < min(13, 12)=12 -> flat; t=10: 11 > max(10, 9, 10) -> long again
    assert w.tolist() == [0, 0, 0, 0, 1, 1, 0, 0, 0, 0, 1]
    ls = weights("breakout", bars, entry_window=3, exit_window=2, mode="long_short")
    # t=7: 10 < min(13, 12, 11) = 11 -> short; t=9: 10 > max(10, 9) = 10? no -> still short;
    # t=10: 11 > 10 covers the short and breaks the 3-bar high: the newer long entry wins
    assert ls.tolist() == [0, 0, 0, 0, 1, 1, 0, -1, -1, -1, 1]


def test_breakout_atr_filter_only_removes_entries():
    bars = make_bars(400, 9)
    plain = weights("breakout", bars)
    filt = weights("breakout", bars, atr_mult=1.0)
    entries = lambda w: ((w == 1) & (w.shift(1, fill_value=0) == 0)).sum()
    assert entries(filt) < entries(plain)
    expl = explain("breakout", bars, atr_mult=1.0)
    t = 300
    h, l, c = bars["high"].to_numpy(), bars["low"].to_numpy(), bars["close"].to_numpy()
    tr = np.maximum(h[1:] - l[1:], np.maximum(abs(h[1:] - c[:-1]), abs(l[1:] - c[:-1])))  # from bar 1
    assert expl.iloc[t]["atr"] == pytest.approx(_wilder_loop(tr, 14)[t - 1], rel=1e-10)
    assert expl.iloc[t]["upper"] == pytest.approx(h[t - 20: t].max())


# --------------------------------------------------------------------------------------------- positioning
def test_positioning_hand_value_and_cap():
    bars = make_bars(300, 10)
    c = bars["close"].to_numpy()
    w = weights("positioning", bars, target_vol=0.10, vol_window=20, periods_per_year=252)
    t = 150
    lr = np.diff(np.log(c))[t - 20: t]  # the 20 log returns ending at bar t
    vol = lr.std(ddof=1) * np.sqrt(252)
    assert w.iloc[t] == pytest.approx(min(0.10 / vol, 1.0), rel=1e-10)
    assert (w.iloc[:20] == 0).all() and (w.iloc[20:] > 0).all()
    capped = weights("positioning", bars, target_vol=5.0, max_leverage=1.5, periods_per_year=252)
    assert capped.iloc[20:].max() == 1.5
    filt = weights("positioning", bars, trend_window=50, mode="long_short", periods_per_year=252)
    sma = bars["close"].rolling(50).mean()
    below = (bars["close"] < sma) & (np.arange(300) >= 50)
    assert (filt[below] < 0).all() and (filt.iloc[:49] == 0).all()


def test_buy_and_hold_splits_weight():
    assert (weights("buy_and_hold", make_bars(20), weight=0.5) == 0.5).all()
    multi = weights("buy_and_hold", make_multi(20, seeds=(0, 1)))
    assert (multi == 0.5).all().all()
    with pytest.raises(ValueError, match="weight=.all. is not a number"):
        weights("buy_and_hold", make_bars(20), weight="all")
