"""The prompt area and the run buttons: Run, Stop, Tokenize only, Run again.

A thin caller of the run service: it reads the page into a RunRequest, lets the
service search, start, stream and save, and draws the record as it fills.
"""

from __future__ import annotations

import html
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
# Edit and run: drop ?session= from the address (a reload would reopen the read-only replay).
DROP_SESSION_JS = """(runId) => {
  const url = new URL(window.location.href);
  if (url.searchParams.has('session')) {
    url.searchParams.delete('session');
    window.history.replaceState(window.history.state, '', url.toString());
  }
  return runId;
}"""


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
    edit_btn: Any = None  # "Edit and run": shown in place of Run while a saved run is replayed
    banner: Any = None  # "Replay of a saved run — read-only"
    settings: Any = None  # the Settings accordion (system prompt, grounding, examples): its label sums up

    def inputs(self) -> list[Any]:
        return [self.prompt, self.system, self.specials_as_text, self.grounding, self.n_sources,
                self.fetch_pages]

    def settings_inputs(self) -> list[Any]:
        return [self.system, self.specials_as_text, self.grounding, self.n_sources, self.fetch_pages]

    def lock_outputs(self) -> list[Any]:
        """What a replay locks and Edit and run unlocks."""
        return [*self.inputs(), self.tokenize_btn, self.add_btn, self.blind, self.run_btn, self.edit_btn,
                self.banner, self.settings]

    def editable(self, on: bool, banner: str = "") -> dict[Any, Any]:
        """Every setting editable and Run shown (on), or read-only with Edit and run in Run's place."""
        updates = {c: gr.update(interactive=on) for c in (*self.inputs(), self.tokenize_btn, self.add_btn,
                                                         self.blind)}
        # Hidden and disabled: Ctrl+Enter (assets/shortcuts.js) clicks only an enabled, visible Run.
        updates[self.run_btn] = gr.update(visible=on, interactive=on)
        updates[self.edit_btn] = gr.update(visible=not on)
        updates[self.banner] = "" if on else banner
        return updates

    def show(self, record: Run) -> dict[Any, Any]:
        """The prompt and settings a saved run was made with, grounding included (from its record)."""
        search = record.search
        grounding = {"local": "local corpus", "web": "web"}.get(search.provider, "off") if search else "off"
        # The record keeps the sources found, not the number asked for: show what it got.
        n = min(max(len(search.results), 1), 10) if search else 5
        fetch = bool(search and any(s.text for s in search.results))
        label = settings_label(record.system_prompt, record.specials_as_text, grounding, n, fetch)
        return {
            self.prompt: record.prompt, self.system: record.system_prompt,
            self.specials_as_text: record.specials_as_text, self.grounding: grounding, self.n_sources: n,
            self.fetch_pages: fetch, self.settings: gr.update(label=label),
        }


def settings_label(system: str | None, specials: bool, grounding: str | None, n: float | None,
                   fetch: bool) -> str:
    """The Settings accordion's label: what is set, readable without opening it."""
    parts = [f"system prompt: “{_short(system)}”" if (system or "").strip() else "no system prompt"]
    ground = grounding or "off"
    if ground != "off":
        ground += f", {int(n or 0)} sources" + (", page text" if fetch and ground == "web" else "")
    parts.append(f"grounding: {ground}")
    if specials:
        parts.append("special-token strings as text")
    return "Settings · " + " · ".join(parts)


