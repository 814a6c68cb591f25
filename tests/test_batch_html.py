"""The batch panel's HTML (playground/ui/batch_html.py): which clock its latency figures count, with
everything typed (model names, prompts, outputs) escaped, and the empty case. No model, no browser."""

from __future__ import annotations

from html import escape

from sample_runs import XSS_PROMPT, make_run

from playground.batch.matrix import build_matrix
from playground.batch.prompt_set import parse
from playground.batch.score import Scoring
from playground.batch.summary import ALONE_WALL, OWN_TIME, BatchResult, build_table, summarise, timing_of
from playground.clocks import OWN_CLOCK
from playground.ui.batch_html import figures, summary_html, timing_html
from playground.ui.batch_matrix import matrix_html


def _result(alone: bool = False, ran: bool = True) -> BatchResult:
    """One prompt over two columns, the first model named with markup; `ran`: its run was saved."""
    items = parse(XSS_PROMPT, "lines")
    run = make_run(prompt=XSS_PROMPT, outputs=(XSS_PROMPT, "Paris"))
    run.models[0].identity.catalog_id = "<img src=x onerror=alert(1)>"
    for model in run.models:
        model.metrics.clock, model.metrics.wall_total_s, model.metrics.wall_ttft_s = OWN_CLOCK, 9.0, 2.0
    cells = build_table(items, 2, {0: run} if ran else {}, Scoring("contains"), alone=alone)
    done = [c for c in cells if c.status == "done"]
    return BatchResult("batch-1", "<b>name</b>", 1, 1 if ran else 0, 0, Scoring("contains"), cells,
                       summarise(cells, 2), {}, timing_of(done))


def test_the_summary_says_its_latency_is_each_models_own_time_side_by_side() -> None:
    html = summary_html(_result())
    assert f"Latency and TTFT (p50 / p95 / max): {escape(OWN_TIME)}." in html
    assert "<img" not in html and "&lt;img src=x onerror=alert(1)&gt;" in html  # the model name, escaped


def test_the_summary_of_a_batch_run_alone_says_wall_clock() -> None:
    result = _result(alone=True)
    assert result.timing == ALONE_WALL
    html = summary_html(result)
    assert f'data-timing="{ALONE_WALL}"' in html and f"{ALONE_WALL}." in html
    assert "<td>9.00</td>" in html  # p50 latency: the wall clock, not the own time (0.75 s)


def test_a_batch_with_no_answers_yet_says_so() -> None:
    result = _result(ran=False)
    assert result.timing == ""
    assert timing_html(result) == ('<div class="pg-muted pg-batch-timing" data-timing="">'
                                   "Latency and TTFT (p50 / p95 / max): no answers yet.</div>")
    assert "(no answers yet)" in matrix_html(build_matrix(result, parse(XSS_PROMPT, "lines")))


def test_the_matrix_names_the_clock_of_its_times_and_escapes_what_was_typed() -> None:
    html = matrix_html(build_matrix(_result(alone=True), parse(XSS_PROMPT, "lines")))
    assert f'<span class="pg-matrix-time" title="{ALONE_WALL}">9.00 s · TTFT 2.00 s</span>' in html
    assert "<script>" not in html and "<img" not in html


def test_no_chart_is_drawn_before_there_is_something_to_plot() -> None:
    assert figures(_result(ran=False)) == (None, None, None)  # nothing answered, nothing scored
    result = _result()  # answered, but no expected answer: latency to plot, no score
    quality, latency, heatmap = figures(result)
    assert quality is None and heatmap is None and latency is not None
    result.cells[0].score = 1.0
    result.models = summarise(result.cells, 2)
    assert all(figure is not None for figure in figures(result))
