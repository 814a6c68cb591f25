"""The "Prompt sets and batches" panel: a prompt set run over the page's columns, its results and charts.

A batch runs in the background on the server (RunService.start_batch, playground/batch/runner.py); the
page follows it with a gr.Timer that polls batch_progress, and Stop / Resume act on it. Every result
drawn here (the results matrix, the per-model summary, the charts) comes from the saved runs through
batch_result, so `/?batch=ID`, an imported batch and a batch that is still running look the same.
The routing rules area under it (rules_view.py) reads the same result.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gradio as gr

from playground.batch.matrix import ROW_SORTS
from playground.batch.prompt_set import MAX_SET_BYTES, SAMPLE, PromptSetError, format_of, parse
from playground.batch.runner import BatchLimit, Progress
from playground.batch.score import DEFAULT_TOLERANCE, METHODS, Scoring
from playground.batch.spec import BatchSpec, ColumnSpec, SpecError
from playground.batch.summary import BatchResult
from playground.service import BundleError, RunService, SessionError
from playground.ui import html as H
from playground.ui.batch_filters import box_updates, filters_for
from playground.ui.batch_html import (
    ALL_CATEGORIES,
    ALL_MODELS,
    figures,
    grid_html,
    listing_html,
    progress_html,
    saved_progress,
    summary_html,
)
from playground.ui.page import Shell, owner_of
from playground.ui.session_bar import DOWNLOAD_JS
from playground.ui.text import clean_text

AUTO = "auto (contains with expected answers, else agreement)"
ALONE_LABEL = "Run each model alone (wall-clock latency, slower)"
ALONE_INFO = ("Off: the columns share each prompt, and latency is each model's own time. On: one model at a "
              "time, and latency is the wall clock a user would wait for it.")
POLL_S = 1.0
BATCH_ROWS = 30
# A batch link scrolls to its results; a matrix cell's "open run" link (?session=RUN&batch=ID) stays
# on the run.
SCROLL_TO_BATCH_JS = """() => {
  const query = new URLSearchParams(window.location.search);
  if (query.get('batch') && !query.get('session')) {
    setTimeout(() => document.querySelector('#batch-box')?.scrollIntoView({block: 'start'}), 300);
  }
}"""


@dataclass
class BatchPanel:
    box: Any
    set_text: Any
    set_format: Any
    upload: Any
    sample_btn: Any
    method: Any
    reference: Any
    tolerance: Any
    name: Any
    run_btn: Any
    stop_btn: Any
    resume_btn: Any
    export_btn: Any
    export_file: Any
    import_btn: Any
    status: Any
    filter_model: Any
    filter_category: Any
    sort: Any
    grid: Any  # the results matrix (prompts x models), elem_id batch-matrix
    summary: Any
    quality_plot: Any
    latency_plot: Any
    heatmap: Any
    listing: Any
    list_btn: Any
    batch_id: Any  # gr.State: the batch shown ("" when none)
    result: Any  # gr.State: its BatchResult (what the grid, charts and rules read)
    seen: Any  # gr.State: prompts done when last drawn (redraw only when more landed)
    timer: Any
    rules: Any = None  # RulesPanel (rules_view.py), drawn with each result
    alone: Any = None  # gr.Checkbox: each model runs alone (BatchSpec.alone: wall-clock latency, slower)
    table_csv_btn: Any = None  # the long table (one row per prompt and model) as a download
    table_json_btn: Any = None
    judge: Any = None  # JudgePanel (judge_view.py): a judge model grades the batch shown

    def draw(self, service: RunService, result: BatchResult, state: str = "", message: str = "",
             progress: Progress | None = None, kept: tuple[str, ...] = ()) -> dict[Any, Any]:
        """Everything that shows a batch's result, from its saved runs; `kept`: the model, category and
        sort the reader picked, while a running batch redraws: the grid follows them and the boxes are
        left alone (a pick made while this redraw was on its way must not be overwritten)."""
        spec = service.batch_spec(result.batch_id)
        quality, latency, heatmap = figures(result)
        f = filters_for(result, kept)
        p = progress or saved_progress(result, state, message)
        updates = {
            self.batch_id: result.batch_id, self.result: result, self.seen: p.done,
            self.status: progress_html(p),
            self.grid: grid_html(result, spec.items, f.model, f.category, f.sort),
            self.summary: summary_html(result),
            **self.charts(quality, latency, heatmap),
            **dict(zip(self.filters(), box_updates(f, redraw=bool(kept)), strict=True)),
            **self.downloads(True),
        }
        if self.rules is not None:
            updates.update(self.rules.on_result(result))
        return updates

    def filters(self) -> list[Any]:
        return [self.filter_model, self.filter_category, self.sort]

    def charts(self, quality: Any = None, latency: Any = None, heatmap: Any = None) -> dict[Any, Any]:
        """The three charts, each shown only when it has something to plot (figures() gives None)."""
        return {plot: gr.update(value=figure, visible=figure is not None)
                for plot, figure in ((self.quality_plot, quality), (self.latency_plot, latency),
                                     (self.heatmap, heatmap))}

    def downloads(self, ready: bool) -> dict[Any, Any]:
        """Export batch and the long table's downloads: usable once a result is shown."""
        buttons = [b for b in (self.export_btn, self.table_csv_btn, self.table_json_btn) if b is not None]
        return {b: gr.update(interactive=ready) for b in buttons}

    def result_outputs(self) -> list[Any]:
        out = [self.batch_id, self.result, self.seen, self.status, self.grid, self.summary, self.quality_plot,
               self.latency_plot, self.heatmap, self.filter_model, self.filter_category, self.sort,
               *self.downloads(False)]
        return out + (self.rules.result_outputs() if self.rules is not None else [])

    def controls(self, running: bool, resumable: bool = False) -> dict[Any, Any]:
        return {self.run_btn: gr.update(interactive=not running),
                self.stop_btn: gr.update(interactive=running),
                self.resume_btn: gr.update(interactive=resumable and not running),
                self.timer: gr.Timer(active=running)}

    def control_outputs(self) -> list[Any]:
        return [self.run_btn, self.stop_btn, self.resume_btn, self.timer]

    def listing_for(self, service: RunService, owner: str) -> str:
        return listing_html(service.list_batches(owner, BATCH_ROWS), service.shared_history)

    def wire(self, shell: Shell, prompt_system: Any, columns: Any, demo: gr.Blocks) -> None:
        from playground.ui.judge_view import wire_judge

        service, notice = shell.service, shell.notice
        everything = list(dict.fromkeys([*self.result_outputs(), *self.control_outputs(), self.status,
                                         self.listing, self.box, notice]))

        def message(text: str, kind: str = "error") -> dict[Any, Any]:
            return {self.status: H.notice(text, kind)}

        def use_sample() -> dict[Any, Any]:
            text = SAMPLE.read_text(encoding="utf-8")
            return {self.set_text: text, self.set_format: "jsonl",
                    self.status: H.notice(f"the bundled sample set ({len(text.splitlines())} prompts, "
                                          "each with an expected answer) is in the box: Run batch runs it",
                                          "info")}

        def upload(path: str | None) -> dict[Any, Any]:
            if not path:
                return gr.skip()  # nothing to draw: no update (an empty dict is an error in Gradio)
            from pathlib import Path

            file = Path(path)
            try:
                size = file.stat().st_size
                if size > MAX_SET_BYTES:
                    return message(f"the file is {size / 2**20:.1f} MiB; a prompt set is at most "
                                   f"{MAX_SET_BYTES // 2**20} MiB")
                data = file.read_bytes()
                fmt = format_of(file.name)
                items = parse(data, fmt)  # checked now: errors name the line
            except OSError as exc:
                return message(f"cannot read the uploaded file: {exc.strerror or exc}")
            except PromptSetError as exc:
                return message(f"{file.name}: {exc}")
            return {self.set_text: data.decode("utf-8-sig"), self.set_format: fmt,
                    self.status: H.notice(f"loaded {len(items)} prompts from {file.name} ({fmt})", "info")}

        def start(data: dict[Any, Any], request: gr.Request) -> dict[Any, Any]:
            owner = owner_of(request, data[shell.owner])
            text, _ = clean_text(data[self.set_text] or "")
            if not text.strip():
                return message("the prompt set is empty: paste prompts (one a line), upload a CSV / JSONL "
                               "file, or press “Use the sample set”")
            try:
                items = parse(text, data[self.set_format] or "lines")
            except PromptSetError as exc:
                return message(f"prompt set ({data[self.set_format]}): {exc}")
            chosen = columns.chosen(data)
            if not chosen:
                return message("no model column: pick a model in at least one column above")
            requests, _ = columns.requests(data, chosen)
            system, _ = clean_text(data[prompt_system] or "")
            if system.strip():  # the page's system prompt, for the prompts that have none of their own
                for item in items:
                    item.system = item.system or system
            method = data[self.method] or AUTO
            if method == AUTO:
                method = "contains" if any(i.expected for i in items) else "agreement"
            try:
                reference = int(data[self.reference] or 1) - 1
                tolerance = float(data[self.tolerance] if data[self.tolerance] is not None else
                                  DEFAULT_TOLERANCE)
            except (TypeError, ValueError):
                return message("the reference column and the tolerance must be numbers")
            name, _ = clean_text(data[self.name] or "")
            spec = BatchSpec(items=items, columns=[ColumnSpec(c.model, c.params, c.system_prompt)
                                                   for c in requests],
                             scoring=Scoring(method, tolerance, reference), name=name.strip()[:200],
                             alone=bool(data.get(self.alone)) if self.alone is not None else False)
            problems = spec.problems()
            if problems:
                return message("cannot run this batch: " + "; ".join(problems))
            try:
                batch_id = service.start_batch(spec, owner)
            except (SpecError, SessionError) as exc:
                return message(f"cannot run this batch: {exc}")
            first = Progress(batch_id, 0, len(items))
            return {self.batch_id: batch_id, self.result: None, self.seen: -1,
                    self.status: progress_html(first), self.grid: "", self.summary: "",
                    **self.charts(), **self.downloads(False),
                    self.listing: self.listing_for(service, owner), **self.controls(True)}

        def poll(batch_id: str, *kept: str) -> dict[Any, Any]:
            """The progress while it runs; the results once it ended (the reader's filters kept)."""
            if not batch_id:
                return self.controls(False)
            p = service.batch_progress(batch_id)
            if p is None:  # not started by this server (restarted since): show what was saved
                return show(batch_id, "")
            if p.state == "running":
                return {self.status: progress_html(p)}
            return show(batch_id, p.state, p.message, p, kept=kept)

        def poll_results(batch_id: str, seen: int, model: str, category: str, sort: str) -> dict[Any, Any]:
            """While it runs: redraw the results when more prompts landed, the reader's filters kept."""
            p = service.batch_progress(batch_id) if batch_id else None
            if p is None or p.state != "running" or p.done == seen or p.done == 0:
                return gr.skip()  # nothing to draw: no update (an empty dict is an error in Gradio)
            try:
                kept = (model, category, sort)
                return self.draw(service, service.batch_result(batch_id), progress=p, kept=kept)
            except (SessionError, ValueError) as exc:
                return message(str(exc))

        def show(batch_id: str, state: str, note: str = "", progress: Progress | None = None,
                 owner: str = "", kept: tuple[str, ...] = ()) -> dict[Any, Any]:
            try:
                result = service.batch_result(batch_id)
            except (SessionError, ValueError) as exc:
                return {**message(str(exc)), **self.controls(False)}
            updates = self.draw(service, result, state, note, progress, kept)
            mine = not owner or service.owns_batch(batch_id, owner)
            updates.update(self.controls(False, resumable=mine and not result.complete))
            return updates

        def stop(batch_id: str, browser_id: object, request: gr.Request) -> dict[Any, Any]:
            try:
                stopping = service.stop_batch(batch_id, owner_of(request, browser_id))
            except SessionError as exc:
                return message(str(exc), "warn")
            if stopping:
                return {self.status: H.notice("stopping… the prompt running now is cut (it runs "
                                              "again on Resume); the finished prompts stay saved", "warn")}
            return message("no batch of yours is running", "warn")

        def resume(batch_id: str, browser_id: object, request: gr.Request) -> dict[Any, Any]:
            try:
                service.resume_batch(batch_id, owner_of(request, browser_id))
            except BatchLimit as exc:  # the server runs as many batches as it allows: wait, then resume
                return message(str(exc), "warn")
            except SessionError as exc:  # not the owner's, or no such batch
                return message(str(exc))
            return {self.seen: -1, self.status: H.notice(f"resuming batch {batch_id}…", "info"),
                    **self.controls(True)}

        def refilter(result: BatchResult | None, model: str, category: str, sort: str) -> str:
            if result is None:
                return ""
            try:
                spec = service.batch_spec(result.batch_id)
            except SessionError as exc:
                return H.notice(str(exc), "error")
            return grid_html(result, spec.items, model, category, sort)

        def export(batch_id: str, fmt: str) -> dict[Any, Any]:
            """The batch ("batch": set, columns, runs) or its long table ("csv" / "json": one row per
            prompt and model), written on click."""
            if not batch_id:
                return {**message("show a batch first", "warn"), self.export_file: None}
            try:
                path = (service.batch_export_file(batch_id) if fmt == "batch"
                        else service.batch_table_file(batch_id, fmt))
            except SessionError as exc:
                return {**message(str(exc)), self.export_file: None}
            return {self.export_file: str(path)}

        def import_file(path: str | None, browser_id: object, request: gr.Request) -> dict[Any, Any]:
            if not path:
                return gr.skip()  # nothing to draw: no update (an empty dict is an error in Gradio)
            from pathlib import Path

            owner = owner_of(request, browser_id)
            try:
                data = Path(path).read_bytes()
                imported = service.import_batch(data, owner)
            except (BundleError, SpecError, SessionError, OSError) as exc:
                return message(f"import refused: {exc}. Nothing was stored.")
            note = (f"imported batch {imported.batch_id} ({imported.runs} results) and saved it; no model "
                    "was run")
            if imported.renamed_from:
                note += f" (a saved batch had the id {imported.renamed_from}: it was left untouched)"
            updates = show(imported.batch_id, "", note, owner=owner)
            return updates | {self.listing: self.listing_for(service, owner)}

        def open_page(browser_id: object, request: gr.Request) -> dict[Any, Any]:
            owner = owner_of(request, browser_id)
            updates: dict[Any, Any] = {self.listing: self.listing_for(service, owner)}
            batch_id = (request.query_params.get("batch") or "").strip()
            if not batch_id:
                return updates
            updates[self.box] = gr.update(open=True)
            try:
                service.batch_spec(batch_id)
            except SessionError as exc:
                return updates | {notice: H.notice(str(exc), "error"), **message(str(exc))}
            running = service.batch_progress(batch_id)
            shown = show(batch_id, "", "saved batch, drawn from its saved runs (read-only): no model was run",
                         owner=owner)
            if running is not None and running.state == "running":
                shown.update(self.controls(True))
            if (request.query_params.get("session") or "").strip():  # a matrix cell's run: its notice wins
                return updates | shown
            return updates | shown | {notice: H.notice(
                f"Saved batch {batch_id}: its results are under “Prompt sets and batches” below "
                "(drawn from the saved runs; no model was run).")}

        self.sample_btn.click(use_sample, outputs=[self.set_text, self.set_format, self.status])
        self.upload.upload(upload, inputs=[self.upload],
                           outputs=[self.set_text, self.set_format, self.status])
        start_inputs = {self.set_text, self.set_format, self.method, self.reference, self.tolerance,
                        self.name, prompt_system, *columns.inputs(), shell.owner}
        if self.alone is not None:
            start_inputs.add(self.alone)
        self.run_btn.click(start, inputs=start_inputs, outputs=everything)
        self.timer.tick(poll, [self.batch_id, *self.filters()], everything, show_progress="hidden").then(
            poll_results, [self.batch_id, self.seen, *self.filters()], everything, show_progress="hidden")
        self.stop_btn.click(stop, inputs=[self.batch_id, shell.owner], outputs=[self.status])
        self.resume_btn.click(resume, inputs=[self.batch_id, shell.owner], outputs=everything)
        for box in self.filters():
            box.input(refilter, [self.result, *self.filters()], [self.grid], show_progress="hidden")
        downloads = ((self.export_btn, "batch"), (self.table_csv_btn, "csv"), (self.table_json_btn, "json"))
        for button, fmt in [(b, f) for b, f in downloads if b is not None]:
            written = button.click(lambda batch_id, fmt=fmt: export(batch_id, fmt), inputs=[self.batch_id],
                                   outputs=[self.export_file, self.status])
            written.success(None, inputs=[self.export_file], js=DOWNLOAD_JS)
        self.import_btn.upload(import_file, inputs=[self.import_btn, shell.owner], outputs=everything)
        def relist(browser_id: object, request: gr.Request) -> str:
            return self.listing_for(service, owner_of(request, browser_id))

        self.list_btn.click(relist, inputs=[shell.owner], outputs=[self.listing])
        if self.judge is not None:
            wire_judge(self.judge, self, shell, demo)
        demo.load(open_page, inputs=[shell.owner], outputs=everything, show_progress="hidden").then(
            None, js=SCROLL_TO_BATCH_JS)


