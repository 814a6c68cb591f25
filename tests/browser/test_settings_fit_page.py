"""Small page fixes of issue 22 item 8, in Chromium at 1440x900: the Sources slider only with grounding on,
the model box at four columns, Delete on someone else's replay (tests/browser/test_ownership_page.py)."""

from __future__ import annotations

from sample_runs import make_run

from .helpers import notice_has, open_settings, settle


def _sources_shown(page, elem_id: str = "n-sources") -> bool:  # noqa: ANN001
    return page.evaluate("(id) => { const e = document.querySelector('#' + id);"
                         " return !!e && getComputedStyle(e).display !== 'none' && e.offsetParent !== null }",
                         elem_id)


def test_the_sources_slider_shows_only_while_grounding_is_on(page) -> None:  # noqa: ANN001
    open_settings(page)
    page.wait_for_selector("#grounding", state="visible")
    assert page.locator("#grounding input[value='off']").is_checked()
    assert not _sources_shown(page) and not _sources_shown(page, "fetch-pages")
    page.locator("[data-testid='local corpus-radio-label']").click()
    page.wait_for_function("() => document.querySelector('#grounding input[value=\"local corpus\"]').checked")
    assert _sources_shown(page)
    assert not _sources_shown(page, "fetch-pages")  # fetching page text is a web search's option
    page.locator("[data-testid='web-radio-label']").click()
    page.wait_for_function("() => document.querySelector('#grounding input[value=\"web\"]').checked")
    assert _sources_shown(page) and _sources_shown(page, "fetch-pages")
    page.locator("[data-testid='off-radio-label']").click()
    page.wait_for_function("() => document.querySelector('#grounding input[value=\"off\"]').checked")
    assert not _sources_shown(page) and not _sources_shown(page, "fetch-pages")


def test_a_replay_without_grounding_hides_the_sources_slider(page, app_url, store) -> None:  # noqa: ANN001
    run = make_run(prompt="No search here.")
    store.save(run, owner="someone")
    page.goto(f"{app_url}/?session={run.id}")
    notice_has(page, "Replay of saved run")
    open_settings(page)
    assert page.locator("#grounding input[value='off']").is_checked()
    assert not _sources_shown(page)


def test_four_columns_show_the_whole_model_id(page) -> None:  # noqa: ANN001
    for index in (2, 3):
        page.click("#add-btn")
        page.wait_for_selector(f"#model-{index} input", timeout=30_000)
        settle(page)
    box = page.locator("#model-3 input")
    box.click()
    box.fill("llamacpp")
    page.keyboard.press("Enter")
    page.wait_for_function("() => document.querySelector('#model-3 input').value === 'smollm2-135m-llamacpp'")
    fits = page.evaluate("""() => [0, 1, 2, 3].map(i => {
      const e = document.querySelector('#model-' + i + ' input');
      return [e.value, e.scrollWidth <= e.clientWidth];
    })""")
    assert len(fits) == 4 and all(ok for _, ok in fits), fits
    # the Focus button shows its icon only, and still says what it does to a screen reader
    assert "Focus" in (page.locator("#focus-3").text_content() or "")
    page.locator("#focus-3").hover()  # and a hover says what the icon does
    assert "full width" in (page.locator("#focus-3").get_attribute("title") or "")
