"""The model columns: one per model, each with its header, streaming output and parameters.

A column is drawn from the run record (header, metrics, output); its widgets are
read into a ColumnRequest. One shared parameters row sets every column's parameters; a
column's own box wins only for a field the user changed in that column (its overrides, named
on its Parameters label). The model pool line above the columns says what is loaded and
what it weighs, so a user knows what the next run costs.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from typing import Any

import gradio as gr

from playground.catalog import Catalog, ModelSpec
from playground.config import Settings
from playground.params import build_params, default_max_new_tokens, merge_params, overrides_of, stop_strings
from playground.record import GenerationParams, ModelRun, Run
from playground.requests import ColumnRequest
from playground.service import PoolState
from playground.system_prompts import describe
from playground.ui import html as H
from playground.ui.shared_params import SharedParams, params_label, shared_label
from playground.ui.text import clean_text


@dataclass
class Slot:
    """The widgets of one model column."""

    box: Any
    model: Any
    remove: Any
    header: Any
    output: Any
    max_new_tokens: Any
    temperature: Any
    top_p: Any
    top_k: Any
    repetition_penalty: Any
    seed: Any
    stop: Any
    timeout: Any
    system: Any = None  # this column's own system prompt ("" = the shared one)
    params_box: Any = None  # the Parameters accordion: its label names the column's overrides
    shared: SharedParams | None = None  # the shared row; None: the column's boxes alone count

    def widgets(self) -> dict[str, Any]:
        """The column's box for each shared field."""
        return {"max_new_tokens": self.max_new_tokens, "temperature": self.temperature, "top_p": self.top_p,
                "top_k": self.top_k, "repetition_penalty": self.repetition_penalty, "seed": self.seed,
                "stop": self.stop}

    def param_inputs(self) -> list[Any]:
        return [
            self.model, self.max_new_tokens, self.temperature, self.top_p, self.top_k,
            self.repetition_penalty, self.seed, self.stop, self.timeout, self.system,
        ]

    def fill(self, model: str, p: GenerationParams, system: str | None = None) -> dict[Any, Any]:
        """Updates that show a saved column's model, parameters and own system prompt."""
        return {
            self.model: model, self.max_new_tokens: p.max_new_tokens, self.temperature: p.temperature,
            self.top_p: p.top_p, self.top_k: p.top_k, self.repetition_penalty: p.repetition_penalty,
            self.seed: p.seed, self.stop: "\n".join(p.stop), self.timeout: p.timeout_s,
            self.system: system or "",
        }

    def params(self, data: dict[Any, Any]) -> GenerationParams:
        """Read this column's parameters; empty fields fall back to the defaults.

        Stop strings are one per line, with only `\\n`, `\\t` and `\\\\` as escapes: anything else
        (`\\x`, non-ASCII text) is kept as typed.
        """
        own = {name: data.get(widget) for name, widget in self.widgets().items()}
        own["stop"] = stop_strings(clean_text(data.get(self.stop) or "")[0])
        own["timeout_s"] = data.get(self.timeout)
        if self.shared is None:
            return build_params(own)
        index = self.shared.slots.index(self) if self in self.shared.slots else -1
        marks = (data.get(self.shared.overrides) or [])
        overridden = marks[index] if 0 <= index < len(marks) else []
        return build_params(merge_params(self.shared.values(data), own, overridden))


def model_choices(catalog: Catalog) -> list[tuple[str, str]]:
    """Catalog ids to pick from; a hosted preset whose key variable is unset says which one to set."""
    def label(spec: ModelSpec) -> str:
        missing = spec.missing_key()
        return f"{spec.id} (set {missing} to use it)" if missing else spec.id

    return [(label(spec), spec.id) for spec in catalog.specs.values()]


def model_info(settings: Settings) -> str:
    """What the model box accepts on this server (the allow-list decides)."""
    if settings.allows_any_model:
        return "catalog id, .gguf path, directory or hub id"
    return "catalog models only: this server does not load other paths or hub ids"


