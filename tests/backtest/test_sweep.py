"""backtest.sweep: grid product, invalid combinations dropped, each row equal to the single run (both paths,
with the band and borrow options), flat combinations NaN and ranked last, errors."""
from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

import backtest
from backtest import decisions
from backtest.sweep import grid_product, rank
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
    whole = backtest.sweep("trend", grid, bars, fees=0.001, fused=False)
    monkeypatch.setattr(sweep_mod, "_BLOCK_ELEMENTS", 3 * 200)  # 3 parameter rows per block
    pd.testing.assert_frame_equal(whole, backtest.sweep("trend", grid, bars, fees=0.001, fused=False))


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
    """The fused sweep path (metrics in the compiled loop) and the NumPy-metrics path give the same table."""
    bars = make_bars(300, 4)
    grid = {"fast": [3, 8, 20], "slow": [10, 30, 60]}
    opts = {"plain": {"band": 0.0}, "costs_next_close": {"fees": 0.002, "slippage": 0.001, "execution": "next_close"},
            "leverage_long_short": {"fees": 0.001, "leverage": 0.5, "borrow": 0.25},
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
    for opts in ({"leverage": 1.5}, {"band": 0.0, "borrow": float("inf")}, {"band": 0.3, "borrow": 0.5}):
        for fused in (True, False):
            out = backtest.sweep("trend", {"fast": [5, 10], "slow": [30], "mode": ["long_short"]}, bars, fees=0.001,
                                 slippage=0.0005, fused=fused, **opts)
            w = weights("trend", bars, fast=10, slow=30, mode="long_short")
            single = backtest.run(bars, w, fees=0.001, slippage=0.0005, **opts)
            for k, v in single.metrics.items():
                assert out[k].iloc[1] == pytest.approx(v, rel=1e-12, nan_ok=True), (opts, fused, k)


def test_band_and_borrow_reach_the_single_asset_path():
    """Single-asset sweeps run the scalar kernel: it must honour band and borrow exactly like backtest.run."""
    bars = make_bars(300, 6)
    grid = {"fast": [3, 5], "slow": [20], "mode": ["long_short"]}
    for opts in ({"band": 0.0}, {"band": 0.5}, {"band": 0.0, "borrow": float("inf"), "leverage": 1.0}):
        for fused in (True, False):
            out = backtest.sweep("trend", grid, bars, fees=0.002, slippage=0.001, fused=fused, **opts)
            for row in out.itertuples():
                w = weights("trend", bars, fast=row.fast, slow=20, mode="long_short")
                single = backtest.run(bars, w, fees=0.002, slippage=0.001, **opts)
                assert row.total_return == pytest.approx(single.metrics["total_return"], rel=1e-12), (opts, fused)
                assert row.n_trades == single.metrics["n_trades"]


def test_flat_combinations_have_nan_sharpe_and_never_rank_first():
    """Issue #8: `drex sweep ... -s reversal` ranked never-trading combinations first with Sharpe = inf."""
    import markets

    bars = markets.load("sample:SP500").iloc[-1500:]
    grid = {"rsi_window": [5, 25, 50], "lower": [5, 30], "upper": [70, 95]}
    for fused in (True, False):
        table = backtest.sweep("reversal", grid, bars, fees=0.001, fused=fused)
        flat = table["flat"] == 1.0
        assert flat.sum() >= 4 and (table.loc[flat, "n_trades"] == 0).all()
        assert table.loc[flat, "sharpe"].isna().all() and table.loc[flat, "sortino"].isna().all()
        assert np.isfinite(table.loc[~flat, "sharpe"]).all()
        for metric in ("sharpe", "sortino"):
            ranked = rank(table, metric)
            assert np.isfinite(ranked[metric].iloc[0])
            assert ranked[metric].iloc[-flat.sum():].isna().all()  # NaN always last
            assert ranked[metric].iloc[: (~flat).sum()].is_monotonic_decreasing
        assert rank(table, "ann_volatility", ascending=True)["ann_volatility"].iloc[0] == 0.0  # flat is least volatile
    with pytest.raises(KeyError, match="unknown metric 'sharp'.*sharpe"):
        rank(table, "sharp")


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


@pytest.mark.parametrize("fused", [True, False])
def test_chunks_give_the_same_table_and_report_progress(fused):
    """A grid run in many small chunks (bounded memory) equals the one-chunk run exactly; the dropped
    combinations of every chunk are counted; progress is reported after each chunk."""
    bars = make_bars(300)
    grid = {"fast": list(range(2, 40, 3)), "slow": [10, 20, 30, 45], "ma": ["sma", "ema"]}
    whole = backtest.sweep("trend", grid, bars, fees=0.001, fused=fused)
    from backtest.sweep import chunk_rows

    size = chunk_rows(len(bars), 1, chunk_bytes=8 * 300 * 8)  # 8 combinations per chunk
    assert size == 8
    seen = []
    parts = backtest.sweep("trend", grid, bars, fees=0.001, fused=fused, chunk_bytes=8 * 300 * 8,
                           progress=lambda done, total: seen.append((done, total)))
    pd.testing.assert_frame_equal(parts, whole, check_exact=True)
    total = 13 * 4 * 2
    assert seen == [(min(k, total), total) for k in range(8, total + 8, 8)]
    invalid = sum(f >= s for f in grid["fast"] for s in grid["slow"]) * 2
    assert parts.attrs["n_dropped"] == whole.attrs["n_dropped"] == invalid == total - len(parts)
    assert parts.attrs["note"] == whole.attrs["note"] and parts.attrs["note"].startswith(f"{invalid} of {total}")
    assert parts.attrs["dropped"] == whole.attrs["dropped"]


def test_dropped_list_is_capped(monkeypatch):
    import importlib

    monkeypatch.setattr(importlib.import_module("backtest.sweep"), "MAX_DROPPED_LISTED", 3)
    out = backtest.sweep("trend", {"fast": [50, 60, 70, 80, 5], "slow": [20]}, make_bars(100))
    assert out.attrs["n_dropped"] == 4 and len(out.attrs["dropped"]) == 3 and len(out) == 1
    assert out.attrs["note"].startswith("4 of 5 combinations dropped as invalid for 'trend' (e.g. ")
