"""Take the README screenshots: the page after a two-column run, at 1440x900, in Debian's Chromium.

    .venv/bin/python -m tests.browser.screenshot [--out assets/screenshot.png] [--prompt TEXT] [--tokens N]
        [--follow-up TEXT --conversation-out assets/conversation.png]
        [--votes N --leaderboard-out assets/leaderboard.png]

With --follow-up, the conversation's second turn is sent and the window saved again; with --votes,
that many blind runs are voted on (the first column wins each) and the Leaderboard panel is saved.
With --matrix, a three-prompt batch runs on both columns and its results matrix is saved
(--matrix-out), then smollm2-135m judges it by rubric and the matrix is saved again with the
verdicts (--judge-out); with --arena, a Battle is started and the window saved while it awaits the
vote (--arena-out).

Serves the app on loopback with the two bundled models (CPU, the test data directory's converted
caches: PLAYGROUND_TEST_DATA_DIR or data/test), runs the prompt in both default columns and saves
what a 1440x900 window shows. Not collected by pytest (no test_ prefix).
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from .conftest import CHROMIUM, CHROMIUM_ARGS, _serve
from .helpers import VIEWPORT, notice_has, set_max_tokens, settle

REPO = Path(__file__).resolve().parent.parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(REPO / "assets" / "screenshot.png"))
    parser.add_argument("--prompt", default="Explain in two sentences why the sky is blue.")
    parser.add_argument("--tokens", type=int, default=80)
    parser.add_argument("--full-page", action="store_true", help="the whole page, not only the window")
    parser.add_argument("--follow-up", default="", help="a second turn for the conversation screenshot")
    parser.add_argument("--conversation-out", default=str(REPO / "assets" / "conversation.png"))
    parser.add_argument("--votes", type=int, default=0, help="blind runs to vote on for the leaderboard shot")
    parser.add_argument("--leaderboard-out", default=str(REPO / "assets" / "leaderboard.png"))
    parser.add_argument("--matrix", action="store_true", help="a batch's results matrix, then judged")
    parser.add_argument("--matrix-out", default=str(REPO / "assets" / "matrix.png"))
    parser.add_argument("--judge-out", default=str(REPO / "assets" / "judge.png"))
    parser.add_argument("--arena", action="store_true", help="a battle awaiting its vote")
    parser.add_argument("--arena-out", default=str(REPO / "assets" / "arena.png"))
    parser.add_argument("--only-extra", action="store_true", help="skip the main two-column shot")
    args = parser.parse_args()

    from playwright.sync_api import sync_playwright

    from playground.backends.pool import ModelPool
    from playground.catalog import Catalog
    from playground.config import Settings
    from playground.engine import Engine
    from playground.sessions.store import SessionStore

    data_dir = Path(os.environ.get("PLAYGROUND_TEST_DATA_DIR", REPO / "data" / "test"))
    history = data_dir / "screenshot-history.sqlite3"
    engine = Engine(Catalog.build(), ModelPool(data_dir, device="cpu"))
    demo, url = _serve(Settings(data_dir=data_dir), engine, SessionStore(history))
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_context(viewport=VIEWPORT).new_page()
            page.goto(url)
            page.wait_for_selector("#prompt textarea")
            if args.matrix:
                matrix_shots(page, args.matrix_out, args.judge_out)
            if args.arena:
                arena_shot(page, args.arena_out)
            if args.only_extra:
                browser.close()
                return
            page.fill("#prompt textarea", args.prompt)
            set_max_tokens(page, args.tokens)
            for col in (0, 1):  # close the parameters again: the picture shows the answers
                page.locator(f"#col-{col} button:has-text('Parameters')").first.click()
            page.click("#run-btn")
            notice_has(page, "2 of 2")
            page.mouse.move(0, 0)
            page.evaluate("() => window.scrollTo(0, 0)")
            page.wait_for_timeout(500)
            page.screenshot(path=args.out, full_page=args.full_page)
            if args.follow_up:
                page.fill("#follow-up textarea", args.follow_up)
                page.click("#follow-up-btn")
                page.wait_for_function(  # the new turn has started, then wait for it to end
                    "() => document.querySelectorAll('#out-0 blockquote').length >= 2", timeout=600_000)
                notice_has(page, "2 of 2")
                page.mouse.move(0, 0)
                page.wait_for_timeout(500)
                page.screenshot(path=args.conversation_out)
            for n in range(args.votes):
                page.locator("#blind-toggle input").check()
                page.fill("#prompt textarea", ["Name a colour.", "Name a fruit.", "Name a river."][n % 3])
                page.click("#run-btn")
                page.wait_for_selector("#vote-a", state="visible", timeout=600_000)
                page.click("#vote-a" if n % 3 else "#vote-tie")
                page.wait_for_selector("#vote-result .pg-vote-result", timeout=60_000)
            if args.votes:
                page.locator("#leaderboard-box").click()
                page.wait_for_selector("#leaderboard table.pg-leaderboard", timeout=30_000)
                page.locator("#leaderboard-box").screenshot(path=args.leaderboard_out)
            browser.close()
    finally:
        demo.close()
        history.unlink(missing_ok=True)
    print(f"wrote {args.out}")


MATRIX_SET = "\n".join(json.dumps(row) for row in [
    {"id": "capital", "category": "extraction", "prompt": "What is the capital of France?",
     "expected": "Paris"},
    {"id": "sum", "category": "math", "prompt": "What is 7 + 5? Answer with the number.", "expected": "12"},
    {"id": "colour", "category": "knowledge", "prompt": "What colour is a ripe banana?",
     "expected": "yellow"},
])


def matrix_shots(page, matrix_out: str, judge_out: str) -> None:  # noqa: ANN001
    """A three-prompt batch on both columns: its matrix, then the matrix with a rubric judge's verdicts."""
    set_max_tokens(page, 24)
    page.locator("#batch-box").click()
    page.wait_for_selector("#batch-set textarea", state="visible", timeout=30_000)
    page.locator("#batch-format label:has-text('jsonl')").click()
    page.fill("#batch-set textarea", MATRIX_SET)
    page.click("#batch-run")
    page.wait_for_function("() => document.querySelector('#batch-status .pg-batch-progress')?.dataset.state"
                           " === 'complete'", timeout=900_000)
    page.wait_for_function("() => document.querySelectorAll('#batch-matrix td.pg-matrix-cell').length === 6",
                           timeout=60_000)
    settle(page)
    page.locator("#batch-matrix").screenshot(path=matrix_out)
    page.locator("#batch-judge-method label:has-text('rubric')").click()
    page.click("#batch-judge-run")
    page.wait_for_function("() => document.querySelectorAll('#batch-matrix .pg-matrix-judge').length === 6",
                           timeout=900_000)
    settle(page)
    page.evaluate("() => document.querySelectorAll('#batch-matrix .pg-matrix-judge details')"
                  ".forEach(d => d.open = true)")  # the rationales, unfolded for the picture
    page.locator("#batch-matrix").screenshot(path=judge_out)
    print(f"wrote {matrix_out} and {judge_out}")


def arena_shot(page, arena_out: str) -> None:  # noqa: ANN001
    """A battle awaiting its vote: two anonymous answers, the vote buttons right under them."""
    set_max_tokens(page, 48)
    page.evaluate("() => window.scrollTo(0, 0)")
    page.click("#arena-battle")
    page.wait_for_selector("#vote-a", state="visible", timeout=600_000)
    settle(page)
    page.mouse.move(0, 0)
    page.wait_for_timeout(500)
    page.screenshot(path=arena_out)
    print(f"wrote {arena_out}")


if __name__ == "__main__":
    main()