# Focus: one column full width, the others hidden, until its button is pressed again. Only the browser
# changes (data attributes Gradio does not redraw); assets/style.css does the rest.
FOCUS_JS = """() => {
  const row = document.querySelector('#columns');
  const col = document.querySelector('#col-%d');
  if (!row || !col) return;
  const on = col.dataset.focus !== '1';
  row.querySelectorAll('[data-focus]').forEach((c) => { delete c.dataset.focus; });
  row.querySelectorAll('.pg-focus-btn').forEach((b) => b.setAttribute('aria-pressed', 'false'));
  if (on) {
    row.dataset.focused = '1';
    col.dataset.focus = '1';
    document.querySelector('#focus-%d')?.setAttribute('aria-pressed', 'true');
  } else {
    delete row.dataset.focused;
  }
}"""


def make_slot(index: int, catalog: Catalog, model: str, visible: bool, settings: Settings,
              device: str = "cpu") -> Slot:
    d = build_params({"max_new_tokens": default_max_new_tokens(device)})
    with gr.Column(visible=visible, min_width=300, elem_classes=["pg-column"], elem_id=f"col-{index}") as box:
        with gr.Row(elem_classes=["pg-col-top"], equal_height=True):
            dropdown = gr.Dropdown(
                choices=model_choices(catalog), value=model or None, label=f"Model {index + 1}",
                allow_custom_value=settings.allows_any_model, scale=5, elem_id=f"model-{index}",
                container=False,
            )
            focus = gr.Button("⤢ Focus", size="sm", scale=0, min_width=70, elem_id=f"focus-{index}",
                              elem_classes=["pg-focus-btn"])
            remove = gr.Button("✕", size="sm", scale=0, min_width=40, elem_id=f"remove-{index}",
                               elem_classes=["pg-remove"])
        focus.click(None, js=FOCUS_JS % (index, index))
        header = gr.HTML(elem_id=f"head-{index}", padding=False)
        # A steady height with its own scroll (assets/style.css: --pg-output-height), so streaming never
        # moves the page; the copy button sits in a strip of its own above the first line.
        output = gr.Markdown(elem_id=f"out-{index}", elem_classes=["pg-output"],
                             height="var(--pg-output-height)", buttons=["copy"], latex_delimiters=[],
                             line_breaks=True)
        with gr.Accordion(params_label([]), open=False, elem_classes=["pg-params-box"],
                          elem_id=f"params-{index}") as params_box:
            gr.HTML(f'<div class="pg-muted">Model box: {model_info(settings)}</div>', padding=False,
                    elem_id=f"model-info-{index}")
            with gr.Row(elem_classes=["pg-params"]):
                max_new = gr.Number(d.max_new_tokens, label="Max new tokens", precision=0, minimum=1,
                                    min_width=110)
                temperature = gr.Number(d.temperature, label="Temperature (0 = greedy)", minimum=0, maximum=2,
                                        step=0.05, min_width=110)
                top_p = gr.Number(d.top_p, label="Top-p", minimum=0.05, maximum=1, step=0.05, min_width=110)
                top_k = gr.Number(d.top_k, label="Top-k (0 = off)", precision=0, minimum=0, min_width=110)
                rep = gr.Number(d.repetition_penalty, label="Repetition penalty", minimum=0.5, maximum=2,
                                step=0.05, min_width=110)
                seed = gr.Number(d.seed, label="Seed", precision=0, min_width=110)
                timeout = gr.Number(d.timeout_s, label="Request timeout (s)", minimum=1, min_width=110)
                stop = gr.Textbox("", label="Stop strings (one per line; \\n \\t \\\\ are escapes)", lines=1,
                                  max_lines=4, elem_classes=["pg-stop"])
                system = gr.Textbox("", label="System prompt for this column (empty: the shared one)",
                                    lines=1, max_lines=4, elem_id=f"system-{index}",
                                    elem_classes=["pg-system"])
    return Slot(box, dropdown, remove, header, output, max_new, temperature, top_p, top_k, rep, seed,
                stop, timeout, system, params_box)


def pool_html(pool: PoolState) -> str:
    """The model pool line: loaded models, their memory, and the budget."""
    return H.loaded_models(pool.loaded, pool.used_bytes, pool.budget_bytes)


