"""Paper-trading page (AppTest on the real page script) over a ledger written by the paper engine itself."""
from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

import app.dashboard

ENTRY = str(Path(app.dashboard.__file__).with_name("main.py"))


def _bars(n: int = 40, seed: int = 3) -> pd.DataFrame:
    """Canonical single-asset daily bars with a trend change so the SMA strategy trades."""
    rng = np.random.default_rng(seed)
    drift = np.r_[np.full(n // 2, 0.01), np.full(n - n // 2, -0.01)]
    close = 100 * np.exp(np.cumsum(drift + 0.005 * rng.standard_normal(n)))
    open_ = np.r_[close[0], close[:-1]]
    idx = pd.date_range("2024-01-01", periods=n, freq="D", tz="UTC", name="timestamp")
    return pd.DataFrame({"open": open_, "high": np.maximum(open_, close) * 1.002,
                         "low": np.minimum(open_, close) * 0.998, "close": close,
                         "volume": np.full(n, 1e6)}, index=idx)


@pytest.fixture
def ledger_with_run(tmp_path):
    from app.paper.config import validate_config
    from app.paper.engine import tick
    from app.paper.ledger import open_ledger

    path = tmp_path / "demo.parquet"
    _bars().to_parquet(path)
    cfg = validate_config({"strategy": "trend", "params": {"fast": 3, "slow": 8}, "data": f"file:{path}",
                           "interval": "1d", "initial_cash": 10_000.0, "fees": 0.001, "mode": "replay"})
    with open_ledger() as ledger:  # default URL: $DREX_HOME/paper/paper.sqlite (isolated per test)
        ledger.create_run("demo", cfg)
        tick(ledger, "demo", now=datetime(2024, 3, 1, tzinfo=UTC))  # processes all 40 bars
        expected = {"summary": ledger.run_summary("demo"), "curve": ledger.equity_curve("demo"),
                        "orders": ledger.orders("demo"), "fills": ledger.fills("demo"), "positions": ledger.positions("demo")}
    return expected


def _page() -> AppTest:
    at = AppTest.from_file(ENTRY, default_timeout=60)
    at.switch_page("views/paper.py")
    return at.run()


def _values(arr) -> np.ndarray:
    import base64

    if isinstance(arr, dict):
        return np.frombuffer(base64.b64decode(arr["bdata"]), dtype=np.dtype(arr["dtype"]))
    return np.asarray(arr)


def test_paper_page_shows_the_ledger(ledger_with_run):
    exp = ledger_with_run
    assert len(exp["curve"]) == 40 and len(exp["orders"]) >= 2  # the fixture really traded
    at = _page()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    runs = at.dataframe[0].value
    assert list(runs["name"]) == ["demo"] and runs["strategy"].iloc[0] == "trend"
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Equity"] == f"{exp['summary'].equity:,.2f}"
    assert metrics["Cash"] == f"{exp['summary'].cash:,.2f}"
    assert metrics["Bars processed"] == "40"
    assert metrics["Status"] == exp["summary"].status
    assert any("last tick" in c.value and "UTC" in c.value for c in at.caption)
    (chart,) = at.get("plotly_chart")
    trace = json.loads(chart.proto.spec)["data"][0]
    np.testing.assert_allclose(_values(trace["y"]), exp["curve"]["equity"].to_numpy())
    tables = [d.value for d in at.dataframe]
    positions, orders, fills = tables[1], tables[2], tables[3]
    assert len(positions) == len(exp["positions"])
    assert list(orders["client_order_id"]) == list(exp["orders"]["client_order_id"])
    np.testing.assert_allclose(fills["price"].to_numpy(), exp["fills"]["price"].to_numpy())
    assert len(tables[4]) == 40  # one decision per bar


def test_paper_page_without_a_ledger_explains_how_to_start_and_creates_nothing():
    import os

    at = _page()
    assert not at.exception and not at.error
    assert "drex paper init" in at.info[0].value
    assert not (Path(os.environ["DREX_HOME"]) / "paper" / "paper.sqlite").exists()


def test_paper_page_bad_ledger_url_is_one_error_line():
    at = AppTest.from_file(ENTRY, default_timeout=60)
    at.switch_page("views/paper.py").run()
    at.text_input(key="pp_url").set_value("notadb://x").run()
    assert not at.exception
    assert len(at.error) == 1 and at.error[0].value.startswith("Paper ledger:")
