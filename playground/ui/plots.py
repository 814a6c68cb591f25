"""Plotly figures from plain numbers (drawn from the run record)."""

from __future__ import annotations

import plotly.graph_objects as go

from playground.ui.token_view import CountRow


def token_counts_figure(rows: list[CountRow]) -> go.Figure:
    """Tokens for the same text per model, labelled with characters per token."""
    figure = go.Figure(
        go.Bar(
            x=[r.label for r in rows],
            y=[r.user_tokens for r in rows],
            text=[f"{r.chars_per_token:.2f} chars/token · {r.window_share:.1%} of window" for r in rows],
            textposition="auto",
            marker_color="#3b6fb6",
            hovertemplate="%{x}<br>%{y:,} tokens<br>%{text}<extra></extra>",
        )
    )
    figure.update_layout(
        title="Your text, tokenized by each model",
        yaxis_title="tokens",
        height=320,
        margin={"l": 50, "r": 20, "t": 50, "b": 40},
    )
    return figure
