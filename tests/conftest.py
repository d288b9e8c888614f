"""Test-wide fixtures: every test gets its own empty data home, so nothing touches ~/.drex."""
from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _isolated_drex_home(tmp_path_factory, monkeypatch):
    home = tmp_path_factory.mktemp("drex_home")
    monkeypatch.setenv("DREX_HOME", str(home))
    yield home
