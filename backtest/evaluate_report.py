"""The report of a walk-forward evaluation (``backtest.evaluate``): one folder, written atomically.

``write_evaluation_report(evaluation, out_dir)`` writes

* ``evaluation.json``: ``Evaluation.to_json()`` (one object per strategy keyed by its label, the same text as
  ``drex evaluate --json``);
* ``equity.csv``: the test-period equity of every strategy (one column each, starting at 1);
* ``report.html``: the summary table (Sharpe with its confidence interval and the comparison with buy and
  hold), the per-fold Sharpe ratios, and the test-fold equity curves with the fold boundaries marked and the
  drawdowns below (plotly, self-contained like ``backtest.report``: plotly.js inlined, opens offline).

Each file goes to a temporary name in ``out_dir`` first and is moved into place with ``os.replace``.
"""
from __future__ import annotations

import html
import math
import os
from pathlib import Path
from typing import Any

__all__ = ["evaluation_json", "write_evaluation_report"]


def evaluation_json(evaluation: Any) -> str:
    """``evaluation.to_json()`` as strict JSON text (NaN/inf -> null)."""
    from backtest.jsonable import dumps

    return dumps(evaluation.to_json()) + "\n"


def _fmt(value: Any, digits: int = 3) -> str:
    if isinstance(value, str):
        return value
    try:
        v = float(value)
    except (TypeError, ValueError):
        return str(value)
    return f"{v:.{digits}g}" if math.isfinite(v) else "n/a"


def _html_table(frame: Any) -> str:
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in [frame.index.name or "", *frame.columns])
    rows = "".join(
        "<tr><th>" + html.escape(str(idx)) + "</th>" + "".join(f"<td>{html.escape(_fmt(v))}</td>" for v in row)
        + "</tr>" for idx, row in zip(frame.index, frame.itertuples(index=False)))
    return f"<table class='metrics'><tr>{head}</tr>{rows}</table>"


def _equity_frame(evaluation: Any):
    import pandas as pd

    cash = float(evaluation.setup["init_cash"])
    return pd.DataFrame({label: s.result.equity / cash for label, s in evaluation.strategies.items()})


def _figure(evaluation: Any, equity: Any, title: str):
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.05, row_heights=[0.7, 0.3],
                        subplot_titles=("Equity over the test folds (net of costs)", "Drawdown"))
    for label in equity.columns:
        dash = "dot" if label == "buy_and_hold" else ("dash" if label == "equal_weight" else None)
        eq = equity[label]
        fig.add_trace(go.Scatter(x=eq.index, y=eq, name=label, legendgroup=label, line={"dash": dash}), row=1, col=1)
        fig.add_trace(go.Scatter(x=eq.index, y=eq / eq.cummax() - 1.0, name=label, legendgroup=label,
                                 showlegend=False, line={"dash": dash}), row=2, col=1)
    for f in evaluation.folds[1:]:  # boundaries between test folds
        x = evaluation.index[int(f.test[0]) - int(evaluation.folds[0].test[0])]
        fig.add_vline(x=x, line={"color": "grey", "dash": "dot", "width": 1})
    fig.update_layout(title=title, height=800, template="plotly_white", hovermode="x unified")
    fig.update_yaxes(tickformat=".0%", row=2, col=1)
    return fig


def _fold_table(evaluation: Any):
    import pandas as pd

    data = {label: [f.get("sharpe") for f in s.folds] for label, s in evaluation.strategies.items()}
    frame = pd.DataFrame(data, index=[f"fold {f['fold']}: {f['test_start'][:10]} .. {f['test_end'][:10]}"
                                      for f in next(iter(evaluation.strategies.values())).folds]).T
    frame.index.name = "Sharpe per test fold"
    return frame


def write_evaluation_report(evaluation: Any, out_dir: str | os.PathLike, *,
                            title: str = "DREX walk-forward evaluation") -> dict[str, Path]:
    """Write ``report.html``, ``evaluation.json`` and ``equity.csv`` of ``evaluation`` into ``out_dir``
    (created) and return ``{"html", "json", "equity"} -> path``."""
    out = Path(out_dir)
    equity = _equity_frame(evaluation)
    setup = evaluation.setup
    level = round(100 * setup["ci_level"])
    note = (f"{setup['n_folds']} walk-forward folds, test {evaluation.index[0].date()} .. "
            f"{evaluation.index[-1].date()} ({len(evaluation.index)} bars), fees {setup['fees']:g}, slippage "
            f"{setup['slippage']:g}, {setup['execution']}. Sharpe {level}% confidence interval: "
            f"{setup['ci_method']}. vs_buy_and_hold is 'above'/'below' only when the intervals do not overlap; "
            "overlapping intervals are not called different.")
    from backtest.atomic import StagedFiles
    from backtest.report_figures import plotly_js

    js_name, js_source = plotly_js()  # one shared local plotly.js next to the report folder (offline, no CDN)
    shared = out.resolve().parent / js_name
    src = os.path.relpath(shared, out.resolve()).replace(os.sep, "/")
    body = _figure(evaluation, equity, title).to_html(full_html=False, include_plotlyjs=False)
    page = ("<!DOCTYPE html><html><head><meta charset='utf-8'>"
            f"<title>{html.escape(title)}</title><script src='{html.escape(src)}'></script>"
            "<style>body{font-family:sans-serif;margin:1.5em}table.metrics{border-collapse:collapse;margin:1em 0}"
            "table.metrics th,table.metrics td{border:1px solid #ccc;padding:2px 8px;text-align:right}</style>"
            f"</head><body><h1>{html.escape(title)}</h1><p>{html.escape(note)}</p>"
            f"{_html_table(evaluation.table())}{_html_table(_fold_table(evaluation))}{body}</body></html>")
    paths = {"html": out / "report.html", "json": out / "evaluation.json", "equity": out / "equity.csv"}
    with StagedFiles() as stage:  # all files or none
        stage.write_text(paths["json"], evaluation_json(evaluation))
        stage.write_text(paths["equity"], equity.to_csv(index_label="timestamp"))
        stage.write_text(paths["html"], page)
        if not shared.is_file():
            stage.write_text(shared, js_source)
    return paths
