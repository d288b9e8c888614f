"""benchmarks/bandits.py runs end to end on a tiny budget (vowpalwabbit, mabwiser, scikit-learn and matplotlib
are benchmark-only: the test is skipped without them)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]


@pytest.mark.slow  # ~15 s of CPU: it trains MLP oracles in every section
def test_benchmark_script_smoke(tmp_path):
    for module in ("vowpalwabbit", "mabwiser", "sklearn", "matplotlib"):
        pytest.importorskip(module)
    out = tmp_path / "bandits.md"
    args = [
        "--seeds", "1", "--rounds", "200", "--batch", "100", "--first-batch", "50", "--generations", "4",
        "--generation-rounds", "100", "--coverage-replications", "3", "--out", str(out),
    ]  # fmt: skip
    run = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "bandits.py"), *args],
        check=False, capture_output=True, text=True, timeout=300, cwd=ROOT,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-2000:]
    text = out.read_text()
    for title in ("SquareCB: DREX vs vowpalwabbit", "LinUCB: DREX vs mabwiser", "The oscillation effect",
                  "OPE interval coverage"):  # fmt: skip
        assert f"## {title}" in text
    assert "| 0 | 100.00% |" in text  # LinUCB decisions identical to mabwiser's
    assert (tmp_path / "bandits_oscillation.png").stat().st_size > 10_000
