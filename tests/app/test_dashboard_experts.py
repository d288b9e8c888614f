"""Experts page (AppTest on the real page script) and the plain helpers behind it (app.dashboard.expert_view)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

import app.dashboard
from app.dashboard import expert_view

ENTRY = str(Path(app.dashboard.__file__).with_name("main.py"))
SPEC, START, END = "sample:SP500", "2016-01-01", "2017-12-31"  # the page's default range


@pytest.fixture(scope="module")
def trend_view():
    import markets

    bars = markets.load(SPEC, START, END)
    return expert_view.inspect(bars, "expert:trend", {})


def _page() -> AppTest:
    at = AppTest.from_file(ENTRY, default_timeout=180)
    at.switch_page("views/experts.py")
    return at.run()


# ------------------------------------------------------------------------------------------- helpers
def test_view_holds_the_expert_and_its_teacher(trend_view):
    from backtest.decisions import decide

    v = trend_view
    assert "expert:trend" in expert_view.expert_names() and expert_view.teacher_of("expert:trend") == ("trend", {})
    assert expert_view.teacher_of("expert:positioning", {"risk_budget": 0.1}) == ("positioning",
                                                                                  {"target_vol": 0.1})
    direct = decide("expert:trend", v.bars, {})
    np.testing.assert_array_equal(v.exposure["SP500"].to_numpy(), direct.weights.to_numpy())
    np.testing.assert_array_equal(v.teacher["SP500"].to_numpy(),
                                  np.asarray(decide("trend", v.bars, {}).weights, dtype=float))
    stats = expert_view.agreement(v, "SP500")
    e, t = v.exposure["SP500"].to_numpy(), v.teacher["SP500"].to_numpy()
    ok = np.isfinite(t)
    assert stats["agreement"] == pytest.approx(np.mean(np.sign(e[ok]) == np.sign(t[ok])))
    assert stats["agreement"] > 0.8 and stats["malformed"] == 0.0  # the shipped expert follows its teacher


def test_bar_detail_and_click_mapping(trend_view):
    v = trend_view
    d = expert_view.bar_detail(v, 200, "SP500")
    assert d["prompt"] == v.trace["prompt"].iloc[200] and d["answer"] == v.trace["answer"].iloc[200]
    assert d["exposure"] == v.exposure["SP500"].iloc[200] and d["timestamp"] == v.exposure.index[200]
    assert d["prompt"].startswith("Style: trend.") and d["prompt"].endswith("Exposure:")
    assert set(d["teacher_trace"]) == set(v.teacher_trace.columns)
    idx = v.exposure.index
    assert expert_view.clicked_row([{"x": str(idx[37].date())}], idx) == 37  # plotly sends naive dates
    assert expert_view.clicked_row([{"x": idx[5].isoformat()}], idx) == 5
    assert expert_view.clicked_row([{"curveNumber": 0}, {"x": "not a date"}], idx) is None
    assert expert_view.clicked_row([], idx) is None


def test_multi_asset_view_undoes_the_sleeves():
    import markets

    bars = markets.load("sample:SP20", "2017-06-01", "2017-12-31")
    bars = bars.loc[:, bars.columns.get_level_values("asset").isin(["AAPL", "MSFT"])]
    v = expert_view.inspect(bars, "expert:positioning", {})
    assert v.assets == ["AAPL", "MSFT"] and list(v.exposure.columns) == ["AAPL", "MSFT"]
    np.testing.assert_allclose(v.exposure["AAPL"], v.trace["AAPL/exposure"])  # weight = exposure / 2
    d = expert_view.bar_detail(v, 10, "MSFT")
    assert d["prompt"] == v.trace["MSFT/prompt"].iloc[10] and "weight" in d["teacher_trace"]


# ------------------------------------------------------------------------------------------- page
def test_experts_page_shows_exposure_under_price_and_the_bar_prompt(trend_view):
    at = _page()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    assert at.title[0].value == "Experts"
    assert at.selectbox(key="ex_expert").value == "expert:trend"
    spec = json.loads(at.get("plotly_chart")[0].proto.spec)
    kinds = [(t["type"], t.get("name")) for t in spec["data"]]
    assert kinds[0][0] == "candlestick" and ("scatter", "expert") in kinds and ("scatter", "teacher") in kinds
    assert {t.get("yaxis", "y") for t in spec["data"]} == {"y", "y2"}  # price above, exposure below
    tiles = {m.label: m.value for m in at.metric}
    stats = expert_view.agreement(trend_view, "SP500")
    assert tiles["Direction agreement with teacher"] == f"{stats['agreement']:.1%}"
    # the newest bar is shown first; its prompt and answer are the trace's
    assert at.selectbox(key="ex_bar").value == f"{trend_view.exposure.index[-1]:%Y-%m-%d}"
    assert at.code[0].value == trend_view.trace["prompt"].iloc[-1]
    assert at.code[1].value == trend_view.trace["answer"].iloc[-1]
    # picking another bar shows that bar's prompt
    label = f"{trend_view.exposure.index[100]:%Y-%m-%d}"
    at.selectbox(key="ex_bar").set_value(label).run()
    assert not at.exception and at.code[0].value == trend_view.trace["prompt"].iloc[100]
    # another expert renders too (its teacher: the positioning rule)
    at.selectbox(key="ex_expert").set_value("expert:positioning").run()
    assert not at.exception and not at.error
    assert any("Teacher (positioning)" in h.value for h in at.subheader)
    assert at.code[0].value.startswith("Style: positioning.")


def test_experts_page_bad_checkpoint_is_one_error_line():
    at = _page()
    at.text_input(key="ex_p_expert:trend_checkpoint").set_value("/no/such/folder").run()
    assert not at.exception
    assert len(at.error) == 1 and "checkpoint" in at.error[0].value and "\n" not in at.error[0].value


def test_page_is_registered():
    from app.dashboard import registry

    entry = next(p for p in registry.PAGES if p.title == "Experts")
    assert entry.path.is_file() and entry.url_path == "experts"
