"""Small page actions shared by the browser tests."""

from __future__ import annotations

import json

VIEWPORT = {"width": 1440, "height": 900}  # a laptop screen: what the layout is made for


def new_page(browser, url: str):  # noqa: ANN001, ANN201
    """A page in a fresh browser context (its own localStorage: another "user"), opened at `url`.

    Every dialog is recorded in page.dialogs (an XSS payload would raise an alert); confirm() is accepted.
    """
    context = browser.new_context(viewport=VIEWPORT)
    page = context.new_page()
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message),
                                 d.accept() if d.type == "confirm" else d.dismiss()))
    page.dialogs = dialogs
    page.goto(url)
    page.wait_for_selector("#prompt textarea")
    return page


def settle(page, timeout: int = 120_000) -> None:  # noqa: ANN001
    """Wait until no event is in flight (Gradio shows "processing |" on the components it updates)."""
    page.wait_for_function("() => !document.body.innerText.includes('processing |')", timeout=timeout)


def notice_has(page, text: str, timeout: int = 600_000) -> None:  # noqa: ANN001
    """Wait for the page notice to contain `text`, then for the page to settle."""
    page.wait_for_function(
        f"() => (document.querySelector('#notice')?.innerText || '').includes({json.dumps(text)})",
        timeout=timeout)
    settle(page)


def fill_number(page, selector: str, value: str) -> None:  # noqa: ANN001
    """Fill a number box and make sure it kept the value.

    A box inside an accordion that was just opened is still being mounted: Gradio may set its
    initial value a moment after Playwright typed, wiping what was typed. Wait for the box to show
    its initial value, fill it, and fill it again if it was reset.
    """
    box = page.locator(selector)
    page.wait_for_function(
        f"() => (document.querySelector({json.dumps(selector)})?.value || '') !== ''", timeout=30_000)
    for _ in range(10):
        box.fill(value)
        page.wait_for_timeout(200)
        if box.input_value() == value:
            return
    raise AssertionError(f"{selector} did not keep the value {value!r}")


def set_max_tokens(page, n: int, columns: tuple[int, ...] = (0, 1)) -> None:  # noqa: ANN001
    for col in columns:  # opens the column's Parameters unless they are open already
        if not page.locator(f"#col-{col} input[aria-label='Max new tokens']").is_visible():
            page.locator(f"#col-{col} button:has-text('Parameters')").first.click()
        fill_number(page, f"#col-{col} input[aria-label='Max new tokens']", str(n))


def share_link(page) -> str:  # noqa: ANN001
    """Click Copy link and return the full permalink it produced."""
    page.click("#copy-btn")
    page.wait_for_function(
        "() => (document.querySelector('#share-link textarea, #share-link input')?.value || '')"
        ".startsWith('http')", timeout=30_000)
    return page.locator("#share-link textarea, #share-link input").first.input_value()


def open_history(page) -> str:  # noqa: ANN001
    """Open the History accordion and return its text once listed."""
    page.locator("#history-box").click()
    page.wait_for_selector("#history .pg-history-scope", timeout=30_000)
    return page.locator("#history").inner_text()


def history_ids(page) -> list[str]:  # noqa: ANN001
    """The run ids the History accordion links to."""
    return page.evaluate(
        "() => [...document.querySelectorAll('#history a')].map(a => a.getAttribute('href').split('=')[1])")


def open_settings(page) -> None:  # noqa: ANN001
    """Open the Settings accordion under the prompt (system prompt, grounding) if closed."""
    if not page.locator("#system textarea").is_visible():
        page.locator("#settings-box").click()
        page.wait_for_selector("#system textarea", state="visible", timeout=30_000)
