"""The shared parameters row: one set of generation parameters for every column, with per-column overrides.

A column's own box wins only for a field the user typed in that column (its override, named on the column's
Parameters label); every other field follows the row. The default max new tokens follows the engine's device
(playground/params.py), so a CPU answers in reasonable time.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import gradio as gr

from playground.params import SHARED_FIELDS, build_params, default_max_new_tokens, stop_strings
from playground.ui.text import clean_text


@dataclass
class SharedParams:
    """The parameters row every column takes; `overrides` (a gr.State) lists, per slot, the fields the user
    changed in that column, which keep the column's own value."""

    widgets: dict[str, Any]  # field -> its box in the shared row (playground.params.SHARED_FIELDS)
    overrides: Any  # gr.State: list[list[str]], one list per slot
    box: Any = None  # the accordion holding the row: its label sums it up
    slots: list[Any] = field(default_factory=list)  # the columns' Slots (playground/ui/columns.py)

    def values(self, data: dict[Any, Any]) -> dict[str, Any]:
        values = {name: data.get(widget) for name, widget in self.widgets.items()}
        values["stop"] = stop_strings(clean_text(data.get(self.widgets["stop"]) or "")[0])
        return values

    def inputs(self) -> list[Any]:
        return [*self.widgets.values(), self.overrides]

    def wire(self) -> None:
        """A value typed in a column's box overrides the shared one for that column (typed back to the
        shared value, it follows the row again); a value typed in the row reaches every column that does
        not override it. Only typing counts (.input): a replay's fill is not an override."""
        for name, widget in self.widgets.items():
            boxes = [slot.widgets()[name] for slot in self.slots]
            widget.input(lambda value, marks, name=name, boxes=boxes: spread(name, boxes, value, marks),
                         inputs=[widget, self.overrides], outputs=boxes, queue=False, show_progress="hidden")
        heads = [self.widgets["max_new_tokens"], self.widgets["temperature"]]
        for control in heads:
            control.change(lambda n, t: gr.update(label=shared_label(n, t)), inputs=heads, outputs=[self.box],
                           queue=False, show_progress="hidden")
        for i, slot in enumerate(self.slots):
            own = slot.widgets()
            for name, box in own.items():
                box.input(self._marker(i, name, list(own)),
                          inputs=[box, self.overrides, *self.widgets.values(), *own.values()],
                          outputs=[self.overrides, slot.params_box], queue=False, show_progress="hidden")

    def _marker(self, i: int, name: str, fields: list[str]) -> Any:
        """The handler of column i's `name` box: mark or unmark the override, relabel the column."""
        def mark(value: Any, marks: list[list[str]], *values: Any) -> dict[Any, Any]:
            shared_now = dict(zip(self.widgets, values[: len(self.widgets)], strict=True))
            mine = dict(zip(fields, values[len(self.widgets):], strict=True))
            marks = [list(m) for m in marks] + [[] for _ in range(len(self.slots) - len(marks))]
            same = value == shared_now[name] or (value in (None, "") and name != "stop")
            marks[i] = [f for f in SHARED_FIELDS if (f in marks[i] and f != name) or (f == name and not same)]
            label = params_label(marks[i], mine)
            return {self.overrides: marks, self.slots[i].params_box: gr.update(label=label)}

        return mark


def build_shared_params(device: str) -> SharedParams:
    """The shared parameters row, in a folded box whose label says the settings that matter most;
    max new tokens defaults to what the device answers in reasonable time (playground/params.py)."""
    d = build_params({"max_new_tokens": default_max_new_tokens(device)})
    with gr.Accordion(shared_label(d.max_new_tokens, d.temperature), open=False,
                      elem_id="shared-params-box") as box, gr.Row(elem_classes=["pg-params"]):
        widgets = {
            "max_new_tokens": gr.Number(d.max_new_tokens, label="Max new tokens", precision=0, minimum=1,
                                        min_width=110, elem_id="shared-max-new-tokens"),
            "temperature": gr.Number(d.temperature, label="Temperature (0 = greedy)", minimum=0, maximum=2,
                                     step=0.05, min_width=110, elem_id="shared-temperature"),
            "top_p": gr.Number(d.top_p, label="Top-p", minimum=0.05, maximum=1, step=0.05, min_width=110,
                               elem_id="shared-top-p"),
            "top_k": gr.Number(d.top_k, label="Top-k (0 = off)", precision=0, minimum=0, min_width=110,
                               elem_id="shared-top-k"),
            "repetition_penalty": gr.Number(d.repetition_penalty, label="Repetition penalty", minimum=0.5,
                                            maximum=2, step=0.05, min_width=110,
                                            elem_id="shared-repetition-penalty"),
            "seed": gr.Number(d.seed, label="Seed", precision=0, min_width=110, elem_id="shared-seed"),
            "stop": gr.Textbox("", label="Stop strings (one per line; \\n \\t \\\\ are escapes)", lines=1,
                               max_lines=4, elem_classes=["pg-stop"], elem_id="shared-stop"),
        }
    return SharedParams(widgets, gr.State([]), box)


def shared_label(max_new_tokens: Any, temperature: Any) -> str:
    """The shared row's label: the two settings that decide how long and how random every answer is."""
    try:
        heat = "greedy" if float(temperature or 0) == 0 else f"temperature {float(temperature):g}"
    except (TypeError, ValueError):
        heat = "temperature ?"
    return f"Shared parameters · {max_new_tokens} tokens · {heat}"


def params_label(overridden: list[str], values: dict[str, Any] | None = None) -> str:
    """A column's Parameters label: which shared fields this column overrides (with its values)."""
    if not overridden:
        return "Parameters (shared)"
    named = [f"{name.replace('_', ' ')} {_shown(values.get(name))}" if values else name.replace("_", " ")
             for name in overridden]
    return "Parameters · override: " + ", ".join(named)


def _shown(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    text = " ".join(str(value if value is not None else "").split())
    return text if len(text) <= 16 else text[:15] + "…"


def spread(name: str, boxes: list[Any], value: Any, marks: list[list[str]]) -> dict[Any, Any]:
    """The row's new value into every column's box that does not override it."""
    return {box: value for i, box in enumerate(boxes) if i >= len(marks) or name not in marks[i]}
