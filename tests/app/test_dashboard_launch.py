"""`launch` (the `drex dashboard` entry), the page registry, and the light import path."""
from __future__ import annotations

import subprocess
import sys

import pytest

from app.dashboard import launch as L
from app.dashboard import registry


def test_streamlit_command_binds_localhost_by_default():
    cmd = L.streamlit_command()
    assert cmd[:4] == [sys.executable, "-m", "streamlit", "run"]
    assert cmd[4] == str(L.ENTRY_SCRIPT) and L.ENTRY_SCRIPT.is_file()
    opts = dict(zip(cmd[5::2], cmd[6::2]))
    assert opts == {"--server.address": "127.0.0.1", "--server.port": "8501", "--server.headless": "true",
                    "--browser.gatherUsageStats": "false", "--client.toolbarMode": "minimal"}
    opts = dict(zip(*[iter(L.streamlit_command("0.0.0.0", 9000, headless=False)[5:])] * 2))
    assert opts["--server.address"] == "0.0.0.0" and opts["--server.port"] == "9000"
    assert opts["--server.headless"] == "false"


@pytest.mark.parametrize("port", [0, 70000, "8501", True])
def test_bad_port_is_refused_with_the_fix(port):
    with pytest.raises(ValueError, match="port must be an integer in 1..65535.*--port 8501"):
        L.streamlit_command(port=port)
    with pytest.raises(ValueError, match="host must not be empty"):
        L.streamlit_command(" ")


def test_launch_runs_streamlit_and_returns_its_exit_code(monkeypatch):
    seen = {}

    class FakePopen:
        def __init__(self, cmd):
            seen["cmd"] = cmd

        def wait(self, timeout=None):
            return 3

    monkeypatch.setattr(L.subprocess, "Popen", FakePopen)
    assert L.launch(port=8765) == 3
    assert seen["cmd"] == L.streamlit_command(port=8765)


def test_launch_module_imports_nothing_heavy():
    code = ("import sys, app.dashboard.launch; "
            "print(sorted(m for m in ('streamlit', 'pandas', 'plotly', 'numpy', 'torch', 'vectorbt') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_registry_pages_exist_are_unique_and_have_one_default():
    assert [p.title for p in registry.PAGES][:4] == ["Backtest", "Sweep", "Training monitor", "Paper trading"]
    for page in registry.PAGES:
        assert page.path.is_file(), page
    for attr in ("script", "title", "url_path"):
        values = [getattr(p, attr) for p in registry.PAGES]
        assert len(values) == len(set(values))
    assert sum(p.default for p in registry.PAGES) == 1
    # navigation_pages() needs a running script: the page tests (AppTest through main.py) exercise it


def test_register_page_refuses_duplicates_and_missing_scripts(monkeypatch, tmp_path):
    monkeypatch.setattr(registry, "PAGES", list(registry.PAGES))
    with pytest.raises(ValueError, match="url_path 'sweep' is already registered"):
        registry.register_page(registry.PageEntry("other.py", "Other", "sweep"))
    with pytest.raises(ValueError, match="does not exist"):
        registry.register_page(registry.PageEntry("inspector.py", "Inspector", "inspector"))
    with pytest.raises(ValueError, match="script 'training.py' is already registered"):
        registry.register_page(registry.PageEntry("training.py", "X", "x"))
    # a new script is accepted and listed last
    script = tmp_path / "inspector.py"
    script.write_text("import streamlit as st\nst.title('Inspector')\n")
    entry = registry.register_page(registry.PageEntry(str(script), "Inspector", "inspector"))
    assert registry.PAGES[-1] is entry and entry.path == script


_CHILD = """
import os, signal, sys, time
open(sys.argv[1], "w").write(str(os.getpid()))
signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))
time.sleep(60)
"""


@pytest.mark.parametrize("sig", ["SIGTERM", "SIGINT"])
def test_stopping_the_launcher_stops_streamlit(tmp_path, sig):
    """`kill -TERM` (or Ctrl-C) of `drex dashboard` reaches the server process: nothing is left serving."""
    import os
    import signal
    import time

    pid_file = tmp_path / "child.pid"
    script = ("import sys, app.dashboard.launch as L\n"
              f"L.streamlit_command = lambda *a, **k: [sys.executable, '-c', {_CHILD!r}, {str(pid_file)!r}]\n"
              "sys.exit(L.launch())\n")
    proc = subprocess.Popen([sys.executable, "-c", script])
    try:
        for _ in range(200):
            if pid_file.exists() and pid_file.read_text():
                break
            time.sleep(0.05)
        child = int(pid_file.read_text())
        proc.send_signal(getattr(signal, sig))
        assert proc.wait(timeout=20) == 0
        for _ in range(100):  # the launcher waited for its child: it is gone (not re-parented, still serving)
            try:
                os.kill(child, 0)
            except ProcessLookupError:
                break
            time.sleep(0.05)
        else:
            os.kill(child, signal.SIGKILL)
            pytest.fail(f"the streamlit child {child} outlived the launcher")
    finally:
        if proc.poll() is None:
            proc.kill()
