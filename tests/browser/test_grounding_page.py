"""Grounding in the browser, offline, on the sample corpus: sources panel and citations."""

from __future__ import annotations

from .helpers import notice_has, open_settings, set_max_tokens


def test_local_corpus_grounding_shows_sources_and_citations(page) -> None:  # noqa: ANN001
    page.fill("#prompt textarea", "What is the diameter of the Zephyr-9 telescope's primary mirror?")
    open_settings(page)
    page.locator("#grounding label:has-text('local corpus')").click()
    set_max_tokens(page, 16)
    page.click("#run-btn")
    notice_has(page, "grounded on 3 local sources")
    page.locator("#sources-box").click()
    page.wait_for_selector("#sources ol.pg-sources li", timeout=30_000)
    first = page.locator("#sources ol.pg-sources li").first
    assert "Zephyr-9 orbital telescope" in first.inner_text()
    link = first.locator("a")
    assert link.get_attribute("target") == "_blank"
    assert link.get_attribute("rel") == "noopener noreferrer"
    citations = page.locator("#sources .pg-citations li")
    assert citations.count() == 2 and "cites" in citations.first.inner_text()
    assert page.locator("#sources script, #sources img").count() == 0
    page.locator("#tokens-box").click()
    page.wait_for_selector("#tok-chips .tok")
    chips = page.evaluate(
        "() => [...document.querySelectorAll('#tok-chips .tok-prompt')].map(c => c.dataset.text).join('')")
    assert "[1] Zephyr-9 orbital telescope" in chips  # the model saw the numbered source
    assert page.dialogs == []
