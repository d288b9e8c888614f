"""Prompt builders of the four experts: causal market features rendered as a fixed, documented text.

One prompt per (bar, asset). Every number in the prompt at row t comes from ``markets.features`` (or plain
rolling windows) over bars ``0..t`` only, so a prompt can never see the future and two runs over the same
history produce the same text (the decision cache keys on it). Features are computed for all bars at once
(vectorized over bars and assets); only the final string formatting is a Python loop over rows.

Format (one line per field, the answer cue last; ``n/a`` marks a value still in its warm-up)::

    Style: trend. Answer with a target exposure from -1.0 (short) to 1.0 (long).
    Returns 5/20/60 bars: +0.8% -1.2% +4.0%.
    MA 20 vs 100: +2.3%.
    MA slopes 20/100: +0.4% +0.1% per 5 bars.
    ADX 14: 23.
    Exposure:

Fields by style (windows are those of the rule-based teacher of the same name, ``backtest.rules``):

* **trend**: returns over 5/20/60 bars; the gap between the 20- and 100-bar SMAs (the teacher's crossover
  signal); the slope of each SMA over the last 5 bars; Wilder's ADX(14).
* **reversal**: Wilder's RSI(14); the Bollinger z-score over 20 bars; the distance of the close from its
  20-bar SMA; per side the most recent RSI event and its age (long side: "RSI below 30" = oversold entry, or
  "RSI at or above 50" = exit; short side: "RSI above 70" or "RSI at or below 50").
* **breakout**: the distance of the close to the previous 20-bar high and low (Donchian, excluding bar t);
  volume surge (volume over its previous 20-bar mean); range compression (10-bar range over 50-bar range);
  per side the most recent channel event and its age (long side: "close above 20-bar high" or "close below
  10-bar low"; short side: "close below 20-bar low" or "close above 10-bar high").
* **positioning**: annualized realized volatility over 20 bars; drawdown from the 252-bar high; the current
  exposure (the positioning teacher's exposure at bar t-1, known at t's close: the expert's own previous
  answer would serialize decoding); the risk budget (target annual volatility, a parameter).

Numbers: percentages with one decimal and an explicit sign (the sign of tiny values is kept: ``-0.0%``),
oscillators as integers, ratios with two decimals. Event ages count bars (``0 bars ago`` = this bar);
``none`` when the event has not happened in the history given.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np
import pandas as pd

__all__ = ["ANSWER_CUE", "INSTRUCTION", "STYLES", "Prompts", "build_prompts", "prompt_features"]

STYLES = ("trend", "reversal", "breakout", "positioning")
INSTRUCTION = "Answer with a target exposure from -1.0 (short) to 1.0 (long)."
ANSWER_CUE = "Exposure:"
_RSI_LOW, _RSI_HIGH, _RSI_MID = 30.0, 70.0, 50.0


class Prompts(NamedTuple):
    """Prompts of rows ``start..T-1``: ``text`` ``(R, N)`` object array of strings (row r = bar start + r,
    column = asset), ``index`` the R timestamps, ``assets`` the N asset names."""

    text: np.ndarray
    index: pd.DatetimeIndex
    assets: list[str]


# ------------------------------------------------------------------------------------------- formatting
def _pct(x: np.ndarray, *, signed: bool = True) -> np.ndarray:
    """Fractions -> ``+1.2%`` strings (one decimal, explicit sign kept for tiny values; ``signed=False`` for
    quantities that are never negative); NaN -> ``n/a``."""
    out = np.char.add(np.char.mod("%+.1f" if signed else "%.1f", np.nan_to_num(100.0 * x)), "%").astype(object)
    out[~np.isfinite(x)] = "n/a"
    return out


def _num(x: np.ndarray, fmt: str) -> np.ndarray:
    out = np.char.mod(fmt, np.nan_to_num(x)).astype(object)
    out[~np.isfinite(x)] = "n/a"
    return out


def _event_text(age: np.ndarray, which: np.ndarray, names: tuple[str, str]) -> np.ndarray:
    """Per cell: ``"<name>, <age> bars ago"`` for the most recent of two events (``which`` 0/1), ``none``
    when neither happened (``age`` NaN)."""
    ages = np.nan_to_num(age, nan=0.0).astype(np.int64)
    unit = np.where(ages == 1, " bar ago", " bars ago")
    label = np.where(which == 0, names[0], names[1])
    out = np.char.add(np.char.add(np.char.add(label.astype(str), ", "), ages.astype(str)), unit).astype(object)
    out[~np.isfinite(age)] = "none"
    return out


# ------------------------------------------------------------------------------------------- events
def _last_event(entry: np.ndarray, exit_: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Most recent of two boolean event streams ``(T, N)``: ``(age (T, N) float, NaN = none; which (T, N):
    0 entry, 1 exit)``. On a bar with both, the entry wins (the teachers' rule: entries take precedence)."""
    T = entry.shape[0]
    idx = np.arange(T, dtype=np.float64)[:, None]
    last_entry = pd.DataFrame(np.where(entry, idx, np.nan)).ffill().to_numpy()  # (T, N)
    last_exit = pd.DataFrame(np.where(exit_ & ~entry, idx, np.nan)).ffill().to_numpy()
    e, x = np.nan_to_num(last_entry, nan=-1.0), np.nan_to_num(last_exit, nan=-1.0)
    latest = np.maximum(e, x)
    age = np.where(latest >= 0, idx - latest, np.nan)
    return age, np.where(e >= x, 0, 1)


