"""A served column beside a local one on the real page: the same GGUF through two engines."""

from __future__ import annotations

from .helpers import set_max_tokens, settle


def test_a_llamacpp_column_beside_a_transformers_column(page) -> None:  # noqa: ANN001
    page.locator("#model-1 input").fill("smollm2-135m-llamacpp")
    page.keyboard.press("Enter")
    page.fill("#prompt textarea", "What is the capital of France?")
    set_max_tokens(page, 12)
    page.click("#run-btn")
    page.wait_for_function(
        "() => (document.querySelector('#notice')?.innerText || '').includes('2 of 2')", timeout=600_000)
    settle(page)
    served = page.locator("#head-1").inner_text()
    assert "llama.cpp (managed)" in served
    assert "tok/s" in served and "mem " not in served and "model file" in served
    assert page.locator("#out-1").inner_text().strip()
    page.locator("#attn-box").click()
    page.wait_for_function("() => (document.querySelector('#attn-note')?.innerText || '')"
                           ".includes('not available for served models')", timeout=30_000)
    assert page.dialogs == []
