"""The Gradio page: composes the parts of the page around one RunService, and serves it.

Each part lives beside its renderer and wires its own events: columns.py (model
columns), runner.py (the prompt area), runs.py (Run / Stop / Tokenize only / Run again),
session_bar.py (share link, export, import, delete, history), one module per
evidence panel, api.py (the /compare endpoint); whole_page.py holds them all and draws a
whole run from its record (`Page.show`). This module only lays them out and launches the
server; no part imports it back.

Gradio and the page's parts are imported when the page is built, not with this module:
`serve` starts loading the default models first (playground/startup.py), and the page
is built while they load.
"""

from __future__ import annotations

import errno
import html
import os
import signal
import socket
from pathlib import Path
from typing import TYPE_CHECKING, Any

from playground.config import Settings

if TYPE_CHECKING:
    import gradio as gr

    from playground.engine import Engine
    from playground.service import RunService
    from playground.sessions.store import SessionStore
    from playground.startup import Startup

ASSETS = Path(__file__).resolve().parent.parent.parent / "assets"
# The most the page build waits for the default models' loads to finish (they run faster alone).
HEAD_START_S = 6.0
# The section bar under the title: every panel below the columns one click away (link -> the panel's
# accordion, opened and scrolled to; assets/style.css keeps the bar on screen).
SECTIONS = (("tokens-box", "Tokens"), ("attn-box", "Attention"), ("probs-box", "Probabilities"),
            ("diff-box", "Compare outputs"), ("sources-box", "Sources"), ("batch-box", "Batches & routing"),
            ("history-box", "History"), ("leaderboard-box", "Leaderboard"))
SECTIONS_JS = """
document.addEventListener('click', (event) => {
  const link = event.target.closest && event.target.closest('a[data-pg-section]');
  if (!link) return;
  event.preventDefault();
  const box = document.getElementById(link.dataset.pgSection);
  if (!box) return;
  const label = box.querySelector('button.label-wrap');
  if (label && !label.classList.contains('open')) label.click();
  box.scrollIntoView({ block: 'start' });
});
"""
# Gradio copies every file it serves (an export) into its cache: sweep it every 10 minutes, removing
# copies older than an hour, so a long-running server does not fill its disk.
DELETE_CACHE = (600, 3600)


def build_page(service: RunService) -> gr.Blocks:
    """Lay the parts out in page order, then wire each one."""
    import gradio as gr

    from playground.ui.api import add_compare_endpoint
    from playground.ui.arena import build_arena
    from playground.ui.attention_view import build_attention_panel
    from playground.ui.batch_history import wire_history_follows_batches
    from playground.ui.batch_view import build_batch_panel
    from playground.ui.blind import build_blind_panel
    from playground.ui.columns import build_columns
    from playground.ui.diff_view import build_compare_panel
    from playground.ui.follow_up import build_follow_up
    from playground.ui.leaderboard_view import build_leaderboard_panel
    from playground.ui.page import build_shell
    from playground.ui.prob_view import build_probs_panel
    from playground.ui.runner import build_prompt_area
    from playground.ui.runs import wire_runs
    from playground.ui.session_bar import build_history, build_session_bar
    from playground.ui.sources_view import build_sources_panel
    from playground.ui.token_view import build_tokens_panel
    from playground.ui.whole_page import Page

    # Page order: the title and the section bar, a compact prompt bar and one settings row (the shared
    # parameters in it), the share bar, the notice, then the columns (visible without scrolling on a laptop
    # screen), then the follow-up (once a run answered) and the panels the section bar links to.
    with gr.Blocks(title="playground: compare language models", delete_cache=DELETE_CACHE,
                   fill_width=True) as demo:
        with gr.Row(elem_id="pg-top", equal_height=True):
            gr.Markdown("### playground · one prompt, several models, side by side", elem_id="pg-title")
            gr.HTML(sections_html(), elem_id="sections", padding=False)
        device = service.device
        prompt = build_prompt_area(device)
        bar = build_session_bar()
        shell = build_shell(service)
        rerun_report = gr.HTML(elem_id="rerun-report", padding=False)
        columns = build_columns(service.settings, service.catalog, prompt.shared, device)
        blind = build_blind_panel(prompt.blind, columns.size, [slot.model for slot in columns.slots])
        arena = build_arena(columns.size)  # Battle / Next under the vote box (playground/ui/arena.py)
        follow_row = build_follow_up(bar)
        page = Page(shell, prompt, columns, bar, rerun_report, build_tokens_panel(), build_attention_panel(),
                    build_probs_panel(), build_sources_panel(), build_compare_panel(), blind=blind,
                    follow_row=follow_row)
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
        wire_history_follows_batches(batches.batch_id, batches.timer, bar.refresh_history(shell))
        batches.rules.wire(service, batches.result)
        blind.wire(page, leaderboard.after_vote(service))
        arena.wire(shell, prompt, columns, blind)
        add_compare_endpoint(service)
    return demo


def sections_html() -> str:
    """The section bar's links (fixed text: nothing typed goes into it)."""
    links = "".join(f'<a href="#{box}" data-pg-section="{box}" id="goto-{box.removesuffix("-box")}">'
                    f"{html.escape(name)}</a>" for box, name in SECTIONS)
    return f'<nav class="pg-sections" aria-label="Sections below the columns">{links}</nav>'


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
    return {"css": css, "head": f"<script>{js}\n{SECTIONS_JS}</script>", "theme": gr.themes.Soft()}


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
    from playground.startup import Startup

    startup = Startup()
    startup.mark("playground imported")
    from playground.service import RunService  # the engine: torch and transformers

    startup.mark("torch, transformers imported")
    service = RunService(settings)
    startup.mark("engine built")
    if settings.preload:
        service.preload(startup)
    return service, startup


def _interrupt(_signum: int, _frame: object) -> None:
    """SIGTERM ends the server like Ctrl+C does, so the exports are cleaned up on the way out."""
    raise KeyboardInterrupt
