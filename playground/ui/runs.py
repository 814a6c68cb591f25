"""The run buttons over the whole page: Run, Stop, Tokenize only, Run again, Edit and run, follow-ups.

A thin caller of the run service: it reads the page into a RunRequest, lets the
service search, start, stream and save, and draws the record as it fills.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import gradio as gr

from playground.record import Run
from playground.requests import RequestError, RunRequest
from playground.service import SessionError
from playground.ui import html as H
from playground.ui.blind import BlindView
from playground.ui.page import owner_of, tab_key
from playground.ui.runner import GROUNDING_CHOICES, search_options, settings_label
from playground.ui.text import REPAIRED_NOTICE, clean_text
from playground.ui.whole_page import Page
from playground.wording import plural

STREAM_INTERVAL_S = 0.08  # at most ~12 page updates a second while tokens stream
# Edit and run: drop ?session= from the address (a reload would reopen the read-only replay).
DROP_SESSION_JS = """(runId) => {
  const url = new URL(window.location.href);
  if (url.searchParams.has('session')) {
    url.searchParams.delete('session');
    window.history.replaceState(window.history.state, '', url.toString());
  }
  return runId;
}"""
# A follow-up sent from a replay (?session=OLD in the address): the address names the new turn, so a reload
# or a copied address opens the conversation as it is now.
# Read from the share link box ("?session=ID"): a gr.State never reaches the browser.
SESSION_URL_JS = """(link) => {
  const url = new URL(window.location.href);
  const runId = link ? new URL(link, window.location.href).searchParams.get('session') : '';
  if (runId && url.searchParams.has('session') && url.searchParams.get('session') !== runId) {
    url.searchParams.set('session', runId);
    window.history.replaceState(window.history.state, '', url.toString());
  }
  return link;
}"""


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
               notice: H.notice(f"running {plural(len(chosen), 'column')}…")}
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
               columns.loaded: page.pool_line(), **columns.wall_line(record),
               **area.settings_update(record, blind is not None),
               **bar.updates(record if outcome.saved_id else None), **page.evidence(record),
               **page.follow_shown(record if outcome.saved_id else None),
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
        message = (f"tokenized for {plural(len(chosen), 'column')}; {plural(flagged, 'anomaly')} flagged; "
                   "nothing was generated" + (f"; {REPAIRED_NOTICE}" if repaired else ""))
        yield {**columns.draw(record, chosen, set(range(len(chosen))), {}), **columns.wall_line(None),
               **page.tokens.render(record), shell.shown: record, page.tokens.box: gr.update(open=True),
               **area.settings_update(record),
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
        # A follow-up from a replay leaves it: the banner and Edit and run go, the controls are editable, and
        # the prompt box shows this turn's prompt (what a replay of the new run shows), not turn 1.
        yield {**page.editable(True), bar.follow_text: "",
               area.prompt: gr.update(value=text, interactive=True)}
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
    follow_outputs = list(dict.fromkeys([*outputs, *page.lock_outputs()]))
    for trigger in (bar.follow_btn.click, bar.follow_text.submit):
        sent = trigger(follow_up, inputs=follow_inputs, outputs=follow_outputs, concurrency_limit=4,
                       **progress)
        sent.then(**refresh).then(None, inputs=[bar.share_link], js=SESSION_URL_JS)
    area.stop_btn.click(stop_all, outputs=[notice], queue=False)
    # The URL's ?session= would reopen the replay on reload: drop it once the user edits.
    area.edit_btn.click(edit_and_run, inputs=[bar.current_id], outputs=[*page.lock_outputs(), notice],
                        queue=False, js=DROP_SESSION_JS)
    for control in area.settings_inputs():
        control.change(lambda *values: gr.update(label=settings_label(*values)),
                       inputs=area.settings_inputs(), outputs=[area.settings], queue=False,
                       show_progress="hidden")
