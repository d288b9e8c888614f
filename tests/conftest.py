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


@pytest.fixture(scope="session")
def ray_session(tmp_path_factory):
    """ONE local Ray (2 CPUs) for every test that needs one (starting Ray takes seconds), shut down at the end.

    Workers import this checkout (``PYTHONPATH``: the repository and the test plugin site), run one thread per
    task, and load ``tests.ray_faults`` (decision-makers that fail on purpose where ``DREX_TEST_FAULTS`` is
    set: only in these workers). Yields ``(ray, faults_folder)``.
    """
    ray = pytest.importorskip("ray")
    import logging

    os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # no token file for a throw-away local Ray
    faults = tmp_path_factory.mktemp("ray_faults")
    env = {"PYTHONPATH": os.environ["PYTHONPATH"], "OMP_NUM_THREADS": "1", "DREX_PLUGINS": "tests.ray_faults",
           "DREX_TEST_FAULTS": str(faults)}
    if ray.is_initialized():
        ray.shutdown()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING,
             runtime_env={"env_vars": env})
    yield ray, faults
    ray.shutdown()
