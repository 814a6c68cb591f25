"""The Gradio page: a thin wrapper over Engine and the run record.

build_app() makes the Blocks; launch() serves them. No per-user state lives in
module globals: each browser session has its own gr.State, and the only shared
objects (the model pool, the live-run registry) are created in build_app and
guarded.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr

from playground.backends.pool import ModelPool
from playground.catalog import Catalog
from playground.config import Settings
from playground.engine import ColumnRequest, Engine, RequestError, RunRequest
from playground.record import GenerationParams
from playground.ui import html as H

ASSETS = Path(__file__).resolve().parent.parent.parent / "assets"
STREAM_INTERVAL_S = 0.08  # at most ~12 page updates a second while tokens stream


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
                             max_height=560, buttons=["copy"], latex_delimiters=[])
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


def build_app(settings: Settings, engine: Engine | None = None) -> gr.Blocks:
    """Build the page. Pass an engine to share loaded models with a caller (tests do)."""
    if engine is None:
        catalog = Catalog.build(settings.catalog_file, settings.models)
        engine = Engine(catalog, ModelPool(settings.data_dir, settings.device))
    catalog = engine.catalog
    live = LiveRuns()
    defaults = [m for m in settings.default_models if m in catalog.specs] or catalog.ids()[:2]
    n_slots = max(settings.max_columns, len(defaults))

    with gr.Blocks(title="playground: compare language models") as demo:
        gr.Markdown("## playground · one prompt, several models, side by side", elem_id="pg-title")
        with gr.Row():
            with gr.Column(scale=4):
                prompt = gr.Textbox(label="Prompt", lines=4, elem_id="prompt",
                                    placeholder="Ask something… (Ctrl+Enter runs)")
                system = gr.Textbox(label="System prompt (used where the model has a chat template)",
                                    lines=1, elem_id="system")
            with gr.Column(scale=1, min_width=180):
                run_btn = gr.Button("Run ▶", variant="primary", elem_id="run-btn")
                stop_btn = gr.Button("Stop ■", variant="stop", interactive=False, elem_id="stop-btn")
                add_btn = gr.Button("+ Add column", elem_id="add-btn")
        examples = _examples()
        if examples:
            gr.Examples(examples, inputs=[prompt], label="Example prompts")
        page_notice = gr.HTML(elem_id="notice")
        loaded_info = gr.HTML(H.loaded_models([]), elem_id="loaded")
        active = gr.State([i < len(defaults) for i in range(n_slots)])
        last_run = gr.State(None)
        with gr.Row(equal_height=False, elem_id="columns"):
            slots = [
                _make_slot(i, catalog, defaults[i] if i < len(defaults) else defaults[0], i < len(defaults))
                for i in range(n_slots)
            ]

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

            slot.remove.click(remove_column, inputs=[active], outputs=[active, slots[i].box])

        def column_updates(
            record: Any, chosen: list[int], columns: set[int], status: dict[int, str]
        ) -> dict[Any, Any]:
            """Header and output of the given run columns, in the slots they were run from."""
            updates: dict[Any, Any] = {}
            for col in columns:
                slot = slots[chosen[col]]
                model_run = record.models[col]
                updates[slot.header] = H.column_header(model_run, status.get(col, ""))
                updates[slot.output] = H.markdown_safe(model_run.text)
            return updates

        def run_all(data: dict[Any, Any], request: gr.Request) -> Iterator[dict[Any, Any]]:
            chosen = [i for i, on in enumerate(data[active]) if on and (data[slots[i].model] or "").strip()]
            run_request = RunRequest(
                prompt=data[prompt] or "",
                system_prompt=data[system] or "",
                columns=[ColumnRequest(data[slots[i].model].strip(), slots[i].params(data)) for i in chosen],
            )
            session = request.session_hash or "anonymous"
            flag = live.start(session)
            try:
                record, events = engine.stream(run_request, flag)
            except RequestError as exc:
                live.end(session, flag)
                yield {page_notice: H.notice(str(exc), "error")}
                return
            status = {c: "queued" for c in range(len(chosen))}
            cleared = {s.output: "" for s in slots} | {s.header: "" for s in slots}
            yield {**cleared, **column_updates(record, chosen, set(status), status),
                   run_btn: gr.update(interactive=False), stop_btn: gr.update(interactive=True),
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
            yield {run_btn: gr.update(interactive=True), stop_btn: gr.update(interactive=False),
                   page_notice: H.notice(summary, "info" if answered else "error"),
                   last_run: record.to_dict(), loaded_info: H.loaded_models(_loaded_rows(engine))}

        def stop_all(request: gr.Request) -> dict[Any, Any]:
            stopped = live.stop(request.session_hash or "anonymous")
            return {page_notice: H.notice("stopping…" if stopped else "nothing is running")}

        inputs = {prompt, system, active}
        for slot in slots:
            inputs.update(slot.param_inputs())
        outputs = [run_btn, stop_btn, page_notice, last_run, loaded_info]
        for slot in slots:
            outputs += [slot.header, slot.output]
        run_btn.click(run_all, inputs=inputs, outputs=outputs, concurrency_limit=4)
        stop_btn.click(stop_all, outputs=[page_notice], queue=False)
    return demo


def _loaded_rows(engine: Engine) -> list[tuple[str, str, str, float, bool]]:
    return [(i.id, i.device, i.dtype, i.load_s, i.from_cache) for i in engine.pool.loaded()]


def launch_kwargs() -> dict[str, Any]:
    css = (ASSETS / "style.css").read_text(encoding="utf-8")
    js = (ASSETS / "shortcuts.js").read_text(encoding="utf-8")
    return {"css": css, "head": f"<script>{js}</script>", "theme": gr.themes.Soft()}


def launch(settings: Settings) -> None:
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    demo = build_app(settings)
    demo.queue(default_concurrency_limit=4)
    print(f"playground: serving on http://{settings.host}:{settings.port}  (data: {settings.data_dir})")
    demo.launch(server_name=settings.host, server_port=settings.port, **launch_kwargs())
