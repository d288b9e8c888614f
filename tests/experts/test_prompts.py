"""Prompt builders: golden text on bars with closed-form features, causality, shapes, warm-up."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from experts.prompts import STYLES, build_prompts
from tests.experts.conftest import geometric_bars, random_bars

R = 1.02  # geometric_bars: close_t = 100 * R**t, high = 1.01 close, low = 0.99 close, volume constant
HEAD = "Style: {}. Answer with a target exposure from -1.0 (short) to 1.0 (long).\n"

GOLDEN = {
    # returns R**5-1 = 10.4%, R**20-1 = 48.6%, R**60-1 = 228.1%; SMA20/SMA100 of a geometric series
    # = [(1-R^-20)/20] / [(1-R^-100)/100] - 1 = 89.7%; SMA slopes = R**5-1; ADX of a pure up-move = 100
    "trend": "Returns 5/20/60 bars: +10.4% +48.6% +228.1%.\nMA 20 vs 100: +89.7%.\n"
             "MA slopes 20/100: +10.4% +10.4% per 5 bars.\nADX 14: 100.\n",
    # no losses -> RSI 100 (> 70: short-side event this bar, >= 50: long-side exit this bar);
    # z of the last 20 closes = 1.746 (population std), close / SMA20 - 1 = 19.9%
    "reversal": "RSI 14: 100.\nBollinger z 20: +1.7.\nClose vs MA 20: +19.9%.\n"
                "Long side: RSI at or above 50, 0 bars ago.\nShort side: RSI above 70, 0 bars ago.\n",
    # close / previous 20-bar high = R / 1.01 - 1 = 1.0%; close / previous 20-bar low = R**20 / 0.99 - 1 = 50.1%;
    # (1.01 c_t - 0.99 c_{t-9}) / (1.01 c_t - 0.99 c_{t-49}) = 0.29
    "breakout": "Close vs 20-bar high/low: +1.0% +50.1%.\nVolume vs 20-bar mean: 1.00.\n"
                "Range 10 vs 50 bars: 0.29.\nLong side: close above 20-bar high, 0 bars ago.\n"
                "Short side: close above 10-bar high, 0 bars ago.\n",
    # constant log returns: zero volatility, so the teacher's size min(0.15 / vol, 1) = 1; at the high: no drawdown
    "positioning": "Realized vol 20 bars: 0.0% a year.\nDrawdown from 252-bar high: +0.0%.\n"
                   "Current exposure: +1.00.\nRisk budget: 15.0% vol a year.\n",
}


@pytest.mark.parametrize("style", STYLES)
def test_golden_text_on_geometric_bars(style):
    bars = geometric_bars()
    p = build_prompts(style, bars, start=len(bars) - 1)
    assert p.text.shape == (1, 1) and p.assets == ["GEO"] and p.index[0] == bars.index[-1]
    assert p.text[0, 0] == HEAD.format(style) + GOLDEN[style] + "Exposure:"


def test_golden_numbers_match_closed_forms():
    gap = ((1 - R**-20) / 20) / ((1 - R**-100) / 100) - 1
    assert f"{100 * gap:+.1f}%" == "+89.7%"
    c = 100 * R ** np.arange(130)
    w = c[-20:]
    assert f"{(c[-1] - w.mean()) / w.std():+.1f}" == "+1.7"
    assert f"{100 * (c[-1] / (0.99 * c[-21]) - 1):+.1f}%" == "+50.1%"
    assert f"{(1.01 * c[-1] - 0.99 * c[-10]) / (1.01 * c[-1] - 0.99 * c[-50]):.2f}" == "0.29"


def test_warmup_is_na_and_events_none():
    p = build_prompts("breakout", geometric_bars(), start=0).text[0, 0]
    assert "Close vs 20-bar high/low: n/a n/a." in p and "Long side: none." in p
    t = build_prompts("trend", geometric_bars(), start=50).text[0, 0]
    assert "MA 20 vs 100: n/a." in t and "Returns 5/20/60 bars: +10.4% +48.6% n/a." in t


def test_risk_budget_is_written_and_changes_current_exposure():
    bars = random_bars(120)
    a = build_prompts("positioning", bars, start=100, risk_budget=0.10).text[:, 0]
    b = build_prompts("positioning", bars, start=100, risk_budget=0.30).text[:, 0]
    assert all("Risk budget: 10.0% vol a year." in x for x in a)
    assert all("Risk budget: 30.0% vol a year." in x for x in b)


@pytest.mark.parametrize("style", STYLES)
def test_no_look_ahead_truncate_and_perturb_future(style):
    bars = random_bars(260, seed=3)
    full = build_prompts(style, bars).text[:, 0]
    k = 180
    cut = build_prompts(style, bars.iloc[: k + 1]).text[:, 0]
    assert list(cut) == list(full[: k + 1])
    noisy = bars.copy()
    noisy.iloc[k + 1:] = noisy.iloc[k + 1:] * 1.3
    assert list(build_prompts(style, noisy).text[: k + 1, 0]) == list(full[: k + 1])


def test_multi_asset_one_prompt_per_bar_and_asset():
    a, b = random_bars(150, seed=1, symbol="A"), random_bars(150, seed=2, symbol="B")
    multi = pd.concat({"A": a, "B": b}, axis=1, names=["asset", "field"])
    p = build_prompts("trend", multi, start=140)
    assert p.text.shape == (10, 2) and p.assets == ["A", "B"]
    assert list(p.text[:, 0]) == list(build_prompts("trend", a, start=140).text[:, 0])
    assert list(p.text[:, 1]) == list(build_prompts("trend", b, start=140).text[:, 0])


def test_bad_inputs_name_the_fix():
    with pytest.raises(KeyError, match="styles: trend, reversal"):
        build_prompts("momentum", geometric_bars())
    with pytest.raises(ValueError, match="start=999"):
        build_prompts("trend", geometric_bars(), start=999)
