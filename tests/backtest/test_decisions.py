"""The decision-maker contract: rule-based strategies unchanged by it, one registry, stateful instances, plugins,
checkpoints, the output contract and traces."""
from __future__ import annotations

import hashlib
import importlib.metadata
import json
import warnings
from typing import ClassVar

import numpy as np
import pandas as pd
import pytest

import backtest
import markets
from backtest import decisions
from backtest.decisions import Decision, DecisionMaker, Param, build, decide, trace_record

# Recorded from the function registry this contract replaced (commit c30020f, ``STRATEGIES[name](bars, **p)``
# and ``backtest.run(bars, w, fees=0)``): sha256 of the float64 weights, total return, Sharpe, number of trades.
GOLDEN = [
    ('sample:MSFT', 'trend', {}, '78e89ade6b32dc47', 62.98895212983357, 0.6249680751444296, 103),
    ('sample:MSFT', 'trend', {'fast': 5, 'slow': 30, 'ma': 'ema', 'mode': 'long_short'}, 'e628d943a3999f61', -0.8608122435421192, 0.008211997651871769, 2973),
    ('sample:MSFT', 'trend', {'signal': 'momentum', 'lookback': 40, 'mode': 'long_short'}, 'ec1b5eabc8295b22', -0.19433168173181503, 0.1595852457411314, 3061),
    ('sample:MSFT', 'reversal', {'mode': 'long_short'}, 'd401f0954b104381', -0.8161337234679286, -0.13015375074259608, 2032),
    ('sample:MSFT', 'reversal', {'method': 'bollinger', 'entry_z': 1.0}, '0a2c41ad245d85d7', 11.257167546724986, 0.4633048653561847, 456),
    ('sample:MSFT', 'breakout', {'mode': 'long_short', 'atr_mult': 0.5}, '5a2f179ba93505a4', -0.5661066459112847, 0.050836462115144455, 1618),
    ('sample:MSFT', 'positioning', {'trend_window': 50}, '995b578244ea7a9c', 16.24427748047005, 0.7633178676663699, 4377),
    ('sample:MSFT', 'buy_and_hold', {}, '0897691ef13f79b6', 1112.3678481348832, 0.7919116105795246, 1),
    ('sample:SP20', 'trend', {}, 'da5e51b4652e868a', 21.652077089562727, 0.9400777511367675, 105097),
    ('sample:SP20', 'trend', {'fast': 5, 'slow': 30, 'ma': 'ema', 'mode': 'long_short'}, 'ce5bd87cd1927fd5', -0.22313129210966143, 0.009575007923416052, 165620),
    ('sample:SP20', 'trend', {'signal': 'momentum', 'lookback': 40, 'mode': 'long_short'}, '0a94eeb32c48a4fe', -0.09308232513502468, 0.04468911069528336, 165291),
    ('sample:SP20', 'reversal', {'mode': 'long_short'}, '48e28001ba0ceeee', -0.27185550618581256, -0.07949963819113748, 55286),
    ('sample:SP20', 'reversal', {'method': 'bollinger', 'entry_z': 1.0}, '4446ff9affd7401c', 11.992818978721534, 0.735041483538579, 59783),
    ('sample:SP20', 'breakout', {'mode': 'long_short', 'atr_mult': 0.5}, '3fb1a3c4cd86e9d5', -0.5149443403390974, -0.12739075508169226, 117602),
    ('sample:SP20', 'positioning', {'trend_window': 50}, 'e74d318a9cead7db', 3.7705282377393488, 0.8934033901884947, 105418),
    ('sample:SP20', 'buy_and_hold', {}, '0e1de72be01945d4', 246.24654455687644, 0.9771871637813807, 166240),
]


@pytest.fixture(scope="module")
def data():
    return {s: markets.load(s) for s in ("sample:MSFT", "sample:SP20")}


@pytest.mark.parametrize("spec, name, params, sha, total, sharpe, trades", GOLDEN,
                         ids=[f"{g[0][7:]}-{g[1]}-{i}" for i, g in enumerate(GOLDEN)])
