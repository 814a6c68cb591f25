"""The real page in headless Chromium: run two bundled models, watch them stream, stop a run."""

from __future__ import annotations

import re

from .helpers import set_max_tokens, settle

FINISHED = "#columns [data-finish]:not([data-finish=''])"


def _finished_count(page) -> int:  # noqa: ANN001
    return page.locator(FINISHED).count()


def test_first_open_has_both_bundled_models_picked(page) -> None:  # noqa: ANN001
    assert page.locator("#model-0 input").input_value() == "smollm2-135m"
    assert page.locator("#model-1 input").input_value() == "gemma3-270m"
    assert page.locator("#col-0").is_visible() and page.locator("#col-1").is_visible()
    assert not page.locator("#col-2").is_visible()


def test_run_two_models_side_by_side(page) -> None:  # noqa: ANN001
    page.fill("#prompt textarea", "What is the capital of France?")
    set_max_tokens(page, 24)
    page.click("#run-btn")
    page.wait_for_function(
        "() => (document.querySelector('#notice')?.innerText || '').includes('2 of 2')", timeout=600_000)
    settle(page)
    for col in (0, 1):
        text = page.locator(f"#out-{col}").inner_text().strip()
        assert text, f"column {col} is empty"
        metrics = page.locator(f"#head-{col} .pg-metrics").inner_text()
        assert re.search(r"TTFT \d+\.\d+ s", metrics), metrics
        assert "tok/s" in metrics and "cpu" in metrics
        assert re.search(r"mem \d+\.\d MB weights \+ \d+(\.\d)? [KM]B KV", metrics), metrics
        figures = page.locator(f"#head-{col} .pg-metric")
        tips = [figures.nth(i).get_attribute("title") for i in range(figures.count())]
        assert figures.count() >= 6 and all(tips), tips  # every figure says what it counts
        assert "Time to first token" in page.locator(f"#head-{col} [data-metric=ttft]").get_attribute("title")
    assert "Paris" in page.locator("#out-0").inner_text()
    assert "chat template" in page.locator("#head-0").inner_text()
    assert "question/answer frame" in page.locator("#head-1").inner_text()  # the base model, framed
    assert "2 of 2" in page.locator("#notice").inner_text()
    pool = page.locator("#loaded").inner_text()  # the model pool: what is loaded, its memory, the budget
    assert re.search(r"Loaded: .*smollm2-135m \(cpu float32, \d+\.\d MB, (idle|in use by \d columns?)\)",
                     pool), pool
    assert re.search(r"· \d+\.\d of \d+\.\d GB budget", pool), pool
    assert page.dialogs == []


def test_ctrl_enter_runs_and_stop_cancels_without_error_styling(page) -> None:  # noqa: ANN001
    page.fill("#prompt textarea", "Write a long story about a dragon who learns to bake bread.")
    page.locator("#remove-1").click()
    set_max_tokens(page, 400, columns=(0,))  # long enough to stop
    page.locator("#prompt textarea").press("Control+Enter")
    page.wait_for_function("() => document.querySelector('#out-0').innerText.trim().length > 0",
                           timeout=600_000)
    # the output count moves while the column streams (it used to stay at "N → 0 tokens" to the end)
    page.wait_for_function("() => /→ [1-9][0-9]* tokens so far/.test("
                           "document.querySelector('#head-0 [data-metric=tokens]')?.innerText || '')",
                           timeout=60_000)
    page.click("#stop-btn")
    page.wait_for_function("() => document.querySelector('#notice').innerText.includes('stopped')",
                           timeout=120_000)
    assert page.locator("#head-0 [data-finish='cancelled']").count() == 1
    assert page.locator("#out-0").inner_text().strip()
    assert page.locator("#run-btn").is_enabled()
    # Stop is a deliberate action: said plainly, in neutral colours, never as an error or alert
    assert page.locator("#head-0 .pg-stopped").inner_text().startswith("stopped by the user")
    assert page.locator("#head-0 .pg-error, #head-0 [role=alert], #head-0 .pg-badge.pg-error").count() == 0
    assert page.locator("#notice .pg-error").count() == 0


def test_empty_prompt_gets_a_clear_message(page) -> None:  # noqa: ANN001
    page.fill("#prompt textarea", "   ")
    page.click("#run-btn")
    page.wait_for_function("() => document.querySelector('#notice').innerText.includes('prompt is empty')",
                           timeout=30_000)
    assert _finished_count(page) == 0


def test_html_in_model_output_is_text(page) -> None:  # noqa: ANN001
    payload = "<img src=x onerror=alert(1)><script>alert(2)</script>"
    page.fill("#prompt textarea", f"Repeat exactly: {payload}")
    page.locator("#model-1 input").fill("")
    page.locator("#remove-1").click()
    set_max_tokens(page, 40, columns=(0,))
    page.click("#run-btn")
    page.wait_for_function(
        "() => document.querySelectorAll(\"#columns [data-finish]:not([data-finish=''])\").length >= 1",
        timeout=600_000,
    )
    assert page.locator("#out-0 img").count() == 0
    assert page.locator("#out-0 script").count() == 0
    assert page.dialogs == []
