"""``drex paper report``: a run's ledger written out as CSV/JSON files and one plotly HTML page."""
from __future__ import annotations

import json
from pathlib import Path

from app.paper.ledger import Ledger

__all__ = ["write_report"]


def write_report(ledger: Ledger, name: str, out_dir: Path) -> list[Path]:
    """Write ``equity_curve.csv``, ``orders.csv``, ``fills.csv``, ``decisions.csv``, ``positions.csv``,
    ``summary.json`` and ``equity.html`` into ``out_dir``; returns the paths written."""
    import plotly.graph_objects as go

    out_dir.mkdir(parents=True, exist_ok=True)
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
    written = []
    for stem, frame in tables.items():
        path = out_dir / f"{stem}.csv"
        frame.to_csv(path, index=False)
        written.append(path)
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
    path = out_dir / "summary.json"
    path.write_text(json.dumps(info, indent=2, default=str))
    written.append(path)
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=curve.index, y=curve["equity"], name="equity"))
    fig.add_trace(go.Scatter(x=curve.index, y=curve["cash"], name="cash", line={"dash": "dot"}))
    fig.update_layout(title=f"Paper run {name}: equity ({summary.bars_processed} bars)", xaxis_title="bar (UTC)",
                      yaxis_title="value")
    path = out_dir / "equity.html"
    fig.write_html(path, include_plotlyjs="cdn")
    written.append(path)
    return written