@dataclass
class Columns:
    """Every column slot (shown or hidden), which are in use, and the model pool line."""

    slots: list[Slot]
    active: Any  # gr.State: list[bool], one per slot
    loaded: Any  # gr.HTML: the model pool line
    wall: Any = None  # gr.HTML under the columns: the run's wall time (H.run_wall), from its record
    shared: SharedParams | None = None  # the parameters row every column takes

    @property
    def size(self) -> int:
        return len(self.slots)

    def _shared(self) -> list[Any]:
        return self.shared.inputs() if self.shared is not None else []

    def inputs(self) -> list[Any]:
        return [self.active, *self._shared(), *(c for s in self.slots for c in s.param_inputs())]

    def outputs(self) -> list[Any]:
        """What a run updates: headers and outputs, and the run's wall time under them."""
        wall = [self.wall] if self.wall is not None else []
        return [c for s in self.slots for c in (s.header, s.output)] + wall

    def fill_outputs(self) -> list[Any]:
        """What a replay updates besides: which columns show, their models and parameters."""
        boxes = [s.params_box for s in self.slots if s.params_box is not None]
        boxes += [self.shared.box] if self.shared is not None else []
        return [self.active, *self._shared(), *boxes,
                *(c for s in self.slots for c in (s.box, *s.param_inputs()))]

    def lock_outputs(self) -> list[Any]:
        """What a replay locks: the shared row, every column's model, parameters and ✕."""
        shared = list(self.shared.widgets.values()) if self.shared is not None else []
        return [*shared, *(c for s in self.slots for c in (*s.param_inputs(), s.remove))]

    def editable(self, on: bool) -> dict[Any, Any]:
        return {c: gr.update(interactive=on) for c in self.lock_outputs()}

    def fill_shared(self, shown: list[ModelRun]) -> dict[Any, Any]:
        """A saved run's parameters as the shared row (its first column's) and, per column, overrides
        where a column's differ from them."""
        if self.shared is None or not shown:
            return {}
        first = shown[0].params
        marks = [overrides_of(m.params, first) for m in shown] + [[] for _ in range(self.size - len(shown))]
        updates: dict[Any, Any] = {w: getattr(first, name) for name, w in self.shared.widgets.items()}
        updates[self.shared.widgets["stop"]] = "\n".join(first.stop)
        updates[self.shared.overrides] = marks
        updates[self.shared.box] = gr.update(label=shared_label(first.max_new_tokens, first.temperature))
        for slot, mark, model in zip(self.slots, marks, shown, strict=False):
            values = {name: getattr(model.params, name) for name in mark}
            updates[slot.params_box] = gr.update(label=params_label(mark, values))
        return updates

    def chosen(self, data: dict[Any, Any]) -> list[int]:
        """Slots shown and with a model picked, in page order."""
        return [i for i, on in enumerate(data[self.active])
                if on and (data[self.slots[i].model] or "").strip()]

    def requests(self, data: dict[Any, Any], chosen: list[int]) -> tuple[list[ColumnRequest], bool]:
        """The chosen columns as requests; True when some typed text had to be repaired."""
        columns, repaired = [], False
        for i in chosen:
            slot = self.slots[i]
            model, bad_model = clean_text((data[slot.model] or "").strip())
            bad_stop = clean_text(data.get(slot.stop) or "")[1]
            system, bad_system = clean_text(data.get(slot.system) or "")
            repaired |= bad_model or bad_stop or bad_system
            columns.append(ColumnRequest(model, slot.params(data), system if system.strip() else None))
        return columns, repaired

    def draw(self, record: Run, chosen: list[int], columns: set[int], status: dict[int, str]
             ) -> dict[Any, Any]:
        """Header and output of the given run columns, in the slots they were run from."""
        updates: dict[Any, Any] = {}
        for col in columns:
            slot = self.slots[chosen[col]]
            model_run = record.models[col]
            header = H.column_header(model_run, status.get(col, ""))
            updates[slot.header] = header + system_html(record, model_run)
            updates[slot.output] = H.conversation_markdown(record, col)  # earlier turns first
        return updates

    def clear(self) -> dict[Any, Any]:
        return {s.output: "" for s in self.slots} | {s.header: "" for s in self.slots} | self.wall_line(None)

    def wall_line(self, record: Run | None) -> dict[Any, Any]:
        """The run's wall time under the columns, drawn from its record ("" for none, or an older record
        without one): shown apart from each column's own figures, and in replays too."""
        return {self.wall: H.run_wall(record)} if self.wall is not None else {}

    def show(self, record: Run) -> tuple[dict[Any, Any], str]:
        """A saved run's columns, models and parameters (from the record); a note when some do not fit."""
        shown = record.models[: self.size]
        flags = [i < len(shown) for i in range(self.size)]
        updates: dict[Any, Any] = {self.active: flags}
        for i, slot in enumerate(self.slots):
            updates[slot.box] = gr.update(visible=flags[i])
            if i < len(shown):
                ident = shown[i].identity
                updates.update(slot.fill(ident.reference or ident.catalog_id, shown[i].params,
                                         shown[i].system_prompt))
            else:
                updates[slot.header] = ""
                updates[slot.output] = ""
        updates.update(self.draw(record, list(range(len(shown))), set(range(len(shown))), {}))
        updates.update(self.wall_line(record))
        updates.update(self.fill_shared(shown))
        note = (f" Only the first {self.size} of {len(record.models)} columns are shown."
                if len(record.models) > self.size else "")
        return updates, note

    def wire(self, add_btn: Any, notice: Any) -> None:
        """+ Add column shows the next hidden slot; ✕ hides its column."""
        def add_column(flags: list[bool]) -> dict[Any, Any]:
            if all(flags):
                return {notice: H.notice(f"at most {self.size} columns (PLAYGROUND_MAX_COLUMNS)", "warn")}
            i = flags.index(False)
            flags = [*flags[:i], True, *flags[i + 1:]]
            return {self.active: flags, self.slots[i].box: gr.update(visible=True), notice: ""}

        add_btn.click(add_column, inputs=[self.active],
                      outputs=[self.active, notice, *(s.box for s in self.slots)])
        for i, slot in enumerate(self.slots):
            def remove_column(flags: list[bool], i: int = i) -> dict[Any, Any]:
                flags = [*flags[:i], False, *flags[i + 1:]]
                return {self.active: flags, self.slots[i].box: gr.update(visible=False)}

            slot.remove.click(remove_column, inputs=[self.active], outputs=[self.active, slot.box])
        if self.shared is not None:
            self.shared.wire()


