"""A batch's results as a matrix (prompts as rows, models as columns) and as a long table to download.

The page draws the matrix (playground/ui/batch_matrix.py); the long table, one row per (prompt, model)
cell as build_table returns it, stays available as CSV or JSON for a spreadsheet or a script. Pure:
a BatchResult and its prompts in, data out.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import asdict, dataclass, field

from playground.batch.prompt_set import PromptItem
from playground.batch.summary import BatchResult, Cell

# A score at or above PASS_AT passes. exact, contains, regex and numeric score only 0 or 1 (score.py),
# so any cut-off between them agrees; semantic and agreement scores are cosine similarities of
# all-MiniLM-L6-v2 embeddings, where unrelated sentences sit near 0-0.3 and paraphrases above 0.5-0.6:
# 0.5 is the middle of [0, 1] and the usual "same meaning" line for that model. A judge's grade (also
# in [0, 1], playground/judge/) uses the same line.
PASS_AT = 0.5
PROMPT_ORDER = "prompt order"
ROW_SORTS = (PROMPT_ORDER, "lowest mean score first", "most disagreement first", "slowest first")
TABLE_FIELDS = ("prompt_index", "prompt_id", "category", "prompt", "expected", "column", "model", "status",
                "output", "score", "verdict", "score_note", "judge_score", "judge_method", "judge_rationale",
                "ttft_s", "total_s", "timing", "prompt_tokens", "output_tokens", "tok_s", "cost_usd",
                "finish_reason", "error", "anomalies", "run_id")


def verdict(score: float | None) -> str:
    """pass | fail for a score, none when there is no score (the cell's note says why)."""
    if score is None:
        return "none"
    return "pass" if score >= PASS_AT else "fail"


@dataclass
class MatrixRow:
    """One prompt of the set, and its cell in each column shown (None: no result for that model)."""

    index: int
    prompt_id: str
    category: str
    prompt: str
    expected: str
    cells: list[Cell | None] = field(default_factory=list)

    def scores(self) -> list[float]:
        return [c.score for c in self.cells if c is not None and c.score is not None]


@dataclass
class Matrix:
    batch_id: str
    columns: list[int]  # the batch's column index of each matrix column (a model filter keeps one)
    models: list[str]  # their labels, "1 · smollm2-135m"
    rows: list[MatrixRow]
    timing: str = ""  # how the cells' latency was measured (BatchResult.timing)


def _labels(result: BatchResult) -> list[str]:
    """Column labels: the per-model summary's, else the cells' (a batch with no summary yet)."""
    if result.models:
        return [m.model for m in sorted(result.models, key=lambda m: m.column)]
    count = max((c.column + 1 for c in result.cells), default=0)
    labels = [str(i + 1) for i in range(count)]
    for c in result.cells:
        if "·" in c.model:
            labels[c.column] = c.model
    return labels


def build_matrix(result: BatchResult, items: list[PromptItem] | None = None, model: str = "",
                 category: str = "", sort: str = PROMPT_ORDER) -> Matrix:
    """Prompts (set order) x models (column order). `items`: the batch's prompt set, for each row's text
    and expected answer (rows come from the cells when it is not given). `model`, `category`: show only
    that column / those rows ("" or an unknown name: all). `sort`: one of ROW_SORTS."""
    labels = _labels(result)
    columns = [i for i, label in enumerate(labels) if not model or label == model] or list(range(len(labels)))
    by_place = {(c.prompt_index, c.column): c for c in result.cells}
    if items is None:
        seen: dict[int, Cell] = {}
        for c in result.cells:
            seen.setdefault(c.prompt_index, c)
        count = max(seen, default=-1) + 1
        items = [PromptItem(prompt="", id=seen[i].prompt_id if i in seen else str(i + 1),
                            category=seen[i].category if i in seen else "") for i in range(count)]
    rows = []
    for index, item in enumerate(items):
        if category and (item.category or "") != category:
            continue
        rows.append(MatrixRow(index, item.id, item.category, item.prompt, item.expected,
                              [by_place.get((index, col)) for col in columns]))
    _sort(rows, sort)
    return Matrix(result.batch_id, columns, [labels[i] for i in columns], rows, result.timing)


def _sort(rows: list[MatrixRow], sort: str) -> None:
    """Rows in place; stable, so ties keep the set's order. Rows with no score go last."""
    if sort == "lowest mean score first":
        rows.sort(key=lambda r: (not r.scores(), sum(r.scores()) / len(r.scores()) if r.scores() else 0.0))
    elif sort == "most disagreement first":
        rows.sort(key=lambda r: -(max(r.scores()) - min(r.scores())) if r.scores() else 0.0)
    elif sort == "slowest first":
        rows.sort(key=lambda r: -max((c.total_s for c in r.cells if c is not None and c.status == "done"),
                                     default=0.0))


# -- the long table, to download ------------------------------------------------------------------


def table_rows(result: BatchResult, items: list[PromptItem]) -> list[dict[str, object]]:
    """One dict per (prompt, model) cell, prompt order then column order, with the prompt's text."""
    out = []
    for c in sorted(result.cells, key=lambda c: (c.prompt_index, c.column)):
        item = items[c.prompt_index] if 0 <= c.prompt_index < len(items) else PromptItem(prompt="")
        data = asdict(c)
        data.update(prompt=item.prompt, expected=item.expected, verdict=verdict(c.score),
                    anomalies=", ".join(c.anomalies))
        out.append({k: data.get(k, "") for k in TABLE_FIELDS})
    return out


def table_json(result: BatchResult, items: list[PromptItem]) -> str:
    return json.dumps({"batch_id": result.batch_id, "name": result.name, "scoring": asdict(result.scoring),
                       "pass_at": PASS_AT, "timing": result.timing, "cells": table_rows(result, items)},
                      indent=2, ensure_ascii=False)


def _cell_text(value: object) -> object:
    """A spreadsheet reads a text starting with = + - @ (or a tab / CR) as a formula: a model's answer
    must stay text, so such a text gets a leading apostrophe. Numbers are left as they are."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return "" if value is None else value


def table_csv(result: BatchResult, items: list[PromptItem]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=TABLE_FIELDS, lineterminator="\n")
    writer.writeheader()
    for row in table_rows(result, items):
        writer.writerow({k: _cell_text(v) for k, v in row.items()})
    return buffer.getvalue()
