"""The Attention panel: heatmaps of two columns side by side and the per-layer sink chart.

Drawn from the captured attention in the run record (float16, capped), so a
shared replay shows it without loading a model.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gradio as gr

from playground.inspect.attention import VIEWS, view, zoom
from playground.record import ModelRun, Run
from playground.ui import html as H
from playground.ui.plots import attention_heatmap, sink_figure
from playground.ui.token_view import chips_of, column_label

NO_MODEL_B = "(none)"


def attention_figure(
    model: ModelRun, layer: int, mode: str, head: int, first: int | None, last: int | None
) -> Any:
    """One model's heatmap for a layer and view, zoomed to a token range."""
    cap = model.attention
    head = min(max(head, 0), cap.heads - 1)
    matrix = view(cap, layer, mode, head)
    lo = cap.start if first is None else first
    hi = cap.start + cap.tokens - 1 if last is None else last
    matrix, origin = zoom(matrix, cap.start, lo, hi)
    chips = chips_of(model)[origin : origin + matrix.shape[0]]
    labels = [H.plot_label(c.text or c.raw) for c in chips]
    what = mode if mode != "one head" else f"head {head}"
    return attention_heatmap(matrix, labels, origin, f"{column_label(model)} · layer {layer} · {what}")


@dataclass
class AttentionPanel:
    note: Any
    model_a: Any
    model_b: Any
    layer: Any
    mode: Any
    head: Any
    first: Any
    last: Any
    plot_a: Any
    plot_b: Any
    sinks: Any

    @property
    def controls(self) -> list[Any]:
        return [self.model_a, self.model_b, self.layer, self.mode, self.head, self.first, self.last]

    @property
    def outputs(self) -> list[Any]:
        return [self.note, self.model_a, self.model_b, self.layer, self.first, self.last, self.plot_a,
                self.plot_b, self.sinks]

    def render(
        self, record: Run | None, a: str | None = None, b: str | None = None, layer: int | None = None,
        mode: str = VIEWS[0], head: int = 0, first: int | None = None, last: int | None = None,
    ) -> dict:
        """Heatmaps (A and B side by side) and the sink chart for the chosen view."""
        if record is None:
            return {}
        captured = [m for m in record.models if m.attention is not None]
        notes = [f"{column_label(m)}: {m.attention_note}" for m in record.models if m.attention is None]
        windowed = [m.attention.notice for m in captured if m.attention.notice]
        labels = [column_label(m) for m in captured]
        a = a if a in labels else (labels[0] if labels else None)
        b = b if b in labels and b != a else None
        updates: dict[Any, Any] = {
            self.note: H.attention_note(notes, windowed),
            self.model_a: gr.update(choices=labels, value=a),
            self.model_b: gr.update(choices=[NO_MODEL_B, *labels], value=b or NO_MODEL_B),
            # Model B's plot shows only once B is picked: until then A's heatmap takes the whole width.
            self.plot_a: None, self.plot_b: gr.update(value=None, visible=False), self.sinks: None,
        }
        if a is None:
            return updates | {self.layer: gr.update(choices=[], value=None)}
        model_a = captured[labels.index(a)]
        cap = model_a.attention
        layer = layer if layer in cap.layers else cap.layers[-1]
        updates[self.layer] = gr.update(choices=cap.layers, value=layer)
        updates[self.first] = cap.start if first is None else first
        updates[self.last] = cap.start + cap.tokens - 1 if last is None else last
        depth = cap.layers.index(layer)
        updates[self.plot_a] = attention_figure(model_a, layer, mode, head, first, last)
        series = [(a, cap.sink_first, cap.sink_special)]
        if b is not None:
            model_b = captured[labels.index(b)]
            layer_b = model_b.attention.layers[min(depth, len(model_b.attention.layers) - 1)]
            figure_b = attention_figure(model_b, layer_b, mode, head, first, last)
            updates[self.plot_b] = gr.update(value=figure_b, visible=True)
            series.append((b, model_b.attention.sink_first, model_b.attention.sink_special))
        updates[self.sinks] = sink_figure(series)
        return updates

    def wire(self, shown: Any) -> None:
        def redraw(record: Run | None, a: str, b: str, layer: int, mode: str, head: float | None,
                   first: float | None, last: float | None) -> dict:
            if not record:
                return gr.skip()  # nothing to draw: no update (an empty dict is an error in Gradio)
            return self.render(record, a, b, layer, mode, int(head or 0),
                               None if first is None else int(first), None if last is None else int(last))

        for control in self.controls:
            trigger = control.submit if control in (self.head, self.first, self.last) else control.input
            trigger(redraw, inputs=[shown, *self.controls], outputs=self.outputs)


def build_attention_panel() -> AttentionPanel:
    with gr.Accordion("Attention", open=False, elem_id="attn-box"):
        note = gr.HTML(elem_id="attn-note", padding=False)
        with gr.Row():
            model_a = gr.Dropdown(label="Model A", choices=[], elem_id="attn-a")
            model_b = gr.Dropdown(label="Model B, side by side", choices=[], elem_id="attn-b")
            layer = gr.Dropdown(label="Layer (model B: its layer at the same depth)", choices=[],
                                elem_id="attn-layer")
        with gr.Row():
            mode = gr.Radio(list(VIEWS), value=VIEWS[0], label="View", elem_id="attn-view")
            head = gr.Number(0, label="Head (for one head)", precision=0, minimum=0, elem_id="attn-head")
            first = gr.Number(None, label="Zoom: from token", precision=0, elem_id="attn-from")
            last = gr.Number(None, label="to token", precision=0, elem_id="attn-to")
        with gr.Row():
            plot_a = gr.Plot(elem_id="attn-plot-a", show_label=False)
            plot_b = gr.Plot(elem_id="attn-plot-b", show_label=False, visible=False)
        sinks = gr.Plot(elem_id="attn-sinks", show_label=False)
    return AttentionPanel(note, model_a, model_b, layer, mode, head, first, last, plot_a, plot_b, sinks)
