"""The prompt area: the prompt, Run and Stop, example prompts, the settings row (Settings, the shared
parameters row, Tokenize only, + Add column, Blind) and the replay banner.

Its events (Run, Stop, Tokenize only, Run again, follow-ups) are wired over the whole page in
playground/ui/runs.py.
"""

from __future__ import annotations

import html
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gradio as gr

from playground.config import Settings
from playground.grounding.snapshot import SearchOptions
from playground.record import Run
from playground.system_prompts import describe
from playground.ui import html as H
from playground.ui.blind import build_blind_toggle
from playground.ui.shared_params import SharedParams, build_shared_params

ASSETS = Path(__file__).resolve().parent.parent.parent / "assets"
GROUNDING_CHOICES = {"off": "none", "local corpus": "local", "web": "web"}


def examples() -> list[str]:
    """The example prompts shown as chips under the prompt (assets/examples.json)."""
    path = ASSETS / "examples.json"
    return [str(e) for e in json.loads(path.read_text(encoding="utf-8"))] if path.is_file() else []


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
    settings: Any = None  # the Settings accordion (system prompt, grounding): its label sums up
    examples: list[Any] = field(default_factory=list)  # the example chips: a click fills the prompt
    shared: SharedParams | None = None  # the parameters row every column takes

    def inputs(self) -> list[Any]:
        return [self.prompt, self.system, self.specials_as_text, self.grounding, self.n_sources,
                self.fetch_pages]

    def settings_inputs(self) -> list[Any]:
        return [self.system, self.specials_as_text, self.grounding, self.n_sources, self.fetch_pages]

    def lock_outputs(self) -> list[Any]:
        """What a replay locks and Edit and run unlocks."""
        return [*self.inputs(), self.tokenize_btn, self.add_btn, self.blind, self.run_btn, self.edit_btn,
                self.banner, self.settings, *self.examples]

    def editable(self, on: bool, banner: str = "") -> dict[Any, Any]:
        """Every setting editable and Run shown (on), or read-only with Edit and run in Run's place."""
        updates = {c: gr.update(interactive=on) for c in (*self.inputs(), self.tokenize_btn, self.add_btn,
                                                         self.blind, *self.examples)}
        # Hidden and disabled: Ctrl+Enter (assets/shortcuts.js) clicks only an enabled, visible Run.
        updates[self.run_btn] = gr.update(visible=on, interactive=on)
        updates[self.edit_btn] = gr.update(visible=not on)
        updates[self.banner] = "" if on else banner
        return updates

    def show(self, record: Run, blind: bool = False) -> dict[Any, Any]:
        """The prompt and settings a saved run was made with, grounding included (from its record); a blind
        run's label names no chat template's system prompt (it would name the model)."""
        grounding, n, fetch = record_grounding(record)
        return {
            self.prompt: record.prompt, self.system: record.system_prompt,
            self.specials_as_text: record.specials_as_text, self.grounding: grounding, self.n_sources: n,
            self.fetch_pages: fetch, **self.settings_update(record, blind),
        }

    def settings_update(self, record: Run, blind: bool = False) -> dict[Any, Any]:
        """The Settings label for a run on screen: what was set, and a chat template's own system prompt
        where none was typed (from the record's prompt tokens)."""
        grounding, n, fetch = record_grounding(record)
        label = settings_label(record.system_prompt, record.specials_as_text, grounding, n, fetch,
                               "" if blind else template_models(record))
        return {self.settings: gr.update(label=label)}


def record_grounding(record: Run) -> tuple[str, int, bool]:
    """A run's grounding as the page's controls show it: the choice, the sources it got, page text."""
    search = record.search
    grounding = {"local": "local corpus", "web": "web"}.get(search.provider, "off") if search else "off"
    # The record keeps the sources found, not the number asked for: show what it got.
    n = min(max(len(search.results), 1), 10) if search else 5
    fetch = bool(search and any(s.text for s in search.results))
    return grounding, n, fetch


