"""--auth / PLAYGROUND_AUTH put the page and every share link behind Gradio's login."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from playground.backends.pool import ModelPool
from playground.catalog import Catalog
from playground.config import Settings, parse_auth
from playground.engine import Engine
from playground.ui.app import build_app, launch_options

REPO = Path(__file__).resolve().parent.parent


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_parse_auth() -> None:
    assert parse_auth("alice:s3:cret") == ("alice", "s3:cret")
    for bad in ("alice", ":pw", "alice:"):
        with pytest.raises(ValueError, match="user:password"):
            parse_auth(bad)


def test_env_auth_is_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PLAYGROUND_AUTH", "bob:pw")
    assert Settings.from_env().auth == ("bob", "pw")


def test_served_page_needs_a_login(tmp_path: Path, data_dir: Path) -> None:
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
    settings = Settings(data_dir=data_dir, db_path=tmp_path / "runs.sqlite3", port=_free_port(),
                        auth=("alice", "secret"))
    demo = build_app(settings, engine=Engine(Catalog.build(), ModelPool(data_dir)))
    demo.launch(prevent_thread_lock=True, quiet=True, **launch_options(settings))
    base = f"http://127.0.0.1:{settings.port}"
    try:
        assert httpx.get(f"{base}/config").status_code == 401
        assert httpx.post(f"{base}/login", data={"username": "alice", "password": "nope"}).status_code == 400
        with httpx.Client() as client:
            login = client.post(f"{base}/login", data={"username": "alice", "password": "secret"})
            assert login.status_code == 200
            assert client.get(f"{base}/config").status_code == 200
    finally:
        demo.close()


def test_bad_auth_flag_exits_2() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "playground", "serve", "--auth", "nocolon"],
        capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=120,
    )
    assert result.returncode == 2
    assert "user:password" in result.stderr
