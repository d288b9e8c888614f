"""``drex paper report``: a run's ledger written out as CSV/JSON files and one offline HTML page.

Everything goes into the run's own folder (``drex paper report NAME --out DIR`` writes ``DIR/paper-NAME/``),
all or nothing (``backtest.atomic.StagedFiles``). ``equity.html`` loads the shared
``plotly-<version>.min.js`` written next to the run folder (no CDN: it opens offline), and plots the equity
and cash thinned to a bounded number of points (``backtest.report_figures.thin``).
"""
from __future__ import annotations

import json
from pathlib import Path

from app.paper.ledger import Ledger

__all__ = ["write_report"]


def write_report(ledger: Ledger, name: str, out_dir: Path) -> list[Path]:
    """Write ``equity_curve.csv``, ``orders.csv``, ``fills.csv``, ``decisions.csv``, ``positions.csv``,
    ``summary.json`` and ``equity.html`` into ``out_dir`` (the run's folder); returns the paths written."""
    import plotly.graph_objects as go

    from backtest.atomic import StagedFiles
    from backtest.report_figures import html_page, plotly_js, table_html, thin

    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise FileExistsError(17, "File exists", str(out_dir))
    summary = ledger.run_summary(name)
    curve = ledger.equity_curve(name)
    tables = {
        "equity_curve": curve.reset_index(),
        "orders": ledger.orders(name),
        "fills": ledger.fills(name),
        "decisions": ledger.decisions(name).assign(
            explanation=lambda f: f["explanation"].map(lambda e: json.dumps(e, sort_keys=True))
        ),
        "positions": ledger.positions(name),
    }
    initial = float(summary.config["initial_cash"])
    info = {
        "run": name, "status": summary.status, "mode": summary.mode, "config": summary.config,
        "bars_processed": summary.bars_processed,
        "last_bar": summary.last_bar.isoformat() if summary.last_bar else None,
        "cash": summary.cash, "positions_value": summary.positions_value, "equity": summary.equity,
        "total_return": summary.equity / initial - 1.0, "positions": summary.positions,
        "orders": len(tables["orders"]), "fills": len(tables["fills"]),
        "fees_paid": float(tables["fills"]["fee"].sum()) if len(tables["fills"]) else 0.0,
    }
    fig = go.Figure()
    for col, style in (("equity", None), ("cash", {"dash": "dot"})):
        pos = thin(curve[col].to_numpy(dtype="float64"))
        fig.add_trace(go.Scatter(x=curve.index[pos], y=curve[col].to_numpy()[pos], name=col, line=style))
    fig.update_layout(title=f"Paper run {name}: equity ({summary.bars_processed} bars)", xaxis_title="bar (UTC)",
                      yaxis_title="value", template="plotly_white")
    shown = {k: v for k, v in info.items() if k not in ("config", "positions")}
    settings = {k: v for k, v in summary.config.items() if v is not None}
    page, src = html_page(f"Paper run {name}", ["<h2>Summary</h2>" + table_html(shown),
                                                "<h2>Config</h2>" + table_html(settings)], [fig], out_dir=out_dir)
    written = []
    with StagedFiles() as stage:
        for stem, frame in tables.items():
            path = out_dir / f"{stem}.csv"
            frame.to_csv(stage.path(path), index=False)
            written.append(path)
        written.append(stage.write_text(out_dir / "summary.json", json.dumps(info, indent=2, default=str)))
        written.append(stage.write_text(out_dir / "equity.html", page))
        if src is not None:
            js_name, source = plotly_js()
            shared = out_dir.resolve().parent / js_name
            if not shared.is_file():
                stage.write_text(shared, source)
    return written