def build_batch_panel() -> BatchPanel:
    """The accordion: the set, scoring, Run / Stop / Resume, progress, the matrix, summary and charts."""
    from playground.ui.judge_view import build_judge_controls
    from playground.ui.rules_view import build_rules_panel

    with gr.Accordion("Prompt sets and batches", open=False, elem_id="batch-box") as box:
        gr.Markdown("Run a **prompt set** over the columns above (their models and parameters): one prompt "
                    "a line, or CSV / JSONL with the columns `prompt`, `expected`, `category`, `system`, "
                    "`id`. Each prompt's result is saved as a normal run as soon as it lands.",
                    elem_classes=["pg-muted"])
        with gr.Row(equal_height=False):
            set_text = gr.Textbox(label="Prompt set", lines=6, max_lines=14, scale=4, elem_id="batch-set",
                                  placeholder="one prompt a line, or CSV / JSONL (pick the format)")
            with gr.Column(scale=1, min_width=220):
                set_format = gr.Radio(["lines", "csv", "jsonl"], value="lines", label="Format",
                                      elem_id="batch-format")
                upload = gr.UploadButton("Upload CSV / JSONL", size="sm", elem_id="batch-upload",
                                         file_types=[".csv", ".jsonl", ".ndjson", ".txt"])
                sample_btn = gr.Button("Use the sample set", size="sm", elem_id="batch-sample")
        with gr.Row(equal_height=True):
            method = gr.Dropdown([AUTO, *METHODS], value=AUTO, label="Scoring", elem_id="batch-score",
                                 scale=2)
            reference = gr.Number(1, precision=0, minimum=1, label="Reference column (agreement)",
                                  elem_id="batch-ref", scale=1)
            tolerance = gr.Number(DEFAULT_TOLERANCE, minimum=0, label="Tolerance (numeric, absolute)",
                                  elem_id="batch-tol", scale=1)
            name = gr.Textbox(label="Batch name (optional)", elem_id="batch-name", scale=2)
        alone = gr.Checkbox(False, label=ALONE_LABEL, elem_id="batch-alone", info=ALONE_INFO)
        with gr.Row(elem_id="batch-actions"):
            run_btn = gr.Button("Run batch", variant="primary", size="sm", elem_id="batch-run", scale=0,
                                min_width=110)
            stop_btn = gr.Button("Stop", variant="stop", size="sm", interactive=False, elem_id="batch-stop",
                                 scale=0, min_width=80)
            resume_btn = gr.Button("Resume", size="sm", interactive=False, elem_id="batch-resume", scale=0,
                                   min_width=90)
            export_btn = gr.Button("Export batch", size="sm", interactive=False, elem_id="batch-export",
                                   scale=0, min_width=110)
            table_csv_btn = gr.Button("Table (CSV)", size="sm", interactive=False, elem_id="batch-table-csv",
                                      scale=0, min_width=110)
            table_json_btn = gr.Button("Table (JSON)", size="sm", interactive=False,
                                       elem_id="batch-table-json", scale=0, min_width=110)
            import_btn = gr.UploadButton("Import batch", size="sm", file_types=[".json"],
                                         elem_id="batch-import", scale=0, min_width=110)
            export_file = gr.DownloadButton("download", visible=False, elem_id="batch-export-file")
        status = gr.HTML(elem_id="batch-status", padding=False)
        judge = build_judge_controls()
        with gr.Row(equal_height=True):
            filter_model = gr.Dropdown([ALL_MODELS], value=ALL_MODELS, label="Model", elem_id="batch-model",
                                       scale=1)
            filter_category = gr.Dropdown([ALL_CATEGORIES], value=ALL_CATEGORIES, label="Category",
                                          elem_id="batch-category", scale=1)
            sort = gr.Dropdown(list(ROW_SORTS), value=ROW_SORTS[0], label="Sort prompts by",
                               elem_id="batch-sort", scale=1)
        grid = gr.HTML(elem_id="batch-matrix", padding=False)
        summary = gr.HTML(elem_id="batch-summary", padding=False)
        with gr.Row(equal_height=False):  # hidden until there is something to plot (BatchPanel.charts)
            quality_plot = gr.Plot(label="Quality against p95 latency", elem_id="batch-quality",
                                   visible=False)
            latency_plot = gr.Plot(label="Latency per model", elem_id="batch-latency", visible=False)
            heatmap = gr.Plot(label="Score by category", elem_id="batch-heatmap", visible=False)
        rules = build_rules_panel()
        with gr.Row(equal_height=True):
            gr.Markdown("**Saved batches** (a link opens its results)", elem_classes=["pg-muted"])
            list_btn = gr.Button("Refresh", size="sm", elem_id="batch-list-btn", scale=0, min_width=90)
        listing = gr.HTML(elem_id="batch-list", padding=False)
    return BatchPanel(box, set_text, set_format, upload, sample_btn, method, reference, tolerance, name,
                      run_btn, stop_btn, resume_btn, export_btn, export_file, import_btn, status,
                      filter_model, filter_category, sort, grid, summary, quality_plot, latency_plot, heatmap,
                      listing, list_btn, gr.State(""), gr.State(None), gr.State(-1),
                      gr.Timer(POLL_S, active=False), rules=rules, alone=alone, table_csv_btn=table_csv_btn,
                      table_json_btn=table_json_btn, judge=judge)
