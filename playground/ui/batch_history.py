"""History follows the batches: a batch started, resumed, imported or opened shows in History at once,
and its entry's status ("running", "complete", "stopped") keeps up while it runs.

The batch panel's poll timer already ticks while a batch runs; History listens to the same tick and
redraws only when its listing changed, so an open History is not redrawn every second for nothing.
"""

from __future__ import annotations

from typing import Any

import gradio as gr


def wire_history_follows_batches(batch_id: Any, timer: gr.Timer, refresh: dict[str, Any]) -> None:
    """`refresh`: the event arguments that redraw History (SessionBar.refresh_history)."""
    listing, inputs, (history,) = refresh["fn"], refresh["inputs"], refresh["outputs"]
    last = gr.State("")

    def redraw(last_html: str, query: str, browser_id: object, batch_runs: object,
               request: gr.Request) -> dict[Any, Any]:
        drawn = listing(query, browser_id, batch_runs, request)
        if drawn == last_html:
            return gr.skip()  # nothing changed: leave History as it is
        return {history: drawn, last: drawn}

    gr.on([batch_id.change, timer.tick], redraw, inputs=[last, *inputs], outputs=[history, last],
          show_progress="hidden")
