"""backtest.sweep: grid product, invalid combinations dropped, each row equal to the single run, errors."""
from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

import backtest
from backtest import decisions
from backtest.sweep import grid_product
from tests.backtest.registry_helpers import weights


def make_bars(T=400, seed=0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(rng.normal(3e-4, 0.012, T)))
    open_ = close * np.exp(rng.normal(0, 0.004, T))
    idx = pd.date_range("2018-01-01", periods=T, freq="B", tz="UTC", name="timestamp")
    bars = pd.DataFrame({"open": open_, "high": np.maximum(open_, close), "low": np.minimum(open_, close),
                         "close": close, "volume": 1.0}, index=idx)
    bars.attrs["symbol"] = "SYN"
    return bars


GRID = {"fast": [5, 10, 30, 60], "slow": [20, 50, 60]}


def test_rows_are_the_valid_product_and_each_equals_run():
    bars = make_bars()
    out = backtest.sweep("trend", GRID, bars, fees=0.001, slippage=0.0005)
    valid = [c for c in grid_product(GRID) if c["fast"] < c["slow"]]
    assert len(out) == len(valid) == 8  # 12 combinations, 4 with fast >= slow dropped
    assert out[["fast", "slow"]].to_dict("records") == valid
    assert "4 of 12" in out.attrs["note"]
    assert [(d["fast"], d["slow"]) for d in out.attrs["dropped"]] == [(30, 20), (60, 20), (60, 50), (60, 60)]
    for row in out.itertuples():
        w = weights("trend", bars, fast=row.fast, slow=row.slow)
        single = backtest.run(bars, w, fees=0.001, slippage=0.0005)
        for k, v in single.metrics.items():
            assert getattr(row, k) == pytest.approx(v, rel=1e-12, nan_ok=True), (row.fast, row.slow, k)


def test_fixed_parameters_options_and_next_close():
    bars = make_bars(300, 1)
    out = backtest.sweep("trend", {"fast": [5, 10], "slow": 40, "mode": ["long_short"]}, bars,
                         execution="next_close", leverage=0.5, periods_per_year=252, init_cash=10.0)
    assert list(out.columns[:3]) == ["fast", "slow", "mode"] and len(out) == 2
    w = weights("trend", bars, fast=10, slow=40, mode="long_short")
    single = backtest.run(bars, w, execution="next_close", leverage=0.5, periods_per_year=252, init_cash=10.0)
    assert out["sharpe"].iloc[1] == pytest.approx(single.metrics["sharpe"], rel=1e-12)
    assert out.attrs["note"] == ""


def test_per_combination_fallback_equals_batched(monkeypatch):
    bars = make_bars(250, 2)
    nobatch = dataclasses.replace(decisions.get("trend"), name="trend_nobatch", batched=None)
    monkeypatch.setitem(decisions._REGISTRY, "trend_nobatch", nobatch)
    grid = {"fast": [5, 40], "slow": [20, 40]}
    a = backtest.sweep("trend", grid, bars, fees=0.002)
    b = backtest.sweep("trend_nobatch", grid, bars, fees=0.002)
    pd.testing.assert_frame_equal(a, b, check_exact=False, rtol=1e-12)
    assert len(b.attrs["dropped"]) == 2 and "smaller than slow" in b.attrs["dropped"][0]["reason"]


def test_many_blocks_match_one_block(monkeypatch):
    import importlib

    sweep_mod = importlib.import_module("backtest.sweep")  # the module (backtest.sweep is the function)

    bars = make_bars(200, 3)
    grid = {"fast": list(range(2, 12)), "slow": [15, 25, 35]}
    whole = backtest.sweep("trend", grid, bars, fees=0.001)
    monkeypatch.setattr(sweep_mod, "_BLOCK_ELEMENTS", 3 * 200)  # 3 parameter rows per block
    pd.testing.assert_frame_equal(whole, backtest.sweep("trend", grid, bars, fees=0.001))


def test_errors_name_the_valid_choices():
    bars = make_bars(100)
    with pytest.raises(KeyError, match="registered: .*trend"):
        backtest.sweep("trnd", GRID, bars)
    with pytest.raises(ValueError, match=r"trend has no parameter 'fats'; valid: fast=20"):
        backtest.sweep("trend", {"fats": [1]}, bars)
    with pytest.raises(ValueError, match="no values"):
        backtest.sweep("trend", {"fast": []}, bars)


@pytest.mark.parametrize("case", ["plain", "costs_next_close", "leverage_long_short", "ruin"])
def test_fused_loop_equals_numpy_kernel(case):
    """The numba-fused sweep path and the NumPy fixed-point kernel give the same table (1e-12)."""
    bars = make_bars(300, 4)
    grid = {"fast": [3, 8, 20], "slow": [10, 30, 60]}
    opts = {"plain": {}, "costs_next_close": {"fees": 0.002, "slippage": 0.001, "execution": "next_close"},
            "leverage_long_short": {"fees": 0.001, "leverage": 0.5},
            "ruin": {"fees": 0.001}}[case]
    if case in ("leverage_long_short", "ruin"):
        grid["mode"] = ["long_short"]
    if case == "ruin":  # a price that triples in a day wipes out every short
        bars = bars.copy()
        bars.iloc[200:, :4] *= 3.0
        opts["leverage"] = None
    with np.errstate(all="ignore"):
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            a = backtest.sweep("trend", grid, bars, fused=True, **opts)
            b = backtest.sweep("trend", grid, bars, fused=False, **opts)
    pd.testing.assert_frame_equal(a, b, check_exact=False, rtol=1e-12, atol=1e-15)
    if case == "ruin":
        assert (a["total_return"] == -1.0).any()


def test_fused_multi_asset_equals_run():
    rng = np.random.default_rng(9)
    frames = {}
    for name in ("A", "B"):
        close = 50 * np.exp(np.cumsum(rng.normal(2e-4, 0.015, 250)))
        frames[name] = pd.DataFrame({"open": close * np.exp(rng.normal(0, 0.004, 250)), "high": close * 1.01,
                                     "low": close * 0.99, "close": close, "volume": 1.0},
                                    index=pd.date_range("2020-01-01", periods=250, freq="D", tz="UTC"))
    bars = pd.concat(frames, axis=1)
    bars.columns = bars.columns.set_names(["asset", "field"])
    out = backtest.sweep("trend", {"fast": [5, 10], "slow": [30], "mode": ["long_short"]}, bars, fees=0.001,
                         slippage=0.0005, leverage=1.5)
    w = weights("trend", bars, fast=10, slow=30, mode="long_short")
    single = backtest.run(bars, w, fees=0.001, slippage=0.0005, leverage=1.5)
    for k, v in single.metrics.items():
        assert out[k].iloc[1] == pytest.approx(v, rel=1e-12, nan_ok=True), k


def test_fused_threads_do_not_change_any_number(monkeypatch):
    """The fused rows are split over threads; 1, 2 and 3 threads give bit-identical tables."""
    bars = make_bars(300, 5)
    grid = {"fast": list(range(3, 40)), "slow": [40, 60, 80, 100, 120]}  # 185 rows: 2-3 thread chunks
    tables = []
    for n in ("1", "2", "3"):
        monkeypatch.setenv("DREX_THREADS", n)
        tables.append(backtest.sweep("trend", grid, bars, fees=0.001, slippage=0.0005, fused=True))
    pd.testing.assert_frame_equal(tables[0], tables[1], check_exact=True)
    pd.testing.assert_frame_equal(tables[0], tables[2], check_exact=True)
