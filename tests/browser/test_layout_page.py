"""The page at 1440x900: answers first, steady columns, focus, nothing overlapping, a read-only replay."""

from __future__ import annotations

from .helpers import VIEWPORT, notice_has, open_settings, set_max_tokens, settle, share_link

SHARE_CONTROLS = ("#copy-btn", "#again-btn", "#export-btn", "#report-html-btn", "#report-md-btn",
                  "#delete-btn")
# Where the first line of a column's answer is drawn (the first text it shows).
FIRST_LINE = """(sel) => {
  const root = document.querySelector(sel + ' .md');
  const walker = document.createTreeWalker(root, NodeFilter.SHOW_TEXT,
    { acceptNode: (n) => n.textContent.trim() ? NodeFilter.FILTER_ACCEPT : NodeFilter.FILTER_REJECT });
  const node = walker.nextNode();
  if (!node) return null;
  const range = document.createRange();
  range.selectNodeContents(node);
  const r = range.getClientRects()[0];
  return { x: r.left, y: r.top, width: r.width, height: r.height };
}"""
# Gradio's own progress overlays (spinners, timers) shown on the columns: the column status is enough.
TRACKERS = "() => document.querySelectorAll('#columns [data-testid=status-tracker]:not(.hide)').length"


def _overlap(a: dict, b: dict) -> bool:
    return (a["x"] < b["x"] + b["width"] and b["x"] < a["x"] + a["width"]
            and a["y"] < b["y"] + b["height"] and b["y"] < a["y"] + a["height"])


def test_answers_stream_in_view_with_steady_columns_and_one_indicator(page) -> None:  # noqa: ANN001
    assert page.viewport_size == VIEWPORT == {"width": 1440, "height": 900}
    page.fill("#prompt textarea", "Write a short poem about the sea.")
    set_max_tokens(page, 48)
    page.evaluate("() => window.scrollTo(0, 0)")  # filling the parameters scrolled to them
    heights = []
    page.click("#run-btn")
    page.wait_for_function("() => document.querySelector('#out-0 .md')?.innerText.trim().length > 0",
                           timeout=600_000)
    for _ in range(4):  # while it streams
        heights.append(page.locator("#out-0").bounding_box()["height"])
        assert page.evaluate(TRACKERS) == 0, "a Gradio progress overlay on a column"
        page.wait_for_timeout(150)
    assert page.evaluate("() => window.scrollY") == 0
    box = page.locator("#out-0").bounding_box()
    assert box["y"] >= 0 and box["y"] + box["height"] <= 900, box  # the whole answer box, no scrolling
    assert page.locator("#out-1").bounding_box()["y"] + 40 < 900
    notice_has(page, "2 of 2")
    heights.append(page.locator("#out-0").bounding_box()["height"])
    assert len(set(heights)) == 1, heights  # the box does not grow or shrink with its text
    box = page.locator("#out-0").bounding_box()
    assert box["y"] + box["height"] <= 900, box

    # The copy button has its own strip: it covers no part of the first line.
    copy = page.locator("#out-0 button[aria-label^='Copy']").bounding_box()
    first = page.evaluate(FIRST_LINE, "#out-0")
    assert copy and first and not _overlap(copy, first), (copy, first)

    # Opened Parameters sit in a compact grid (numbers, stop strings, the column's own system prompt):
    # the panels below stay close.
    params = page.locator("#col-0 .pg-params-box").bounding_box()
    assert params["height"] < 400, params
    assert page.dialogs == []


def test_focus_widens_one_column_until_pressed_again(page) -> None:  # noqa: ANN001
    row = page.locator("#columns").bounding_box()
    narrow = page.locator("#col-1").bounding_box()["width"]
    assert narrow < row["width"] / 2
    page.click("#focus-1")
    page.wait_for_function("() => document.querySelector('#col-0').offsetParent === null")
    wide = page.locator("#col-1").bounding_box()["width"]
    assert wide > row["width"] * 0.95, (wide, row)
    assert page.locator("#focus-1").get_attribute("aria-pressed") == "true"
    page.click("#focus-1")
    page.wait_for_function("() => document.querySelector('#col-0').offsetParent !== null")
    assert abs(page.locator("#col-1").bounding_box()["width"] - narrow) < 2
    assert page.locator("#focus-1").get_attribute("aria-pressed") == "false"


