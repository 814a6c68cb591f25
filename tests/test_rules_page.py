"""The page's routing-rules Preview under a pathological pattern (issue 20, deliverable 3): it returns a
clear error naming the rule within its time budget, and meanwhile the same server answers other
users within 2 s. Before, Preview froze the whole server (Python's `re` held the GIL for hours).

The server is the rules panel of the page (playground/ui/rules_view.py, wired as the app wires it)
over a saved batch, launched on loopback with the app's queue settings; the other users are plain
HTTP requests and a second API client."""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sample_runs import make_run

from playground.batch.book import BatchBook
from playground.batch.prompt_set import PromptItem
from playground.batch.runner import batch_result
from playground.batch.score import Scoring
from playground.batch.spec import BatchSpec, ColumnSpec
from playground.config import Settings
from playground.engine import Engine
from playground.record import GenerationParams
from playground.service import RunService
from playground.sessions.store import SessionStore

pytestmark = pytest.mark.timeout(300)

ATTACK = "a" * 40 + "b"
PATHOLOGICAL = ('default: gemma3-270m\nrules:\n  - when: {matches: "(a|aa)+$"}\n    model: smollm2-135m\n'
                '  - when: {matches: "(a+)+$"}\n    model: smollm2-135m\n')
PREVIEW_QUICK_S = 20.0  # the preview's budget is 5 s of matching; a loaded test machine stretches it
OTHERS_WITHIN_S = 2.0  # the bar for other users


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _service(tmp_path: Path, engine: Engine) -> tuple[RunService, str]:
    """A service over a saved, finished two-model batch whose prompts are the issue's attack string."""
    store = SessionStore(tmp_path / "runs.sqlite3")
    items = [PromptItem(ATTACK, "b", id=f"p{i}") for i in range(3)]
    spec = BatchSpec(items, [ColumnSpec(m, GenerationParams(max_new_tokens=8))
                             for m in ("smollm2-135m", "gemma3-270m")], Scoring("contains"), name="t")
    book = BatchBook(store)
    batch_id = book.create(spec, owner="me")
    for i, item in enumerate(items):
        book.done(batch_id, i, store.save(make_run(item.prompt, ("b", "a")), owner="me"), 1.0)
    return RunService(Settings(data_dir=tmp_path), engine=engine, store=store), batch_id


@pytest.fixture
def rules_server(tmp_path: Path, engine: Engine) -> Iterator[str]:
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
    import gradio as gr

    from playground.ui.rules_view import build_rules_panel

    service, batch_id = _service(tmp_path, engine)
    with gr.Blocks() as demo:
        shown = gr.State(batch_result(service, batch_id))  # the batch a user has open
        panel = build_rules_panel()
        panel.wire(service, shown)
    demo.queue(default_concurrency_limit=4)  # as playground/ui/app.py launches the page
    port = _free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        demo.close()


def test_a_pathological_preview_errs_quickly_and_others_are_answered(rules_server: str) -> None:
    from gradio_client import Client

    attacker, other = Client(rules_server, verbose=False), Client(rules_server, verbose=False)
    assert "Preview" in httpx.get(rules_server, timeout=10).text  # the panel is served
    outcome: dict[str, object] = {}

    def preview() -> None:
        started = time.monotonic()
        outcome["html"] = attacker.predict(PATHOLOGICAL, api_name="/show_preview")
        outcome["took"] = time.monotonic() - started

    thread = threading.Thread(target=preview, daemon=True)
    thread.start()
    time.sleep(0.3)  # the preview is matching now
    waits = []
    while thread.is_alive() and len(waits) < 20:
        started = time.monotonic()
        page = httpx.get(rules_server, timeout=OTHERS_WITHIN_S + 5)
        saved = other.predict("default: gemma3-270m\n", api_name="/save")  # another user, through the queue
        waits.append(time.monotonic() - started)
        assert page.status_code == 200 and saved
    thread.join(PREVIEW_QUICK_S + 10)
    assert not thread.is_alive(), "the preview never returned"
    assert waits, "the preview returned before anyone else asked: nothing was measured"
    assert max(waits) < OTHERS_WITHIN_S, waits
    html = str(outcome["html"])
    assert "rules[0].when.matches: the pattern &#x27;(a|aa)+$&#x27; took longer than" in html or \
        "rules[0].when.matches: the pattern '(a|aa)+$' took longer than" in html, html[:500]
    assert "prompt" in html and "p0" in html
    assert float(outcome["took"]) < PREVIEW_QUICK_S  # type: ignore[arg-type]


def test_a_billion_laughs_rules_text_is_refused_at_once(rules_server: str) -> None:
    """The issue's row on the page: nested aliases took the server to 4.1 GB; now they are refused
    before anything expands, and the message is short."""
    from gradio_client import Client

    laughs = "default:\n" + "".join(
        f"  - &{name} [{', '.join([f'*{prev}'] * 9) if prev else ', '.join(['lol'] * 9)}]\n"
        for prev, name in zip(["", *"abcdefgh"], "abcdefghi", strict=True))
    started = time.monotonic()
    html = Client(rules_server, verbose=False).predict(laughs, api_name="/show_preview")
    assert time.monotonic() - started < OTHERS_WITHIN_S + 3
    assert "YAML anchors and aliases (&amp; and *) are not allowed" in html and len(html) < 1000, html[:300]
    assert httpx.get(rules_server, timeout=OTHERS_WITHIN_S).status_code == 200


def test_the_sample_rules_load_and_the_sweep_pickers_start_filled(rules_server: str) -> None:
    """Issue 22 item 8: "Load sample rules" puts the committed file in the editor, and the sweep's model
    pickers offer the catalog's local models before any batch is shown (they started empty)."""
    from gradio_client import Client

    from playground.routing.rules import sample_rules_text

    text, shown = Client(rules_server, verbose=False).predict(api_name="/load_sample")
    assert text == sample_rules_text() and "default: smollm2-135m" in text and not shown
    config = httpx.get(f"{rules_server}/config", timeout=10).json()
    props = {c["props"].get("elem_id"): c["props"] for c in config["components"] if "props" in c}
    assert props["rules-load-sample"]["value"] == "Load sample rules"
    for box, first in (("rules-weak", "smollm2-135m"), ("rules-strong", "gemma3-270m")):
        assert [c[0] for c in props[box]["choices"]] == ["smollm2-135m", "gemma3-270m"]
        assert props[box]["value"] == first
    assert "prompt_tokens_below: 64}" not in props["rules-yaml"]["value"]  # the example that sent all to one