def test_rule_based_weights_and_metrics_identical_to_the_function_registry(data, spec, name, params, sha, total,
                                                                           sharpe, trades):
    bars = data[spec]
    w = decide(name, bars, params).weights
    assert hashlib.sha256(np.ascontiguousarray(np.asarray(w, dtype=np.float64)).tobytes()).hexdigest()[:16] == sha
    m = backtest.run(bars, w, fees=0.0, band=0.0).metrics  # no band: the accounting these were recorded with
    assert m["total_return"] == pytest.approx(total, rel=1e-9)
    assert m["sharpe"] == pytest.approx(sharpe, rel=1e-9)
    assert m["n_trades"] == trades


def test_build_binds_once_and_caches_the_instance_per_process():
    from drex_testplugin import LOADS

    before = LOADS[0]
    a = build("plugin_ema", {"fast": "3", "slow": 9})
    assert build("plugin_ema", {"fast": 3, "slow": "9"}) is a  # same bound parameters: the same instance
    assert LOADS[0] == before + 1
    assert a.config == {"fast": 3, "slow": 9, "target_vol": 0.02} and a.name == "plugin_ema"
    fresh = build("plugin_ema", {"fast": 3, "slow": 9}, fresh=True)
    assert fresh is not a and LOADS[0] == before + 2
    with pytest.raises(ValueError, match=r"fast \(9\) must be smaller than slow \(3\)"):  # the plugin's own rule
        build("plugin_ema", {"fast": 9, "slow": 3})


def test_decide_start_returns_only_the_new_rows_and_counts_them():
    from drex_testplugin import DECIDED

    bars = markets.load("sample:MSFT").iloc[-500:]
    dm = build("plugin_ema")
    full = decide(dm, bars)
    before = DECIDED[0]
    tail = decide(dm, bars, start=480)
    assert DECIDED[0] - before == 20 and tail.weights.index.equals(bars.index[480:])
    pd.testing.assert_series_equal(tail.weights, full.weights.iloc[480:])
    pd.testing.assert_frame_equal(tail.trace, full.trace.iloc[480:])
    rule = decide("trend", bars, {"fast": 5, "slow": 20}, start=480)  # rule-based: computed whole, sliced
    assert len(rule.weights) == 20 and rule.trace.index.equals(bars.index[480:])


def test_fit_save_and_load_round_trip(tmp_path):
    bars = markets.load("sample:MSFT")
    dm = build("plugin_ema", {"target_vol": 0.005}, fresh=True)
    assert decisions.get("plugin_ema").trainable
    dm.fit(bars.iloc[:2000])
    assert 0 < dm.scale < 1
    path = decisions.save(dm, tmp_path / "ckpt")
    assert sorted(p.name for p in path.iterdir()) == ["config.json", "model.safetensors"]
    cfg = json.loads((path / "config.json").read_text())
    assert cfg == {"format": 1, "name": "plugin_ema", "params": {"fast": 5, "slow": 20, "target_vol": 0.005}}
    again = decisions.load(path)
    assert again is not dm and again.scale == dm.scale
    pd.testing.assert_series_equal(decide(again, bars).weights, decide(dm, bars).weights)
    decisions.save(dm, path)  # overwriting is atomic too
    (path / "config.json").write_text("{not json")
    with pytest.raises(ValueError, match="corrupt or not a DREX checkpoint"):
        decisions.load(path)
    with pytest.raises(FileNotFoundError, match="no config.json"):
        decisions.load(tmp_path)


def test_checkpoint_resolution_names_the_fix(tmp_path):
    with pytest.raises(FileNotFoundError, match="not shipped in backtest"):
        decisions.resolve_checkpoint("default", package="backtest", default="nothing")
    with pytest.raises(FileNotFoundError, match="drex train"):
        decisions.resolve_checkpoint(str(tmp_path / "missing"), package="backtest", default="x")
    assert decisions.resolve_checkpoint(str(tmp_path), package="backtest", default="x") == tmp_path


