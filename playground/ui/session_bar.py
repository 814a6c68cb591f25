"""The session bar and the history: share link, Run again, export, reports, import, delete, saved runs.

Every run belongs to whoever made it (the login name under --auth, else a random
id kept in the browser): History lists one's own runs (everyone's with shared
history) and only the owner may delete a run, while a share link opens for anyone.
An export or a report (HTML or Markdown) is written only when asked for, into a
temporary folder of its own that the service removes after a while.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import gradio as gr

from playground.record import Run
from playground.service import BundleError, RunService, SessionError
from playground.ui import html as H
from playground.ui.history_html import history_html
from playground.ui.page import Shell, login_name, new_browser_id, owner_of, valid_browser_id

if TYPE_CHECKING:
    from playground.ui.columns import Columns

HISTORY_ROWS = 50
# Copy the full permalink (this page's address + ?session=ID) and show it in the link box.
COPY_LINK_JS = """(link) => {
  if (!link) return link;
  const url = new URL(link, window.location.href);
  url.hash = '';
  if (navigator.clipboard) { navigator.clipboard.writeText(url.toString()).catch(() => {}); }
  return url.toString();
}"""
# Save the export the server has just written (Gradio's file URL) under its own name.
DOWNLOAD_JS = """(file) => {
  if (file && file.url) {
    const a = document.createElement('a');
    a.href = file.url;
    a.download = file.orig_name || 'playground-run.json';
    document.body.appendChild(a);
    a.click();
    a.remove();
  }
  return [];
}"""
# Runs before the handler, in the browser: the answer goes in the hidden `confirmed` box, "no" deletes
# nothing. (Not in the id: the run shown is a gr.State, kept on the server, which a script cannot change.)
# The API runs no script: there an empty id means no saved run is shown in that session.
DECLINED = "no"
CONFIRM_DELETE_JS = f"""(id, owner, query, confirmed, batchRuns) => [id, owner, query,
  confirm('Delete this saved run? Its link will stop working.') ? 'yes' : '{DECLINED}', batchRuns]"""
NO_RUN_SHOWN = ("no saved run is shown in this session: open one (its share link or History) first; "
                "through the API, /compare returns the id of the run it saved")


class Page(Protocol):
    """What the session bar needs of the whole page (playground/ui/whole_page.py's Page): named here,
    as a protocol, because the page is built from this part: importing it back would close a circle."""

    shell: Shell
    columns: Columns

    def pool_line(self) -> str: ...

    def show(self, record: Run, message: str, replay: bool = False) -> dict[Any, Any]: ...

    def show_outputs(self) -> list[Any]: ...


@dataclass
class SessionBar:
    current_id: Any  # gr.State: the id of the saved run shown ("" when none)
    share_link: Any
    copy_btn: Any
    again_btn: Any
    export_btn: Any
    export_file: Any  # hidden DownloadButton: the file written on the last Export click
    import_btn: Any
    delete_btn: Any
    confirmed: Any = None  # hidden Textbox: the answer to Delete's confirmation ("yes" / "no")
    report_html_btn: Any = None  # "Report (HTML)": one self-contained page, written on click
    report_md_btn: Any = None  # "Report (Markdown)": for an issue tracker
    history_query: Any = None
    history_btn: Any = None
    history: Any = None
    history_batch_runs: Any = None  # "Show batch runs": list a batch's runs one by one too
    follow_text: Any = None  # the follow-up box under the columns (playground/ui/follow_up.py)
    follow_btn: Any = None

    @property
    def outputs(self) -> list[Any]:
        follow = [c for c in (self.follow_text, self.follow_btn) if c is not None]
        return [self.current_id, self.share_link, self.copy_btn, self.again_btn, self.delete_btn,
                self.export_btn, self.report_html_btn, self.report_md_btn, *follow]

    def updates(self, record: Run | None) -> dict[Any, Any]:
        """The bar for a saved run (or none). No file is written here: Export writes it on click."""
        saved = record is not None
        run_id = record.id if saved else ""
        return {
            self.current_id: run_id,
            self.share_link: f"?session={run_id}" if saved else "",
            self.copy_btn: gr.update(interactive=saved),
            self.again_btn: gr.update(interactive=saved),
            self.delete_btn: gr.update(interactive=saved),
            self.export_btn: gr.update(interactive=saved),
            self.report_html_btn: gr.update(interactive=saved),
            self.report_md_btn: gr.update(interactive=saved),
            # a follow-up continues the saved run shown; none while a run streams or nothing is saved
            **({self.follow_text: gr.update(interactive=saved), self.follow_btn: gr.update(interactive=saved)}
               if self.follow_btn is not None else {}),
        }

    def delete_allowed(self, service: RunService, run_id: str, owner: str) -> dict[Any, Any]:
        """Delete only for whoever may delete the run shown (its owner; anyone with shared history): a
        replay of someone else's run keeps it disabled, rather than failing on click."""
        return {self.delete_btn: gr.update(interactive=service.may_delete(run_id, owner))}

    def listing(self, shell: Shell, owner: str, query: str = "", batch_runs: bool = False) -> str:
        """The owner's saved runs (everyone's with shared history) and one entry per batch, newest first;
        a batch's own runs only with `batch_runs`. Notes unreadable rows."""
        query = query or ""
        found = shell.service.history(owner, query, limit=HISTORY_ROWS, batch_runs=batch_runs)
        batches = shell.service.list_batches(owner, HISTORY_ROWS, query)
        return history_html(found, batches, query, shell.service.shared_history, batch_runs, HISTORY_ROWS)

    def wire(self, page: Page, demo: gr.Blocks) -> None:
        shell = page.shell
        service = shell.service
        notice = shell.notice

        def open_page(browser_id: object, request: gr.Request) -> dict[Any, Any]:
            """First load: give a new browser its owner id, list its runs, open a share link."""
            updates: dict[Any, Any] = {page.columns.loaded: page.pool_line()}
            if not valid_browser_id(browser_id) and not login_name(request):
                browser_id = new_browser_id()
                updates[shell.owner] = browser_id
            owner = owner_of(request, browser_id)
            updates[self.history] = self.listing(shell, owner)
            session = (request.query_params.get("session") or "").strip()
            if not session:
                return updates
            try:
                record = service.get(session)
            except SessionError as exc:
                return updates | {notice: H.notice(str(exc), "error")}
            return updates | page.show(
                record, f"Replay of saved run {record.id} ({H.when(record.created_at)}), drawn from the "
                "saved record: no model was run. “Run again” re-executes it and compares.", replay=True
            ) | self.delete_allowed(service, record.id, owner)

        def import_file(path: str | None, browser_id: object, request: gr.Request) -> dict[Any, Any]:
            if not path or not isinstance(path, str):  # only through the API: the page sends a file
                raise gr.Error("give a run file (JSON, from Export) to import")
            owner = owner_of(request, browser_id)
            try:
                imported = service.import_file(path, owner)
            except (BundleError, OSError) as exc:
                return {notice: H.notice(f"import refused: {exc}. Nothing was stored.", "error")}
            record = imported.run
            message = (f"Imported run {record.id}: shown from the file's record and saved to history; "
                       "no model was run.")
            if imported.renamed_from:
                message = (f"a saved run already has the id {imported.renamed_from}; this import was stored "
                           f"as {record.id} (the saved run was left untouched). {message}")
            return page.show(record, message, replay=True) | {self.history: self.listing(shell, owner)}

        def export_run(run_id: str) -> dict[Any, Any]:
            """Write the export now (nothing is written before a click); no file, nothing downloads."""
            if not run_id:
                return {notice: H.notice("show a saved run first", "warn"), self.export_file: None}
            try:
                path = service.export_file(run_id)
            except (SessionError, BundleError) as exc:  # deleted meanwhile; saved before today's limits
                return {notice: H.notice(str(exc), "error"), self.export_file: None}
            return {self.export_file: str(path)}

        def report_run(run_id: str, fmt: str) -> dict[Any, Any]:
            """Write the report now, like an export (own temporary folder, removed later)."""
            if not run_id:
                return {notice: H.notice("show a saved run first", "warn"), self.export_file: None}
            try:
                path = service.report_file(run_id, fmt)
            except SessionError as exc:  # e.g. deleted meanwhile
                return {notice: H.notice(str(exc), "error"), self.export_file: None}
            return {self.export_file: str(path)}

        def delete_run(run_id: str, browser_id: object, query: str, confirmed: str, batch_runs: object,
                       request: gr.Request) -> dict[Any, Any]:
            if confirmed == DECLINED:  # nothing changes (an empty dict of updates would be an error)
                return {notice: gr.update()}
            if not run_id or not isinstance(run_id, str):
                raise gr.Error(NO_RUN_SHOWN)
            owner = owner_of(request, browser_id)
            try:
                gone = service.delete(run_id, owner)
            except SessionError as exc:
                return {notice: H.notice(str(exc), "error")}
            message = f"deleted run {run_id}" if gone else f"run {run_id} was already deleted"
            query = query if isinstance(query, str) else ""
            listing = self.listing(shell, owner, query, batch_runs is True)  # as the filter was set
            return self.updates(None) | {notice: H.notice(message), self.history: listing}

        demo.load(open_page, inputs=[shell.owner], outputs=[*page.show_outputs(), shell.owner, self.history],
                  show_progress="hidden")
        self.copy_btn.click(None, inputs=[self.share_link], outputs=[self.share_link], js=COPY_LINK_JS)
        self.import_btn.upload(import_file, inputs=[self.import_btn, shell.owner],
                               outputs=[*page.show_outputs(), self.history])
        written = self.export_btn.click(export_run, inputs=[self.current_id],
                                        outputs=[self.export_file, notice])
        written.success(None, inputs=[self.export_file], js=DOWNLOAD_JS)  # then the browser saves it
        for button, fmt in ((self.report_html_btn, "html"), (self.report_md_btn, "markdown")):
            reported = button.click(lambda run_id, fmt=fmt: report_run(run_id, fmt), inputs=[self.current_id],
                                    outputs=[self.export_file, notice])
            reported.success(None, inputs=[self.export_file], js=DOWNLOAD_JS)
        self.delete_btn.click(delete_run,
                              inputs=[self.current_id, shell.owner, self.history_query, self.confirmed,
                                      self.history_batch_runs],
                              outputs=[*self.outputs, notice, self.history], js=CONFIRM_DELETE_JS)
        refresh = self.refresh_history(shell)
        self.history_btn.click(**refresh)
        self.history_query.submit(**refresh)
        self.history_batch_runs.input(**refresh)

    def refresh_history(self, shell: Shell) -> dict[str, Any]:
        """Event arguments that redraw the history (chained after a run saved one)."""
        def search_history(query: str, browser_id: object, batch_runs: object, request: gr.Request) -> str:
            return self.listing(shell, owner_of(request, browser_id), query, batch_runs is True)

        inputs = [self.history_query, shell.owner, self.history_batch_runs]
        return {"fn": search_history, "inputs": inputs, "outputs": [self.history]}


def build_session_bar() -> SessionBar:
    """The bar above the columns (the history accordion comes later: build_history)."""
    with gr.Row(elem_id="session-bar", equal_height=True):
        share_link = gr.Textbox(show_label=False, container=False, interactive=False, scale=4,
                                elem_id="share-link", placeholder="share link: run something to save it")
        copy_btn = gr.Button("Copy link", size="sm", interactive=False, elem_id="copy-btn", scale=0,
                             min_width=100)
        again_btn = gr.Button("Run again", size="sm", interactive=False, elem_id="again-btn", scale=0,
                              min_width=100)
        export_btn = gr.Button("Export JSON", size="sm", interactive=False, elem_id="export-btn", scale=0,
                               min_width=110)
        report_html_btn = gr.Button("Report (HTML)", size="sm", interactive=False, elem_id="report-html-btn",
                                    scale=0, min_width=120)
        report_md_btn = gr.Button("Report (Markdown)", size="sm", interactive=False, elem_id="report-md-btn",
                                  scale=0, min_width=140)
        export_file = gr.DownloadButton("download", visible=False, elem_id="export-file")
        import_btn = gr.UploadButton("Import JSON", size="sm", file_types=[".json"], elem_id="import-btn",
                                     scale=0, min_width=110)
        delete_btn = gr.Button("Delete run", size="sm", variant="stop", interactive=False,
                               elem_id="delete-btn", scale=0, min_width=100)
        confirmed = gr.Textbox("", visible=False, elem_id="delete-confirmed")
    return SessionBar(gr.State(""), share_link, copy_btn, again_btn, export_btn, export_file, import_btn,
                      delete_btn, confirmed, report_html_btn=report_html_btn, report_md_btn=report_md_btn)


def build_history(bar: SessionBar) -> None:
    """The History accordion under the panels: search box, the batch-runs filter and the list."""
    with gr.Accordion("History", open=False, elem_id="history-box"):
        with gr.Row(equal_height=True):
            bar.history_query = gr.Textbox(label="Search prompts and outputs", elem_id="history-search",
                                           scale=4)
            bar.history_batch_runs = gr.Checkbox(False, label="Show batch runs", scale=1, min_width=150,
                                                 elem_id="history-batch-runs")
            bar.history_btn = gr.Button("Search", scale=0, min_width=100, elem_id="history-btn")
        bar.history = gr.HTML(elem_id="history")