def settings_label(system: str | None, specials: bool, grounding: str | None, n: float | None,
                   fetch: bool, template: str = "") -> str:
    """The Settings accordion's label: what is set, readable without opening it. `template` names the
    models whose chat template wrote a system prompt of its own when none was typed (template_models)."""
    if (system or "").strip():
        parts = [f"system prompt: “{_short(system)}”"]
    else:  # first, so that a narrow label cuts something else
        parts = [f"template system prompt ({template})" if template else "no system prompt"]
    ground = grounding or "off"
    if ground != "off":
        ground += f", {int(n or 0)} sources" + (", page text" if fetch and ground == "web" else "")
    parts.append(f"grounding: {ground}")
    if specials:
        parts.append("special-token strings as text")
    return "Settings · " + " · ".join(parts)


def template_models(record: Run | None) -> str:
    """The models of a run whose chat template wrote a default system prompt because none was typed
    (read from the run record's prompt tokens; the column's header quotes the text: columns.system_html)."""
    if record is None:
        return ""
    names = [model.identity.catalog_id or model.identity.name for model in record.models
             if model.identity.source and describe(record, model).source == "template"]  # a blind run: none
    return ", ".join(names)


def _short(text: str | None, limit: int = 40) -> str:
    flat = " ".join((text or "").split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def replay_banner(record: Run) -> str:
    """The banner over a replayed run: read-only, and how to make a new run from it."""
    return ('<div class="pg-replay-banner" role="status"><b>Replay of a saved run — read-only.</b> '
            f"Run {html.escape(record.id)} from {html.escape(H.when(record.created_at))}: the controls show "
            "the settings it ran with. <b>Edit and run</b> copies them into a new run you can change.</div>")


def build_prompt_area(device: str = "cpu") -> PromptArea:
    """A compact prompt bar (prompt, example chips, Run, Stop) and one settings row; the columns follow
    right under it. `device` sizes the shared row's default max new tokens."""
    banner = gr.HTML("", elem_id="replay-banner", padding=False)
    with gr.Row(elem_id="prompt-bar", equal_height=False):
        with gr.Column(scale=1, elem_id="prompt-box"):
            prompt = gr.Textbox(label="Prompt", lines=2, max_lines=8, elem_id="prompt",
                                placeholder="Ask something… (Ctrl+Enter runs)")
            chips = []
            with gr.Row(elem_id="examples", equal_height=True):
                for i, text in enumerate(examples()):
                    chip = gr.Button(text, size="sm", elem_id=f"example-{i}", elem_classes=["pg-example"],
                                     scale=0, min_width=60)
                    chip.click(lambda text=text: text, outputs=[prompt], queue=False, show_progress="hidden")
                    chips.append(chip)
        with gr.Column(scale=0, min_width=170, elem_id="run-box"):
            run_btn = gr.Button("Run ▶", variant="primary", elem_id="run-btn")
            edit_btn = gr.Button("Edit and run ✎", variant="primary", visible=False, elem_id="edit-btn")
            stop_btn = gr.Button("Stop ■", variant="stop", interactive=False, elem_id="stop-btn", size="sm")
    with gr.Row(elem_id="settings-row", equal_height=False):
        with gr.Column(scale=5, min_width=260), gr.Accordion(
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
        with gr.Column(scale=3, min_width=260):
            shared = build_shared_params(device)
        with gr.Row(scale=5, elem_id="run-options", equal_height=True):
            tokenize_btn = gr.Button("Tokenize only", size="sm", elem_id="tokenize-btn", scale=0,
                                     min_width=120)
            add_btn = gr.Button("+ Add column", size="sm", elem_id="add-btn", scale=0, min_width=120)
            blind = build_blind_toggle()
    return PromptArea(prompt, system, specials_as_text, grounding, n_sources, fetch_pages, run_btn, stop_btn,
                      tokenize_btn, add_btn, blind, edit_btn=edit_btn, banner=banner, settings=settings,
                      examples=chips, shared=shared)
