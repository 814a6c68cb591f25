"""The page's charts: a colour-blind-safe score scale, and room for every label (issue 22 item 8)."""

from __future__ import annotations

import pytest

from playground.routing import sweep
from playground.routing.figures import sweep_figure
from playground.ui import plots


def _figures() -> list:
    return [
        plots.token_counts_figure([plots.CountRow("smollm2-135m", 5, 20, 30, 8192)]),
        plots.sink_figure([("m", [0.5, 0.4], [0.1, 0.0])]),
        plots.agreement_figure(["a", "b"], [[1.0, 0.5], [0.5, 1.0]], "agreement"),
        plots.batch_quality_figure(["a", "b"], [0.5, None], [1.0, 2.0]),
        plots.batch_latency_figure(["a"], [[1.0, 2.0]]),
        plots.category_heatmap(["a", "b"], ["summarisation", "extraction"], [[0.5, None], [1.0, 0.0]]),
    ]


def test_the_category_heatmap_uses_a_colour_blind_safe_scale() -> None:
    figure = plots.category_heatmap(["a", "b"], ["x"], [[0.0, 1.0]])
    scale = figure.data[0].colorscale
    assert plots.SCORE_SCALE == "Cividis"
    assert scale[0][1].lower() == "#00224e" and scale[-1][1].lower() == "#fee838"  # cividis: blue to yellow


@pytest.mark.parametrize("figure", _figures(), ids=lambda f: str(f.layout.title.text)[:30])
def test_every_page_chart_makes_room_for_its_labels(figure) -> None:  # noqa: ANN001
    assert figure.layout.xaxis.automargin is True and figure.layout.yaxis.automargin is True
    assert figure.layout.title.automargin is True and figure.layout.title.xanchor == "left"
    for trace in figure.data:
        if trace.type == "scatter":
            assert trace.cliponaxis is False  # a model name written beside its marker is not cut


def test_the_quality_chart_counts_left_out_models_in_words() -> None:
    assert "1 model without scores left out" in plots.batch_quality_figure(["a", "b"], [0.5, None],
                                                                           [1.0, 2.0]).layout.title.text


def test_the_sweep_figure_makes_room_for_its_title_and_labels() -> None:
    from playground.routing import ModelResult, PromptRow, ResultTable

    rows = tuple(PromptRow(f"p{i}", "x " * (i + 1), results={"s": ModelResult(1.0 if i % 2 else 0.0, 1.0),
                                                            "w": ModelResult(0.0, 1.0)}) for i in range(6))
    figure = sweep_figure(sweep(ResultTable(rows), "s", "w", "prompt_tokens", chosen=3))
    assert figure.layout.title.automargin is True and figure.layout.title.xanchor == "left"
    assert figure.layout.xaxis.automargin is True and figure.layout.yaxis.automargin is True
    chosen = [t for t in figure.data if t.name == "chosen threshold"]
    assert chosen and chosen[0].cliponaxis is False
