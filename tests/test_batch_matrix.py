"""The batch results matrix (playground/batch/matrix.py, playground/ui/batch_matrix.py) and the long table
to download: shape and order, missing cells, pass / fail colouring, judge verdicts, and everything typed
(prompts, answers, model names, a judge's words) escaped. No model, no browser: hand-made runs."""

from __future__ import annotations

import csv
import io
import json
import re
from html import escape

from sample_runs import XSS_PROMPT, make_run

from playground.batch.matrix import PASS_AT, build_matrix, table_csv, table_json, verdict
from playground.batch.prompt_set import PromptItem
from playground.batch.score import Scoring
from playground.batch.summary import BatchResult, build_table, summarise, timing_of
from playground.ui.batch_matrix import matrix_html

XSS_MODEL = "<img src=x onerror=alert(1)>"


def _items() -> list[PromptItem]:
    return [PromptItem("What is the capital of France?", "Paris", "geo", id="capital"),
            PromptItem(XSS_PROMPT, "hi", "code", id="<b>xss</b>"),
            PromptItem("What is 2 + 3?", "5", "arithmetic", id="add")]


def _result(ran: tuple[int, ...] = (0, 1, 2)) -> BatchResult:
    """Three prompts over two columns: capital right in column 2 only, the XSS prompt answered with markup
    (column 1's model named with markup), `add` right in both; a prompt not in `ran` was not run."""
    outputs = {0: ("It is Lyon.", "Paris, of course."),
               1: (XSS_PROMPT + "\n" + "line\n" * 10, "hi there"),
               2: ("5", "The answer is 5.")}
    runs = {}
    for i in ran:
        run = make_run(prompt=_items()[i].prompt, outputs=outputs[i])
        run.models[0].identity.catalog_id = XSS_MODEL
        runs[i] = run
    cells = build_table(_items(), 2, runs, Scoring("contains"))
    done = [c for c in cells if c.status == "done"]
    return BatchResult("batch-1", "<b>name</b>", 3, len(runs), 0, Scoring("contains"), cells,
                       summarise(cells, 2), {}, timing_of(done))


def test_the_matrix_has_prompts_as_rows_and_models_as_columns_in_order() -> None:
    result = _result()
    matrix = build_matrix(result, _items())
    assert [r.prompt_id for r in matrix.rows] == ["capital", "<b>xss</b>", "add"]
    assert matrix.models == [f"1 · {XSS_MODEL}", "2 · gemma3-270m"] and matrix.columns == [0, 1]
    assert all(len(r.cells) == 2 for r in matrix.rows)
    for row in matrix.rows:
        assert [c.column for c in row.cells] == [0, 1]
        assert {c.prompt_index for c in row.cells} == {row.index}
    assert [c.score for c in matrix.rows[0].cells] == [0.0, 1.0]
    html = matrix_html(matrix)
    assert html.count('<tr class="pg-matrix-row"') == 3 and html.count('class="pg-matrix-cell') == 6
    assert 'data-rows="3" data-columns="2"' in html


def test_filters_and_row_sorts() -> None:
    result = _result()
    one = build_matrix(result, _items(), model="2 · gemma3-270m", category="geo")
    assert one.models == ["2 · gemma3-270m"] and one.columns == [1]
    assert [r.prompt_id for r in one.rows] == ["capital"] and one.rows[0].cells[0].column == 1
    assert build_matrix(result, _items(), category="nothing").rows == []
    assert "No results match" in matrix_html(build_matrix(result, _items(), category="nothing"))
    low = build_matrix(result, _items(), sort="lowest mean score first")
    assert low.rows[-1].prompt_id == "add"  # both right: the highest mean, last
    spread = build_matrix(result, _items(), sort="most disagreement first")
    assert spread.rows[0].prompt_id == "capital"  # 0 against 1


def test_missing_and_pending_cells() -> None:
    result = _result(ran=(0, 2))  # the XSS prompt has not run yet
    matrix = build_matrix(result, _items())
    pending = matrix.rows[1].cells
    assert [c.status for c in pending] == ["pending", "pending"] and all(c.score is None for c in pending)
    html = matrix_html(matrix)
    assert html.count("not run yet") == 2
    result.cells = [c for c in result.cells if not (c.prompt_index == 2 and c.column == 1)]  # no cell at all
    matrix = build_matrix(result, _items())
    assert matrix.rows[2].cells[1] is None
    assert 'data-status="missing"' in matrix_html(matrix)
    # without the prompt set, rows come from the cells
    bare = build_matrix(result)
    assert [r.prompt_id for r in bare.rows] == ["capital", "<b>xss</b>", "add"]


