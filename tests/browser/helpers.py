"""Small page actions shared by the browser tests."""

from __future__ import annotations

import json


def settle(page, timeout: int = 120_000) -> None:  # noqa: ANN001
    """Wait until no event is in flight (Gradio shows "processing |" on the components it updates)."""
    page.wait_for_function("() => !document.body.innerText.includes('processing |')", timeout=timeout)


def notice_has(page, text: str, timeout: int = 600_000) -> None:  # noqa: ANN001
    """Wait for the page notice to contain `text`, then for the page to settle."""
    page.wait_for_function(
        f"() => (document.querySelector('#notice')?.innerText || '').includes({json.dumps(text)})",
        timeout=timeout)
    settle(page)


def set_max_tokens(page, n: int, columns: tuple[int, ...] = (0, 1)) -> None:  # noqa: ANN001
    for col in columns:
        page.locator(f"#col-{col} button:has-text('Parameters')").first.click()
        page.locator(f"#col-{col} input[aria-label='Max new tokens']").fill(str(n))


def share_link(page) -> str:  # noqa: ANN001
    """Click Copy link and return the full permalink it produced."""
    page.click("#copy-btn")
    page.wait_for_function(
        "() => (document.querySelector('#share-link textarea, #share-link input')?.value || '')"
        ".startsWith('http')", timeout=30_000)
    return page.locator("#share-link textarea, #share-link input").first.input_value()
