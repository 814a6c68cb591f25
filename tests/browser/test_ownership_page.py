"""Runs belong to the browser that made them: history, delete, share links, exports, safe replays."""

from __future__ import annotations

import json
import os
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from sample_runs import make_run

from .helpers import history_ids, new_page, notice_has, open_history, set_max_tokens, share_link

# A 1x1 transparent PNG: what a tracking pixel would serve.
PIXEL = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082")


def test_two_users_see_their_own_runs_and_only_the_owner_deletes(browser, app_url) -> None:  # noqa: ANN001
    alice = new_page(browser, app_url)
    bob = new_page(browser, app_url)
    try:
        alice.fill("#prompt textarea", "Name a fruit.")
        alice.locator("#remove-1").click()
        set_max_tokens(alice, 3, columns=(0,))
        alice.click("#run-btn")
        notice_has(alice, "done")
        link = share_link(alice)
        run_id = link.split("session=")[1]
        open_history(alice)
        alice.wait_for_function(f"() => document.querySelector('#history a[href=\"?session={run_id}\"]')",
                                timeout=30_000)

        assert "Your saved runs" in open_history(bob)
        assert run_id not in history_ids(bob)
        bob.goto(link)  # a share link opens for anyone
        notice_has(bob, "Replay of saved run")
        # Delete stays disabled on someone else's run (it used to be enabled until clicked, then refused)
        assert bob.locator("#delete-btn").is_disabled()
        assert bob.locator("#export-btn").is_enabled()  # the rest of the bar is there for anyone

        alice.goto(link)
        notice_has(alice, "Replay of saved run")
        open_history(alice)
        assert run_id in history_ids(alice)  # the owner id survived the reload (kept in the browser)
        assert alice.locator("#delete-btn").is_enabled()
        alice.click("#delete-btn")
        notice_has(alice, f"deleted run {run_id}")
        alice.goto(link)
        notice_has(alice, "no saved run has the id")
    finally:
        alice.context.close()
        bob.context.close()


def _exports_of(name: str) -> list[Path]:
    """Every copy of an export file in the temp folders the app and Gradio write to."""
    tmp = Path(tempfile.gettempdir())
    roots = [d for d in tmp.iterdir() if d.name.startswith("playground-export")]
    roots.append(Path(os.environ.get("GRADIO_TEMP_DIR") or tmp / "gradio"))
    return [p for root in roots if root.is_dir() for p in root.rglob(name)]


def test_export_is_written_only_when_clicked(page, app_url, store) -> None:  # noqa: ANN001
    run = make_run(prompt="Export me, please.")
    store.save(run, owner="someone")
    name = f"playground-run-{run.id}.json"
    page.goto(f"{app_url}/?session={run.id}")
    notice_has(page, "Replay of saved run")
    assert _exports_of(name) == [], "showing a run must not write its export"
    with page.expect_download(timeout=30_000) as download:
        page.click("#export-btn")
    assert download.value.suggested_filename == name
    bundle = json.loads(Path(download.value.path()).read_text(encoding="utf-8"))
    assert bundle["format"] == "playground-run"
    assert bundle["run"]["id"] == run.id and bundle["run"]["prompt"] == "Export me, please."


def test_markdown_images_in_a_replay_load_nothing(page, app_url, store) -> None:  # noqa: ANN001
    hits: list[str] = []

    class Pixel(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            hits.append(self.path)
            self.send_response(200)
            self.send_header("Content-Type", "image/png")
            self.send_header("Content-Length", str(len(PIXEL)))
            self.end_headers()
            self.wfile.write(PIXEL)

        def log_message(self, *_args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Pixel)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        run = make_run(outputs=(f"See ![pixel]({base}/pixel.png) and ![ref][r].\n\n[r]: {base}/ref.png",
                                f"Also <img src='{base}/tag.png'> here."))
        store.save(run, owner="someone")
        page.goto(f"{app_url}/?session={run.id}")
        notice_has(page, "Replay of saved run")
        page.wait_for_timeout(1500)  # anything the page would fetch has been asked for by now
        assert hits == [], f"the replay fetched {hits}"
        assert page.locator("#columns img").count() == 0
        link = page.locator(f"#out-0 a[href='{base}/pixel.png']")
        assert link.count() == 1 and link.inner_text() == "pixel"  # a plain link the user may click
        assert "<img src=" in page.locator("#out-1").inner_text()  # shown as text
    finally:
        server.shutdown()
        server.server_close()


def test_a_prompt_with_a_lone_surrogate_is_repaired_and_saved(page, store) -> None:  # noqa: ANN001
    # A JavaScript string can hold half of a surrogate pair; Python cannot encode it as UTF-8.
    page.evaluate("""() => {
      const box = document.querySelector('#prompt textarea');
      box.value = 'Say hi \\uD800 please';
      box.dispatchEvent(new Event('input', { bubbles: true }));
    }""")
    page.locator("#remove-1").click()
    set_max_tokens(page, 2, columns=(0,))
    page.click("#run-btn")
    notice_has(page, "done")
    assert "your prompt had invalid characters; replaced with \ufffd" in page.locator("#notice").inner_text()
    assert page.locator("#prompt textarea").input_value() == "Say hi \ufffd please"
    run_id = share_link(page).split("session=")[1]
    assert store.get(run_id).prompt == "Say hi \ufffd please"
