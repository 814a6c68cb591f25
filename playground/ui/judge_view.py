"""The batch panel's judge: pick any catalog model, a method and a rubric, and grade the batch shown.

The verdicts are stored with the batch (playground/judge/book.py) and drawn in its results (the
matrix reads Cell.judge_score / judge_rationale), so reopening the batch shows them. Judging runs in
the click's own request: the judge model answers a short greedy verdict per answer (or two per
prompt for pairwise: both orders), which on CPU takes seconds per prompt.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gradio as gr

from playground.judge.spec import DEFAULT_RUBRIC, METHODS, JudgeError, JudgeSpec
from playground.service import SessionError
from playground.ui import html as H
from playground.ui.page import Shell, owner_of

METHOD_INFO = ("rubric: a 1-5 grade per answer; pairwise: columns 1 and 2, asked in both orders (they "
               "disagree: a tie); best: the best answer of all columns, shown shuffled")


@dataclass
class JudgePanel:
    model: Any  # gr.Dropdown of catalog ids, filled when the page loads
    method: Any
    rubric: Any
    run_btn: Any
    status: Any


def build_judge_controls() -> JudgePanel:
    """The judge's row under the batch's actions (elem_ids batch-judge-*)."""
    with gr.Row(equal_height=True, elem_id="batch-judge"):
        model = gr.Dropdown([], label="Judge model", elem_id="batch-judge-model", scale=2,
                            allow_custom_value=True)
        method = gr.Radio(list(METHODS), value="rubric", label="Judge method", info=METHOD_INFO,
                          elem_id="batch-judge-method", scale=3)
        rubric = gr.Textbox(label="Rubric (optional)", placeholder=DEFAULT_RUBRIC, lines=1, max_lines=4,
                            elem_id="batch-judge-rubric", scale=3)
        run_btn = gr.Button("Judge this batch", size="sm", elem_id="batch-judge-run", scale=0, min_width=140)
    status = gr.HTML(elem_id="batch-judge-status", padding=False)
    return JudgePanel(model, method, rubric, run_btn, status)


def wire_judge(panel: JudgePanel, batch: Any, shell: Shell, demo: gr.Blocks) -> None:
    """`batch`: the BatchPanel (batch_view.py, which calls this): its batch id in, its results redrawn."""
    service = shell.service
    ids = service.catalog.ids()

    def judge(batch_id: str, model: str, method: str, rubric: str, browser_id: object,
              request: gr.Request, progress: gr.Progress = gr.Progress()) -> dict[Any, Any]:  # noqa: B008
        """Judge the batch shown; a progress bar counts the prompts judged (each is a run of the judge)."""
        if not batch_id:
            return {panel.status: H.notice("run or open a batch first: the judge grades the batch shown")}
        if not (model or "").strip():
            return {panel.status: H.notice("pick a judge model")}
        spec = JudgeSpec(model.strip(), method or "rubric", (rubric or "").strip())
        def judged(done: int, total: int) -> None:
            progress(done / max(total, 1), desc=f"judged {done} of {total} prompts")

        try:
            report = service.judge_batch(batch_id, spec, owner_of(request, browser_id), progress=judged)
        except (JudgeError, SessionError) as exc:
            return {panel.status: H.notice(f"cannot judge this batch: {exc}")}
        kind = "error" if report.error else "info"
        drawn = batch.draw(service, service.batch_result(batch_id))
        return drawn | {panel.status: H.notice(report.summary, kind)}

    outputs = list(dict.fromkeys([*batch.result_outputs(), panel.status]))
    panel.run_btn.click(judge, inputs=[batch.batch_id, panel.model, panel.method, panel.rubric, shell.owner],
                        outputs=outputs, concurrency_limit=1)
    demo.load(lambda: gr.update(choices=ids, value=ids[0] if ids else None), outputs=[panel.model],
              show_progress="hidden")
