"""Start the dashboard: ``streamlit run app/dashboard/main.py`` bound to localhost by default.

Only ``subprocess`` and ``pathlib`` are imported at module level: ``drex --help`` imports this module, and
Streamlit/plotly/pandas must not load until the dashboard actually starts.
"""
from __future__ import annotations

import subprocess
from pathlib import Path

__all__ = ["ENTRY_SCRIPT", "launch", "streamlit_command"]

ENTRY_SCRIPT = Path(__file__).resolve().with_name("main.py")


def streamlit_command(host: str = "127.0.0.1", port: int = 8501, *, headless: bool = True) -> list[str]:
    """The ``streamlit run`` argv that ``launch`` executes (same interpreter as the caller).

    Raises ``ValueError`` for a port outside 1..65535 or an empty host.
    """
    import sys

    if not isinstance(port, int) or isinstance(port, bool) or not 1 <= port <= 65535:
        raise ValueError(f"port must be an integer in 1..65535, got {port!r}; pass e.g. --port 8501")
    if not host or not str(host).strip():
        raise ValueError("host must not be empty; pass e.g. --host 127.0.0.1 (localhost only)")
    return [
        sys.executable, "-m", "streamlit", "run", str(ENTRY_SCRIPT),
        "--server.address", str(host),
        "--server.port", str(port),
        "--server.headless", "true" if headless else "false",
        "--browser.gatherUsageStats", "false",
        "--client.toolbarMode", "minimal",
    ]


def launch(host: str = "127.0.0.1", port: int = 8501, *, headless: bool = True) -> int:
    """Run the dashboard in the foreground until it stops; returns Streamlit's exit code.

    ``host`` defaults to 127.0.0.1 (not reachable from other machines; pass ``0.0.0.0`` deliberately to
    expose it). ``headless=True`` does not open a browser. SIGTERM and SIGINT (Ctrl-C) are forwarded to the
    Streamlit process, which is waited for (SIGKILL after 10 s), so stopping ``drex dashboard`` never leaves
    a server holding the port; returns 0 when stopped that way.
    """
    import signal

    cmd = streamlit_command(host, port, headless=headless)
    proc = subprocess.Popen(cmd)
    stopped: list[int] = []

    def forward(signum: int, _frame: object) -> None:
        stopped.append(signum)
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)

    previous = {}
    try:
        for sig in (signal.SIGTERM, signal.SIGINT):
            previous[sig] = signal.signal(sig, forward)
    except ValueError:  # not the main thread: no handlers; the caller stops the child
        previous.clear()
    try:
        code = proc.wait()
        return 0 if stopped else code
    except BaseException:
        _stop(proc)
        raise
    finally:
        if stopped and proc.poll() is None:
            _stop(proc)
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _stop(proc: subprocess.Popen) -> None:
    """SIGTERM, then SIGKILL after 10 s; waits for the process."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
