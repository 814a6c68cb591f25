"""The sweep as a plotly figure: data in, figure out (no gradio; the page puts it in a gr.Plot)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import plotly.graph_objects as go

    from playground.routing.evaluate import Sweep


def sweep_figure(result: Sweep) -> go.Figure:
    """Quality against the share of prompts sent to the strong model; the random-router line between
    the two models; the chosen threshold marked; APGR in the title."""
    import plotly.graph_objects as go

    xs = [p.strong_share for p in result.points]
    ys = [p.quality for p in result.points]
    figure = go.Figure()
    figure.add_trace(go.Scatter(
        x=[0, 1], y=[result.weak_quality, result.strong_quality], mode="lines", name="random router",
        line={"dash": "dash", "color": "#999999"}, hoverinfo="skip",
    ))
    figure.add_trace(go.Scatter(
        x=xs, y=ys, mode="lines+markers", name=f"router: {result.router}", marker_color="#3b6fb6",
        customdata=[p.threshold for p in result.points],
        hovertemplate="threshold %{customdata:g}<br>%{x:.0%} to the strong model<br>"
                      "mean score %{y:.3f}<extra></extra>",
    ))
    if result.chosen is not None:
        c = result.chosen
        figure.add_trace(go.Scatter(
            x=[c.strong_share], y=[c.quality], mode="markers+text", name="chosen threshold",
            marker={"size": 13, "color": "#d9534f", "symbol": "diamond"},
            text=[f"threshold {c.threshold:g}"], textposition="top left", cliponaxis=False,
        ))
    summary = (f"APGR {result.apgr:.0%} of the quality gap recovered" if result.apgr is not None
               else "the two models score the same: no gap to recover")
    figure.update_layout(
        # left-anchored, with room made for it and the axis labels (they were clipped at the edges)
        title={"text": f"{result.weak} → {result.strong}: {summary}", "x": 0, "xanchor": "left",
               "automargin": True, "font": {"size": 14}},
        xaxis={"title": f"share of prompts sent to {result.strong}", "tickformat": ".0%",
               "range": [-0.02, 1.02], "automargin": True},
        yaxis={"title": "mean score", "automargin": True},
        height=360,
        margin={"l": 50, "r": 20, "t": 50, "b": 40},
    )
    return figure
