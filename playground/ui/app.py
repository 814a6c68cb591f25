"""The Gradio page: composes the parts of the page around one RunService, and serves it.

Each part lives beside its renderer and wires its own events: columns.py (model
columns), runner.py (prompt area, Run / Stop / Tokenize only / Run again),
session_bar.py (share link, export, import, delete, history), one module per
evidence panel, api.py (the /compare endpoint). This module only lays them out,
draws a whole run from its record (`Page.show`), and launches the server.

Gradio and the page's parts are imported when the page is built, not with this module:
`serve` starts loading the default models first (playground/startup.py), and the page
is built while they load.
"""

from __future__ import annotations

import errno
import os
import signal
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from playground.config import Settings
from playground.record import Run
from playground.ui import html as H

if TYPE_CHECKING:
    import gradio as gr

    from playground.engine import Engine
    from playground.service import RunService
    from playground.sessions.store import SessionStore
    from playground.startup import Startup
    from playground.ui.attention_view import AttentionPanel
    from playground.ui.blind import BlindPanel
    from playground.ui.columns import Columns
    from playground.ui.diff_view import ComparePanel
    from playground.ui.page import Shell
    from playground.ui.prob_view import ProbsPanel
    from playground.ui.runner import PromptArea
    from playground.ui.session_bar import SessionBar
    from playground.ui.sources_view import SourcesPanel
    from playground.ui.token_view import TokensPanel

ASSETS = Path(__file__).resolve().parent.parent.parent / "assets"
# The most the page build waits for the default models' loads to finish (they run faster alone).
HEAD_START_S = 6.0
# Gradio copies every file it serves (an export) into its cache: sweep it every 10 minutes, removing
# copies older than an hour, so a long-running server does not fill its disk.
DELETE_CACHE = (600, 3600)


@dataclass
class Page:
    """Every part of the page, so that a run can be drawn into all of them from its record."""

    shell: Shell
    prompt: PromptArea
    columns: Columns
    bar: SessionBar
    rerun_report: Any
    tokens: TokensPanel
    attention: AttentionPanel
    probs: ProbsPanel
    sources: SourcesPanel
    compare: ComparePanel
    blind: BlindPanel | None = None

    @property
    def panels(self) -> list[Any]:
        return [self.tokens, self.attention, self.probs, self.compare, self.sources]

    def pool_line(self) -> str:
        from playground.ui.columns import pool_html

        return pool_html(self.shell.service.engine)

    def evidence(self, record: Run | None) -> dict[Any, Any]:
        """Every inspection panel for a run, drawn from its record (which becomes the run shown)."""
        if record is None:
            return {}
        updates: dict[Any, Any] = {self.shell.shown: record}
        for panel in self.panels:
            updates.update(panel.render(record))
        return updates

    def show(self, record: Run, message: str, replay: bool = False) -> dict[Any, Any]:
        """Draw a saved run into the whole page from its record alone (no model is touched).

        A replay (a share link, an import) is read-only: a banner says so, every setting shows what the
        run was made with and cannot be changed, and Edit and run takes Run's place."""
        from playground.ui.runner import replay_banner

        columns, note = self.columns.show(record)
        drawn = {
            **self.prompt.show(record), **columns,
            self.shell.notice: H.notice(message + note), self.rerun_report: "",
            **self.bar.updates(record), **self.evidence(record),
        }
        if self.blind:  # merged: a blind replay takes the pickers off the page, keeping their values
            drawn = merge_updates(drawn, self.blind.replay(self, record))
        return merge_updates(drawn, self.editable(not replay, replay_banner(record) if replay else ""))

    def editable(self, on: bool, banner: str = "") -> dict[Any, Any]:
        """The settings editable with Run (on), or locked under the replay banner with Edit and run."""
        return {**self.prompt.editable(on, banner), **self.columns.editable(on)}

    def lock_outputs(self) -> list[Any]:
        return [*self.prompt.lock_outputs(), *self.columns.lock_outputs()]

    def run_outputs(self) -> list[Any]:
        """What a run may update while it streams and when it ends."""
        area = self.prompt
        return [area.run_btn, area.stop_btn, area.prompt, area.system, self.shell.notice, self.shell.shown,
                self.columns.loaded, self.rerun_report, *self.bar.outputs, *self.columns.outputs(),
                *(c for panel in self.panels for c in panel.outputs),
                *(self.blind.outputs if self.blind else [])]

    def show_outputs(self) -> list[Any]:
        """What drawing a saved run may update: a run's outputs, the columns' set-up and the locks."""
        return list(dict.fromkeys([*self.run_outputs(), *self.columns.fill_outputs(), *self.lock_outputs()]))


def merge_updates(first: dict[Any, Any], then: dict[Any, Any]) -> dict[Any, Any]:
    """Both sets of updates: a component in both gets the second's properties on top of the first's value
    (a plain dict merge would drop the value, e.g. a replayed setting when it is also locked)."""
    merged = dict(first)
    for component, update in then.items():
        before = merged.get(component)
        if component in merged and isinstance(update, dict):
            base = dict(before) if isinstance(before, dict) else {"value": before}
            merged[component] = {**base, **update}
        else:
            merged[component] = update
    return merged


