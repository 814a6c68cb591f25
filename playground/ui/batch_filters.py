"""The batch matrix's filter boxes (model, category, prompt order): what a draw shows and sets.

A first draw of a batch sets the boxes to "all"; a redraw of a running batch (a prompt landed) keeps
the reader's pick for the grid and leaves the boxes' values alone: a pick made while that redraw was
on its way must not be overwritten by the value the redraw was started with.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gradio as gr

from playground.batch.matrix import ROW_SORTS
from playground.batch.summary import BatchResult
from playground.ui.batch_html import ALL_CATEGORIES, ALL_MODELS


@dataclass(frozen=True)
class Filters:
    models: list[str]  # the model box's choices ("all models" first)
    categories: list[str]
    model: str  # what the grid is drawn with
    category: str
    sort: str


def filters_for(result: BatchResult, kept: tuple[str, ...] = ()) -> Filters:
    """The choices this result offers and the pick to draw with: `kept` where still on offer, else all."""
    models = [ALL_MODELS, *dict.fromkeys(m.model for m in result.models)]
    categories = [ALL_CATEGORIES, *sorted({c.category for c in result.cells if c.category})]
    model, category, sort = (*kept, "", "", "")[:3]
    return Filters(models, categories, model if model in models else ALL_MODELS,
                   category if category in categories else ALL_CATEGORIES,
                   sort if sort in ROW_SORTS else ROW_SORTS[0])


def box_updates(f: Filters, redraw: bool) -> tuple[Any, Any, Any]:
    """Updates of the model, category and sort boxes: choices always, values only on a first draw."""
    if redraw:
        return gr.update(choices=f.models), gr.update(choices=f.categories), gr.update()
    return (gr.update(choices=f.models, value=f.model), gr.update(choices=f.categories, value=f.category),
            f.sort)
