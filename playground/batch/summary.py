"""The result of a batch: a table (prompt x model) and per-model figures. Pure: records in, data out.

Latency figures say how they were measured (Cell.timing, ModelSummary.timing, BatchResult.timing):
by default each column's own time (its prompt, prefill and steps: playground/clocks.py), so a model
run beside a slower one is not charged its neighbour's steps; with a batch's `alone` option each
model ran its prompt by itself and the figures are the wall clock a user would wait. Runs saved
before per-column clocks only have wall time with the neighbours' steps in it, and say so.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

from playground.batch.prompt_set import PromptItem
from playground.batch.score import SCORING_BUDGET_S, Embed, Scoring, score_answer, similarities
from playground.clocks import OWN_CLOCK
from playground.inspect.agreement import column_label
from playground.patterns import PatternTimeout, TimeBudget
from playground.record import ModelRun, Run

OWN_TIME = "own time: each model's own prompt, prefill and steps (its neighbours' steps left out)"
ALONE_WALL = "wall clock, each model run alone (one model at a time)"
SHARED_WALL = "wall clock, neighbours' steps included (runs saved before per-column clocks)"


@dataclass
class Cell:
    """One model's answer to one prompt, with its score and figures."""

    prompt_index: int
    prompt_id: str
    category: str
    column: int
    model: str  # column label, "1 · smollm2-135m"
    run_id: str = ""  # the saved run ("" while the prompt has not run)
    status: str = "pending"  # pending | done | failed (the prompt could not run) | error (this column failed)
    output: str = ""
    score: float | None = None
    score_note: str = ""  # why there is no score
    ttft_s: float = 0.0
    total_s: float = 0.0
    prompt_tokens: int = 0
    output_tokens: int = 0
    tok_s: float = 0.0
    cost_usd: float = 0.0
    finish_reason: str = ""
    error: str = ""
    anomalies: list[str] = field(default_factory=list)  # kinds, e.g. ["special_literal"]
    timing: str = ""  # how ttft_s and total_s were measured: OWN_TIME, ALONE_WALL or SHARED_WALL
    judge_score: float | None = None  # a judge model's grade in [0, 1] (None: not judged, or no verdict)
    judge_method: str = ""  # rubric | pairwise | best (playground/judge/)
    judge_rationale: str = ""  # the judge's own words for its verdict, shown in the cell


@dataclass
class ModelSummary:
    column: int
    model: str
    prompts: int = 0
    answered: int = 0
    errors: int = 0
    scored: int = 0
    mean_score: float | None = None
    latency_p50_s: float = 0.0  # total time per prompt, answered prompts
    latency_p95_s: float = 0.0
    latency_max_s: float = 0.0
    ttft_p50_s: float = 0.0
    ttft_mean_s: float = 0.0
    output_tokens: int = 0
    mean_output_tokens: float = 0.0
    mean_tok_s: float = 0.0
    cost_usd: float = 0.0
    anomalies: dict[str, int] = field(default_factory=dict)  # kind -> prompts with it
    timing: str = ""  # how its latency and TTFT figures were measured (several, "; "-joined, if mixed)


