"""The page a new user finds at 1440x900 (issue 22): every panel one click away from the section bar, no
empty chart before a run, example prompts on show, the follow-up only once a run has answered, one shared
parameters row with per-column overrides, a chat template's own system prompt named, and a follow-up sent
from a replay leaving the replay."""

from __future__ import annotations

import json
from pathlib import Path

from .helpers import VIEWPORT, fill_number, new_page, notice_has, share_link

# section link -> the accordion it opens
SECTIONS = {"goto-tokens": "tokens-box", "goto-attn": "attn-box", "goto-probs": "probs-box",
            "goto-diff": "diff-box", "goto-sources": "sources-box", "goto-batch": "batch-box",
            "goto-history": "history-box", "goto-leaderboard": "leaderboard-box"}
# Open, on screen, and showing content of its own beyond its label.
SECTION_SHOWN = """(id) => {
  const box = document.getElementById(id);
  const label = box && box.querySelector('button.label-wrap');
  if (!label || !label.classList.contains('open')) return false;
  const r = box.getBoundingClientRect();
  if (r.top < 0 || r.top >= window.innerHeight) return false;
  return [...box.querySelectorAll('input, textarea, button, table, .html-container')]
    .some((el) => !label.contains(el) && el.getBoundingClientRect().height > 0
          && el.getBoundingClientRect().top < window.innerHeight);
}"""
EXAMPLES = Path(__file__).resolve().parents[2] / "assets" / "examples.json"
CHARTS = "() => document.querySelectorAll('.js-plotly-plot').length"


def test_every_section_is_one_click_from_the_section_bar(page) -> None:  # noqa: ANN001
    assert page.viewport_size == VIEWPORT
    for link, box in SECTIONS.items():
        page.locator(f"#{link}").click()  # the bar stays on screen (sticky) wherever the page is scrolled
        page.wait_for_function(SECTION_SHOWN, arg=box, timeout=30_000)
        assert page.locator(f"#{link}").is_visible()
    assert page.dialogs == []


def test_first_load_examples_no_empty_chart_and_a_follow_up_only_after_an_answer(page, store) -> None:  # noqa: ANN001
    # Before any run: no chart (not even an empty one in Compare outputs), no follow-up box.
    page.locator("#goto-diff").click()
    page.wait_for_function(SECTION_SHOWN, arg="diff-box", timeout=30_000)
    assert page.evaluate(CHARTS) == 0
    assert not page.locator("#agree-lexical").is_visible()
    assert not page.locator("#follow-up-row").is_visible()
    page.evaluate("() => window.scrollTo(0, 0)")

    # Example prompts are on show under the prompt; a click fills the prompt box.
    chip = page.locator("#example-0")
    assert chip.is_visible() and chip.bounding_box()["y"] + 20 < VIEWPORT["height"]
    text = json.loads(EXAMPLES.read_text(encoding="utf-8"))[0]
    chip.click()
    page.wait_for_function(f"() => document.querySelector('#prompt textarea').value === {json.dumps(text)}",
                           timeout=30_000)

    # One shared max new tokens for both columns; column 2 overrides it and says so.
    shared = page.locator("#shared-params-box").inner_text()
    assert shared.startswith("Shared parameters · 64 tokens · greedy")  # 64: a CPU
    page.locator("#shared-params-box").click()
    fill_number(page, "#shared-max-new-tokens input", "5")
    page.wait_for_function(
        "() => document.querySelector('#shared-params-box').innerText.includes('5 tokens')", timeout=30_000)
    page.locator("#params-1").click()
    page.wait_for_function(  # the shared value reached the column's own box
        "() => document.querySelector('#col-1 input[aria-label=\"Max new tokens\"]')?.value === '5'",
        timeout=30_000)
    fill_number(page, "#col-1 input[aria-label='Max new tokens']", "3")
    page.wait_for_function(
        "() => document.querySelector('#params-1').innerText.includes('override: max new tokens 3')",
        timeout=30_000)
    assert "override" not in page.locator("#params-0").inner_text()

    page.click("#run-btn")
    notice_has(page, "2 of 2")
    run_id = share_link(page).split("session=")[1]
    saved = store.get(run_id)
    assert [m.params.max_new_tokens for m in saved.models] == [5, 3]  # shared; the override won
    assert [len(m.steps) <= n for m, n in zip(saved.models, (5, 3), strict=True)] == [True, True]

    # Answered: the follow-up box shows, and the lexical chart now has data.
    assert page.locator("#follow-up-row").is_visible()
    assert page.locator("#follow-up textarea").is_enabled()
    page.wait_for_selector("#agree-lexical .js-plotly-plot", timeout=60_000)

    # No system prompt was typed, but SmolLM2's chat template wrote one: the label and the column say so.
    settings = page.locator("#settings-box").inner_text()
    assert settings.startswith("Settings · template system prompt (smollm2-135m) · grounding: off")
    head = page.locator("#head-0 .pg-col-system[data-source='template'] summary").inner_text()
    assert head.startswith("template default: “You are a helpful AI assistant named SmolLM")
    assert page.locator("#head-1 .pg-col-system").count() == 0  # Gemma's frame has no system turn
    assert page.dialogs == []


def test_a_follow_up_sent_from_a_replay_leaves_the_replay(page, browser, store) -> None:  # noqa: ANN001
    page.fill("#prompt textarea", "Name a colour.")
    page.locator("#shared-params-box").click()
    fill_number(page, "#shared-max-new-tokens input", "3")
    page.click("#run-btn")
    notice_has(page, "2 of 2")
    first_id = share_link(page).split("session=")[1]

    replay = new_page(browser, page.url.split("?")[0] + f"?session={first_id}")
    try:
        replay.wait_for_selector("#replay-banner .pg-replay-banner", timeout=60_000)
        assert replay.locator("#edit-btn").is_visible() and not replay.locator("#run-btn").is_visible()
        assert replay.locator("#prompt textarea").input_value() == "Name a colour."
        replay.wait_for_function("() => !document.querySelector('#follow-up textarea').disabled",
                                 timeout=30_000)
        replay.fill("#follow-up textarea", "Another one.")
        replay.click("#follow-up-btn")
        notice_has(replay, "2 of 2")
        replay.wait_for_function(f"() => !location.search.includes({json.dumps(first_id)})", timeout=30_000)
        new_id = replay.evaluate("() => new URL(location.href).searchParams.get('session')")
        assert new_id and new_id != first_id and store.get(new_id).parent_id == first_id
        assert share_link(replay).endswith(f"session={new_id}")
        assert replay.locator("#replay-banner .pg-replay-banner").count() == 0
        assert not replay.locator("#edit-btn").is_visible() and replay.locator("#run-btn").is_visible()
        assert replay.locator("#prompt textarea").input_value() == "Another one."  # not turn 1
        assert replay.locator("#prompt textarea").is_enabled()
        assert replay.dialogs == []
    finally:
        replay.context.close()
