"""The routing rules area under a batch's results: a YAML editor, the preview, the threshold sweep, Save.

Everything reads the batch shown (its saved, scored results) through playground/routing: which model
each prompt goes to and which rule sent it, the rules' mean score, p95 latency and cost against "all
to each model", and the quality-against-share-of-strong-model curve with APGR. No model runs here.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from typing import Any

import gradio as gr

from playground.batch.summary import BatchResult
from playground.routing import Preview, RulesError, TableError, loads_rules, preview, sweep
from playground.routing.evaluate import table_from_batch
from playground.routing.figures import sweep_figure
from playground.routing.rules import (
    APPROX_ANOMALIES_NOTE,
    APPROX_TOKENS_NOTE,
    EXAMPLE_RULES,
    sample_rules_text,
)
from playground.service import RunService, SessionError
from playground.ui import html as H
from playground.ui.session_bar import DOWNLOAD_JS

ROUTERS = {"prompt length (tokens)": "prompt_tokens", "score margin (oracle, after the fact)": "margin"}
MAX_RULES_CHARS = 100_000
# Previews and sweeps at once, over all users: each is bounded by the rules' time budget
# (routing.evaluate.PREVIEW_BUDGET_S), and the rest of the page never waits on them.
RULES_CONCURRENCY = 2
NEEDS_BATCH = ("run a batch or open a saved one first: the preview reads its scored results "
               "(no model runs for it)")


def _num(value: float | None, spec: str) -> str:
    return "–" if value is None else format(value, spec)


def table_models(result: BatchResult) -> list[str]:
    """The model names the rules use for this batch (catalog ids; as table_from_batch keys them)."""
    names = [m.model.split(" · ", 1)[-1] for m in result.models]
    return [n if names.count(n) == 1 else m.model for n, m in zip(names, result.models, strict=True)]


def local_models(service: RunService) -> list[str]:
    """The catalog's local models (bundled first): what the sweep's pickers offer before a batch is
    shown, so they never start empty."""
    catalog = service.catalog
    return [i for i in catalog.ids() if not catalog.specs[i].remote]


def preview_html(result: Preview, categories: dict[str, str]) -> str:
    """Each prompt's model and the rule that sent it; then the rules against all-to-each-model."""
    rows = []
    for a in result.assignments:
        rule = "default" if a.rule is None else f"rule {a.rule}"  # numbered from 0, as the reasons are
        score = _num(a.result.score if a.result else None, ".2f")
        total = _num(a.result.total_s if a.result else None, ".2f")
        rows.append(f'<tr class="pg-route-row" data-prompt="{html.escape(a.prompt_id)}" '
                    f'data-model="{html.escape(a.model)}" data-rule="{html.escape(rule)}">'
                    f"<td><b>{html.escape(a.prompt_id)}</b></td>"
                    f"<td>{html.escape(categories.get(a.prompt_id, ''))}</td>"
                    f'<td class="pg-model">{html.escape(a.model)}</td><td>{html.escape(rule)}</td>'
                    f"<td>{html.escape(a.reason)}</td><td>{score}</td><td>{total}</td></tr>")
    policies = []
    for s in [result.routed, *result.baselines.values()]:
        shares = ", ".join(f"{m} {v:.0%}" for m, v in s.shares.items())
        label = "these rules" if s is result.routed else s.label
        policies.append(f'<tr data-policy="{html.escape(s.label)}"><td><b>{html.escape(label)}</b></td>'
                        f"<td>{_num(s.mean_score, '.3f')}</td><td>{_num(s.p95_total_s, '.2f')}</td>"
                        f"<td>{_num(s.cost, '.4f')}</td><td>{html.escape(shares)}</td></tr>")
    notes = [APPROX_TOKENS_NOTE if k == "prompt_tokens" else APPROX_ANOMALIES_NOTE
             for k in result.approximate]
    note = "".join(f'<div class="pg-muted">{html.escape(n)}</div>' for n in notes)
    return ('<table class="pg-counts pg-route"><thead><tr><th>Prompt</th><th>Category</th><th>Goes to</th>'
            "<th>Rule</th><th>Why</th><th>Score</th><th>Total s</th></tr></thead>"
            f"<tbody>{''.join(rows)}</tbody></table>"
            '<table class="pg-counts pg-route-policies"><thead><tr><th>Policy</th><th>Mean score</th>'
            "<th>p95 s</th><th>Cost $</th><th>Share of prompts</th></tr></thead>"
            f"<tbody>{''.join(policies)}</tbody></table>{note}"
            '<div class="pg-muted">A batch\'s token counts are the templated prompt\'s, as the rules\' '
            "default model saw it.</div>")