def build_page(service: RunService) -> gr.Blocks:
    """Lay the parts out in page order, then wire each one."""
    import gradio as gr

    from playground.ui.api import add_compare_endpoint
    from playground.ui.attention_view import build_attention_panel
    from playground.ui.batch_view import build_batch_panel
    from playground.ui.blind import build_blind_panel
    from playground.ui.columns import build_columns
    from playground.ui.diff_view import build_compare_panel
    from playground.ui.follow_up import build_follow_up
    from playground.ui.leaderboard_view import build_leaderboard_panel
    from playground.ui.page import build_shell
    from playground.ui.prob_view import build_probs_panel
    from playground.ui.runner import build_prompt_area, wire_runs
    from playground.ui.session_bar import build_history, build_session_bar
    from playground.ui.sources_view import build_sources_panel
    from playground.ui.token_view import build_tokens_panel

    # Page order: a compact prompt bar and one settings row, the share bar, the notice, then the columns
    # (visible without scrolling on a laptop screen), then the evidence panels that read the run.
    with gr.Blocks(title="playground: compare language models", delete_cache=DELETE_CACHE,
                   fill_width=True) as demo:
        gr.Markdown("### playground · one prompt, several models, side by side", elem_id="pg-title")
        prompt = build_prompt_area()
        bar = build_session_bar()
        shell = build_shell(service)
        rerun_report = gr.HTML(elem_id="rerun-report", padding=False)
        columns = build_columns(service.settings, service.engine)
        build_follow_up(bar)
        blind = build_blind_panel(prompt.blind, columns.size, [slot.model for slot in columns.slots])
        page = Page(shell, prompt, columns, bar, rerun_report, build_tokens_panel(), build_attention_panel(),
                    build_probs_panel(), build_sources_panel(), build_compare_panel(), blind=blind)
        batches = build_batch_panel()  # prompt sets over the columns; routing rules on their results
        build_history(bar)
        leaderboard = build_leaderboard_panel()

        columns.wire(prompt.add_btn, shell.notice)
        wire_runs(page)
        bar.wire(page, demo)
        for panel in (page.tokens, page.attention, page.probs, page.sources):
            panel.wire(shell.shown)
        page.compare.wire(shell.shown, service)
        leaderboard.wire(shell)
        batches.wire(shell, prompt.system, columns, demo)
        batches.rules.wire(service, batches.result)
        blind.wire(page, leaderboard.after_vote(service))
        add_compare_endpoint(service)
    return demo


def build_app(
    settings: Settings, engine: Engine | None = None, store: SessionStore | None = None
) -> gr.Blocks:
    """Build the page. Pass an engine or store to share them with a caller (tests do); without an
    engine, the one for a web server (allow-list, redacted paths) is built."""
    from playground.service import RunService

    return build_page(RunService(settings, engine=engine, store=store))


def launch_kwargs() -> dict[str, Any]:
    import gradio as gr

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


class ServeError(OSError):
    """The server cannot listen where it was asked to: one sentence for the command line."""


def port_taken(host: str, port: int) -> str:
    """Why (host, port) cannot be listened on ('' when it can), found before anything is built."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host or "127.0.0.1", port,
                                                             type=socket.SOCK_STREAM)[0]
    except (socket.gaierror, OverflowError) as exc:
        return f"cannot listen on {host}:{port}: {exc}; check --host (PLAYGROUND_HOST) and --port"
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server will
        try:
            probe.bind(address)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return in_use(host, port)
            return (f"cannot listen on {host}:{port}: {exc.strerror or exc}; choose another --host / --port "
                    "(PLAYGROUND_HOST / PLAYGROUND_PORT)")
    return ""


def in_use(host: str, port: int) -> str:
    return (f"port {port} on {host} is already in use: choose another with --port P "
            "(or PLAYGROUND_PORT=P)")


def launch(settings: Settings) -> None:
    """Serve until interrupted (Ctrl+C or SIGTERM); say where only once the server answers.

    The default models start loading before Gradio is imported and the page built (see
    playground/startup.py), so the first Run finds them loaded."""
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    problem = port_taken(settings.host, settings.port)
    if problem:
        raise ServeError(problem)
    service, startup = _start_loading(settings)
    try:
        # Importing Gradio and building the page is ~2.5 s of Python that would share the GIL with
        # the loads: let the loads go first, unless they turn out to be slow (see startup.py).
        startup.head_start(HEAD_START_S)
        startup.mark("page build started")
        import gradio  # noqa: F401 - timed on its own

        startup.mark("gradio imported")
        demo = build_page(service)
        startup.mark("page built")
        demo.queue(default_concurrency_limit=4)
        try:
            demo.launch(prevent_thread_lock=True, quiet=True, **launch_options(settings))
        except OSError as exc:  # taken between the check and the start
            raise ServeError(in_use(settings.host, settings.port)) from exc
        try:
            where = f"http://{settings.host}:{settings.port}"
            print(f"playground: serving on {where}  (data: {settings.data_dir})", flush=True)
            startup.mark("serving")
            signal.signal(signal.SIGTERM, _interrupt)
            demo.block_thread()  # returns after Ctrl+C / SIGTERM, the server closed
        except KeyboardInterrupt:  # Ctrl+C a moment before block_thread took it over: the same clean stop
            demo.close()
    finally:
        service.close()


def _start_loading(settings: Settings) -> tuple[RunService, Startup]:
    """The engine, and the default models loading in the background (unless PLAYGROUND_PRELOAD=0)."""
    from playground.startup import Startup, default_specs

    startup = Startup()
    startup.mark("playground imported")
    from playground.service import RunService  # the engine: torch and transformers

    startup.mark("torch, transformers imported")
    service = RunService(settings)
    startup.mark("engine built")
    if settings.preload:
        startup.preload(service.engine.pool, default_specs(settings, service.engine.catalog))
    return service, startup


def _interrupt(_signum: int, _frame: object) -> None:
    """SIGTERM ends the server like Ctrl+C does, so the exports are cleaned up on the way out."""
    raise KeyboardInterrupt
