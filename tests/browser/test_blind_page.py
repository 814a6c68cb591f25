"""Blind comparison in the browser at 1440x900: names hidden, vote, reveal, leaderboard, replay."""

from __future__ import annotations

from .helpers import notice_has, set_max_tokens, settle, share_link

NAMES = ("smollm2", "gemma", "SmolLM", "Gemma")
XSS_CATEGORY = "<img src=x onerror=alert(1)>"


def _columns_text(page) -> str:  # noqa: ANN001 - what a user can read in the column area
    return page.locator("#columns").inner_text()


def _columns_html(page) -> str:  # noqa: ANN001 - what View Source or a screen reader finds there
    return page.evaluate("""() => {
      const box = document.querySelector('#columns');
      const values = [...box.querySelectorAll('input, textarea')].map((field) => field.value);
      return box.outerHTML + ' ' + values.join(' ');
    }""")


def test_blind_vote_reveals_and_ranks(browser, app_url) -> None:  # noqa: ANN001
    context = browser.new_context(viewport={"width": 1440, "height": 900})
    page = context.new_page()
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.goto(app_url)
    page.wait_for_selector("#prompt textarea")
    try:
        set_max_tokens(page, 8)
        page.locator("#blind-toggle input").check()
        page.fill("#prompt textarea", "Name a colour.")
        page.click("#run-btn")
        page.wait_for_function(
            "() => (document.querySelector('#head-0')?.innerText || '').includes('Model A')", timeout=120_000)
        during = _columns_text(page)
        assert not any(name in during for name in NAMES), during
        notice_has(page, "done")

        after = _columns_text(page)
        assert "Model A" in after and "Model B" in after
        assert not any(name in after for name in NAMES), after
        hidden = _columns_html(page)  # the pickers were hidden by CSS only: their values were in the HTML
        assert not any(name in hidden for name in NAMES), [n for n in NAMES if n in hidden]
        assert page.locator("#model-0").is_hidden() and page.locator("#model-1").is_hidden()
        assert page.locator("#vote-a").inner_text() == "A is better"
        assert page.locator("#vote-b").inner_text() == "B is better"
        assert page.locator("#vote-tie").is_visible() and page.locator("#vote-bad").inner_text() == "Both bad"
        page.locator("#probs-box").click()
        page.wait_for_selector("#probs .pg-probs h4", timeout=30_000)
        probs = page.locator("#probs").inner_text()
        assert "Model A" in probs and not any(name in probs for name in NAMES)
        answers = [page.locator("#out-0").inner_text(), page.locator("#out-1").inner_text()]
        link = share_link(page)

        category = page.locator("#vote-category input")
        category.fill(XSS_CATEGORY)
        category.press("Enter")
        page.wait_for_timeout(300)
        page.click("#vote-a")
        page.wait_for_selector("#vote-result .pg-vote-result", timeout=60_000)
        settle(page)
        result = page.locator("#vote-result").inner_text()
        assert "Vote stored" in result and "A is better" in result and XSS_CATEGORY in result
        assert "Model A was" in result and "Model B was" in result
        revealed = _columns_text(page)
        assert "smollm2" in revealed.lower() and "gemma" in revealed.lower()
        assert page.locator("#model-0").is_visible()
        assert page.locator("#vote-a").is_hidden()
        winner = result.split("Model A was", 1)[1].split("(", 1)[0].strip()

        page.locator("#leaderboard-box").click()
        page.wait_for_selector("#leaderboard table.pg-leaderboard", timeout=30_000)
        table = page.locator("#leaderboard").inner_text()
        assert "smollm2" in table and "gemma" in table
        # this vote's category has its own table (other tests' votes share the store): the winner first
        first = page.evaluate("""(category) => {
          const table = [...document.querySelectorAll('#leaderboard .pg-lb-category')]
            .find(div => div.dataset.category === category);
          return table?.querySelector('tbody tr')?.dataset.model || '';
        }""", XSS_CATEGORY)
        assert first == winner  # one vote in the category: its winner ranks first
        assert page.locator("#vote-result img, #leaderboard img").count() == 0

        replay = context.browser.new_context(viewport={"width": 1440, "height": 900}).new_page()
        replay.goto(link)
        replay.wait_for_selector("#vote-a", state="visible", timeout=60_000)
        settle(replay)
        again = _columns_text(replay)
        assert not any(name in again for name in NAMES), again
        assert not any(name in _columns_html(replay) for name in NAMES)
        assert [replay.locator("#out-0").inner_text(), replay.locator("#out-1").inner_text()] == answers
        replay.context.close()
        assert dialogs == []
    finally:
        context.close()
