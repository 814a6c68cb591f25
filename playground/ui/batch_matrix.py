"""The batch results matrix as HTML: prompts as rows, models as columns (playground/batch/matrix.py).

Each cell folds its answer to a few lines (<details> opens the whole answer), colours its score pass or
fail (matrix.PASS_AT), gives the cell's latency as the batch summary counts it, a judge's verdict when one
was given, and a link that opens the cell's saved run in this page (`?session=RUN&batch=BATCH`: the run
in the columns above, this batch still in its panel). Everything a user or a model typed is escaped.
"""

from __future__ import annotations

import html
from urllib.parse import urlencode

from playground.batch.matrix import PASS_AT, Matrix, MatrixRow, verdict
from playground.batch.summary import Cell

FOLD_CHARS = 240  # an answer longer than this (or than FOLD_LINES lines) is folded
FOLD_LINES = 3
PROMPT_CHARS = 90


def _fold(text: str, css: str, empty: str = "(empty)") -> str:
    """Short text as it is; longer text as its first lines in a <summary>, the whole of it inside."""
    if not text.strip():
        return f'<span class="pg-muted">{html.escape(empty)}</span>'
    lines = text.strip().splitlines()
    if len(text) <= FOLD_CHARS and len(lines) <= FOLD_LINES:
        return f'<div class="{css}">{html.escape(text.strip())}</div>'
    head = "\n".join(lines[:FOLD_LINES])
    head = head[:FOLD_CHARS] + "…"
    return (f'<details class="{css}"><summary>{html.escape(head)}</summary>'
            f'<div class="pg-matrix-full">{html.escape(text)}</div></details>')


def open_link(run_id: str, batch_id: str) -> str:
    """The address that opens a saved run in the page, keeping its batch in the batch panel."""
    query = {"session": run_id, **({"batch": batch_id} if batch_id else {})}
    return "?" + urlencode(query)


def _score(c: Cell) -> str:
    kind = verdict(c.score)
    if c.score is None:
        note = c.score_note or "no score"
        return f'<span class="pg-matrix-score pg-none" title="{html.escape(note)}">{html.escape(note)}</span>'
    word = "pass" if kind == "pass" else "fail"
    tip = f"{word}: a score of {PASS_AT:g} or more passes"
    return f'<span class="pg-matrix-score pg-{kind}" title="{html.escape(tip)}">{c.score:.2f} {word}</span>'


def _judge(c: Cell) -> str:
    if c.judge_score is None and not c.judge_method and not c.judge_rationale:
        return ""
    method = html.escape(c.judge_method or "judge")
    grade = "no verdict" if c.judge_score is None else f"{c.judge_score:.2f}"
    kind = verdict(c.judge_score)
    value = "" if c.judge_score is None else f"{c.judge_score:.4f}"
    head = f'judge ({method}): <span class="pg-matrix-score pg-{kind}">{html.escape(grade)}</span>'
    body = (f'<details><summary>{head}</summary><div class="pg-matrix-full">{html.escape(c.judge_rationale)}'
            "</div></details>") if c.judge_rationale.strip() else head
    return (f'<div class="pg-matrix-judge" data-judge-score="{value}" data-judge-method="{method}">'
            f"{body}</div>")


def _cell(c: Cell | None, batch_id: str, timing: str) -> str:
    if c is None:
        return '<td class="pg-matrix-cell" data-status="missing"><span class="pg-muted">no result</span></td>'
    if c.status == "done":
        answer = _fold(c.output, "pg-matrix-answer")
    elif c.status == "pending":
        answer = '<span class="pg-muted">not run yet</span>'
    else:
        answer = f'<div class="pg-error-text">{_fold(c.error or "failed", "pg-matrix-answer")}</div>'
    figures = [_score(c)]
    if c.status in ("done", "error"):
        clock = f' title="{html.escape(c.timing or timing)}"' if (c.timing or timing) else ""
        ttft = f" · TTFT {c.ttft_s:.2f} s" if c.ttft_s > 0 else ""
        figures.append(f'<span class="pg-matrix-time"{clock}>{c.total_s:.2f} s{ttft}</span>')
    if c.run_id:
        figures.append(f'<a class="pg-matrix-open" href="{html.escape(open_link(c.run_id, batch_id))}" '
                       f'data-run="{html.escape(c.run_id)}">open run</a>')
    score = "" if c.score is None else f"{c.score:.4f}"
    return (f'<td class="pg-matrix-cell pg-{verdict(c.score)}" data-model="{html.escape(c.model)}" '
            f'data-status="{html.escape(c.status)}" data-score="{score}" data-verdict="{verdict(c.score)}">'
            f'{answer}<div class="pg-matrix-figures">{" · ".join(figures)}</div>{_judge(c)}</td>')


def _prompt(row: MatrixRow) -> str:
    flat = " ".join(row.prompt.split())
    head = html.escape(flat[:PROMPT_CHARS] + ("…" if len(flat) > PROMPT_CHARS else ""))
    category = f' <span class="pg-muted">{html.escape(row.category)}</span>' if row.category else ""
    expected = (f'<div class="pg-muted">expected: {html.escape(row.expected)}</div>' if row.expected else "")
    text = (f"<details><summary>{head}</summary>"
            f'<div class="pg-matrix-full">{html.escape(row.prompt)}</div></details>'
            if len(flat) > PROMPT_CHARS or "\n" in row.prompt.strip() else f"<div>{head}</div>")
    return (f'<th scope="row" class="pg-matrix-prompt"><b>{html.escape(row.prompt_id)}</b>{category}'
            f"{text}{expected}</th>")


def matrix_html(matrix: Matrix) -> str:
    """The whole matrix; a short message when no prompt or no model is left to show."""
    if not matrix.rows or not matrix.models:
        return '<div class="pg-muted">No results match this filter.</div>'
    head = "".join(f'<th data-column="{col}" data-model="{html.escape(name)}">{html.escape(name)}</th>'
                   for col, name in zip(matrix.columns, matrix.models, strict=True))
    body = "".join(
        f'<tr class="pg-matrix-row" data-prompt="{html.escape(r.prompt_id)}" data-index="{r.index}">'
        f'{_prompt(r)}{"".join(_cell(c, matrix.batch_id, matrix.timing) for c in r.cells)}</tr>'
        for r in matrix.rows)
    note = (f'<div class="pg-muted pg-matrix-note">Scores of {PASS_AT:g} or more pass (green), lower fail '
            "(red); a cell with no score says why. Times: the answer's total and its time to first token "
            f"({html.escape(matrix.timing or 'no answers yet')}).</div>")
    return (f'{note}<div class="pg-batch-matrix-wrap"><table class="pg-batch-matrix" '
            f'data-batch="{html.escape(matrix.batch_id)}" data-rows="{len(matrix.rows)}" '
            f'data-columns="{len(matrix.models)}"><thead><tr><th>Prompt</th>{head}</tr></thead>'
            f"<tbody>{body}</tbody></table></div>")