def test_share_controls_are_off_while_a_new_run_runs(page) -> None:  # noqa: ANN001
    page.fill("#prompt textarea", "Say one word.")
    page.locator("#remove-1").click()
    set_max_tokens(page, 4, columns=(0,))
    page.click("#run-btn")
    notice_has(page, "done")
    first = share_link(page)
    for control in SHARE_CONTROLS:
        assert page.locator(control).is_enabled(), control

    page.fill("#prompt textarea", "Write a long story about a lighthouse keeper.")
    set_max_tokens(page, 200, columns=(0,))
    page.click("#run-btn")
    page.wait_for_function("() => !document.querySelector('#stop-btn').disabled", timeout=600_000)
    page.wait_for_function("() => document.querySelector('#out-0 .md')?.innerText.trim().length > 0",
                           timeout=600_000)  # the new run streams
    for control in SHARE_CONTROLS:  # the previous run's link, Copy, Export, Reports, Delete: not usable now
        assert page.locator(control).is_disabled(), control
    assert page.locator("#share-link textarea, #share-link input").first.input_value() == ""
    page.click("#stop-btn")
    notice_has(page, "stopped")
    for control in SHARE_CONTROLS:  # the new run is saved: its controls are back
        assert page.locator(control).is_enabled(), control
    assert share_link(page) != first


def test_replay_is_read_only_and_edit_and_run_copies_its_settings(page, browser, app_url) -> None:  # noqa: ANN001
    prompt = "What is the diameter of the Zephyr-9 telescope's primary mirror?"
    page.fill("#prompt textarea", prompt)
    open_settings(page)
    page.fill("#system textarea", "Answer in one sentence.")
    page.locator("#grounding label:has-text('local corpus')").click()
    set_max_tokens(page, 10, columns=(0,))
    set_max_tokens(page, 7, columns=(1,))
    page.click("#run-btn")
    notice_has(page, "2 of 2")
    link = share_link(page)

    context = browser.new_context(viewport=VIEWPORT)
    replay = context.new_page()
    try:
        replay.goto(link)
        notice_has(replay, "Replay of saved run")
        banner = replay.locator("#replay-banner")
        assert banner.is_visible() and "Replay of a saved run — read-only" in banner.inner_text()
        assert replay.locator("#run-btn").is_hidden() and replay.locator("#edit-btn").is_visible()
        assert replay.locator("#edit-btn").inner_text().startswith("Edit and run")
        settings = replay.locator("#settings-box").inner_text()
        assert "grounding: local corpus" in settings and "Answer in one sentence." in settings
        open_settings(replay)
        # grounding as it ran, not "off"
        assert replay.locator("#grounding label:has-text('local corpus') input").is_checked()
        assert replay.locator("#system textarea").input_value() == "Answer in one sentence."
        replay.locator("#col-0 button:has-text('Parameters')").first.click()
        replay.locator("#col-1 button:has-text('Parameters')").first.click()
        tokens = [replay.locator(f"#col-{c} input[aria-label='Max new tokens']") for c in (0, 1)]
        assert [t.input_value() for t in tokens] == ["10", "7"]
        locked = ["#prompt textarea", "#system textarea", "#grounding label:has-text('web') input",
                  "#model-0 input", "#col-0 input[aria-label='Max new tokens']",
                  "#col-1 input[aria-label='Seed']", "#tokenize-btn", "#add-btn", "#remove-0",
                  "#blind-toggle input"]
        for selector in locked:
            assert replay.locator(selector).first.is_disabled(), selector
        replay.locator("#prompt").press("Control+Enter")  # the shortcut does not run a replay either
        replay.wait_for_timeout(500)
        assert "running" not in replay.locator("#notice").inner_text()

        replay.click("#edit-btn")
        replay.wait_for_selector("#run-btn", state="visible", timeout=30_000)
        settle(replay)
        assert replay.locator("#edit-btn").is_hidden() and replay.locator("#replay-banner").is_hidden()
        for selector in locked:
            assert replay.locator(selector).first.is_enabled(), selector
        assert replay.locator("#prompt textarea").input_value() == prompt
        assert replay.locator("#system textarea").input_value() == "Answer in one sentence."
        assert replay.locator("#grounding label:has-text('local corpus') input").is_checked()
        assert [t.input_value() for t in tokens] == ["10", "7"]
        assert "session=" not in replay.url  # a reload opens the editable page, not the replay again
        assert replay.locator("#share-link textarea, #share-link input").first.input_value().endswith(
            link.split("?", 1)[1])  # the saved run stays shareable
    finally:
        context.close()