# ------------------------------------------------------------------------------------------- features
def _fields(bars: pd.DataFrame) -> dict[str, pd.DataFrame]:
    import markets

    return {f: markets.fields(bars, f).astype("float64") for f in ("open", "high", "low", "close", "volume")}


def _trend(f: dict[str, pd.DataFrame], **_) -> dict[str, np.ndarray]:
    from markets import features

    c = f["close"]
    sma20, sma100 = features.sma(c, 20), features.sma(c, 100)
    return {
        "ret5": (c / c.shift(5) - 1).to_numpy(), "ret20": (c / c.shift(20) - 1).to_numpy(),
        "ret60": (c / c.shift(60) - 1).to_numpy(), "gap": (sma20 / sma100 - 1).to_numpy(),
        "slope20": (sma20 / sma20.shift(5) - 1).to_numpy(), "slope100": (sma100 / sma100.shift(5) - 1).to_numpy(),
        "adx": features.adx(f["high"], f["low"], c, 14).to_numpy(),
    }


def _reversal(f: dict[str, pd.DataFrame], **_) -> dict[str, np.ndarray]:
    from markets import features

    c = f["close"]
    rsi = features.rsi(c, 14).to_numpy()
    with np.errstate(invalid="ignore"):
        long_age, long_which = _last_event(rsi < _RSI_LOW, rsi >= _RSI_MID)
        short_age, short_which = _last_event(rsi > _RSI_HIGH, rsi <= _RSI_MID)
    return {
        "rsi": rsi, "z": features.bollinger_z(c, 20).to_numpy(), "dist": (c / features.sma(c, 20) - 1).to_numpy(),
        "long_age": long_age, "long_which": long_which, "short_age": short_age, "short_which": short_which,
    }


def _breakout(f: dict[str, pd.DataFrame], **_) -> dict[str, np.ndarray]:
    from markets import features

    h, lo, c, v = f["high"], f["low"], f["close"], f["volume"]
    up20, low20, _ = (x.shift(1).to_numpy() for x in features.donchian(h, lo, 20))  # channel before bar t
    up10, low10, _ = (x.shift(1).to_numpy() for x in features.donchian(h, lo, 10))
    cc = c.to_numpy()
    with np.errstate(invalid="ignore", divide="ignore"):
        long_age, long_which = _last_event(cc > up20, cc < low10)
        short_age, short_which = _last_event(cc < low20, cc > up10)
        prev_mean_vol = v.rolling(20, min_periods=20).mean().shift(1).to_numpy()
        surge = np.where(prev_mean_vol > 0, v.to_numpy() / prev_mean_vol, np.nan)
        r10 = (h.rolling(10, min_periods=10).max() - lo.rolling(10, min_periods=10).min()).to_numpy()
        r50 = (h.rolling(50, min_periods=50).max() - lo.rolling(50, min_periods=50).min()).to_numpy()
        compression = np.where(r50 > 0, r10 / r50, np.nan)
        return {
            "to_high": cc / up20 - 1, "to_low": cc / low20 - 1, "surge": surge, "compression": compression,
            "long_age": long_age, "long_which": long_which, "short_age": short_age, "short_which": short_which,
        }


def _positioning(f: dict[str, pd.DataFrame], *, bars: pd.DataFrame, risk_budget: float) -> dict[str, np.ndarray]:
    from backtest.metrics import infer_periods_per_year
    from markets import features

    c = f["close"]
    ppy = float(infer_periods_per_year(bars.index)) if len(bars) >= 3 else 252.0
    vol = features.realized_vol(c, 20, ppy).to_numpy()
    peak = c.rolling(252, min_periods=1).max()
    with np.errstate(divide="ignore", invalid="ignore"):
        size = np.nan_to_num(np.minimum(risk_budget / vol, 1.0), nan=0.0)  # the positioning teacher's rule
    current = np.vstack([np.zeros((1, size.shape[1])), size[:-1]])  # its exposure at t-1
    return {"vol": vol, "dd": (c / peak - 1).to_numpy(), "current": current,
            "budget": np.full(size.shape, risk_budget)}


