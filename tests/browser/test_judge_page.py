"""The batch panel's judge in Chromium: the controls (elem_ids batch-judge-*), a clear message with no batch
shown and for someone else's batch, and a real judging (smollm2-135m, rubric) of an imported two-answer
batch: the verdict line, and the verdicts saved with the batch."""

from __future__ import annotations

import json
from pathlib import Path

from playwright.sync_api import TimeoutError as PlaywrightTimeout
from sample_runs import make_run

from playground.batch.book import BatchBook
from playground.batch.bundle import export_batch
from playground.batch.prompt_set import PromptItem
from playground.batch.spec import BatchSpec, ColumnSpec
from playground.judge.book import JudgeBook

from .helpers import new_page, settle

STATUS = "#batch-judge-status"


def _saved_batch(store, owner: str) -> str:  # noqa: ANN001
    item = PromptItem(id="capital", prompt="What is the capital of France?", expected="Paris")
    spec = BatchSpec([item], [ColumnSpec("smollm2-135m"), ColumnSpec("gemma3-270m")], name="judge page")
    book = BatchBook(store)
    batch_id = book.create(spec, owner=owner)
    run = make_run(prompt=item.prompt, outputs=("The capital of France is Paris.", "<b>Lyon</b>"))
    book.done(batch_id, 0, store.save(run, owner=owner), 0.1)
    return batch_id


def _status_has(page, text: str, timeout: int = 60_000) -> None:  # noqa: ANN001
    page.wait_for_function(
        f"() => (document.querySelector({json.dumps(STATUS)})?.innerText || '').includes({json.dumps(text)})",
        timeout=timeout)


def _open_panel(page) -> None:  # noqa: ANN001
    """Open the batch accordion; a click that lands before the page is ready (a loaded 2-core box:
    the fresh-clone run met it) is tried again rather than waited on."""
    for _ in range(4):
        if page.locator("#batch-judge-run").is_visible():
            return
        page.locator("#batch-box").click()
        try:
            page.wait_for_selector("#batch-judge-run", state="visible", timeout=10_000)
            return
        except PlaywrightTimeout:
            continue
    page.wait_for_selector("#batch-judge-run", state="visible", timeout=10_000)


def test_judge_controls_messages_and_a_real_judging(browser, app_url, store, tmp_path: Path) -> None:  # noqa: ANN001
    page = new_page(browser, app_url)
    _open_panel(page)
    for elem in ("batch-judge-model", "batch-judge-method", "batch-judge-rubric", "batch-judge-run"):
        assert page.locator(f"#{elem}").is_visible()
    assert page.locator("#batch-judge-model input").input_value() == "smollm2-135m"

    page.click("#batch-judge-run")  # no batch shown: says what to do, nothing runs
    _status_has(page, "run or open a batch first")

    theirs = _saved_batch(store, owner="someone-else")
    page.goto(f"{app_url}/?batch={theirs}")
    page.wait_for_selector("#prompt textarea")
    _open_panel(page)
    page.wait_for_function("() => document.querySelector('#batch-matrix')?.innerText.includes('capital')",
                           timeout=60_000)
    settle(page)
    page.click("#batch-judge-run")
    _status_has(page, "only the batch's owner can judge it")
    assert JudgeBook(store).for_batch(theirs) == []

    export = tmp_path / "batch.json"
    export.write_text(export_batch(store, theirs), encoding="utf-8")
    with page.expect_file_chooser() as chooser:  # imported: now this browser's own
        page.click("#batch-import")
    chooser.value.set_files(str(export))
    page.wait_for_function("() => document.querySelector('#batch-status')?.innerText.includes('imported')",
                           timeout=60_000)
    settle(page)
    page.locator("#batch-judge-method label:has-text('rubric')").click()
    page.fill("#batch-judge-rubric textarea", "Names the capital. <script>alert(1)</script>")
    page.click("#batch-judge-run")
    _status_has(page, "judge smollm2-135m (rubric) done: 1 prompt, 2 verdicts", timeout=900_000)
    # the results matrix redraws with each cell's verdict: the method, the grade (or "no verdict") and the
    # judge's rationale (or why it has none), escaped
    page.wait_for_function("() => document.querySelectorAll('#batch-matrix .pg-matrix-judge').length === 2",
                           timeout=60_000)
    judged = page.evaluate("""() => [...document.querySelectorAll('#batch-matrix .pg-matrix-judge')].map(j =>
        [j.dataset.judgeMethod, j.querySelector('summary')?.textContent || '',
         j.querySelector('.pg-matrix-full')?.textContent || ''])""")
    assert all(method == "rubric" and "judge (rubric)" in head for method, head, _ in judged), judged
    assert all(len(why.strip()) > 10 for _, _, why in judged), judged  # the rationale, or why there is none
    mine = page.evaluate("() => new URLSearchParams(location.search).get('batch')") or ""
    listed = [b.id for b in BatchBook(store).list() if b.name == "judge page" and b.id != theirs]
    verdicts = JudgeBook(store).for_batch(listed[0])
    assert len(verdicts) == 2 and all(v.method == "rubric" and v.judge == "smollm2-135m" for v in verdicts)
    assert all("<script>" in v.prompts[0] for v in verdicts)  # the rubric reached the judge as typed
    assert all(s is None or 0 <= s <= 1 for v in verdicts for s in v.scores)
    assert page.dialogs == [] and mine in ("", listed[0], theirs)
