"""The Gradio page: a thin wrapper over Engine and the run record.

build_app() makes the Blocks; launch() serves them. No per-user state lives in
module globals: each browser session has its own gr.State, and the only shared
objects (the model pool, the live-run registry) are created in build_app and
guarded.
"""

from __future__ import annotations

import json
import os
import sqlite3
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr

from playground.backends.embeddings import EmbeddingModel
from playground.backends.pool import ModelPool
from playground.catalog import Catalog
from playground.config import Settings
from playground.engine import AttentionLimits, ColumnRequest, Engine, RequestError, RunRequest
from playground.grounding.snapshot import SearchOptions, take_snapshot
from playground.inspect.agreement import LEXICAL_METHOD, run_agreement
from playground.inspect.attention import VIEWS as ATTN_VIEWS
from playground.inspect.attention import view as attention_view
from playground.inspect.attention import zoom as attention_zoom
from playground.inspect.run_compare import compare_runs as compare_runs_across
from playground.record import GenerationParams, ModelRun, Run
from playground.sessions.bundle import MAX_BUNDLE_BYTES, BundleError, export_bundle, import_bundle
from playground.sessions.rerun import compare_runs, request_from
from playground.sessions.store import SessionError, SessionStore
from playground.ui import diff_view as DV
from playground.ui import html as H
from playground.ui import prob_view as PV
from playground.ui import sources_view as SV
from playground.ui import token_view as TV
from playground.ui.plots import agreement_figure, attention_heatmap, sink_figure, token_counts_figure

ASSETS = Path(__file__).resolve().parent.parent.parent / "assets"
STREAM_INTERVAL_S = 0.08  # at most ~12 page updates a second while tokens stream
GROUNDING_CHOICES = {"off": "none", "local corpus": "local", "web": "web"}


class LiveRuns:
    """Cancel flags of the runs in progress, by browser session, so Stop can reach them."""

    def __init__(self) -> None:
        self._flags: dict[str, threading.Event] = {}
        self._lock = threading.Lock()

    def start(self, session: str) -> threading.Event:
        flag = threading.Event()
        with self._lock:
            self._flags[session] = flag
        return flag

    def stop(self, session: str) -> bool:
        with self._lock:
            flag = self._flags.get(session)
        if flag is None:
            return False
        flag.set()
        return True

    def end(self, session: str, flag: threading.Event) -> None:
        with self._lock:
            if self._flags.get(session) is flag:
                del self._flags[session]


@dataclass
class Slot:
    """The widgets of one model column."""

    box: Any
    model: Any
    remove: Any
    header: Any
    output: Any
    max_new_tokens: Any
    temperature: Any
    top_p: Any
    top_k: Any
    repetition_penalty: Any
    seed: Any
    stop: Any
    timeout: Any

    def param_inputs(self) -> list[Any]:
        return [
            self.model, self.max_new_tokens, self.temperature, self.top_p, self.top_k,
            self.repetition_penalty, self.seed, self.stop, self.timeout,
        ]

    def fill(self, model: str, p: GenerationParams) -> dict[Any, Any]:
        """Updates that show a saved column's model and parameters."""
        return {
            self.model: model, self.max_new_tokens: p.max_new_tokens, self.temperature: p.temperature,
            self.top_p: p.top_p, self.top_k: p.top_k, self.repetition_penalty: p.repetition_penalty,
            self.seed: p.seed, self.stop: "\n".join(p.stop), self.timeout: p.timeout_s,
        }

    def params(self, data: dict[Any, Any]) -> GenerationParams:
        """Read this column's parameters; empty fields fall back to the defaults."""
        d = GenerationParams()

        def val(component: Any, default: Any, cast: type) -> Any:
            value = data.get(component)
            return default if value is None or value == "" else cast(value)

        stops = [s for s in (data.get(self.stop) or "").split("\n") if s]
        return GenerationParams(
            max_new_tokens=val(self.max_new_tokens, d.max_new_tokens, int),
            temperature=val(self.temperature, d.temperature, float),
            top_p=val(self.top_p, d.top_p, float),
            top_k=val(self.top_k, d.top_k, int),
            repetition_penalty=val(self.repetition_penalty, d.repetition_penalty, float),
            seed=val(self.seed, d.seed, int),
            stop=[s.encode().decode("unicode_escape") if "\\" in s else s for s in stops],
            timeout_s=val(self.timeout, d.timeout_s, float),
        )


def _examples() -> list[list[str]]:
    path = ASSETS / "examples.json"
    return [[e] for e in json.loads(path.read_text(encoding="utf-8"))] if path.is_file() else []


