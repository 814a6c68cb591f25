"""The Compare panel: per-column diffs against a baseline, agreement matrices, run vs run.

The HTML renderers escape everything; ComparePanel holds the widgets and events.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from typing import Any

import gradio as gr

from playground.inspect.agreement import LEXICAL_METHOD, run_agreement
from playground.inspect.diff import column_diff, diff_words
from playground.inspect.run_compare import RunDiff, compare_runs
from playground.record import Run
from playground.service import RunService, SessionError
from playground.ui import html as H
from playground.ui.plots import agreement_figure
from playground.ui.token_view import column_label


def baseline_diffs_html(run: Run, baseline: int) -> str:
    """Every other column's output against the baseline column, word by word."""
    if len(run.models) < 2:
        return '<span class="pg-muted">Add a second column to compare outputs.</span>'
    base = run.models[baseline]
    blocks = []
    words = diff_words(len(run.models) - 1)
    for model in run.models:
        if model.column == base.column:
            continue
        diff = column_diff(base, model, words)
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


def session_id(text: str) -> str:
    """A run id from an id or a share link (…/?session=ID)."""
    text = (text or "").strip()
    return text.split("session=", 1)[1].split("&", 1)[0] if "session=" in text else text


@dataclass
class ComparePanel:
    base: Any
    diff: Any
    lexical: Any
    semantic: Any
    semantic_btn: Any
    note: Any
    run_a: Any
    col_a: Any
    run_b: Any
    col_b: Any
    compare_btn: Any
    run_diff: Any

    @property
    def outputs(self) -> list[Any]:
        return [self.base, self.diff, self.lexical, self.semantic, self.note]

    def render(self, record: Run | None, baseline: str | None = None) -> dict:
        """Diffs against a baseline column and the lexical agreement matrix, from the record."""
        if record is None or not record.models:
            return {}
        labels = [column_label(m) for m in record.models]
        baseline = baseline if baseline in labels else labels[0]
        agreement = run_agreement(record)
        updates: dict[Any, Any] = {
            self.base: gr.update(choices=labels, value=baseline),
            self.diff: baseline_diffs_html(record, labels.index(baseline)),
            self.semantic: gr.update(value=None, visible=False),
            self.note: H.agreement_note(agreement.skipped, ""),
            self.lexical: gr.update(value=None, visible=False),  # no empty chart: shown once it has data
        }
        if len(agreement.labels) >= 2:
            method = LEXICAL_METHOD.split(" (")[0]
            updates[self.lexical] = gr.update(visible=True, value=agreement_figure(
                agreement.labels, agreement.lexical, f"Lexical similarity ({method})"))
        return updates

    def wire(self, shown: Any, service: RunService) -> None:
        def pick_baseline(record: Run | None, baseline: str) -> dict:
            return self.render(record, baseline) if record else gr.skip()

        def semantic(record: Run | None) -> dict:
            if not record:
                return {self.note: H.notice("run something first", "warn")}
            try:
                agreement = service.semantic_agreement(record)
            except Exception as exc:  # noqa: BLE001 - a missing model is a message, not a crash
                return {self.note: H.notice(f"semantic similarity unavailable: {exc}", "error")}
            if len(agreement.labels) < 2:
                return {self.note: H.agreement_note(agreement.skipped, "need two answered columns")}
            title = f"Semantic similarity (cosine, {agreement.semantic_model})"
            return {
                self.semantic: gr.update(visible=True,
                                         value=agreement_figure(agreement.labels, agreement.semantic, title)),
                self.note: H.agreement_note(agreement.skipped, agreement.semantic_model),
            }

        def run_vs_run(record: Run | None, a: str, col_a: float | None, b: str, col_b: float | None) -> str:
            try:
                run_a = service.get(session_id(a)) if (a or "").strip() else record
                if run_a is None:
                    return H.notice("give run A (or show a run first)", "error")
                run_b = service.get(session_id(b))
                diff = compare_runs(run_a, run_b, int(col_a or 1) - 1, int(col_b or 1) - 1)
            except (SessionError, ValueError) as exc:
                return H.notice(str(exc), "error")
            return run_diff_html(diff)

        self.base.input(pick_baseline, inputs=[shown, self.base], outputs=self.outputs)
        self.semantic_btn.click(semantic, inputs=[shown], outputs=[self.semantic, self.note])
        self.compare_btn.click(run_vs_run, inputs=[shown, self.run_a, self.col_a, self.run_b, self.col_b],
                               outputs=[self.run_diff])


def build_compare_panel() -> ComparePanel:
    with gr.Accordion("Compare outputs", open=False, elem_id="diff-box"):
        base = gr.Dropdown(label="Baseline column", choices=[], elem_id="diff-base")
        diff = gr.HTML(elem_id="diff", padding=False)
        with gr.Row():
            # Hidden until a run gives them data (render / semantic): no empty placeholder chart.
            lexical = gr.Plot(elem_id="agree-lexical", show_label=False, visible=False)
            semantic = gr.Plot(elem_id="agree-semantic", show_label=False, visible=False)
        with gr.Row():
            semantic_btn = gr.Button("≈ Compute semantic similarity", variant="secondary",
                                     elem_id="semantic-btn", scale=0, min_width=260)
            gr.HTML('<span class="pg-muted">loads a small embedding model (all-MiniLM-L6-v2) on first use'
                    "</span>", padding=False, elem_classes=["pg-semantic-hint"])
        note = gr.HTML(elem_id="agree-note", padding=False)
        gr.Markdown("**Run vs run**: a saved run's column against another's (ids or share links).")
        with gr.Row():
            run_a = gr.Textbox(label="Run A (id or link; empty = the run shown)", elem_id="rvr-a", scale=3)
            col_a = gr.Number(1, label="Column", precision=0, minimum=1, elem_id="rvr-col-a", scale=1)
            run_b = gr.Textbox(label="Run B (id or link)", elem_id="rvr-b", scale=3)
            col_b = gr.Number(1, label="Column", precision=0, minimum=1, elem_id="rvr-col-b", scale=1)
            compare_btn = gr.Button("Compare runs", elem_id="rvr-btn", scale=1)
        run_diff = gr.HTML(elem_id="rvr", padding=False)
    return ComparePanel(base, diff, lexical, semantic, semantic_btn, note, run_a, col_a, run_b, col_b,
                        compare_btn, run_diff)
