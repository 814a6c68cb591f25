"""The Sources panel as escaped HTML: the run's search snapshot and what each model cited."""

from __future__ import annotations

import html
from dataclasses import dataclass
from typing import Any

import gradio as gr

from playground.record import Run
from playground.ui.html import when as when_text
from playground.ui.token_view import column_label

LINK_SCHEMES = ("http://", "https://", "file://")


def _link(url: str, title: str) -> str:
    """A link that opens in a new tab, only for plain web/file addresses (never javascript: etc.)."""
    label = html.escape(title or url)
    if not url.lower().startswith(LINK_SCHEMES):
        return f"{label} <span class='pg-muted'>({html.escape(url)})</span>"
    return f'<a href="{html.escape(url, quote=True)}" target="_blank" rel="noopener noreferrer">{label}</a>'


def sources_html(run: Run) -> str:
    snapshot = run.search
    if snapshot is None:
        return '<span class="pg-muted">No grounding for this run (Grounding: off).</span>'
    when = when_text(snapshot.created_at)
    head = (f'<div class="pg-muted">{html.escape(snapshot.provider)} search for '
            f"“{html.escape(snapshot.query[:200])}” at {when}; every model got these sources.</div>")
    if snapshot.notice:
        head += f'<div class="pg-warn-text">{html.escape(snapshot.notice)}</div>'
    items = "".join(
        f'<li id="source-{n}" value="{n}">{_link(s.url, s.title)}<div class="pg-snippet">'
        f"{html.escape(s.snippet)}</div></li>"
        for n, s in enumerate(snapshot.results, 1)
    )
    listing = f'<ol class="pg-sources">{items}</ol>' if items else ""
    rows = []
    for model in run.models:
        cited = "cites " + ", ".join(f"[{n}]" for n in model.cited) if model.cited else "cites no source"
        row = f'<li data-column="{model.column}"><b>{html.escape(column_label(model))}</b>: {cited}'
        if model.invalid_citations:
            bad = ", ".join(f"[{n}]" for n in model.invalid_citations)
            row += f' <span class="pg-error-text">⚠ cites sources that do not exist: {bad}</span>'
        if model.grounding_notice:
            row += f' <span class="pg-muted">({html.escape(model.grounding_notice)})</span>'
        rows.append(row + "</li>")
    return f'{head}{listing}<h4>Citations</h4><ul class="pg-citations">{"".join(rows)}</ul>'


@dataclass
class SourcesPanel:
    """The run's search snapshot and citations; nothing to pick, so no events."""

    panel: Any

    @property
    def outputs(self) -> list[Any]:
        return [self.panel]

    def render(self, record: Run | None) -> dict:
        return {} if record is None else {self.panel: sources_html(record)}

    def wire(self, shown: Any) -> None:
        """Drawn with every shown run; it has no controls of its own."""


def build_sources_panel() -> SourcesPanel:
    with gr.Accordion("Sources", open=False, elem_id="sources-box"):
        panel = gr.HTML(elem_id="sources", padding=False)
    return SourcesPanel(panel)