def _make_slot(index: int, catalog: Catalog, model: str, visible: bool) -> Slot:
    d = GenerationParams()
    with gr.Column(visible=visible, min_width=300, elem_classes=["pg-column"], elem_id=f"col-{index}") as box:
        with gr.Row(elem_classes=["pg-col-top"]):
            dropdown = gr.Dropdown(
                choices=catalog.ids(), value=model or None, label=f"Model {index + 1}",
                allow_custom_value=True, scale=5, elem_id=f"model-{index}",
                info="catalog id, .gguf path, directory or hub id",
            )
            remove = gr.Button("✕", size="sm", scale=0, min_width=40, elem_id=f"remove-{index}",
                               elem_classes=["pg-remove"])
        header = gr.HTML(elem_id=f"head-{index}")
        output = gr.Markdown(elem_id=f"out-{index}", elem_classes=["pg-output"], min_height=120,
                             max_height=560, buttons=["copy"], latex_delimiters=[], line_breaks=True)
        with gr.Accordion("Parameters", open=False):
            max_new = gr.Number(d.max_new_tokens, label="Max new tokens", precision=0, minimum=1)
            temperature = gr.Slider(0, 2, d.temperature, step=0.05, label="Temperature (0 = greedy)")
            top_p = gr.Slider(0.05, 1, d.top_p, step=0.05, label="Top-p")
            top_k = gr.Number(d.top_k, label="Top-k (0 = off)", precision=0, minimum=0)
            rep = gr.Slider(0.5, 2, d.repetition_penalty, step=0.05, label="Repetition penalty")
            seed = gr.Number(d.seed, label="Seed", precision=0)
            stop = gr.Textbox("", label="Stop strings (one per line)", lines=2)
            timeout = gr.Number(d.timeout_s, label="Request timeout (s)", minimum=1)
    return Slot(box, dropdown, remove, header, output, max_new, temperature, top_p, top_k, rep, seed,
                stop, timeout)


