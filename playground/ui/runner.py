"""The prompt area and the run buttons: Run, Stop, Tokenize only, Run again.

A thin caller of the run service: it reads the page into a RunRequest, lets the
service search, start, stream and save, and draws the record as it fills.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import gradio as gr

from playground.config import Settings
from playground.engine import RequestError, RunRequest
from playground.grounding.snapshot import SearchOptions
from playground.record import Run
from playground.service import SessionError
from playground.ui import html as H
from playground.ui.blind import BlindView, build_blind_toggle
from playground.ui.page import owner_of, tab_key
from playground.ui.text import REPAIRED_NOTICE, clean_text

if TYPE_CHECKING:
    from playground.ui.app import Page

ASSETS = Path(__file__).resolve().parent.parent.parent / "assets"
STREAM_INTERVAL_S = 0.08  # at most ~12 page updates a second while tokens stream
GROUNDING_CHOICES = {"off": "none", "local corpus": "local", "web": "web"}


def examples() -> list[list[str]]:
    path = ASSETS / "examples.json"
    return [[e] for e in json.loads(path.read_text(encoding="utf-8"))] if path.is_file() else []


def search_options(settings: Settings, provider: str, n: int, fetch: bool) -> SearchOptions | None:
    """The run's one search, set up from the page and the server's search settings."""
    if provider == "none":
        return None
    return SearchOptions(provider, n, fetch, settings.corpus_dir, settings.corpus_index,
                         tuple(settings.fetch_allow), region=settings.search_region,
                         safesearch=settings.search_safesearch, timelimit=settings.search_timelimit)


@dataclass
class PromptArea:
    prompt: Any
    system: Any
    specials_as_text: Any
    grounding: Any
    n_sources: Any
    fetch_pages: Any
    run_btn: Any
    stop_btn: Any
    tokenize_btn: Any
    add_btn: Any
    blind: Any = None  # the Blind checkbox (playground/ui/blind.py)

    def inputs(self) -> list[Any]:
        return [self.prompt, self.system, self.specials_as_text, self.grounding, self.n_sources,
                self.fetch_pages]


def build_prompt_area() -> PromptArea:
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
                grounding = gr.Radio(list(GROUNDING_CHOICES), value="off", elem_id="grounding",
                                     label="Grounding: one search, the same numbered sources for every model")
                n_sources = gr.Slider(1, 10, value=5, step=1, label="Sources", elem_id="n-sources")
                fetch_pages = gr.Checkbox(False, label="Fetch page text of the top results (web)",
                                          elem_id="fetch-pages")
        with gr.Column(scale=1, min_width=180):
            run_btn = gr.Button("Run ▶", variant="primary", elem_id="run-btn")
            stop_btn = gr.Button("Stop ■", variant="stop", interactive=False, elem_id="stop-btn")
            tokenize_btn = gr.Button("Tokenize only", elem_id="tokenize-btn")
            add_btn = gr.Button("+ Add column", elem_id="add-btn")
            blind = build_blind_toggle()
    found = examples()
    if found:
        gr.Examples(found, inputs=[prompt], label="Example prompts")
    return PromptArea(prompt, system, specials_as_text, grounding, n_sources, fetch_pages, run_btn, stop_btn,
                      tokenize_btn, add_btn, blind)


def wire_runs(page: Page) -> None:
    """Run, Tokenize only, Stop and Run again."""
    shell, area, columns, bar = page.shell, page.prompt, page.columns, page.bar
    service, notice = shell.service, shell.notice

    def read(data: dict[Any, Any], tokenize_only: bool = False) -> tuple[RunRequest, list[int], dict]:
        """The page as a request; text the browser sent broken is repaired (and shown repaired)."""
        chosen = columns.chosen(data)
        prompt, bad_prompt = clean_text(data[area.prompt] or "")
        system, bad_system = clean_text(data[area.system] or "")
        requests, bad_columns = columns.requests(data, chosen)
        request = RunRequest(prompt=prompt, system_prompt=system, columns=requests,
                             specials_as_text=bool(data[area.specials_as_text]), tokenize_only=tokenize_only)
        repaired: dict[Any, Any] = {}
        if bad_prompt:
            repaired[area.prompt] = prompt
        if bad_system:
            repaired[area.system] = system
        if bad_columns:
            repaired[notice] = REPAIRED_NOTICE  # no widget to redraw: say it in the summary
        return request, chosen, repaired

    def execute(request: RunRequest, chosen: list[int], key: str, owner: str, search_notice: str = "",
                note: str = "", blind: BlindView | None = None) -> Iterator[dict[Any, Any]]:
        """Stream one run into the chosen slots, then save it; the saved record is the return value.

        A blind run (`blind`) is drawn with letters in place of names (playground/ui/blind.py)."""
        draw = page.blind.drawer(columns, blind)
        try:
            live = service.start(request, key, owner, search_notice)
        except RequestError as exc:
            yield {notice: H.notice(str(exc), "error")}
            return None
        status = {c: "queued" for c in range(len(chosen))}
        record = live.record
        yield {**columns.clear(), **draw(record, chosen, set(status), status), page.rerun_report: "",
               **page.blind.running(blind),
               area.run_btn: gr.update(interactive=False), area.stop_btn: gr.update(interactive=True),
               bar.again_btn: gr.update(interactive=False),
               notice: H.notice(f"running {len(chosen)} column(s)…")}
        finished = False
        try:
            dirty: set[int] = set()
            last_push = 0.0
            for event in live.events:
                if event.column >= 0:
                    dirty.add(event.column)
                    if event.kind in ("status", "started", "generated"):
                        status[event.column] = event.message
                now = time.monotonic()
                urgent = event.kind in ("started", "generated", "finished")
                if dirty and (urgent or now - last_push >= STREAM_INTERVAL_S):
                    yield draw(record, chosen, dirty, status)
                    dirty.clear()
                    last_push = now
            if dirty:
                yield draw(record, chosen, dirty, status)
            finished = True
        finally:
            if not finished:  # the page went away mid-run: end the run (columns cancelled), keep it saved
                close = getattr(live.events, "close", None)
                if close is not None:
                    close()
                service.finish(live)
        outcome = service.finish(live)
        failed = all(m.finish_reason in ("error", "timeout") for m in record.models)  # Stop is not a failure
        summary = outcome.summary + (f"; {note}" if note else "")
        yield {area.run_btn: gr.update(interactive=True), area.stop_btn: gr.update(interactive=False),
               notice: H.notice(summary, "error" if failed or outcome.save_error else "info"),
               columns.loaded: page.pool_line(),
               **bar.updates(record if outcome.saved_id else None), **page.evidence(record),
               **page.blind.finished(page, record, outcome.saved_id, blind)}
        return record

    def run_all(data: dict[Any, Any], request: gr.Request) -> Iterator[dict[Any, Any]]:
        run_request, chosen, repaired = read(data)
        note = REPAIRED_NOTICE if repaired else ""
        redraw = {k: v for k, v in repaired.items() if k is not notice}
        if redraw:
            yield redraw
        options = search_options(shell.settings, GROUNDING_CHOICES[data[area.grounding]],
                                 int(data[area.n_sources]), bool(data[area.fetch_pages]))
        search_notice = ""
        if options is not None and run_request.prompt.strip():
            yield {notice: H.notice(f"searching ({data[area.grounding]})…")}
            search_notice = service.prepare(run_request, options)
        owner = owner_of(request, data[shell.owner])
        blind = page.blind.begin(bool(data[area.blind]), chosen)
        yield from execute(run_request, chosen, tab_key(request), owner, search_notice, note, blind)

    def tokenize_all(data: dict[Any, Any]) -> Iterator[dict[Any, Any]]:
        """Tokens and anomalies for every picked column, without generating or saving."""
        run_request, chosen, repaired = read(data, tokenize_only=True)
        yield {notice: H.notice("tokenizing (models load on first use)…"),
               **{k: v for k, v in repaired.items() if k is not notice}}
        try:
            record = service.tokenize(run_request)
        except RequestError as exc:
            yield {notice: H.notice(str(exc), "error")}
            return
        flagged = sum(len(m.anomalies) for m in record.models)
        message = (f"tokenized for {len(chosen)} column(s); {flagged} anomaly(ies) flagged; "
                   "nothing was generated" + (f"; {REPAIRED_NOTICE}" if repaired else ""))
        yield {**columns.draw(record, chosen, set(range(len(chosen))), {}),
               **page.tokens.render(record), shell.shown: record, page.tokens.box: gr.update(open=True),
               **page.blind.hidden(),
               columns.loaded: page.pool_line(), notice: H.notice(message)}

    def run_again(run_id: str, browser_id: object, request: gr.Request) -> Iterator[dict[Any, Any]]:
        try:
            saved, again = service.rerun_request(run_id)
        except SessionError as exc:
            yield {notice: H.notice(str(exc), "error")}
            return
        yield page.show(saved, f"re-running saved run {saved.id} with the same models, parameters and seeds…")
        shown = list(range(min(len(saved.models), columns.size)))
        again.columns = again.columns[: len(shown)]
        new: Run | None = yield from execute(again, shown, tab_key(request), owner_of(request, browser_id))
        if new is not None:
            saved.models = saved.models[: len(shown)]
            yield {page.rerun_report: H.rerun_report(saved.id, service.compare_rerun(saved, new))}

    def stop_all(request: gr.Request) -> dict[Any, Any]:
        stopped = service.stop(tab_key(request))
        return {notice: H.notice("stopping…" if stopped else "nothing is running")}

    run_inputs = {*area.inputs(), *columns.inputs(), shell.owner, area.blind}
    outputs = page.run_outputs()
    refresh = bar.refresh_history(shell)
    area.run_btn.click(run_all, inputs=run_inputs, outputs=outputs, concurrency_limit=4).then(**refresh)
    area.tokenize_btn.click(tokenize_all, inputs=run_inputs, outputs=[*outputs, page.tokens.box],
                            concurrency_limit=4)
    bar.again_btn.click(run_again, inputs=[bar.current_id, shell.owner], outputs=page.show_outputs(),
                        concurrency_limit=4).then(**refresh)
    area.stop_btn.click(stop_all, outputs=[notice], queue=False)
