"""A real app server on loopback and Debian's Chromium driven by Playwright."""

from __future__ import annotations

import os
import shutil
import socket
from collections.abc import Iterator

import pytest

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run", "--disable-sync"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _serve(settings, engine, store) -> tuple[object, str]:  # noqa: ANN001
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
    from playground.ui.app import build_app, launch_kwargs

    demo = build_app(settings, engine=engine, store=store)
    demo.queue(default_concurrency_limit=4)
    port = _free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True,
                **launch_kwargs())
    return demo, f"http://127.0.0.1:{port}"


@pytest.fixture(scope="session")
def store(tmp_path_factory):  # noqa: ANN001, ANN201 - a history DB of the browser tests' own
    from playground.sessions.store import SessionStore

    return SessionStore(tmp_path_factory.mktemp("history") / "runs.sqlite3")


@pytest.fixture(scope="session")
def app_url(engine, data_dir, store) -> Iterator[str]:  # noqa: ANN001 - fixtures from tests/conftest.py
    from playground.config import Settings

    demo, url = _serve(Settings(data_dir=data_dir), engine, store)
    yield url
    demo.close()


@pytest.fixture(scope="session")
def replay_server(catalog, data_dir, store) -> Iterator[tuple[str, object]]:  # noqa: ANN001
    """A second server on the same history DB with an empty model pool: replays must not load models."""
    from playground.backends.pool import ModelPool
    from playground.config import Settings
    from playground.engine import Engine

    pool = ModelPool(data_dir, device="cpu")
    demo, url = _serve(Settings(data_dir=data_dir), Engine(catalog, pool), store)
    yield url, pool
    demo.close()


@pytest.fixture(scope="session")
def browser() -> Iterator[object]:
    if not os.path.exists(CHROMIUM):
        pytest.fail("Debian chromium is missing: `make test` installs it (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser, app_url):  # noqa: ANN001, ANN201
    from .helpers import new_page

    page = new_page(browser, app_url)
    yield page
    page.context.close()