def build_app(
    settings: Settings, engine: Engine | None = None, store: SessionStore | None = None
) -> gr.Blocks:
    """Build the page. Pass an engine or store to share them with a caller (tests do)."""
    if engine is None:
        catalog = Catalog.build(settings.catalog_file, settings.models)
        limits = AttentionLimits(settings.attention_tokens, settings.attention_bytes)
        engine = Engine(catalog, ModelPool(settings.data_dir, settings.device), limits)
    store = store or SessionStore(settings.database)
    catalog = engine.catalog
    live = LiveRuns()
    defaults = [m for m in settings.default_models if m in catalog.specs] or catalog.ids()[:2]
    n_slots = max(settings.max_columns, len(defaults))

    with gr.Blocks(title="playground: compare language models") as demo:
        gr.Markdown("## playground · one prompt, several models, side by side", elem_id="pg-title")
        with gr.Row():
            with gr.Column(scale=4):
                prompt = gr.Textbox(label="Prompt", lines=3, elem_id="prompt",
                                    placeholder="Ask something… (Ctrl+Enter runs)")
                system = gr.Textbox(label="System prompt (used where the model has a chat template)",
                                    lines=1, elem_id="system")
                specials_as_text = gr.Checkbox(
                    False, label="Treat special-token strings in my text (e.g. <|im_end|>) as plain text",
                    elem_id="specials-as-text")
                with gr.Row():
                    grounding = gr.Radio(
                        list(GROUNDING_CHOICES), value="off", elem_id="grounding",
                        label="Grounding: one search, the same numbered sources for every model",
                    )
                    n_sources = gr.Slider(1, 10, value=5, step=1, label="Sources", elem_id="n-sources")
                    fetch_pages = gr.Checkbox(False, label="Fetch page text of the top results (web)",
                                              elem_id="fetch-pages")
            with gr.Column(scale=1, min_width=180):
                run_btn = gr.Button("Run ▶", variant="primary", elem_id="run-btn")
                stop_btn = gr.Button("Stop ■", variant="stop", interactive=False, elem_id="stop-btn")
                tokenize_btn = gr.Button("Tokenize only", elem_id="tokenize-btn")
                add_btn = gr.Button("+ Add column", elem_id="add-btn")
        examples = _examples()
        if examples:
            gr.Examples(examples, inputs=[prompt], label="Example prompts")
        with gr.Row(elem_id="session-bar", equal_height=True):
            share_link = gr.Textbox(show_label=False, container=False, interactive=False, scale=4,
                                    elem_id="share-link", placeholder="share link: run something to save it")
            copy_btn = gr.Button("Copy link", size="sm", interactive=False, elem_id="copy-btn", scale=0,
                                 min_width=100)
            again_btn = gr.Button("Run again", size="sm", interactive=False, elem_id="again-btn", scale=0,
                                  min_width=100)
            export_btn = gr.DownloadButton("Export JSON", size="sm", interactive=False, elem_id="export-btn",
                                           scale=0, min_width=110)
            import_btn = gr.UploadButton("Import JSON", size="sm", file_types=[".json"], elem_id="import-btn",
                                         scale=0, min_width=110)
            delete_btn = gr.Button("Delete run", size="sm", variant="stop", interactive=False,
                                   elem_id="delete-btn", scale=0, min_width=100)
        page_notice = gr.HTML(elem_id="notice", padding=False)
        rerun_report = gr.HTML(elem_id="rerun-report", padding=False)
        loaded_info = gr.HTML(H.loaded_models([]), elem_id="loaded", padding=False)
        active = gr.State([i < len(defaults) for i in range(n_slots)])
        current_id = gr.State("")
        with gr.Row(equal_height=False, elem_id="columns"):
            slots = [
                _make_slot(i, catalog, defaults[i] if i < len(defaults) else defaults[0], i < len(defaults))
                for i in range(n_slots)
            ]
        with gr.Accordion("Tokens: what each model saw", open=False, elem_id="tokens-box") as tokens_box:
            with gr.Row():
                tok_model = gr.Radio(label="Column", choices=[], elem_id="tok-model", scale=3)
                tok_jump = gr.Dropdown(label="Jump to anomaly", choices=[], elem_id="tok-jump", scale=2)
                tok_page = gr.Slider(1, 2, value=1, step=1, label="Page", elem_id="tok-page", scale=2)
            tok_anomalies = gr.HTML(elem_id="tok-anomalies", padding=False)
            tok_chips = gr.HTML(elem_id="tok-chips", padding=False)
            tok_counts = gr.HTML(elem_id="tok-counts", padding=False)
            tok_plot = gr.Plot(elem_id="tok-plot", show_label=False)
        with gr.Accordion("Attention", open=False, elem_id="attn-box"):
            attn_note = gr.HTML(elem_id="attn-note", padding=False)
            with gr.Row():
                attn_a = gr.Dropdown(label="Model A", choices=[], elem_id="attn-a")
                attn_b = gr.Dropdown(label="Model B, side by side", choices=[], elem_id="attn-b")
                attn_layer = gr.Dropdown(label="Layer (model B: its layer at the same depth)", choices=[],
                                         elem_id="attn-layer")
            with gr.Row():
                attn_view = gr.Radio(list(ATTN_VIEWS), value=ATTN_VIEWS[0], label="View", elem_id="attn-view")
                attn_head = gr.Number(0, label="Head (for one head)", precision=0, minimum=0,
                                      elem_id="attn-head")
                attn_from = gr.Number(None, label="Zoom: from token", precision=0, elem_id="attn-from")
                attn_to = gr.Number(None, label="to token", precision=0, elem_id="attn-to")
            with gr.Row():
                attn_plot_a = gr.Plot(elem_id="attn-plot-a", show_label=False)
                attn_plot_b = gr.Plot(elem_id="attn-plot-b", show_label=False)
            attn_sinks = gr.Plot(elem_id="attn-sinks", show_label=False)
        with gr.Accordion("Token probabilities", open=False, elem_id="probs-box"):
            probs_panel = gr.HTML(elem_id="probs", padding=False)
        with gr.Accordion("Sources", open=False, elem_id="sources-box"):
            sources_panel = gr.HTML(elem_id="sources", padding=False)
        with gr.Accordion("Compare outputs", open=False, elem_id="diff-box"):
            diff_base = gr.Dropdown(label="Baseline column", choices=[], elem_id="diff-base")
            diff_panel = gr.HTML(elem_id="diff", padding=False)
            with gr.Row():
                agree_lexical = gr.Plot(elem_id="agree-lexical", show_label=False)
                agree_semantic = gr.Plot(elem_id="agree-semantic", show_label=False)
            semantic_btn = gr.Button("Compute semantic similarity (loads a small embedding model)",
                                     size="sm", elem_id="semantic-btn")
            agree_note = gr.HTML(elem_id="agree-note", padding=False)
            gr.Markdown("**Run vs run**: a saved run's column against another's (ids or share links).")
            with gr.Row():
                rvr_a = gr.Textbox(label="Run A (id or link; empty = the run shown)", elem_id="rvr-a",
                                   scale=3)
                rvr_col_a = gr.Number(1, label="Column", precision=0, minimum=1, elem_id="rvr-col-a", scale=1)
                rvr_b = gr.Textbox(label="Run B (id or link)", elem_id="rvr-b", scale=3)
                rvr_col_b = gr.Number(1, label="Column", precision=0, minimum=1, elem_id="rvr-col-b", scale=1)
                rvr_btn = gr.Button("Compare runs", elem_id="rvr-btn", scale=1)
            rvr_panel = gr.HTML(elem_id="rvr", padding=False)
        shown_run = gr.State(None)
        with gr.Accordion("History", open=False, elem_id="history-box"):
            with gr.Row():
                history_query = gr.Textbox(label="Search prompts and outputs", elem_id="history-search",
                                           scale=4)
                history_btn = gr.Button("Search", scale=0, min_width=100, elem_id="history-btn")
            history = gr.HTML(elem_id="history")

        # -- columns ----------------------------------------------------------------------

        def add_column(flags: list[bool]) -> dict[Any, Any]:
            if all(flags):
                return {page_notice: H.notice(f"at most {n_slots} columns (PLAYGROUND_MAX_COLUMNS)", "warn")}
            i = flags.index(False)
            flags = [*flags[:i], True, *flags[i + 1:]]
            return {active: flags, slots[i].box: gr.update(visible=True), page_notice: ""}

        add_btn.click(add_column, inputs=[active], outputs=[active, page_notice] + [s.box for s in slots])

        for i, slot in enumerate(slots):
            def remove_column(flags: list[bool], i: int = i) -> dict[Any, Any]:
                flags = [*flags[:i], False, *flags[i + 1:]]
                return {active: flags, slots[i].box: gr.update(visible=False)}

            slot.remove.click(remove_column, inputs=[active], outputs=[active, slot.box])

        def column_updates(
            record: Run, chosen: list[int], columns: set[int], status: dict[int, str]
        ) -> dict[Any, Any]:
            """Header and output of the given run columns, in the slots they were run from."""
            updates: dict[Any, Any] = {}
            for col in columns:
                slot = slots[chosen[col]]
                model_run = record.models[col]
                updates[slot.header] = H.column_header(model_run, status.get(col, ""))
                updates[slot.output] = H.markdown_safe(model_run.text)
            return updates

        def session_updates(record: Run | None) -> dict[Any, Any]:
            """The session bar for a saved run (or none); the export comes from the record in hand."""
            saved = record is not None
            run_id = record.id if saved else ""
            return {
                current_id: run_id,
                share_link: f"?session={run_id}" if saved else "",
                copy_btn: gr.update(interactive=saved),
                again_btn: gr.update(interactive=saved),
                delete_btn: gr.update(interactive=saved),
                export_btn: gr.update(value=_export_file(record) if saved else None, interactive=saved),
            }

        def token_panel(record: Run | None, column: int = 0, page: int = 1, highlight: int = -1) -> dict:
            """The Tokens panel for one column of a run, drawn from the record."""
            if record is None or not record.models:
                return {shown_run: None}
            column = min(max(column, 0), len(record.models) - 1)
            model = record.models[column]
            pages = TV.page_count(model)
            return {
                shown_run: record,
                tok_model: gr.update(choices=[TV.column_label(m) for m in record.models],
                                     value=TV.column_label(model)),
                tok_jump: gr.update(choices=TV.anomaly_choices(model), value=None),
                tok_page: gr.update(minimum=1, maximum=max(pages, 2), value=min(max(page, 1), pages),
                                    interactive=pages > 1),
                tok_anomalies: TV.anomalies_html(model),
                tok_chips: TV.chips_html(model, page, highlight),
                tok_counts: TV.counts_table(record),
                tok_plot: token_counts_figure(TV.count_rows(record)),
            }

        def attention_panel(
            record: Run | None, a: str | None = None, b: str | None = None, layer: int | None = None,
            mode: str = ATTN_VIEWS[0], head: int = 0, first: int | None = None, last: int | None = None,
        ) -> dict:
            """Attention heatmaps (A and B side by side) and the sink chart, drawn from the record."""
            if record is None:
                return {}
            captured = [m for m in record.models if m.attention is not None]
            notes = [f"{TV.column_label(m)}: {m.attention_note}" for m in record.models
                     if m.attention is None]
            windowed = [m.attention.notice for m in captured if m.attention.notice]
            labels = [TV.column_label(m) for m in captured]
            a = a if a in labels else (labels[0] if labels else None)
            b = b if b in labels and b != a else None
            updates: dict[Any, Any] = {
                attn_note: H.attention_note(notes, windowed),
                attn_a: gr.update(choices=labels, value=a),
                attn_b: gr.update(choices=["(none)", *labels], value=b or "(none)"),
                attn_plot_a: None, attn_plot_b: None, attn_sinks: None,
            }
            if a is None:
                return updates | {attn_layer: gr.update(choices=[], value=None)}
            model_a = captured[labels.index(a)]
            cap = model_a.attention
            layer = layer if layer in cap.layers else cap.layers[-1]
            updates[attn_layer] = gr.update(choices=cap.layers, value=layer)
            updates[attn_from] = cap.start if first is None else first
            updates[attn_to] = cap.start + cap.tokens - 1 if last is None else last
            depth = cap.layers.index(layer)
            updates[attn_plot_a] = attention_figure(model_a, layer, mode, head, first, last)
            series = [(a, cap.sink_first, cap.sink_special)]
            if b is not None:
                model_b = captured[labels.index(b)]
                layer_b = model_b.attention.layers[min(depth, len(model_b.attention.layers) - 1)]
                updates[attn_plot_b] = attention_figure(model_b, layer_b, mode, head, first, last)
                series.append((b, model_b.attention.sink_first, model_b.attention.sink_special))
            updates[attn_sinks] = sink_figure(series)
            return updates

        def redraw_attention(data: Run | None, a: str, b: str, layer: int, mode: str, head: float | None,
                             first: float | None, last: float | None) -> dict:
            if not data:
                return {}
            return attention_panel(data, a, b, layer, mode, int(head or 0),
                                   None if first is None else int(first), None if last is None else int(last))

        def compare_panel(record: Run | None, baseline: str | None = None) -> dict:
            """Diffs against a baseline column and the lexical agreement matrix, from the record."""
            if record is None or not record.models:
                return {}
            labels = [TV.column_label(m) for m in record.models]
            baseline = baseline if baseline in labels else labels[0]
            agreement = run_agreement(record)
            updates: dict[Any, Any] = {
                diff_base: gr.update(choices=labels, value=baseline),
                diff_panel: DV.baseline_diffs_html(record, labels.index(baseline)),
                agree_semantic: None,
                agree_note: H.agreement_note(agreement.skipped, ""),
                agree_lexical: None,
            }
            if len(agreement.labels) >= 2:
                method = LEXICAL_METHOD.split(" (")[0]
                updates[agree_lexical] = agreement_figure(
                    agreement.labels, agreement.lexical, f"Lexical similarity ({method})")
            return updates

        def pick_baseline(data: Run | None, baseline: str) -> dict:
            return compare_panel(data, baseline) if data else {}

        def semantic(data: Run | None) -> dict:
            if not data:
                return {agree_note: H.notice("run something first", "warn")}
            record = data
            try:
                agreement = run_agreement(record, EmbeddingModel.shared())
            except Exception as exc:  # noqa: BLE001 - a missing model is a message, not a crash
                return {agree_note: H.notice(f"semantic similarity unavailable: {exc}", "error")}
            if len(agreement.labels) < 2:
                return {agree_note: H.agreement_note(agreement.skipped, "need two answered columns")}
            return {
                agree_semantic: agreement_figure(agreement.labels, agreement.semantic,
                                                 f"Semantic similarity (cosine, {agreement.semantic_model})"),
                agree_note: H.agreement_note(agreement.skipped, agreement.semantic_model),
            }

        def run_vs_run(data: Run | None, a: str, col_a: float | None, b: str, col_b: float | None) -> str:
            try:
                run_a = store.get(_session_id(a)) if (a or "").strip() else data
                if run_a is None:
                    return H.notice("give run A (or show a run first)", "error")
                run_b = store.get(_session_id(b))
                diff = compare_runs_across(run_a, run_b, int(col_a or 1) - 1, int(col_b or 1) - 1)
            except (SessionError, ValueError) as exc:
                return H.notice(str(exc), "error")
            return DV.run_diff_html(diff)

        def evidence(record: Run | None) -> dict:
            """Every inspection panel for a run: tokens, attention, probabilities."""
            if record is None:
                return {}
            return (token_panel(record) | attention_panel(record) | compare_panel(record)
                    | {probs_panel: PV.probs_html(record.models), sources_panel: SV.sources_html(record)})

        def pick_column(data: Run | None, label: str) -> dict:
            if not data or not label:
                return {}
            return token_panel(data, TV.column_of(label))

        def turn_page(data: Run | None, label: str, page: float) -> dict:
            if not data or not label:
                return {}
            model = data.models[TV.column_of(label)]
            return {tok_chips: TV.chips_html(model, int(page))}

        def jump(data: Run | None, label: str, position: int | None) -> dict:
            if not data or not label or position is None:
                return {}
            column = TV.column_of(label)
            page = int(position) // TV.PAGE_SIZE + 1
            panel = token_panel(data, column, page, int(position))
            panel.pop(tok_jump)  # keep the choice shown
            return panel

        def show_run(record: Run, message: str) -> dict[Any, Any]:
            """Draw a saved run into the page from its record alone (no model is touched)."""
            shown = record.models[:n_slots]
            flags = [i < len(shown) for i in range(n_slots)]
            updates: dict[Any, Any] = {prompt: record.prompt, system: record.system_prompt, active: flags}
            for i, slot in enumerate(slots):
                updates[slot.box] = gr.update(visible=flags[i])
                if i < len(shown):
                    updates.update(slot.fill(shown[i].identity.catalog_id, shown[i].params))
                else:
                    updates[slot.header] = ""
                    updates[slot.output] = ""
            updates.update(column_updates(record, list(range(len(shown))), set(range(len(shown))), {}))
            if len(record.models) > n_slots:
                message += f" Only the first {n_slots} of {len(record.models)} columns are shown."
            updates[page_notice] = H.notice(message)
            updates[rerun_report] = ""
            return updates | session_updates(record) | evidence(record)

        # -- running ----------------------------------------------------------------------

        def execute(
            run_request: RunRequest, chosen: list[int], session: str, search_notice: str = ""
        ) -> Iterator[dict[Any, Any]]:
            """Stream one run into the chosen slots, then save it; the record is the return value."""
            flag = live.start(session)
            try:
                record, events = engine.stream(run_request, flag)
            except RequestError as exc:
                live.end(session, flag)
                yield {page_notice: H.notice(str(exc), "error")}
                return None
            status = {c: "queued" for c in range(len(chosen))}
            cleared = {s.output: "" for s in slots} | {s.header: "" for s in slots}
            yield {**cleared, **column_updates(record, chosen, set(status), status), rerun_report: "",
                   run_btn: gr.update(interactive=False), stop_btn: gr.update(interactive=True),
                   again_btn: gr.update(interactive=False),
                   page_notice: H.notice(f"running {len(chosen)} column(s)…")}
            try:
                dirty: set[int] = set()
                last_push = 0.0
                for event in events:
                    if event.column >= 0:
                        dirty.add(event.column)
                        if event.kind in ("status", "started"):
                            status[event.column] = event.message
                    now = time.monotonic()
                    urgent = event.kind in ("started", "finished")
                    if dirty and (urgent or now - last_push >= STREAM_INTERVAL_S):
                        yield column_updates(record, chosen, dirty, status)
                        dirty.clear()
                        last_push = now
                if dirty:
                    yield column_updates(record, chosen, dirty, status)
            finally:
                live.end(session, flag)
            answered = sum(1 for m in record.models if not m.error)
            summary = f"done: {answered} of {len(record.models)} column(s) answered"
            if flag.is_set():
                summary = "stopped: partial outputs kept"
            if record.search is not None and record.search.results:
                summary += f"; grounded on {len(record.search.results)} {record.search.provider} source(s)"
            if search_notice:
                summary += f" ({search_notice})"
            try:
                store.save(record)
                saved = session_updates(record)
            except sqlite3.Error as exc:
                summary += f"; could not save the run: {exc}"
                saved = session_updates(None)
            yield {run_btn: gr.update(interactive=True), stop_btn: gr.update(interactive=False),
                   page_notice: H.notice(summary, "info" if answered else "error"),
                   loaded_info: H.loaded_models(_loaded_rows(engine)), **saved, **evidence(record)}
            return record

        def run_all(data: dict[Any, Any], request: gr.Request) -> Iterator[dict[Any, Any]]:
            chosen = [i for i, on in enumerate(data[active]) if on and (data[slots[i].model] or "").strip()]
            run_request = request_of(data, chosen)
            notice = ""
            provider = GROUNDING_CHOICES[data[grounding]]
            if provider != "none" and run_request.prompt.strip():
                yield {page_notice: H.notice(f"searching ({data[grounding]})…")}
                options = SearchOptions(
                    provider, int(data[n_sources]), bool(data[fetch_pages]), settings.corpus_dir,
                    settings.corpus_index, tuple(settings.fetch_allow),
                )
                run_request.search, notice = take_snapshot(run_request.prompt, options)
            yield from execute(run_request, chosen, request.session_hash or "anonymous", notice)

        def request_of(data: dict[Any, Any], chosen: list[int], tokenize_only: bool = False) -> RunRequest:
            return RunRequest(
                prompt=data[prompt] or "",
                system_prompt=data[system] or "",
                columns=[ColumnRequest(data[slots[i].model].strip(), slots[i].params(data)) for i in chosen],
                specials_as_text=bool(data[specials_as_text]),
                tokenize_only=tokenize_only,
            )

        def tokenize_all(data: dict[Any, Any]) -> Iterator[dict[Any, Any]]:
            """Tokens and anomalies for every picked column, without generating or saving."""
            chosen = [i for i, on in enumerate(data[active]) if on and (data[slots[i].model] or "").strip()]
            try:
                record, events = engine.stream(request_of(data, chosen, tokenize_only=True))
            except RequestError as exc:
                yield {page_notice: H.notice(str(exc), "error")}
                return
            yield {page_notice: H.notice("tokenizing (models load on first use)…")}
            for _event in events:
                pass
            updates = column_updates(record, chosen, set(range(len(chosen))), {})
            flagged = sum(len(m.anomalies) for m in record.models)
            yield {**updates, **token_panel(record), tokens_box: gr.update(open=True),
                   loaded_info: H.loaded_models(_loaded_rows(engine)),
                   page_notice: H.notice(f"tokenized for {len(chosen)} column(s); {flagged} anomaly(ies) "
                                         "flagged; nothing was generated")}

        def run_again(run_id: str, request: gr.Request) -> Iterator[dict[Any, Any]]:
            try:
                saved = store.get(run_id)
            except SessionError as exc:
                yield {page_notice: H.notice(str(exc), "error")}
                return
            yield show_run(saved, f"re-running saved run {saved.id} with the same models, parameters "
                           "and seeds…")
            columns = list(range(min(len(saved.models), n_slots)))
            request_again = request_from(saved)
            request_again.columns = request_again.columns[: len(columns)]
            new = yield from execute(request_again, columns, request.session_hash or "anonymous")
            if new is not None:
                saved.models = saved.models[: len(columns)]
                yield {rerun_report: H.rerun_report(saved.id, compare_runs(saved, new))}

        def stop_all(request: gr.Request) -> dict[Any, Any]:
            stopped = live.stop(request.session_hash or "anonymous")
            return {page_notice: H.notice("stopping…" if stopped else "nothing is running")}

        # -- sessions ---------------------------------------------------------------------

        def open_from_url(request: gr.Request) -> dict[Any, Any]:
            listing = {history: H.history(store.recent(limit=HISTORY_ROWS))}
            session_id = (request.query_params.get("session") or "").strip() if request else ""
            if not session_id:
                return listing
            try:
                record = store.get(session_id)
            except SessionError as exc:
                return listing | {page_notice: H.notice(str(exc), "error")}
            when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(record.created_at))
            return listing | show_run(
                record, f"Replay of saved run {record.id} ({when}), drawn from the saved record: "
                "no model was run. “Run again” re-executes it and compares."
            )

        def import_file(path: str | None) -> dict[Any, Any]:
            if not path:
                return {}
            try:
                size = os.path.getsize(path)
                if size > MAX_BUNDLE_BYTES:
                    raise BundleError(f"the file is {size / 2**20:.1f} MiB; run files are at most "
                                      f"{MAX_BUNDLE_BYTES / 2**20:.0f} MiB")
                with open(path, "rb") as handle:
                    record = import_bundle(handle.read())
                store.save(record)
            except BundleError as exc:
                return {page_notice: H.notice(f"import refused: {exc}. Nothing was stored.", "error")}
            shown = show_run(record, f"Imported run {record.id}: shown from the file's record and saved "
                             "to history; no model was run.")
            return shown | {history: H.history(store.recent(limit=HISTORY_ROWS))}

        def delete_run(run_id: str) -> dict[Any, Any]:
            try:
                gone = store.delete(run_id)
            except SessionError as exc:
                return {page_notice: H.notice(str(exc), "error")}
            message = f"deleted run {run_id}" if gone else f"run {run_id} was already deleted"
            return session_updates(None) | {page_notice: H.notice(message),
                                          history: H.history(store.recent(limit=HISTORY_ROWS))}

        def search_history(query: str) -> str:
            return H.history(store.recent(limit=HISTORY_ROWS, query=query or ""), query or "")

        inputs = {prompt, system, active, specials_as_text, grounding, n_sources, fetch_pages}
        for slot in slots:
            inputs.update(slot.param_inputs())
        session_outputs = [current_id, share_link, copy_btn, again_btn, delete_btn, export_btn]
        attn_controls = [attn_a, attn_b, attn_layer, attn_view, attn_head, attn_from, attn_to]
        attn_outputs = [attn_note, attn_a, attn_b, attn_layer, attn_from, attn_to, attn_plot_a, attn_plot_b,
                        attn_sinks]
        compare_outputs = [diff_base, diff_panel, agree_lexical, agree_semantic, agree_note]
        panel_outputs = [shown_run, tok_model, tok_jump, tok_page, tok_anomalies, tok_chips, tok_counts,
                         tok_plot, *attn_outputs, probs_panel, *compare_outputs, sources_panel]
        outputs = [run_btn, stop_btn, page_notice, loaded_info, rerun_report, *session_outputs,
                   *panel_outputs]
        for slot in slots:
            outputs += [slot.header, slot.output]
        replay_outputs = [*outputs, prompt, system, active, history]
        for slot in slots:
            replay_outputs += [slot.box, *slot.param_inputs()]
        refresh = {"fn": search_history, "inputs": [history_query], "outputs": [history]}
        run_btn.click(run_all, inputs=inputs, outputs=outputs, concurrency_limit=4).then(**refresh)
        again_btn.click(run_again, inputs=[current_id], outputs=replay_outputs, concurrency_limit=4).then(
            **refresh)
        stop_btn.click(stop_all, outputs=[page_notice], queue=False)
        tokenize_btn.click(tokenize_all, inputs=inputs, outputs=[*outputs, tokens_box], concurrency_limit=4)
        tok_model.input(pick_column, inputs=[shown_run, tok_model], outputs=panel_outputs)
        tok_page.release(turn_page, inputs=[shown_run, tok_model, tok_page], outputs=[tok_chips])
        tok_jump.input(jump, inputs=[shown_run, tok_model, tok_jump], outputs=panel_outputs)
        diff_base.input(pick_baseline, inputs=[shown_run, diff_base], outputs=compare_outputs)
        semantic_btn.click(semantic, inputs=[shown_run], outputs=[agree_semantic, agree_note])
        rvr_btn.click(run_vs_run, inputs=[shown_run, rvr_a, rvr_col_a, rvr_b, rvr_col_b], outputs=[rvr_panel])
        for control in attn_controls:
            trigger = control.submit if control in (attn_head, attn_from, attn_to) else control.input
            trigger(redraw_attention, inputs=[shown_run, *attn_controls], outputs=attn_outputs)
        copy_btn.click(None, inputs=[share_link], outputs=[share_link], js=COPY_LINK_JS)
        demo.load(open_from_url, outputs=replay_outputs)
        import_btn.upload(import_file, inputs=[import_btn], outputs=replay_outputs)
        delete_btn.click(delete_run, inputs=[current_id], outputs=[*session_outputs, page_notice, history],
                         js="(id) => confirm('Delete this saved run? Its link will stop working.') ? id : ''")
        history_btn.click(**refresh)
        history_query.submit(**refresh)
    return demo


