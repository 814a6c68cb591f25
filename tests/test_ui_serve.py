"""`python -m playground serve`: a taken port is one clear line, "serving on" means it answers."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from playground.__main__ import main
from playground.config import Settings
from playground.ui.app import ServeError, port_taken

REPO = Path(__file__).resolve().parent.parent


def _env(tmp_path: Path, port: int) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO), "GRADIO_ANALYTICS_ENABLED": "False",
            "PLAYGROUND_DATA_DIR": str(tmp_path), "PLAYGROUND_DEFAULT_MODELS": "smollm2-135m",
            "PLAYGROUND_PORT": str(port), "PYTHONUNBUFFERED": "1"}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_port_taken_names_the_flag_and_the_variable() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        message = port_taken("127.0.0.1", port)
    assert f"port {port} on 127.0.0.1 is already in use" in message
    assert "--port" in message and "PLAYGROUND_PORT" in message
    assert port_taken("127.0.0.1", _free_port()) == ""


def test_serve_on_a_taken_port_exits_2_with_one_line(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        started = time.monotonic()
        result = subprocess.run([sys.executable, "-m", "playground", "serve", "--port", str(port)],
                                capture_output=True, text=True, env=_env(tmp_path, port), timeout=60)
    assert result.returncode == 2, result.stderr
    assert time.monotonic() - started < 30
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines == [f"playground: error: port {port} on 127.0.0.1 is already in use: choose another with "
                     f"--port P (or PLAYGROUND_PORT=P)"], result.stderr
    assert "serving on" not in result.stdout


def test_serving_line_means_the_server_answers_and_ctrl_c_stops_it(tmp_path: Path) -> None:
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "playground", "serve"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=_env(tmp_path, port))
    try:
        line = proc.stdout.readline()  # blocks until the first line: it must be the serving line
        assert line.startswith(f"playground: serving on http://127.0.0.1:{port}"), line
        assert httpx.get(f"http://127.0.0.1:{port}/", timeout=10).status_code == 200  # at once, no retry
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
        proc.stderr.close()


def test_serve_flags_reach_the_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import playground.ui.app as app

    seen: list[Settings] = []
    monkeypatch.setattr(app, "launch", seen.append)
    monkeypatch.delenv("PLAYGROUND_SHARED_HISTORY", raising=False)
    assert main(["serve", "--data-dir", str(tmp_path)]) == 0
    assert main(["serve", "--data-dir", str(tmp_path), "--shared-history"]) == 0
    assert [s.shared_history for s in seen] == [False, True]

    def refuse(_settings: Settings) -> None:
        raise ServeError("port 1 on here is already in use: choose another with --port P")

    monkeypatch.setattr(app, "launch", refuse)
    assert main(["serve", "--data-dir", str(tmp_path)]) == 2