class _Bad(DecisionMaker):
    params: ClassVar[dict] = {"mode": Param("index", choices=("index", "type", "trace"))}

    def decide(self, bars, *, start=0):
        w = bars["close"] * 0.0
        if self.config["mode"] == "index":
            return Decision(w, pd.DataFrame(index=bars.index))  # ignores start
        if self.config["mode"] == "type":
            return w
        return Decision(w.iloc[start:], pd.DataFrame({"x": [1]}))


def test_decide_checks_the_output_contract(monkeypatch):
    monkeypatch.setitem(decisions._REGISTRY, "bad", decisions.Entry("bad", _Bad, decisions.ParamSpace(_Bad.params),
                                                                   source="tests.bad"))
    bars = markets.load("sample:MSFT").iloc[:50]
    with pytest.raises(ValueError, match=r"weights indexed by bars.index\[start:\] \(40 rows\)"):
        decide("bad", bars, start=10)
    with pytest.raises(TypeError, match="must return Decision"):
        decide("bad", bars, {"mode": "type"})
    with pytest.raises(ValueError, match="trace DataFrame indexed like its weights"):
        decide("bad", bars, {"mode": "trace"})
    with pytest.raises(ValueError, match="outside the 50 bars"):
        decide("trend", bars, start=51)


def test_registration_rules():
    with pytest.raises(ValueError, match="already registered"):
        decisions.register("trend", params={})(lambda bars: None)
    with pytest.raises(TypeError, match="must subclass"):
        decisions.register("not_a_dm")(dict)
    with pytest.raises(TypeError, match="needs params="):
        decisions.register("no_params")(lambda bars: None)
    with pytest.raises(ValueError, match="without spaces"):
        decisions.register("two words", params={})
    with pytest.raises(KeyError, match="unknown decision-maker 'nope'; registered: .*plugin_ema"):
        decisions.get("nope")


def test_entry_point_plugins_are_discovered_and_a_broken_one_only_warns(monkeypatch):
    assert decisions.get("plugin_ema").source == "drex_testplugin"  # found through its entry point
    broken = importlib.metadata.EntryPoint("broken", "no_such_module_xyz", decisions.ENTRY_POINT_GROUP)
    monkeypatch.setattr(importlib.metadata, "entry_points", lambda group: [broken])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert decisions.discover() == []
    assert any("drex plugin 'broken'" in str(w.message) for w in caught)
    assert "trend" in decisions.names()


def test_env_plugins_are_imported(monkeypatch):
    monkeypatch.setenv("DREX_PLUGINS", "tests.app.test_paper_support")
    decisions.discover()
    assert "paper_test_rotation" in decisions.names()
    monkeypatch.setenv("DREX_PLUGINS", "no_such_module_xyz")
    with pytest.raises(ModuleNotFoundError):
        decisions.discover()


def test_trace_records_nest_per_asset_and_are_strict_json():
    bars = markets.load("sample:AAPL,JPM").iloc[-100:]
    d = decide("positioning", bars)
    rec = trace_record(d.trace, -1)
    assert set(rec) == {"AAPL", "JPM"} and set(rec["AAPL"]) >= {"realized_vol", "weight"}
    assert rec["AAPL"]["weight"] == pytest.approx(d.weights["AAPL"].iloc[-1])
    first = trace_record(d.trace, 0)
    assert first["AAPL"]["realized_vol"] is None  # NaN in the warm-up -> null
    json.dumps(first, allow_nan=False)


def test_run_strategy_and_benchmark_share_the_engine():
    bars = markets.load("sample:SP500").iloc[-400:]
    run = backtest.run_strategy(bars, "trend", {"fast": 10, "slow": 50}, start=100, fees=0.001)
    full = decide("trend", bars, {"fast": 10, "slow": 50})
    direct = backtest.run(bars.iloc[100:], full.weights.iloc[100:], fees=0.001)
    pd.testing.assert_series_equal(run.result.equity, direct.equity)
    bench = backtest.benchmark(bars, start=100, fees=0.001)
    bh = backtest.run(bars.iloc[100:], pd.Series(1.0, index=bars.index[100:]), fees=0.001)
    pd.testing.assert_series_equal(bench.equity, bh.equity)
