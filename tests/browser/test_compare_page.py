"""The Compare panel in the browser: diffs, agreement matrices, run vs run, escaping."""

from __future__ import annotations

from .helpers import fill_number, notice_has, set_max_tokens, share_link

XSS = "Repeat: <img src=x onerror=alert(1)> <script>alert(2)</script>"


def _run(page, prompt: str, tokens: int, seed: int | None = None) -> str:  # noqa: ANN001
    page.fill("#prompt textarea", prompt)
    set_max_tokens(page, tokens)
    if seed is not None:
        fill_number(page, "#col-0 input[aria-label='Seed']", str(seed))
    page.click("#run-btn")
    notice_has(page, "done")
    return share_link(page)


def test_diff_agreement_and_run_vs_run(page, app_url) -> None:  # noqa: ANN001
    first = _run(page, XSS, tokens=12)
    page.locator("#diff-box").click()
    page.wait_for_selector("#diff .pg-diff-block", timeout=60_000)
    block = page.locator("#diff .pg-diff-block").first
    assert "vs baseline 1 · smollm2-135m" in block.inner_text()
    assert page.locator("#diff img, #diff script, #columns img").count() == 0
    page.wait_for_selector("#agree-lexical .js-plotly-plot", timeout=60_000)
    cells = page.evaluate("() => document.querySelector('#agree-lexical .js-plotly-plot').data[0].z")
    assert cells[0][0] == 1 and cells[1][1] == 1 and cells[0][1] == cells[1][0]
    page.click("#semantic-btn")
    page.wait_for_selector("#agree-semantic .js-plotly-plot", timeout=300_000)
    assert "all-MiniLM-L6-v2" in page.locator("#agree-note").inner_text()

    page.goto(app_url)
    page.wait_for_selector("#prompt textarea")
    second = _run(page, XSS, tokens=8, seed=7)
    page.locator("#diff-box").click()
    page.fill("#rvr-a textarea, #rvr-a input", first)
    page.fill("#rvr-b textarea, #rvr-b input", second)
    page.click("#rvr-btn")
    page.wait_for_selector("#rvr h4", timeout=60_000)
    changes = page.locator("#rvr").inner_text()
    assert "max_new_tokens: 12 → 8" in changes and "seed: 0 → 7" in changes
    assert page.locator("#rvr img, #rvr script").count() == 0
    assert page.dialogs == []


def test_run_vs_run_bad_id_is_a_message(page) -> None:  # noqa: ANN001
    page.locator("#diff-box").click()
    page.fill("#rvr-a textarea, #rvr-a input", "nope")
    page.fill("#rvr-b textarea, #rvr-b input", "also-nope")
    page.click("#rvr-btn")
    page.wait_for_function(
        "() => (document.querySelector('#rvr')?.innerText || '').includes('not a session id')",
        timeout=60_000)