def _short(text: str | None, limit: int = 40) -> str:
    flat = " ".join((text or "").split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def replay_banner(record: Run) -> str:
    """The banner over a replayed run: read-only, and how to make a new run from it."""
    return ('<div class="pg-replay-banner" role="status"><b>Replay of a saved run — read-only.</b> '
            f"Run {html.escape(record.id)} from {html.escape(H.when(record.created_at))}: the controls show "
            "the settings it ran with. <b>Edit and run</b> copies them into a new run you can change.</div>")


def build_prompt_area() -> PromptArea:
    """A compact prompt bar (prompt, Run, Stop) and one settings row; the columns follow right under it."""
    banner = gr.HTML("", elem_id="replay-banner", padding=False)
    with gr.Row(elem_id="prompt-bar", equal_height=False):
        prompt = gr.Textbox(label="Prompt", lines=2, max_lines=8, elem_id="prompt", scale=1,
                            placeholder="Ask something… (Ctrl+Enter runs)")
        with gr.Column(scale=0, min_width=170, elem_id="run-box"):
            run_btn = gr.Button("Run ▶", variant="primary", elem_id="run-btn")
            edit_btn = gr.Button("Edit and run ✎", variant="primary", visible=False, elem_id="edit-btn")
            stop_btn = gr.Button("Stop ■", variant="stop", interactive=False, elem_id="stop-btn", size="sm")
    with gr.Row(elem_id="settings-row", equal_height=False):
        with gr.Column(scale=3, min_width=320), gr.Accordion(
                settings_label("", False, "off", 5, False), open=False, elem_id="settings-box") as settings:
            system = gr.Textbox(label="System prompt (used where the model has a chat template)",
                                lines=1, max_lines=6, elem_id="system")
            specials_as_text = gr.Checkbox(
                False, label="Treat special-token strings in my text (e.g. <|im_end|>) as plain text",
                elem_id="specials-as-text")
            with gr.Row():
                grounding = gr.Radio(list(GROUNDING_CHOICES), value="off", elem_id="grounding",
                                     label="Grounding: one search, the same numbered sources for every "
                                     "model")
                n_sources = gr.Slider(1, 10, value=5, step=1, label="Sources", elem_id="n-sources")
                fetch_pages = gr.Checkbox(False, label="Fetch page text of the top results (web)",
                                          elem_id="fetch-pages")
            found = examples()
            if found:
                gr.Examples(found, inputs=[prompt], label="Example prompts")
        with gr.Row(scale=2, elem_id="run-options", equal_height=True):
            tokenize_btn = gr.Button("Tokenize only", size="sm", elem_id="tokenize-btn", scale=0,
                                     min_width=120)
            add_btn = gr.Button("+ Add column", size="sm", elem_id="add-btn", scale=0, min_width=120)
            blind = build_blind_toggle()
    return PromptArea(prompt, system, specials_as_text, grounding, n_sources, fetch_pages, run_btn, stop_btn,
                      tokenize_btn, add_btn, blind, edit_btn=edit_btn, banner=banner, settings=settings)


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
               # the last run's link, Copy, Run again, Export, Reports, Delete: off until this one is saved
               **bar.updates(None),
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

    def follow_up(data: dict[Any, Any], request: gr.Request) -> Iterator[dict[Any, Any]]:
        """The next turn of the saved run shown: every column continues its own conversation."""
        text, repaired = clean_text(data[bar.follow_text] or "")
        if not text.strip():
            yield {notice: H.notice("the follow-up is empty: type something to send to every column",
                                    "error")}
            return
        try:
            saved, turn = service.follow_up_request(data[bar.current_id], text)
        except SessionError as exc:
            yield {notice: H.notice(str(exc), "error")}
            return
        chosen = columns.chosen(data)
        if len(chosen) != len(turn.columns):  # the page shows another set of columns: use the run's own
            chosen = list(range(min(len(turn.columns), columns.size)))
            turn.columns = turn.columns[: len(chosen)]
            for earlier in turn.history:
                earlier.models = earlier.models[: len(chosen)]
        yield {bar.follow_text: ""}
        note = REPAIRED_NOTICE if repaired else ""
        blind = page.blind.begin(False, chosen)
        yield from execute(turn, chosen, tab_key(request), owner_of(request, data[shell.owner]), note=note,
                           blind=blind)

    def stop_all(request: gr.Request) -> dict[Any, Any]:
        stopped = service.stop(tab_key(request))
        return {notice: H.notice("stopping…" if stopped else "nothing is running")}

    def edit_and_run(run_id: str) -> dict[Any, Any]:
        """Leave the replay: its settings stay in the controls, now editable, for a new run."""
        message = (f"editing a copy of run {run_id}'s settings: change anything, then Run "
                   "(the saved run stays as it is)" if run_id else "the controls are editable again")
        return {**page.editable(True), notice: H.notice(message)}

    run_inputs = {*area.inputs(), *columns.inputs(), shell.owner, area.blind}
    outputs = page.run_outputs()
    refresh = bar.refresh_history(shell)
    # One progress indicator: each column's own status line says what it is doing, the notice counts
    # time; Gradio's spinners over every output would stack over the columns' text.
    progress = {"show_progress": "minimal", "show_progress_on": [notice]}
    area.run_btn.click(run_all, inputs=run_inputs, outputs=outputs, concurrency_limit=4,
                       **progress).then(**refresh)
    area.tokenize_btn.click(tokenize_all, inputs=run_inputs, outputs=[*outputs, page.tokens.box],
                            concurrency_limit=4, **progress)
    bar.again_btn.click(run_again, inputs=[bar.current_id, shell.owner], outputs=page.show_outputs(),
                        concurrency_limit=4, **progress).then(**refresh)
    follow_inputs = {*columns.inputs(), shell.owner, bar.current_id, bar.follow_text}
    for trigger in (bar.follow_btn.click, bar.follow_text.submit):
        trigger(follow_up, inputs=follow_inputs, outputs=outputs, concurrency_limit=4,
                **progress).then(**refresh)
    area.stop_btn.click(stop_all, outputs=[notice], queue=False)
    # The URL's ?session= would reopen the replay on reload: drop it once the user edits.
    area.edit_btn.click(edit_and_run, inputs=[bar.current_id], outputs=[*page.lock_outputs(), notice],
                        queue=False, js=DROP_SESSION_JS)
    for control in area.settings_inputs():
        control.change(lambda *values: gr.update(label=settings_label(*values)),
                       inputs=area.settings_inputs(), outputs=[area.settings], queue=False,
                       show_progress="hidden")
