"""The Compare panel as escaped HTML: per-column diffs against a baseline, run-vs-run changes."""

from __future__ import annotations

import html

from playground.inspect.diff import column_diff
from playground.inspect.run_compare import RunDiff
from playground.record import Run
from playground.ui.token_view import column_label


def baseline_diffs_html(run: Run, baseline: int) -> str:
    """Every other column's output against the baseline column, word by word."""
    if len(run.models) < 2:
        return '<span class="pg-muted">Add a second column to compare outputs.</span>'
    base = run.models[baseline]
    blocks = []
    for model in run.models:
        if model.column == base.column:
            continue
        diff = column_diff(base, model)
        title = f"{column_label(model)} vs baseline {column_label(base)}"
        if diff.error:
            body = f'<div class="pg-error">{html.escape(diff.error)}</div>'
        else:
            stats = diff.stats
            body = (
                f'<div class="pg-metrics"><span class="pg-metric">+{stats["words_inserted"]} words</span>'
                f'<span class="pg-metric">−{stats["words_deleted"]} words</span>'
                f'<span class="pg-metric">{stats["words_equal"]} equal</span>'
                f'<span class="pg-metric">similarity {stats["similarity"]:.2f}</span></div>{diff.html()}'
            )
        blocks.append(f'<div class="pg-diff-block" data-column="{model.column}"><h4>{html.escape(title)}</h4>'
                      f"{body}</div>")
    legend = ('<div class="pg-muted"><ins class="pg-ins">+ inserted</ins> words are in the column but not '
              'the baseline; <del class="pg-del">− deleted</del> words are in the baseline only.</div>')
    return legend + "".join(blocks)


def run_diff_html(diff: RunDiff) -> str:
    """What changed between two saved runs (set-up first), then the output diff."""
    changes = diff.summary()
    listed = "".join(f"<li>{html.escape(line)}</li>" for line in changes)
    setup = (f'<ul class="pg-run-changes">{listed}</ul>' if changes
             else '<div class="pg-ok">Same prompt, model identity and parameters.</div>')
    output = (f'<div class="pg-error">{html.escape(diff.output.error)}</div>' if diff.output.error
              else diff.output.html())
    return (
        f"<h4>Run {html.escape(diff.run_a)} column {diff.column_a + 1} → run {html.escape(diff.run_b)} "
        f"column {diff.column_b + 1}</h4>{setup}<h4>Output</h4>{output}"
    )
