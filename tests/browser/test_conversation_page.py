"""A two-turn conversation in two columns, in headless Chromium, with a system prompt of one column's own.

The follow-up box under the columns continues every column's conversation; each column shows its
earlier turn (the prompt quoted, its own answer) above the new answer, and the turn is saved as a
new run linked to the first, which the share link replays whole.
"""

from __future__ import annotations

from .helpers import new_page, notice_has, set_max_tokens, share_link

FIRST = "My name is Ada and I keep bees. Say hello to me."
SECOND = "What is my name?"


def test_a_follow_up_continues_both_columns_and_replays(page, browser, store) -> None:  # noqa: ANN001
    assert not page.locator("#follow-up-row").is_visible()  # nothing to continue yet: no box at all
    page.fill("#prompt textarea", FIRST)
    set_max_tokens(page, 12)
    page.fill("#system-1 textarea", "You are a pirate.")  # column 2's own system prompt
    page.click("#run-btn")
    notice_has(page, "2 of 2")
    first_id = share_link(page).split("session=")[1]
    first_answers = [page.locator(f"#out-{c}").inner_text().strip() for c in (0, 1)]
    assert all(first_answers)

    page.wait_for_function("() => !document.querySelector('#follow-up textarea').disabled", timeout=30_000)
    page.fill("#follow-up textarea", SECOND)
    page.click("#follow-up-btn")
    page.wait_for_function(
        f"() => document.querySelector('#out-0').innerText.includes({SECOND!r})", timeout=60_000)
    notice_has(page, "2 of 2")
    second_id = share_link(page).split("session=")[1]
    assert second_id != first_id
    assert page.locator("#follow-up textarea").input_value() == ""
    for column in (0, 1):
        shown = page.locator(f"#out-{column}").inner_text()
        assert FIRST in shown and SECOND in shown and shown.count("You:") == 2
        assert first_answers[column][:20] in shown  # its own earlier answer, above the new one
        assert page.locator(f"#out-{column} blockquote").count() == 2

    saved = store.get(second_id)
    assert saved.parent_id == first_id and [t.prompt for t in saved.history] == [FIRST]
    assert saved.prompt == SECOND
    assert (saved.models[0].system_prompt, saved.models[1].system_prompt) == (None, "You are a pirate.")
    assert "You are a pirate." in "".join(p.text for p in saved.models[1].prompt_pieces)

    replay = new_page(browser, page.url.split("?")[0] + f"?session={second_id}")
    try:
        replay.wait_for_function(
            f"() => document.querySelector('#out-1').innerText.includes({FIRST!r})", timeout=60_000)
        assert SECOND in replay.locator("#out-1").inner_text()
        replay.locator("#col-1 button:has-text('Parameters')").first.click()
        assert replay.locator("#system-1 textarea").input_value() == "You are a pirate."
        assert not replay.locator("#system-1 textarea").is_enabled()  # read-only, like every setting
        assert replay.locator("#follow-up textarea").is_enabled()  # a replay can be continued
        assert replay.dialogs == []
    finally:
        replay.context.close()
