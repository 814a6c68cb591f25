"""The batch results matrix and batches in History, in the browser: a 2-prompt x 2-model batch with the
bundled models, no chart before there is data, the matrix (prompts as rows, models as columns, pass /
fail), one cell's saved run opened in the page, and History listing the batch once (its runs only with
"Show batch runs")."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from .helpers import open_history, set_max_tokens, settle

SET = "\n".join(json.dumps(row) for row in [
    {"id": "capital", "category": "extraction", "prompt": "What is the capital of France?",
     "expected": "Paris"},
    {"id": "xss", "category": "code", "prompt": "Say hi. <img src=x onerror=alert(1)>", "expected": "hi"},
])
CELLS = "#batch-matrix td.pg-matrix-cell"
STATE = "() => document.querySelector('#batch-status .pg-batch-progress')?.dataset.state || ''"


def test_a_batch_shows_a_matrix_opens_a_cells_run_and_is_one_entry_in_history(page) -> None:  # noqa: ANN001
    set_max_tokens(page, 4)
    page.locator("#batch-box").click()
    page.wait_for_selector("#batch-set textarea", state="visible", timeout=30_000)
    for chart in ("#batch-quality", "#batch-latency", "#batch-heatmap"):  # nothing to plot yet: no chart
        assert not page.locator(chart).is_visible(), chart

    page.locator("#batch-format label:has-text('jsonl')").click()
    page.fill("#batch-set textarea", SET)
    page.locator("#batch-name textarea, #batch-name input").first.fill("matrix <i>check</i>")
    page.click("#batch-run")
    page.wait_for_function(f"() => ({STATE})() === 'complete'", timeout=600_000)
    page.wait_for_function(f"() => document.querySelectorAll({json.dumps(CELLS)}).length === 4",
                           timeout=60_000)
    settle(page)
    batch_id = page.locator("#batch-status .pg-batch-progress").get_attribute("data-batch")

    # prompts as rows (set order), models as columns (column order), every cell scored pass or fail
    rows = page.evaluate("""() => [...document.querySelectorAll('#batch-matrix tr.pg-matrix-row')].map(r =>
        [r.dataset.prompt, [...r.querySelectorAll('td.pg-matrix-cell')].map(c =>
            [c.dataset.model, c.dataset.verdict, c.querySelector('.pg-matrix-score').innerText])])""")
    assert [r[0] for r in rows] == ["capital", "xss"], rows
    heads = page.evaluate("() => [...document.querySelectorAll('#batch-matrix thead th[data-model]')]"
                          ".map(t => t.dataset.model)")
    assert heads == ["1 · smollm2-135m", "2 · gemma3-270m"]
    for _, cells in rows:
        assert [c[0] for c in cells] == heads
        assert all(c[1] in ("pass", "fail") and c[2].split()[-1] == c[1] for c in cells), cells
    assert page.locator("#batch-matrix .pg-matrix-time").count() == 4
    for chart in ("#batch-quality", "#batch-latency", "#batch-heatmap"):  # now there is data: drawn
        page.wait_for_selector(f"{chart} .js-plotly-plot", timeout=60_000)
    assert page.locator("#batch-matrix img").count() == 0 and "<img src=x" in page.locator(
        "#batch-matrix").inner_text()
    with page.expect_download(timeout=60_000) as download:  # the long table: one row per prompt and model
        page.click("#batch-table-csv")
    table = list(csv.DictReader(io.StringIO(Path(download.value.path()).read_text(encoding="utf-8"))))
    places = [(r["prompt_id"], r["column"]) for r in table]
    assert places == [("capital", "0"), ("capital", "1"), ("xss", "0"), ("xss", "1")]
    assert all(r["run_id"] and r["verdict"] in ("pass", "fail") for r in table)

    # History: the batch is one entry, already drawn (History follows the batch), complete; its runs only
    # with "Show batch runs"
    open_history(page)
    entry_css = json.dumps(f"#history tr.pg-history-batch[data-batch='{batch_id}']")
    page.wait_for_function(f"() => (document.querySelector({entry_css})?.innerText || '')"
                           ".includes('complete')", timeout=30_000)
    entry = page.locator(f"#history tr.pg-history-batch[data-batch='{batch_id}']").inner_text()
    assert "matrix <i>check</i>" in entry and "2 prompts × 2 models" in entry and "complete" in entry
    assert page.locator("#history tr.pg-history-run").count() == 0
    page.locator("#history-batch-runs input[type='checkbox']").check()
    page.wait_for_function("() => document.querySelectorAll('#history tr.pg-history-run').length === 2",
                           timeout=30_000)

    # one cell's "open run" opens its saved run in the page, the batch still under its panel
    link = page.locator(f"{CELLS} a.pg-matrix-open").nth(1)
    run_id = link.get_attribute("data-run")
    link.click()
    replay = json.dumps(f"Replay of saved run {run_id}")
    page.wait_for_function(f"() => (document.querySelector('#notice')?.innerText || '').includes({replay})",
                           timeout=120_000)
    assert f"session={run_id}" in page.url and f"batch={batch_id}" in page.url
    page.wait_for_function(f"() => document.querySelectorAll({json.dumps(CELLS)}).length === 4",
                           timeout=60_000)
    assert run_id in page.locator("#share-link textarea, #share-link input").first.input_value()
    assert page.dialogs == []


LONGER = "\n".join(json.dumps({"id": f"q{i}", "category": "knowledge", "expected": "red",
                               "prompt": f"Name a colour, then a fruit. ({i})"}) for i in range(4))


def test_the_readers_filter_stays_while_the_batch_runs_and_when_it_ends(page) -> None:  # noqa: ANN001
    """The matrix redraws as each prompt lands: the model picked in its filter stays picked."""
    set_max_tokens(page, 12)
    page.locator("#batch-box").click()
    page.wait_for_selector("#batch-set textarea", state="visible", timeout=30_000)
    page.locator("#batch-format label:has-text('jsonl')").click()
    page.fill("#batch-set textarea", LONGER)
    page.click("#batch-run")
    page.wait_for_function(f"() => document.querySelectorAll({json.dumps(CELLS)}).length >= 2",
                           timeout=600_000)
    box = page.locator("#batch-model input")
    box.click()
    box.fill("gemma")
    page.keyboard.press("Enter")
    page.wait_for_function("() => document.querySelector('#batch-model input').value === '2 · gemma3-270m'")
    page.wait_for_function(f"() => ({STATE})() === 'complete'", timeout=600_000)
    settle(page)
    heads = page.evaluate("() => [...document.querySelectorAll('#batch-matrix thead th[data-model]')]"
                          ".map(t => t.dataset.model)")
    assert heads == ["2 · gemma3-270m"], heads  # still filtered after the redraws, the last one included
    assert page.locator("#batch-model input").input_value() == "2 · gemma3-270m"
    assert page.locator(CELLS).count() == 4  # every prompt landed, in the one column shown
