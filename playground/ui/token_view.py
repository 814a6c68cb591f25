"""The Tokens panel as escaped HTML: token chips, paging, anomalies, cross-model table.

Pure functions of the run record (no gradio), so a shared replay draws the same panel.
"""

from __future__ import annotations

import html
from dataclasses import dataclass

from playground.record import ModelRun, Run

PAGE_SIZE = 400


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


def _title(chip: Chip, index: int) -> str:
    parts = [f"#{index} · id {chip.token_id}", f"{chip.part}"]
    if chip.raw:
        parts.append(f"token {chip.raw!r}")
    parts.append(f"text {chip.text!r}")
    parts.append("bytes " + (chip.text.encode("utf-8").hex(" ") or "(none)"))
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
    if not model.anomalies:
        return '<div class="pg-ok">No tokenization anomalies found.</div>'
    items = [
        f'<li class="pg-anomaly pg-{html.escape(a.severity)}" data-kind="{html.escape(a.kind)}">'
        f"<b>{html.escape(a.kind.replace('_', ' '))}</b>"
        + (f" (token {a.position})" if a.position >= 0 else "")
        + f": {html.escape(a.message)}</li>"
        for a in model.anomalies
    ]
    return f'<ul class="pg-anomalies">{"".join(items)}</ul>'


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


@dataclass(frozen=True)
class CountRow:
    label: str
    user_tokens: int
    chars: int
    prompt_tokens: int
    window: int

    @property
    def chars_per_token(self) -> float:
        return self.chars / self.user_tokens if self.user_tokens else 0.0

    @property
    def window_share(self) -> float:
        return self.prompt_tokens / self.window if self.window else 0.0


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
