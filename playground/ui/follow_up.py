"""The follow-up box under the columns: the next turn of the conversation shown.

Every column continues its own conversation (its model sees its own earlier answers); the turn
is saved as a new run linked to the one it continues (RunService.follow_up_request). The box is
enabled while a saved run is shown and not while a run streams (SessionBar.updates); the row itself
stays hidden until a run has answered (Page.follow_shown), so a first visit does not offer to continue
a conversation that does not exist.
"""

from __future__ import annotations

import gradio as gr

from playground.ui.session_bar import SessionBar


def build_follow_up(bar: SessionBar) -> gr.Row:
    """The follow-up row (hidden until a run has answered); its box and button go into the session bar."""
    with gr.Row(elem_id="follow-up-row", equal_height=True, visible=False) as row:
        bar.follow_text = gr.Textbox(
            label="Follow-up: continues every column's conversation (each model sees its own answers)",
            placeholder="Ask a follow-up… (Run starts a new conversation)", lines=1, max_lines=6,
            interactive=False, elem_id="follow-up", scale=1)
        bar.follow_btn = gr.Button("Send follow-up ▶", interactive=False, elem_id="follow-up-btn", scale=0,
                                   min_width=170)
    return row