@dataclass
class RulesPanel:
    yaml: Any
    preview_btn: Any
    save_btn: Any
    save_file: Any
    preview: Any
    router: Any
    strong: Any
    weak: Any
    threshold: Any
    sweep_btn: Any
    sweep_plot: Any
    sweep_note: Any
    load_btn: Any = None  # "Load sample rules": the committed assets/rules/sample.yaml into the editor

    def on_result(self, result: BatchResult) -> dict[Any, Any]:
        """A new batch shown: its models to pick for the sweep; the old preview and curve cleared."""
        models = table_models(result)
        weak = models[0] if models else None
        strong = models[-1] if models else None
        return {self.strong: gr.update(choices=models, value=strong),
                self.weak: gr.update(choices=models, value=weak),
                self.preview: "", self.sweep_note: ""}

    def _fill_pickers(self, models: list[str]) -> None:
        """Before the page is served: the sweep's pickers start with these models (weak: the first,
        strong: the second), until a batch shown brings its own."""
        choices = [(m, m) for m in models]
        for box, value in ((self.weak, models[0] if models else None),
                           (self.strong, models[1] if len(models) > 1 else None)):
            box.choices, box.value = choices, value

    def result_outputs(self) -> list[Any]:
        return [self.strong, self.weak, self.preview, self.sweep_note]

    def wire(self, service: RunService, result_state: Any) -> None:
        self._fill_pickers(local_models(service))
        def rules_of(text: str):  # noqa: ANN202 - a RuleSet, or an error message
            if not (text or "").strip():
                return "the rules are empty: write a `default:` model and a list of `rules:`"
            if len(text) > MAX_RULES_CHARS:
                return f"the rules are longer than {MAX_RULES_CHARS:,} characters"
            try:
                return loads_rules(text)
            except RulesError as exc:
                return f"bad rules: {exc}"

        def table(result: BatchResult, count_model: str | None):  # noqa: ANN202 - ResultTable
            spec = service.batch_spec(result.batch_id)
            return spec, table_from_batch(spec.items, result.cells, count_model=count_model)

        def show_preview(result: BatchResult | None, text: str) -> str:
            if result is None:
                return H.notice(NEEDS_BATCH, "warn")
            rules = rules_of(text)
            if isinstance(rules, str):
                return H.notice(rules, "error")
            try:
                spec, built = table(result, rules.default)
                shown = preview(rules, built)
            except (TableError, SessionError, RulesError) as exc:  # RulesError: a pattern ran out of time
                return H.notice(f"cannot preview these rules on batch {result.batch_id}: {exc}", "error")
            categories = {str(i.id): i.category for i in spec.items}
            return preview_html(shown, categories)

        def show_sweep(result: BatchResult | None, router: str, strong: str | None, weak: str | None,
                       threshold_text: str) -> dict[Any, Any]:
            try:
                threshold = float(threshold_text) if (threshold_text or "").strip() else None
            except ValueError:
                return {self.sweep_note: H.notice(f"the chosen threshold must be a number, not "
                                                  f"{threshold_text[:40]!r}", "error"), self.sweep_plot: None}
            if result is None:
                return {self.sweep_note: H.notice(NEEDS_BATCH, "warn"), self.sweep_plot: None}
            if not strong or not weak or strong == weak:
                return {self.sweep_note: H.notice("pick two different models: a strong and a weak one",
                                                  "error"), self.sweep_plot: None}
            try:
                _spec, built = table(result, weak)
                swept = sweep(built, strong, weak, ROUTERS.get(router, "prompt_tokens"), chosen=threshold)
            except (TableError, SessionError, ValueError) as exc:
                return {self.sweep_note: H.notice(f"cannot sweep: {exc}", "error"), self.sweep_plot: None}
            summary = (f"APGR {swept.apgr:.1%}: the area under the share of the quality gap recovered "
                       f"(1.0 = {strong}'s quality with no calls to it, 0.5 = a random router)"
                       if swept.apgr is not None else "the two models score the same on this set: no gap "
                       "to recover")
            return {self.sweep_plot: sweep_figure(swept),
                    self.sweep_note: f'<div class="pg-muted" id="rules-apgr">{html.escape(summary)}</div>'}

        def load_sample() -> dict[Any, Any]:
            try:
                return {self.yaml: sample_rules_text(), self.preview: ""}
            except RulesError as exc:  # a broken checkout: say so, keep what was typed
                return {self.yaml: gr.update(), self.preview: H.notice(f"cannot load the sample rules: "
                                                                         f"{exc}", "error")}

        def save(text: str) -> dict[Any, Any]:
            rules = rules_of(text)
            if isinstance(rules, str):
                return {self.preview: H.notice(rules, "error"), self.save_file: None}
            return {self.save_file: str(service.download_file("routing-rules.yaml", text))}

        limit = {"concurrency_limit": RULES_CONCURRENCY, "concurrency_id": "routing-rules"}
        self.preview_btn.click(show_preview, inputs=[result_state, self.yaml], outputs=[self.preview],
                               **limit)
        self.sweep_btn.click(show_sweep, inputs=[result_state, self.router, self.strong, self.weak,
                                                 self.threshold],
                             outputs=[self.sweep_plot, self.sweep_note], **limit)
        if self.load_btn is not None:
            self.load_btn.click(load_sample, outputs=[self.yaml, self.preview])
        saved = self.save_btn.click(save, inputs=[self.yaml], outputs=[self.save_file, self.preview])
        saved.success(None, inputs=[self.save_file], js=DOWNLOAD_JS)