def system_html(record: Run, model: ModelRun) -> str:
    """A column's system prompt under its header, folded: its own, or its chat template's default when
    the box was empty (read from the record's prompt tokens). Not in a blind run (masked identities have
    no source): a template's default would name the model."""
    found = describe(record, model)
    if found.source not in ("own", "template") or (found.source == "template" and not model.identity.source):
        return ""
    return (f'<details class="pg-col-system" data-source="{found.source}">'
            f"<summary>{html.escape(found.label())}</summary>"
            f'<div class="pg-col-system-text">{html.escape(found.text)}</div></details>')


def build_columns(settings: Settings, catalog: Catalog, shared: SharedParams | None = None,
                  device: str = "cpu") -> Columns:
    """The pool line, then the columns: the default models picked, the other slots hidden."""
    defaults = [m for m in settings.default_models if m in catalog.specs] or catalog.ids()[:2]
    size = max(settings.max_columns, len(defaults))
    loaded = gr.HTML(H.loaded_models([]), elem_id="loaded", padding=False)
    active = gr.State([i < len(defaults) for i in range(size)])
    with gr.Row(equal_height=False, elem_id="columns"):
        slots = [make_slot(i, catalog, defaults[i] if i < len(defaults) else defaults[0],
                           i < len(defaults), settings, device) for i in range(size)]
    wall = gr.HTML("", elem_id="run-wall", padding=False)
    if shared is not None:
        shared.slots = slots
        shared.overrides.value = [[] for _ in slots]
        for slot in slots:
            slot.shared = shared
    return Columns(slots, active, loaded, wall, shared)