def prompt_features(style: str, bars: pd.DataFrame, *, risk_budget: float = 0.15) -> dict[str, np.ndarray]:
    """The numbers behind the prompts of ``style``: name -> ``(T, N)`` float array (NaN in warm-up)."""
    if style not in STYLES:
        raise KeyError(f"unknown expert style {style!r}; styles: {', '.join(STYLES)}")
    fn = {"trend": _trend, "reversal": _reversal, "breakout": _breakout, "positioning": _positioning}[style]
    return fn(_fields(bars), bars=bars, risk_budget=risk_budget)


# ------------------------------------------------------------------------------------------- rendering
def _render(style: str, x: dict[str, np.ndarray]) -> list[np.ndarray]:
    """The prompt's lines (without header and cue) as ``(R, N)`` object arrays of strings."""
    if style == "trend":
        return [
            "Returns 5/20/60 bars: " + _pct(x["ret5"]) + " " + _pct(x["ret20"]) + " " + _pct(x["ret60"]) + ".",
            "MA 20 vs 100: " + _pct(x["gap"]) + ".",
            "MA slopes 20/100: " + _pct(x["slope20"]) + " " + _pct(x["slope100"]) + " per 5 bars.",
            "ADX 14: " + _num(x["adx"], "%.0f") + ".",
        ]
    if style == "reversal":
        return [
            "RSI 14: " + _num(x["rsi"], "%.0f") + ".",
            "Bollinger z 20: " + _num(x["z"], "%+.1f") + ".",
            "Close vs MA 20: " + _pct(x["dist"]) + ".",
            "Long side: " + _event_text(x["long_age"], x["long_which"], ("RSI below 30", "RSI at or above 50"))
            + ".",
            "Short side: " + _event_text(x["short_age"], x["short_which"], ("RSI above 70", "RSI at or below 50"))
            + ".",
        ]
    if style == "breakout":
        return [
            "Close vs 20-bar high/low: " + _pct(x["to_high"]) + " " + _pct(x["to_low"]) + ".",
            "Volume vs 20-bar mean: " + _num(x["surge"], "%.2f") + ".",
            "Range 10 vs 50 bars: " + _num(x["compression"], "%.2f") + ".",
            "Long side: " + _event_text(x["long_age"], x["long_which"],
                                        ("close above 20-bar high", "close below 10-bar low")) + ".",
            "Short side: " + _event_text(x["short_age"], x["short_which"],
                                         ("close below 20-bar low", "close above 10-bar high")) + ".",
        ]
    return [
        "Realized vol 20 bars: " + _pct(x["vol"], signed=False) + " a year.",
        "Drawdown from 252-bar high: " + _pct(x["dd"]) + ".",
        "Current exposure: " + _num(x["current"], "%+.2f") + ".",
        "Risk budget: " + _pct(x["budget"], signed=False) + " vol a year.",
    ]


def build_prompts(style: str, bars: pd.DataFrame, *, start: int = 0, risk_budget: float = 0.15) -> Prompts:
    """Prompts of ``style`` for rows ``start..T-1`` of ``bars`` (single- or multi-asset canonical bars).

    Row t's prompt uses bars ``0..t`` only. Returns :class:`Prompts` with ``text (T - start, N)``.
    """
    import markets

    if not 0 <= start <= len(bars):
        raise ValueError(f"start={start} is outside 0..{len(bars)} (the number of bars)")
    if not 0.0 < risk_budget <= 2.0:
        raise ValueError(f"risk_budget={risk_budget} must be an annual volatility in (0, 2], e.g. 0.15")
    feats = prompt_features(style, bars, risk_budget=risk_budget)
    sliced = {k: v[start:] for k, v in feats.items()}
    header = f"Style: {style}. {INSTRUCTION}"
    body = _render(style, sliced)
    text = header + "\n" + body[0]
    for line in body[1:]:
        text = text + "\n" + line
    text = text + "\n" + ANSWER_CUE
    shape = sliced[next(iter(sliced))].shape
    text = np.broadcast_to(np.asarray(text, dtype=object), shape)
    return Prompts(np.array(text, dtype=object), bars.index[start:], list(markets.assets(bars)))
