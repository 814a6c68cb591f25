"""Prompt sets and batches in the browser: a three-prompt set over two columns with progress, the results
matrix, the charts, the routing rules preview and sweep, bad input, `/?batch=ID`, and XSS shown as text."""

from __future__ import annotations

import json

from .helpers import new_page, set_max_tokens, settle

XSS = "Say hi. <script>alert(1)</script> <img src=x onerror=alert(1)>"
SET = "\n".join(json.dumps(row) for row in [
    {"id": "capital", "category": "extraction", "prompt": "What is the capital of France?",
     "expected": "Paris"},
    {"id": "add", "category": "arithmetic", "prompt": "What is 2 + 3? Think step by step.", "expected": "5"},
    {"id": "xss", "category": "code", "prompt": XSS, "expected": "hi"},
])
BAD_YAML = "default: [unclosed\nrules: {"
BAD_REGEX = 'default: smollm2-135m\nrules:\n  - when: {matches: "(unclosed"}\n    model: gemma3-270m\n'
CELLS = "#batch-matrix td.pg-matrix-cell"  # one per prompt and model
COUNT = f"() => document.querySelectorAll({json.dumps(CELLS)}).length"
STATE = "() => document.querySelector('#batch-status .pg-batch-progress')?.dataset.state || ''"


def _open_panel(page) -> None:  # noqa: ANN001
    if not page.locator("#batch-set textarea").is_visible():
        page.locator("#batch-box").click()
        page.wait_for_selector("#batch-set textarea", state="visible", timeout=30_000)


def _grid(page) -> list[tuple[str, str, str, str]]:  # noqa: ANN001
    """(prompt id, model, score, answer) for each cell of the matrix."""
    return page.evaluate(f"""() => [...document.querySelectorAll({json.dumps(CELLS)})].map(c =>
        [c.closest('tr').dataset.prompt, c.dataset.model, c.dataset.score, c.innerText])""")


def _plotted(page, selector: str) -> None:  # noqa: ANN001
    page.wait_for_selector(f"{selector} .js-plotly-plot", timeout=60_000)