def build_rules_panel() -> RulesPanel:
    gr.Markdown("#### Routing rules\nWhich model should answer which prompt: the first rule whose `when` "
                "holds wins (conditions: `category`, `prompt_tokens_below`, `matches`, `anomaly`). Preview "
                "evaluates them on the batch shown, without running a model.", elem_id="rules-title")
    with gr.Row(equal_height=False):
        with gr.Column(scale=2):
            yaml = gr.Textbox(EXAMPLE_RULES, label="Rules (YAML)", lines=12, max_lines=30,
                              elem_id="rules-yaml")
            with gr.Row():
                preview_btn = gr.Button("Preview", size="sm", variant="primary", elem_id="rules-preview-btn",
                                        scale=0, min_width=100)
                save_btn = gr.Button("Save rules (YAML)", size="sm", elem_id="rules-save-btn", scale=0,
                                     min_width=140)
                load_btn = gr.Button("Load sample rules", size="sm", elem_id="rules-load-sample", scale=0,
                                     min_width=140)
                save_file = gr.DownloadButton("download", visible=False, elem_id="rules-file")
        with gr.Column(scale=3):
            shown = gr.HTML(elem_id="rules-preview", padding=False)
    with gr.Row(equal_height=True):
        router = gr.Dropdown(list(ROUTERS), value=next(iter(ROUTERS)), label="Sweep a threshold on",
                             elem_id="rules-router", scale=2)
        weak = gr.Dropdown([], label="Weak model", elem_id="rules-weak", scale=1)
        strong = gr.Dropdown([], label="Strong model", elem_id="rules-strong", scale=1)
        threshold = gr.Textbox("", label="Chosen threshold (marked; empty: none)", elem_id="rules-threshold",
                               scale=1)
        sweep_btn = gr.Button("Sweep", size="sm", elem_id="rules-sweep-btn", scale=0, min_width=90)
    sweep_note = gr.HTML(elem_id="rules-sweep-note", padding=False)
    sweep_plot = gr.Plot(label="Quality against share sent to the strong model", elem_id="rules-sweep")
    return RulesPanel(yaml, preview_btn, save_btn, save_file, shown, router, strong, weak, threshold,
                      sweep_btn, sweep_plot, sweep_note, load_btn)
