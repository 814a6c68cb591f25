"""Managed llama.cpp servers never outlive the app: unload, normal exit, SIGTERM and SIGKILL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.timeout(300)
REPO = Path(__file__).resolve().parent.parent

APP = """
import sys, time
from pathlib import Path
from playground.backends import llamacpp
from playground.catalog import SMOLLM2_LLAMACPP
backend = llamacpp.load(SMOLLM2_LLAMACPP, Path(sys.argv[1]))
print(next(iter(llamacpp._LIVE)).process.pid, flush=True)
if sys.argv[2] == "exit":
    sys.exit(0)
time.sleep(600)
"""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie waiting for its (dead) parent's reaper counts as gone
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


def _gone(pid: int, within_s: float = 15.0) -> bool:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        if not _alive(pid):
            return True
        time.sleep(0.1)
    return False


@pytest.mark.parametrize("ending", ["exit", "SIGTERM", "SIGKILL"])
def test_the_server_goes_with_the_app(data_dir: Path, ending: str) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    app = subprocess.Popen([sys.executable, "-c", APP, str(data_dir), ending], env=env,
                           stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        server_pid = int(app.stdout.readline())
        assert _alive(server_pid)
        if ending != "exit":
            app.send_signal(getattr(signal, ending))
        app.wait(30)
        assert _gone(server_pid), f"the llama.cpp server outlived the app ({ending})"
    finally:
        app.kill()
        app.wait()