def test_batch_runs_with_progress_matrix_charts_rules_and_link(page, browser, app_url) -> None:  # noqa: ANN001
    set_max_tokens(page, 8)
    _open_panel(page)

    page.click("#batch-run")  # nothing pasted yet: a clear message, nothing runs
    page.wait_for_selector("#batch-status .pg-notice", timeout=30_000)
    assert "the prompt set is empty" in page.locator("#batch-status").inner_text()

    page.locator("#batch-format label:has-text('jsonl')").click()
    page.fill("#batch-set textarea", "not json at all")
    page.click("#batch-run")
    page.wait_for_function("() => document.querySelector('#batch-status').innerText.includes('line 1')",
                           timeout=30_000)

    page.fill("#batch-set textarea", SET)
    page.click("#batch-run")
    page.wait_for_function(f"() => ({STATE})() === 'running'", timeout=60_000)
    seen = set()
    for _ in range(1200):  # the progress bar follows the batch while it runs
        state = page.evaluate(STATE)
        done = page.evaluate("() => document.querySelector('#batch-status .pg-batch-progress')?.dataset.done")
        seen.add((state, done))
        if state == "complete":
            break
        page.wait_for_timeout(500)
    assert ("complete", "3") in seen, seen
    assert any(state == "running" for state, _ in seen)
    settle(page)
    status = page.locator("#batch-status").inner_text()
    assert "3/3 prompts done" in status
    batch_id = page.locator("#batch-status .pg-batch-progress").get_attribute("data-batch")

    # the matrix: 3 prompts x 2 models, each scored, each with its saved run
    page.wait_for_function(f"() => ({COUNT})() === 6", timeout=60_000)
    grid = _grid(page)
    assert sorted({g[0] for g in grid}) == ["add", "capital", "xss"]
    assert len({g[1] for g in grid}) == 2
    assert all(g[2] != "" for g in grid), grid  # every answer has a score (contains: 0 or 1)
    assert page.locator(f"{CELLS} a.pg-matrix-open[href^='?session=']").count() == 6
    assert "Mean score" in page.locator("#batch-summary").inner_text()
    assert page.locator("#batch-summary tbody tr").count() == 2
    for chart in ("#batch-quality", "#batch-latency", "#batch-heatmap"):
        _plotted(page, chart)

    # filter by model: one column left
    first_model = grid[0][1]
    page.locator("#batch-model input").click()
    page.locator(f"[role='option']:has-text('{first_model}')").first.click()
    page.wait_for_function(f"() => ({COUNT})() === 3", timeout=30_000)
    assert {g[1] for g in _grid(page)} == {first_model}

    # XSS in a prompt (and whatever the models answered) stays text
    assert "<img src=x" in page.locator("#batch-matrix").inner_text()
    for area in ("#batch-matrix", "#batch-summary", "#batch-status"):
        assert page.locator(f"{area} img").count() == 0, area
        assert page.locator(f"{area} script").count() == 0, area

    # routing rules: the prefilled example (it splits traffic), previewed on this batch
    page.click("#rules-preview-btn")
    page.wait_for_function("() => document.querySelectorAll('#rules-preview tr.pg-route-row').length === 3",
                           timeout=60_000)
    routes = page.evaluate("""() => Object.fromEntries([...document.querySelectorAll(
        '#rules-preview tr.pg-route-row')].map(r => [r.dataset.prompt, [r.dataset.model, r.dataset.rule]])
    )""")
    assert routes["capital"] == ["smollm2-135m", "default"], routes  # extraction: no rule, the default
    assert routes["add"] == ["gemma3-270m", "rule 3"], routes  # "step by step", under 400 tokens (rules[3])
    assert all(rule.startswith("rule ") or rule == "default" for _, rule in routes.values())
    preview_text = page.locator("#rules-preview").inner_text()
    assert "these rules" in preview_text and "all to gemma3-270m" in preview_text
    page.click("#rules-sweep-btn")
    _plotted(page, "#rules-sweep")
    assert page.locator("#rules-sweep-note").inner_text().strip()

    page.fill("#rules-yaml textarea", BAD_YAML)
    page.click("#rules-preview-btn")
    page.wait_for_function(
        "() => document.querySelector('#rules-preview').innerText.includes('not valid YAML')", timeout=30_000)
    page.fill("#rules-yaml textarea", BAD_REGEX)
    page.click("#rules-preview-btn")
    page.wait_for_function(
        "() => document.querySelector('#rules-preview').innerText.includes('bad regular expression')",
        timeout=30_000)
    assert "Traceback" not in page.locator("#rules-preview").inner_text()

    # the saved batch is listed, and /?batch=ID draws the same results in a new page, read-only
    page.click("#batch-list-btn")
    page.wait_for_selector(f"#batch-list a[href='?batch={batch_id}']", timeout=30_000)
    other = new_page(browser, f"{app_url}/?batch={batch_id}")
    other.wait_for_function(f"() => ({COUNT})() === 6", timeout=60_000)
    assert sorted(_grid(other)) == sorted(grid)
    assert "no model was run" in other.locator("#notice").inner_text()
    _plotted(other, "#batch-quality")
    assert other.locator("#batch-matrix img").count() == 0
    assert page.dialogs == [] and other.dialogs == []
    other.context.close()


def test_unknown_batch_link_gives_a_message(page, app_url) -> None:  # noqa: ANN001
    page.goto(f"{app_url}/?batch=AAAAAAAAAAAAAAAAAAAAAA")
    page.wait_for_function("() => document.querySelector('#notice')?.innerText.includes('no saved batch')",
                           timeout=60_000)


def test_a_batch_run_alone_says_its_latency_is_the_wall_clock(page) -> None:  # noqa: ANN001
    """The "Run each model alone" toggle reaches the batch, and its summary names the clock it counts."""
    from playground.batch.summary import ALONE_WALL

    set_max_tokens(page, 4)
    _open_panel(page)
    alone = page.locator("#batch-alone input[type='checkbox']")
    assert "Run each model alone" in page.locator("#batch-alone").inner_text() and not alone.is_checked()
    alone.check()
    page.fill("#batch-set textarea", "What is 2 + 2?")
    page.click("#batch-run")
    page.wait_for_function(f"() => ({STATE})() === 'complete'", timeout=300_000)
    timing = page.locator("#batch-summary .pg-batch-timing")
    timing.wait_for(timeout=60_000)
    assert timing.get_attribute("data-timing") == ALONE_WALL
    assert "each model run alone" in timing.inner_text()
    assert page.dialogs == []
