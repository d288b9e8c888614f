"""Test-wide set-up.

* Every test gets its own empty data home, so nothing touches ~/.drex.
* The test plugin package ``tests/fixtures/plugin_site`` (a distribution with a ``drex.plugins`` entry point,
  ``drex_testplugin``) is installed for the test run: its folder goes on ``sys.path`` and on ``PYTHONPATH`` for
  subprocesses, so the registry discovers it exactly as it discovers any installed package's plugins.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

PLUGIN_SITE = Path(__file__).parent / "fixtures" / "plugin_site"
REPO = Path(__file__).resolve().parent.parent
if str(PLUGIN_SITE) not in sys.path:
    sys.path.insert(0, str(PLUGIN_SITE))
os.environ["PYTHONPATH"] = os.pathsep.join(
    p for p in (str(REPO), str(PLUGIN_SITE), os.environ.get("PYTHONPATH", "")) if p)


@pytest.fixture(autouse=True)
def _isolated_drex_home(tmp_path_factory, monkeypatch):
    home = tmp_path_factory.mktemp("drex_home")
    monkeypatch.setenv("DREX_HOME", str(home))
    yield home
