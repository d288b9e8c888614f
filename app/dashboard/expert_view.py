"""What the Experts page computes, as plain functions (no Streamlit): an expert's decisions next to its
rule-based teacher's, per-bar prompt/answer details, and the price-over-exposure figure.

An LLM expert ``expert:<style>`` (``experts.plugin``) is taught by the rule-based decision-maker ``<style>``
(``backtest.rules``); its exposure is compared with the teacher's position per asset (the 1/N sleeve of
multi-asset weights undone, as ``experts.data.teacher_positions`` does for training).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

__all__ = ["ExpertView", "agreement", "bar_detail", "clicked_row", "expert_names", "figure", "inspect",
           "teacher_of"]


class ExpertView(NamedTuple):
    """One expert over some bars: ``exposure`` and ``teacher`` are ``(R, N)`` per-asset exposures (columns =
    assets), ``trace`` the expert's per-bar trace, ``teacher_trace`` the teacher's, ``bars`` the input bars."""

    name: str
    bars: pd.DataFrame
    exposure: pd.DataFrame
    trace: pd.DataFrame
    teacher: pd.DataFrame
    teacher_trace: pd.DataFrame
    assets: list[str]


def expert_names() -> list[str]:
    """Registered decision-makers named ``expert:*`` (the LLM experts), sorted."""
    from backtest.decisions import names

    return sorted(n for n in names() if n.startswith("expert:"))


def teacher_of(name: str, params: Mapping[str, Any] | None = None) -> tuple[str, dict[str, Any]]:
    """The teacher of ``expert:<style>``: the rule-based ``<style>`` with the parameters the expert's prompt
    states (positioning: ``target_vol`` = the expert's ``risk_budget``)."""
    style = name.split(":", 1)[1]
    params = dict(params or {})
    return style, ({"target_vol": float(params["risk_budget"])} if "risk_budget" in params else {})


def _per_asset(weights: pd.Series | pd.DataFrame, assets: list[str]) -> pd.DataFrame:
    """Weights -> per-asset exposures (the 1/N sleeve undone), columns = assets."""
    frame = weights.to_frame(assets[0]) if isinstance(weights, pd.Series) else weights
    return frame.astype("float64") * len(assets)


def inspect(bars: pd.DataFrame, name: str, params: Mapping[str, Any] | None = None) -> ExpertView:
    """Decide ``bars`` with the expert ``name`` (``params`` bound by the registry) and with its teacher."""
    import markets
    from backtest import decisions

    params = dict(params or {})
    dm = decisions.build(name, params)
    got = dm.decide(bars)
    style, tparams = teacher_of(name, dm.config)
    teach = decisions.decide(style, bars, tparams)
    assets = [str(a) for a in markets.assets(bars)]
    return ExpertView(name, bars, _per_asset(got.weights, assets), got.trace, _per_asset(teach.weights, assets),
                      teach.trace, assets)


def _column(trace: pd.DataFrame, asset: str, quantity: str, multi: bool) -> pd.Series:
    return trace[f"{asset}/{quantity}"] if multi else trace[quantity]


def agreement(view: ExpertView, asset: str) -> dict[str, float]:
    """Direction agreement (sign of the exposure, flat its own class) with the teacher over the rows where the
    teacher has a position defined, mean exposures, and the share of malformed answers."""
    e = view.exposure[asset].to_numpy(dtype=np.float64)
    t = view.teacher[asset].to_numpy(dtype=np.float64)
    ok = np.isfinite(t)
    malformed = _column(view.trace, asset, "malformed", len(view.assets) > 1).to_numpy(dtype=bool)
    return {"agreement": float(np.mean(np.sign(e[ok]) == np.sign(t[ok]))) if ok.any() else float("nan"),
            "expert_mean": float(np.nanmean(e)), "teacher_mean": float(np.nanmean(t[ok])) if ok.any() else 0.0,
            "malformed": float(malformed.mean()) if len(malformed) else 0.0}


def bar_detail(view: ExpertView, row: int, asset: str) -> dict[str, Any]:
    """Everything about row ``row`` for ``asset``: the prompt and answer the expert read and wrote, its
    exposure, and the teacher's exposure and trace record at that bar."""
    from backtest.decisions import trace_record

    multi = len(view.assets) > 1
    rec = trace_record(view.teacher_trace, row) if len(view.teacher_trace.columns) else {}
    if multi:  # "ASSET/quantity" columns nest as {ASSET: {...}}
        rec = rec.get(asset, {})
    return {
        "timestamp": view.exposure.index[row],
        "prompt": str(_column(view.trace, asset, "prompt", multi).iloc[row]),
        "answer": str(_column(view.trace, asset, "answer", multi).iloc[row]),
        "exposure": float(view.exposure[asset].iloc[row]),
        "malformed": bool(_column(view.trace, asset, "malformed", multi).iloc[row]),
        "teacher_exposure": float(view.teacher[asset].iloc[row]),
        "teacher_trace": rec,
    }


def clicked_row(points: Sequence[Mapping] | None, index: pd.DatetimeIndex) -> int | None:
    """The row of the first clicked chart point (``event.selection.points``: dicts with an ``"x"`` date), the
    bar at or before that time; None when nothing usable was clicked."""
    for point in points or ():
        x = point.get("x")
        if x is None:
            continue
        try:
            ts = pd.Timestamp(x)
        except (TypeError, ValueError):
            continue
        ts = ts.tz_localize(index.tz) if ts.tzinfo is None and index.tz is not None else ts.tz_convert(index.tz)
        pos = int(index.searchsorted(ts, side="right")) - 1
        if 0 <= pos < len(index):
            return pos
    return None


def figure(view: ExpertView, asset: str, *, selected: int | None = None):
    """Price (candles; a line for close-only data) over the expert's and the teacher's exposure, one shared
    time axis; ``selected`` marks a row."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    import markets

    fields = {f: markets.fields(view.bars, f)[asset] for f in ("open", "high", "low", "close")}
    idx = view.exposure.index
    px = {f: s.reindex(idx) for f, s in fields.items()}
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, row_heights=[0.62, 0.38], vertical_spacing=0.04)
    if bool((px["high"] > px["low"]).any()):
        fig.add_trace(go.Candlestick(x=idx, open=px["open"], high=px["high"], low=px["low"], close=px["close"],
                                     name=asset, showlegend=False), row=1, col=1)
    else:
        fig.add_trace(go.Scatter(x=idx, y=px["close"], name=f"{asset} close", mode="lines"), row=1, col=1)
    fig.add_trace(go.Scatter(x=idx, y=view.exposure[asset], name="expert", mode="lines+markers",
                             line={"shape": "hv", "color": "#1f77b4"}, marker={"size": 3}), row=2, col=1)
    fig.add_trace(go.Scatter(x=idx, y=view.teacher[asset], name="teacher", mode="lines",
                             line={"shape": "hv", "color": "#ff7f0e", "dash": "dot"}), row=2, col=1)
    if selected is not None and 0 <= selected < len(idx):
        fig.add_vline(x=idx[selected], line={"color": "#888888", "dash": "dash", "width": 1})
    fig.update_layout(title={"text": f"{view.name} on {asset}: price and exposure"}, height=560,
                      margin={"l": 40, "r": 20, "t": 50, "b": 30}, xaxis_rangeslider_visible=False,
                      legend={"orientation": "h", "y": -0.08}, clickmode="event+select")
    fig.update_yaxes(title_text="price", row=1, col=1)
    fig.update_yaxes(title_text="exposure", range=[-1.05, 1.05], row=2, col=1)
    return fig
