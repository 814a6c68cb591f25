"""The arena loop in the browser at 1440x900: Battle, the vote buttons in view, a vote by key, the reveal,
Next and round 2; and after that one vote the leaderboard says "needs more votes", not an interval."""

from __future__ import annotations

import sqlite3

from .helpers import set_max_tokens, settle

NAMES = ("smollm2", "gemma", "SmolLM", "Gemma")
IN_VIEW_JS = """(sel) => {
  const r = document.querySelector(sel).getBoundingClientRect();
  return r.height > 0 && r.top >= 0 && r.bottom <= window.innerHeight && r.left >= 0
    && r.right <= window.innerWidth;
}"""


def _wait_vote(page) -> None:  # noqa: ANN001
    page.wait_for_selector("#vote-a", state="visible", timeout=300_000)
    settle(page)


def test_battle_vote_by_key_reveal_next(browser, app_url, store) -> None:  # noqa: ANN001
    context = browser.new_context(viewport={"width": 1440, "height": 900})
    page = context.new_page()
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.goto(app_url)
    page.wait_for_selector("#prompt textarea")
    try:
        set_max_tokens(page, 8)
        page.click("#arena-battle")
        page.wait_for_function("() => (document.querySelector('#arena-status')?.innerText || '')"
                               ".includes('Round 1')", timeout=60_000)
        first_prompt = page.locator("#prompt textarea").input_value()
        assert first_prompt  # the set's first prompt, put in the prompt box
        _wait_vote(page)

        columns = page.locator("#columns").inner_text()
        assert "Model A" in columns and "Model B" in columns
        assert not any(name in columns for name in NAMES), columns
        assert not any(name in page.locator("#loaded").inner_text() for name in NAMES)
        status = page.locator("#arena-status").inner_text()
        assert not any(name in status for name in NAMES) and "seed" not in status  # the seed names the models
        finish = [page.locator(f"#head-{i} .pg-col-head").get_attribute("data-finish") for i in (0, 1)]
        labels = [page.locator(f"#head-{i} .pg-state").inner_text() for i in (0, 1)]
        assert finish[0] == finish[1] and labels[0] == labels[1], (finish, labels)  # nothing tells them apart
        for button in ("#vote-a", "#vote-b", "#vote-tie", "#vote-bad"):
            assert page.evaluate(IN_VIEW_JS, button), f"{button} is not in view at 1440x900"
        answers_top = page.evaluate("() => document.querySelector('#out-0').getBoundingClientRect().top")
        assert 0 <= answers_top < 600  # the answers right above the buttons, in view with them

        page.evaluate("() => document.activeElement && document.activeElement.blur()")
        page.keyboard.press("1")  # A is better
        page.wait_for_selector("#vote-result .pg-vote-result", timeout=60_000)
        settle(page)
        result = page.locator("#vote-result").inner_text()
        assert "Vote stored" in result and "A is better" in result and "Model A was" in result
        revealed = page.locator("#columns").inner_text().lower()
        assert "smollm2" in revealed and "gemma" in revealed
        page.wait_for_selector("#arena-next", state="visible", timeout=30_000)
        status = page.locator("#arena-status").inner_text()
        assert "seed" in status  # shown once voted, and kept with the run in the history database
        seed = int(status.split("draw seed ", 1)[1].split(",", 1)[0])
        with sqlite3.connect(store.path) as db:
            rows = db.execute("SELECT seed, round FROM arena_draws").fetchall()
        assert (seed, 0) in rows

        page.keyboard.press("n")  # Next
        page.wait_for_function("() => (document.querySelector('#arena-status')?.innerText || '')"
                               ".includes('Round 2')", timeout=60_000)
        assert page.locator("#prompt textarea").input_value() != first_prompt  # the set's next prompt
        _wait_vote(page)
        assert not any(name in page.locator("#columns").inner_text() for name in NAMES)
        assert page.evaluate(IN_VIEW_JS, "#vote-a")
        page.locator("#vote-category input").focus()
        page.keyboard.press("t")  # typing in a text box: a letter, not a vote
        settle(page)
        assert page.locator("#vote-a").is_visible() and page.locator("#vote-result").inner_text() == ""

        page.locator("#leaderboard-box").click()
        page.wait_for_selector("#leaderboard table.pg-leaderboard", timeout=30_000)
        table = page.locator("#leaderboard").inner_text()
        assert "needs more votes" in table, table
        assert page.locator("#leaderboard tbody tr[data-settled='true']").count() == 0
        assert dialogs == []
    finally:
        context.close()