# Copy the full permalink (this page's address + ?session=ID) and show it in the link box.
COPY_LINK_JS = """(link) => {
  if (!link) return link;
  const url = new URL(link, window.location.href);
  url.hash = '';
  if (navigator.clipboard) { navigator.clipboard.writeText(url.toString()).catch(() => {}); }
  return url.toString();
}"""
HISTORY_ROWS = 50


def attention_figure(
    model: ModelRun, layer: int, mode: str, head: int, first: int | None, last: int | None
) -> Any:
    """One model's heatmap for a layer and view, zoomed to a token range."""
    cap = model.attention
    matrix = attention_view(cap, layer, mode, min(max(head, 0), cap.heads - 1))
    lo = cap.start if first is None else first
    hi = cap.start + cap.tokens - 1 if last is None else last
    matrix, origin = attention_zoom(matrix, cap.start, lo, hi)
    chips = TV.chips_of(model)[origin : origin + matrix.shape[0]]
    labels = [H.plot_label(c.text or c.raw) for c in chips]
    what = mode if mode != "one head" else f"head {min(max(head, 0), cap.heads - 1)}"
    return attention_heatmap(matrix, labels, origin, f"{TV.column_label(model)} · layer {layer} · {what}")


def _session_id(text: str) -> str:
    """A run id from an id or a share link (…/?session=ID)."""
    text = (text or "").strip()
    return text.split("session=", 1)[1].split("&", 1)[0] if "session=" in text else text


