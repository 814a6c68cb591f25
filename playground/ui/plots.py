"""Plotly figures from plain numbers (drawn from the run record)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import plotly.graph_objects as go

from playground.wording import plural

# Mean scores: dark blue (0) to yellow (1), readable with any colour vision (it was red-to-green).
SCORE_SCALE = "Cividis"


def fit(figure: go.Figure) -> go.Figure:
    """Room for every label: axes grow their margins to fit their tick labels and titles (automargin),
    the title starts at the left edge, and text written beside markers is not cut at the plot area."""
    figure.update_xaxes(automargin=True)
    figure.update_yaxes(automargin=True)
    figure.update_layout(title_x=0, title_xanchor="left", title_automargin=True, title_font_size=14)
    figure.update_traces(cliponaxis=False, selector={"type": "scatter"})
    return figure


@dataclass(frozen=True)
class CountRow:
    """One model's count of the user's text: the token counts figure's input, defined here (not in
    token_view.py, which builds the rows) so that the figures import nothing from the page."""

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
    return fit(figure)


def attention_heatmap(matrix: np.ndarray, labels: list[str], first: int, title: str) -> go.Figure:
    """Query tokens down, key tokens across; hover names both tokens and the weight."""
    axis = [f"{first + i}: {label}" for i, label in enumerate(labels)]
    hover = [[f"{axis[q]} → {axis[k]}" for k in range(len(axis))] for q in range(len(axis))]
    figure = go.Figure(
        go.Heatmap(
            z=matrix,
            x=axis,
            y=axis,
            customdata=hover,
            colorscale="Viridis",
            zmin=0,
            hovertemplate="from %{y}<br>to %{x}<br>weight %{z:.4f}<extra></extra>",
        )
    )
    figure.update_layout(
        title=title,
        height=560,
        margin={"l": 110, "r": 20, "t": 50, "b": 110},
        yaxis={"autorange": "reversed", "title": "from (query)", "tickfont": {"size": 9}},
        xaxis={"title": "to (key)", "tickfont": {"size": 9}},
    )
    return fit(figure)


def sink_figure(series: list[tuple[str, list[float], list[float]]]) -> go.Figure:
    """Per layer: attention mass on the first token and on control tokens, one line per model."""
    figure = go.Figure()
    for name, first, special in series:
        layers = list(range(len(first)))
        figure.add_trace(go.Scatter(x=layers, y=first, mode="lines+markers", name=f"{name}: first token"))
        if any(special):
            figure.add_trace(go.Scatter(x=layers, y=special, mode="lines+markers", line={"dash": "dot"},
                                        name=f"{name}: control tokens"))
    figure.update_layout(
        title="Attention sinks: mean attention mass per layer",
        xaxis_title="layer",
        yaxis={"title": "share of attention", "range": [0, 1]},
        height=320,
        margin={"l": 50, "r": 20, "t": 50, "b": 40},
    )
    return fit(figure)


def agreement_figure(labels: list[str], matrix: list[list[float]], title: str) -> go.Figure:
    """N x N similarity with the numbers written on the cells."""
    figure = go.Figure(
        go.Heatmap(
            z=matrix,
            x=labels,
            y=labels,
            zmin=0,
            zmax=1,
            colorscale="Blues",
            text=[[f"{v:.2f}" for v in row] for row in matrix],
            texttemplate="%{text}",
            hovertemplate="%{y} vs %{x}: %{z:.3f}<extra></extra>",
        )
    )
    figure.update_layout(
        title=title,
        height=120 + 60 * len(labels),
        margin={"l": 140, "r": 20, "t": 50, "b": 80},
        yaxis={"autorange": "reversed"},
    )
    return fit(figure)


# -- batches of a prompt set (playground/ui/batch_view.py): labels come in already made plotly-safe ------


def batch_quality_figure(models: list[str], scores: list[float | None], p95_s: list[float]) -> go.Figure:
    """Per model: mean score against p95 latency (up and to the left is better)."""
    shown = [(m, s, p) for m, s, p in zip(models, scores, p95_s, strict=True) if s is not None]
    figure = go.Figure(
        go.Scatter(
            x=[p for _, _, p in shown],
            y=[s for _, s, _ in shown],
            text=[m for m, _, _ in shown],
            mode="markers+text",
            textposition="top center",
            marker={"size": 13, "color": "#3b6fb6"},
            hovertemplate="%{text}<br>p95 latency %{x:.2f} s<br>mean score %{y:.3f}<extra></extra>",
        )
    )
    unscored = len(models) - len(shown)
    note = f" ({plural(unscored, 'model')} without scores left out)" if unscored else ""
    figure.update_layout(
        title=f"Quality against p95 latency{note}",
        xaxis={"title": "p95 latency (s, whole answer)", "rangemode": "tozero"},
        yaxis={"title": "mean score", "range": [-0.05, 1.1]},
        height=340,
        margin={"l": 50, "r": 20, "t": 50, "b": 40},
    )
    return fit(figure)


def batch_latency_figure(models: list[str], latencies: list[list[float]]) -> go.Figure:
    """Per model: the distribution of whole-answer latency over the set (a box with every point)."""
    figure = go.Figure()
    for model, values in zip(models, latencies, strict=True):
        figure.add_trace(go.Box(y=values, name=model, boxpoints="all", jitter=0.4, pointpos=0,
                                hovertemplate="%{y:.2f} s<extra>" + model + "</extra>"))
    figure.update_layout(
        title="Latency per prompt (total time)",
        yaxis={"title": "seconds", "rangemode": "tozero"},
        showlegend=False,
        height=340,
        margin={"l": 50, "r": 20, "t": 50, "b": 40},
    )
    return fit(figure)


def category_heatmap(models: list[str], categories: list[str], matrix: list[list[float | None]]) -> go.Figure:
    """Mean score by category (rows) and model (columns), the numbers written on the cells."""
    figure = go.Figure(
        go.Heatmap(
            z=matrix,
            x=models,
            y=categories,
            zmin=0,
            zmax=1,
            colorscale=SCORE_SCALE,
            text=[["–" if v is None else f"{v:.2f}" for v in row] for row in matrix],
            texttemplate="%{text}",
            hovertemplate="%{y} · %{x}: %{z:.3f}<extra></extra>",
        )
    )
    figure.update_layout(
        title="Mean score by category",
        height=120 + 40 * max(len(categories), 1),
        margin={"l": 140, "r": 20, "t": 50, "b": 60},
        yaxis={"autorange": "reversed"},
    )
    return fit(figure)