def test_scores_are_coloured_pass_or_fail_and_a_missing_score_shows_its_note() -> None:
    assert PASS_AT == 0.5
    assert (verdict(None), verdict(0.49), verdict(0.5), verdict(1.0)) == ("none", "fail", "pass", "pass")
    html = matrix_html(build_matrix(_result(), _items()))
    cells = re.findall(r'<td class="pg-matrix-cell pg-(\w+)" data-model="([^"]*)" data-status="(\w+)" '
                       r'data-score="([^"]*)" data-verdict="(\w+)"', html)
    assert [(c[0], c[3], c[4]) for c in cells[:2]] == [("fail", "0.0000", "fail"), ("pass", "1.0000", "pass")]
    assert '<span class="pg-matrix-score pg-fail"' in html and "0.00 fail" in html
    assert '<span class="pg-matrix-score pg-pass"' in html and "1.00 pass" in html
    result = _result()
    result.cells[0].score, result.cells[0].score_note = None, "no expected answer <here>"
    html = matrix_html(build_matrix(result, _items()))
    assert 'class="pg-matrix-cell pg-none"' in html and "no expected answer &lt;here&gt;" in html


def test_latency_and_the_link_that_opens_the_cells_run() -> None:
    result = _result()
    cell = result.cells[0]
    cell.total_s, cell.ttft_s = 1.234, 0.25
    html = matrix_html(build_matrix(result, _items()))
    assert "1.23 s · TTFT 0.25 s" in html
    assert f'href="?session={cell.run_id}&amp;batch=batch-1"' in html
    assert html.count('class="pg-matrix-open"') == 6


def test_everything_typed_is_escaped_and_long_answers_fold() -> None:
    html = matrix_html(build_matrix(_result(), _items()))
    assert "<script" not in html and "<img" not in html and "<b>xss" not in html
    assert escape(XSS_MODEL) in html and "&lt;b&gt;xss&lt;/b&gt;" in html
    assert escape(XSS_PROMPT) in html
    assert '<details class="pg-matrix-answer">' in html  # the 11-line answer is folded
    assert "It is Lyon." in html  # a short one is shown as it is


def test_judge_verdicts_are_rendered_escaped_and_folded() -> None:
    result = _result()
    judged, unjudged = result.cells[0], result.cells[1]
    judged.judge_score, judged.judge_method = 0.8, "rubric"
    judged.judge_rationale = "Correct <script>alert(1)</script> & brief"
    unjudged.judge_method, unjudged.judge_rationale = "pairwise", ""  # judged, but no verdict came back
    html = matrix_html(build_matrix(result, _items()))
    assert html.count('class="pg-matrix-judge"') == 2
    assert 'data-judge-score="0.8000" data-judge-method="rubric"' in html
    assert "judge (rubric): <span class=\"pg-matrix-score pg-pass\">0.80</span>" in html
    assert "<details><summary>judge (rubric)" in html
    assert "Correct &lt;script&gt;alert(1)&lt;/script&gt; &amp; brief" in html and "<script" not in html
    assert 'data-judge-score="" data-judge-method="pairwise"' in html and "no verdict" in html


def test_the_long_table_downloads_as_csv_and_json() -> None:
    result = _result()
    result.cells[2].output = "=HYPERLINK(\"http://evil\")"
    rows = list(csv.DictReader(io.StringIO(table_csv(result, _items()))))
    assert len(rows) == 6
    assert [(r["prompt_id"], r["column"]) for r in rows[:3]] == [("capital", "0"), ("capital", "1"),
                                                                 ("<b>xss</b>", "0")]
    assert rows[0]["prompt"] == "What is the capital of France?" and rows[0]["verdict"] == "fail"
    assert rows[2]["output"].startswith("'=HYPERLINK")  # not a formula in a spreadsheet
    data = json.loads(table_json(result, _items()))
    assert data["pass_at"] == PASS_AT and len(data["cells"]) == 6
    assert data["cells"][1]["score"] == 1.0 and data["cells"][1]["run_id"]
    assert "judge_score" in data["cells"][0] and "judge_rationale" in data["cells"][0]