def _export_file(record: Run) -> str:
    """Write the export of a saved run to a temp file for the download button."""
    folder = Path(tempfile.gettempdir()) / "playground-exports"
    folder.mkdir(exist_ok=True)
    path = folder / f"playground-run-{record.id}.json"
    path.write_text(export_bundle(record), encoding="utf-8")
    return str(path)


def _loaded_rows(engine: Engine) -> list[tuple[str, str, str, float, bool]]:
    return [(i.id, i.device, i.dtype, i.load_s, i.from_cache) for i in engine.pool.loaded()]


def launch_kwargs() -> dict[str, Any]:
    css = (ASSETS / "style.css").read_text(encoding="utf-8")
    js = (ASSETS / "shortcuts.js").read_text(encoding="utf-8")
    return {"css": css, "head": f"<script>{js}</script>", "theme": gr.themes.Soft()}


def launch_options(settings: Settings) -> dict[str, Any]:
    """Everything launch() passes to Gradio, auth included (tests serve with the same options)."""
    return {
        "server_name": settings.host,
        "server_port": settings.port,
        "auth": settings.auth,
        "auth_message": "playground: log in to see and share runs" if settings.auth else None,
        **launch_kwargs(),
    }


def launch(settings: Settings) -> None:
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    demo = build_app(settings)
    demo.queue(default_concurrency_limit=4)
    print(f"playground: serving on http://{settings.host}:{settings.port}  (data: {settings.data_dir})")
    demo.launch(**launch_options(settings))
