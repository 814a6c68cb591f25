"""The Tokens panel: token chips, paging, anomalies, cross-model table, and its wiring.

The renderers are pure functions of the run record, so a shared replay draws the
same panel; TokensPanel holds the panel's widgets and events.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from typing import Any

import gradio as gr

from playground.record import ModelRun, Run
from playground.ui.plots import CountRow, token_counts_figure

PAGE_SIZE = 400
TITLE_CHARS = 80  # characters of a token's text a tooltip quotes


@dataclass(frozen=True)
class Chip:
    token_id: int
    text: str
    raw: str
    special: bool
    part: str  # "prompt" | "output"
    logprob: float | None = None


def chips_of(model: ModelRun) -> list[Chip]:
    """Prompt tokens, then output tokens, in the order the model saw and produced them."""
    chips = [Chip(p.token_id, p.text, p.raw, p.special, "prompt") for p in model.prompt_pieces]
    chips += [Chip(s.token_id, s.text, "", s.special, "output", s.logprob) for s in model.steps]
    return chips


def page_count(model: ModelRun) -> int:
    return max(1, -(-len(chips_of(model)) // PAGE_SIZE))


def visible(text: str) -> str:
    """Whitespace made visible: · for spaces, → for tabs, ↵ for newlines, ␍ for returns."""
    shown = html.escape(text).replace(" ", "·").replace("\t", "→")
    return shown.replace("\n", "↵").replace("\r", "␍")


def short_repr(text: str, limit: int = TITLE_CHARS) -> str:
    """repr() of a token's text for a tooltip, cut after `limit` characters: a served model's step can
    be 200,000 characters, and every tooltip of a page would carry it again."""
    return repr(text) if len(text) <= limit else f"{text[:limit]!r}… ({len(text):,} characters)"


def _title(chip: Chip, index: int) -> str:
    parts = [f"#{index} · id {chip.token_id}", f"{chip.part}"]
    if chip.raw:
        parts.append(f"token {short_repr(chip.raw)}")
    parts.append(f"text {short_repr(chip.text)}")
    raw = chip.text[:TITLE_CHARS].encode("utf-8").hex(" ")
    parts.append("bytes " + ((raw + (" …" if len(chip.text) > TITLE_CHARS else "")) or "(none)"))
    if chip.special:
        parts.append("special / control token")
    if chip.logprob is not None:
        parts.append(f"logprob {chip.logprob:.3f}")
    return html.escape(" · ".join(parts), quote=True)


def chips_html(model: ModelRun, page: int = 1, highlight: int = -1) -> str:
    """One page of chips; `highlight` marks a token (e.g. the anomaly jumped to)."""
    chips = chips_of(model)
    if not chips:
        return '<span class="pg-muted">No tokens for this column (it failed before tokenizing).</span>'
    pages = page_count(model)
    page = min(max(1, page), pages)
    start = (page - 1) * PAGE_SIZE
    spans = []
    for index in range(start, min(start + PAGE_SIZE, len(chips))):
        chip = chips[index]
        classes = ["tok", f"tok-{chip.part}"]
        if chip.special:
            classes.append("tok-special")
        if index == highlight:
            classes.append("tok-highlight")
        if not chip.text and chip.raw:
            classes.append("tok-partial")  # part of a character that a later token completes
        spans.append(
            f'<span class="{" ".join(classes)}" data-i="{index}" data-id="{chip.token_id}" '
            f'data-text="{html.escape(chip.text, quote=True)}" title="{_title(chip, index)}">'
            f"{visible(chip.text) or html.escape(chip.raw) or '∅'}</span>"
            + ("<br>" if "\n" in chip.text else "")
        )
    prompt_n = len(model.prompt_pieces)
    legend = (
        f'<div class="pg-muted">{prompt_n:,} prompt tokens (blue) + {len(model.steps):,} output tokens '
        f"(green); control tokens boxed in red. Page {page} of {pages}, tokens {start}–"
        f"{min(start + PAGE_SIZE, len(chips)) - 1}. Hover a chip for its id, vocabulary form and bytes.</div>"
    )
    return f'{legend}<div class="pg-chips" data-page="{page}">{"".join(spans)}</div>'


def anomalies_html(model: ModelRun) -> str:
    caps = model.capabilities
    note = ""
    if caps.token_ids != "exact":
        text = f"tokens: {caps.token_ids}" + (f" — {caps.token_ids_note}" if caps.token_ids_note else "")
        kind = html.escape(caps.token_ids)
        note = f'<div class="pg-warn-text" data-tokens="{kind}">{html.escape(text)}</div>'
    if not model.anomalies:
        return note + '<div class="pg-ok">No tokenization anomalies found.</div>'
    items = [
        f'<li class="pg-anomaly pg-{html.escape(a.severity)}" data-kind="{html.escape(a.kind)}">'
        f"<b>{html.escape(a.kind.replace('_', ' '))}</b>"
        + (f" (token {a.position})" if a.position >= 0 else "")
        + f": {html.escape(a.message)}</li>"
        for a in model.anomalies
    ]
    return note + f'<ul class="pg-anomalies">{"".join(items)}</ul>'


def column_label(model: ModelRun) -> str:
    return f"{model.column + 1} · {model.identity.catalog_id}"


def column_of(label: str) -> int:
    """The run column a column_label() names."""
    return int(label.split(" ")[0]) - 1


def anomaly_choices(model: ModelRun) -> list[tuple[str, int]]:
    return [
        (f"{a.kind.replace('_', ' ')} at token {a.position}", a.position)
        for a in model.anomalies
        if a.position >= 0
    ]


def count_rows(run: Run) -> list[CountRow]:
    """The user's text through each model's tokenizer (columns that got as far as tokenizing)."""
    return [
        CountRow(column_label(m), m.user_text_tokens, len(run.prompt), len(m.prompt_token_ids),
                 m.identity.context_window)
        for m in run.models
        if m.prompt_token_ids
    ]


def counts_table(run: Run) -> str:
    rows = count_rows(run)
    if not rows:
        return '<span class="pg-muted">No column was tokenized.</span>'
    body = "".join(
        f"<tr><td>{html.escape(r.label)}</td><td>{r.user_tokens:,}</td><td>{r.chars:,}</td>"
        f"<td>{r.chars_per_token:.2f}</td><td>{r.prompt_tokens:,}</td><td>{r.window:,}</td>"
        f"<td>{r.window_share:.1%}</td></tr>"
        for r in rows
    )
    return (
        '<table class="pg-counts"><thead><tr><th>Model</th><th>Tokens (your text)</th><th>Characters</th>'
        "<th>Chars / token</th><th>Prompt tokens (template included)</th><th>Context window</th>"
        f"<th>Window used by the prompt</th></tr></thead><tbody>{body}</tbody></table>"
    )


@dataclass
class TokensPanel:
    """The Tokens accordion: pick a column, page through its chips, jump to an anomaly."""

    box: Any
    column: Any
    jump: Any
    page: Any
    anomalies: Any
    chips: Any
    counts: Any
    plot: Any

    @property
    def outputs(self) -> list[Any]:
        return [self.column, self.jump, self.page, self.anomalies, self.chips, self.counts, self.plot]

    def render(self, record: Run | None, column: int = 0, page: int = 1, highlight: int = -1) -> dict:
        """The panel for one column of a run, drawn from the record."""
        if record is None or not record.models:
            return {}
        column = min(max(column, 0), len(record.models) - 1)
        model = record.models[column]
        pages = page_count(model)
        return {
            self.column: gr.update(choices=[column_label(m) for m in record.models],
                                   value=column_label(model)),
            self.jump: gr.update(choices=anomaly_choices(model), value=None),
            # One page: no slider (a slider needs two stops, and would offer a page that is not there).
            self.page: gr.update(minimum=1, maximum=max(pages, 2), value=min(max(page, 1), pages),
                                 interactive=pages > 1, visible=pages > 1),
            self.anomalies: anomalies_html(model),
            self.chips: chips_html(model, page, highlight),
            self.counts: counts_table(record),
            self.plot: token_counts_figure(count_rows(record)),
        }

    def wire(self, shown: Any) -> None:
        def pick_column(record: Run | None, label: str) -> dict:
            return self.render(record, column_of(label)) if record and label else gr.skip()

        def turn_page(record: Run | None, label: str, page: float) -> dict:
            if not record or not label:
                return gr.skip()  # nothing to draw: no update (an empty dict is an error in Gradio)
            return {self.chips: chips_html(record.models[column_of(label)], int(page))}

        def jump(record: Run | None, label: str, position: int | None) -> dict:
            if not record or not label or position is None:
                return gr.skip()  # nothing to draw: no update (an empty dict is an error in Gradio)
            panel = self.render(record, column_of(label), int(position) // PAGE_SIZE + 1, int(position))
            panel.pop(self.jump)  # keep the choice shown
            return panel

        self.column.input(pick_column, inputs=[shown, self.column], outputs=self.outputs)
        self.page.release(turn_page, inputs=[shown, self.column, self.page], outputs=[self.chips])
        self.jump.input(jump, inputs=[shown, self.column, self.jump], outputs=self.outputs)


def build_tokens_panel() -> TokensPanel:
    with gr.Accordion("Tokens: what each model saw", open=False, elem_id="tokens-box") as box:
        with gr.Row():
            column = gr.Radio(label="Column", choices=[], elem_id="tok-model", scale=3)
            jump = gr.Dropdown(label="Jump to anomaly", choices=[], elem_id="tok-jump", scale=2)
            page = gr.Slider(1, 2, value=1, step=1, label="Page", elem_id="tok-page", scale=2, visible=False)
        anomalies = gr.HTML(elem_id="tok-anomalies", padding=False)
        chips = gr.HTML(elem_id="tok-chips", padding=False)
        counts = gr.HTML(elem_id="tok-counts", padding=False)
        plot = gr.Plot(elem_id="tok-plot", show_label=False)
    return TokensPanel(box, column, jump, page, anomalies, chips, counts, plot)
