"""The token-probabilities panel as escaped HTML, from the stored logprobs, and its widget."""

from __future__ import annotations

import html
import math
from dataclasses import dataclass
from typing import Any

import gradio as gr

from playground.inspect.probs import probability, summarize
from playground.record import ModelRun, Run, TokenStep
from playground.ui.token_view import column_label, short_repr, visible

PROBS_SHOWN = 2_000  # tokens shaded per column: a replay of 64 columns of 32,768 tokens stays quick


def _shade(p: float) -> str:
    """Low probability = strong orange, high = pale: readable for colour-blind users by lightness."""
    alpha = 0.85 * (1 - p) + 0.05
    return f"background: rgba(230, 97, 1, {alpha:.3f})"


def _title(step: TokenStep, position: int) -> str:
    lines = [f"#{position} {short_repr(step.text)}: p={probability(step):.3f} (logprob {step.logprob:.3f})",
             "top 5:"]
    lines += [f"  {short_repr(alt.text)}: p={math.exp(alt.logprob):.3f}" for alt in step.top]
    return html.escape("\n".join(lines), quote=True)


def column_html(model: ModelRun) -> str:
    label = html.escape(column_label(model))
    if not model.capabilities.logprobs:
        why = f"no token probabilities: {model.capabilities.logprobs_note or 'the server returned none'}"
        return f'<div class="pg-probs"><h4>{label}</h4><span class="pg-muted">{html.escape(why)}</span></div>'
    summary = summarize(model.steps)
    if summary is None:
        why = model.error or "no output tokens"
        return f'<div class="pg-probs"><h4>{label}</h4><span class="pg-muted">{html.escape(why)}</span></div>'
    spans = "".join(
        f'<span class="ptok" data-p="{probability(s):.6f}" style="{_shade(probability(s))}" '
        f'title="{_title(s, i)}">{visible(s.text) or "∅"}</span>'
        for i, s in enumerate(model.steps[:PROBS_SHOWN])
    )
    if len(model.steps) > PROBS_SHOWN:
        spans += (f'<div class="pg-muted">The first {PROBS_SHOWN:,} of {len(model.steps):,} tokens are '
                  "shaded here; the Tokens panel pages through all of them.</div>")
    lowest = "".join(
        f"<li><code>{html.escape(short_repr(s.text))}</code> at {i}: p={probability(s):.3f}"
        + (f" (model preferred <code>{html.escape(short_repr(s.top[0].text))}</code>)"
           if s.top and s.top[0].token_id != s.token_id else "")
        + "</li>"
        for i, s in summary.lowest
    )
    return (
        f'<div class="pg-probs" data-column="{model.column}"><h4>{label}</h4>'
        f'<div class="pg-metrics"><span class="pg-metric">{summary.tokens} tokens</span>'
        f'<span class="pg-metric">mean logprob {summary.mean_logprob:.3f}</span>'
        f'<span class="pg-metric">perplexity {summary.perplexity:.2f}</span></div>'
        f'<div class="pg-ptoks">{spans}</div>'
        f'<div class="pg-muted">Least confident:</div><ol class="pg-lowest">{lowest}</ol></div>'
    )


def probs_html(models: list[ModelRun]) -> str:
    if not models:
        return '<span class="pg-muted">No run shown yet.</span>'
    legend = (
        '<div class="pg-muted">Darker = less likely. Hover a token for its probability and the '
        "model's top-5 alternatives. Probabilities are the model's own (before temperature / top-p).</div>"
    )
    return legend + '<div class="pg-probs-grid">' + "".join(column_html(m) for m in models) + "</div>"


@dataclass
class ProbsPanel:
    """Every column's output tokens shaded by probability; nothing to pick, so no events."""

    panel: Any

    @property
    def outputs(self) -> list[Any]:
        return [self.panel]

    def render(self, record: Run | None) -> dict:
        return {} if record is None else {self.panel: probs_html(record.models)}

    def wire(self, shown: Any) -> None:
        """Drawn with every shown run; it has no controls of its own."""


def build_probs_panel() -> ProbsPanel:
    with gr.Accordion("Token probabilities", open=False, elem_id="probs-box"):
        panel = gr.HTML(elem_id="probs", padding=False)
    return ProbsPanel(panel)
