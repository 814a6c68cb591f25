"""Attention heatmaps and token probabilities in the browser, live and in a shared replay."""

from __future__ import annotations

import json

from .helpers import notice_has, set_max_tokens, share_link

# The heatmap's z as plotly holds it (a typed-array payload for numpy data): enough to see it change.
Z = "() => JSON.stringify(document.querySelector('#attn-plot-a .js-plotly-plot')?.data?.[0]?.z)"
TITLE = "() => document.querySelector('#attn-plot-a .gtitle')?.textContent || ''"


def _wait_change(page, script: str, before: str) -> str:  # noqa: ANN001
    page.wait_for_function(f"() => ({script})() !== {json.dumps(before)}", timeout=60_000)
    return page.evaluate(script)


def test_heatmap_switches_layer_and_head_and_replays(page) -> None:  # noqa: ANN001
    page.fill("#prompt textarea", "The capital of France is")
    set_max_tokens(page, 6)
    page.click("#run-btn")
    notice_has(page, "done")
    page.locator("#attn-box").click()
    page.wait_for_selector("#attn-plot-a .js-plotly-plot", timeout=60_000)
    first = page.evaluate(Z)
    assert first and first != "null"
    assert "layer 29" in page.evaluate(TITLE)

    page.locator("#attn-layer input").fill("7")
    page.keyboard.press("Enter")
    by_layer = _wait_change(page, Z, first)
    assert "layer 7" in page.evaluate(TITLE)

    page.locator("#attn-view label:has-text('one head')").click()
    one_head = _wait_change(page, Z, by_layer)
    page.locator("#attn-head input").fill("3")
    page.locator("#attn-head input").press("Enter")
    head3 = _wait_change(page, Z, one_head)
    assert "head 3" in page.evaluate(TITLE)

    page.locator("#attn-b input").fill("2 · gemma3-270m")
    page.keyboard.press("Enter")
    page.wait_for_selector("#attn-plot-b .js-plotly-plot", timeout=60_000)
    page.wait_for_selector("#attn-sinks .js-plotly-plot", timeout=60_000)

    page.locator("#probs-box").click()
    page.wait_for_selector("#probs .ptok", timeout=30_000)
    assert page.locator("#probs .ptok").count() >= 2
    probs_text = page.locator("#probs").inner_text()
    assert "perplexity" in probs_text and "Least confident" in probs_text

    link = share_link(page)
    page.goto(link)
    notice_has(page, "Replay of saved run")
    page.locator("#attn-box").click()
    page.wait_for_selector("#attn-plot-a .js-plotly-plot", timeout=60_000)
    assert page.evaluate(Z) == first  # same default view, from the saved record
    page.locator("#attn-layer input").fill("7")
    page.keyboard.press("Enter")
    page.locator("#attn-view label:has-text('one head')").click()
    page.locator("#attn-head input").fill("3")
    page.locator("#attn-head input").press("Enter")
    page.wait_for_function(f"() => ({Z})() === {json.dumps(head3)}", timeout=60_000)
    page.locator("#probs-box").click()
    page.wait_for_selector("#probs .ptok", timeout=30_000)
    assert page.locator("#probs").inner_text() == probs_text