def percentile(values: list[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default); 0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100.0
    low, high = math.floor(pos), math.ceil(pos)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else 0.0


def build_table(items: list[PromptItem], columns: int, runs: dict[int, Run], scoring: Scoring,
                embed: Embed | None = None, failed: dict[int, str] | None = None,
                alone: bool = False) -> list[Cell]:
    """Every (prompt, column) cell, prompt order then column order. `runs`: prompt index -> saved run;
    `failed`: prompt index -> why the prompt could not run. Semantic and agreement scores need `embed`.
    `alone`: the batch ran each model by itself, and its cells take the wall clock (_timing)."""
    failed = failed or {}
    cells: list[Cell] = []
    for index, item in enumerate(items):
        run = runs.get(index)
        for column in range(columns):
            model = run.models[column] if run is not None and column < len(run.models) else None
            name = model.identity.catalog_id if model else ""
            cell = Cell(index, item.id, item.category, column, column_label(column, name) if name
                        else str(column + 1))
            if index in failed:
                cell.status, cell.error = "failed", failed[index]
            if model is not None:
                m = model.metrics
                cell.run_id, cell.output, cell.finish_reason = run.id, model.text, model.finish_reason
                cell.status = "error" if model.error else "done"
                cell.error = model.error
                cell.ttft_s, cell.total_s, cell.timing = _timing(model, alone)
                cell.tok_s = m.decode_tok_s
                cell.prompt_tokens, cell.output_tokens = m.prompt_tokens, m.output_tokens
                cell.cost_usd = m.cost_usd
                cell.anomalies = [a.kind for a in model.anomalies]
            cells.append(cell)
    _score(cells, items, columns, scoring, embed)
    return cells


def _timing(model: ModelRun, alone: bool) -> tuple[float, float, str]:
    """A column's TTFT and total, and how they were measured. Side by side, its own time; alone,
    the wall clock a user waited (nothing else ran, so nothing but its own work is in it)."""
    m = model.metrics
    if m.clock != OWN_CLOCK:
        return m.ttft_s, m.total_s, SHARED_WALL
    if alone:
        return m.wall_ttft_s, m.wall_total_s, ALONE_WALL
    return m.ttft_s, m.total_s, OWN_TIME


def _score(cells: list[Cell], items: list[PromptItem], columns: int, scoring: Scoring,
           embed: Embed | None) -> None:
    """Scores and notes in place. Regex searches share one SCORING_BUDGET_S for the whole table (the
    page rescores on every refresh), and a pattern that ran out of time is not tried again."""
    pending: list[tuple[Cell, str, str]] = []  # (cell, a, b) for the embedding model
    budget = TimeBudget(SCORING_BUDGET_S)
    stopped: dict[str, str] = {}  # expected pattern -> why it was given up
    for cell in cells:
        item = items[cell.prompt_index]
        if cell.status in ("pending", "failed"):
            cell.score_note = "not run" if cell.status == "pending" else "could not run"
            continue
        if cell.status == "error":
            cell.score, cell.score_note = 0.0, "the model failed"
            continue
        if scoring.method == "agreement":
            if cell.column == scoring.reference_column:
                cell.score_note = "reference column"
                continue
            ref = cells[cells.index(cell) - cell.column + scoring.reference_column]
            if ref.status != "done":
                cell.score_note = "the reference column has no answer"
                continue
            pending.append((cell, cell.output, ref.output))
            continue
        if not item.expected:
            cell.score_note = "no expected answer"
            continue
        if scoring.method == "semantic":
            pending.append((cell, cell.output, item.expected))
            continue
        if item.expected in stopped:
            cell.score_note = stopped[item.expected]
            continue
        try:
            cell.score, cell.score_note = score_answer(  # contains: an echo of the prompt gets 0 and a note
                scoring.method, cell.output, item.expected, item.prompt, scoring.tolerance, budget)
        except PatternTimeout as exc:
            cell.score_note = stopped[item.expected] = str(exc)
        except ValueError as exc:
            cell.score_note = str(exc)
    if pending:
        if embed is None:
            for cell, _a, _b in pending:
                cell.score_note = f"{scoring.method} scoring needs the embedding model"
            return
        for (cell, _a, _b), value in zip(pending, similarities([(a, b) for _c, a, b in pending], embed),
                                         strict=True):
            cell.score = value


def summarise(cells: list[Cell], columns: int) -> list[ModelSummary]:
    """Per column: mean score, latency percentiles, TTFT, tokens, tok/s, cost, anomalies."""
    out = []
    for column in range(columns):
        own = [c for c in cells if c.column == column]
        ran = [c for c in own if c.status in ("done", "error")]
        done = [c for c in own if c.status == "done"]
        scores = [c.score for c in own if c.score is not None]
        latency = [c.total_s for c in done]
        ttft = [c.ttft_s for c in done if c.ttft_s > 0]
        label = next((c.model for c in own if "·" in c.model), str(column + 1))
        kinds: Counter[str] = Counter()
        for c in ran:
            kinds.update(set(c.anomalies))
        out.append(ModelSummary(
            column=column, model=label, prompts=len(own), answered=len(done),
            errors=sum(1 for c in own if c.status in ("error", "failed")), scored=len(scores),
            mean_score=_mean(scores) if scores else None,
            latency_p50_s=percentile(latency, 50), latency_p95_s=percentile(latency, 95),
            latency_max_s=max(latency, default=0.0),
            ttft_p50_s=percentile(ttft, 50), ttft_mean_s=_mean(ttft),
            output_tokens=sum(c.output_tokens for c in ran),
            mean_output_tokens=_mean([float(c.output_tokens) for c in done]),
            mean_tok_s=_mean([c.tok_s for c in done if c.tok_s > 0]),
            cost_usd=sum(c.cost_usd for c in ran), anomalies=dict(sorted(kinds.items())),
            timing=timing_of(done),
        ))
    return out


def timing_of(cells: list[Cell]) -> str:
    """How these cells' latency figures were measured, in words (several joined when they differ)."""
    return "; ".join(sorted({c.timing for c in cells if c.timing}))


def prompt_anomalies(cells: list[Cell]) -> dict[str, int]:
    """Prompt id -> how many of its columns had at least one anomaly in their input."""
    counts: dict[str, int] = {}
    for c in cells:
        counts[c.prompt_id] = counts.get(c.prompt_id, 0) + (1 if c.anomalies else 0)
    return counts


@dataclass
class BatchResult:
    batch_id: str
    name: str
    total: int
    done: int
    failed: int
    scoring: Scoring
    cells: list[Cell]
    models: list[ModelSummary]
    anomalies_per_prompt: dict[str, int]
    timing: str = ""  # how the latency figures were measured (timing_of over every answered cell)

    @property
    def complete(self) -> bool:
        return self.done + self.failed >= self.total

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
