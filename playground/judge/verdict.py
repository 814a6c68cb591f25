"""A judge's verdict as data, and how verdicts fill a batch table's cells (batch/summary.py Cell)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from playground.batch.summary import Cell
from playground.record import _build


@dataclass
class Verdict:
    """One judgement of one prompt's answers: one column (rubric), two (pairwise) or all (best)."""

    method: str  # rubric | pairwise | best
    judge: str  # the judge model
    run_id: str
    prompt_index: int = 0
    columns: list[int] = field(default_factory=list)  # the judged columns
    models: list[str] = field(default_factory=list)  # their catalog ids (for matching blind votes)
    scores: list[float | None] = field(default_factory=list)  # per judged column, in [0, 1]; None: no verdict
    rationale: list[str] = field(default_factory=list)  # per judged column: the judge's words, or why none
    winner: int = -1  # pairwise / best: the winning column; -1 for a tie or no verdict
    outcome: str = ""  # graded | win | tie | none (no verdict could be read)
    consistent: bool | None = None  # pairwise: both orders gave the same verdict
    seed: int | None = None  # best: the shuffle's seed
    shown: list[int] = field(default_factory=list)  # best: columns in the order shown (letter i = shown[i])
    prompts: list[str] = field(default_factory=list)  # what the judge was asked (pairwise: both orders)
    outputs: list[str] = field(default_factory=list)  # what the judge wrote, in the same order
    created_at: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Any) -> Verdict:
        """RecordError for a stored verdict that does not read back (unknown fields, wrong types)."""
        return _build(cls, data, "verdict")


def latest_group(verdicts: list[Verdict]) -> list[Verdict]:
    """The verdicts of the judge and method used last (a batch judged twice shows its latest judging)."""
    if not verdicts:
        return []
    last = max(verdicts, key=lambda v: v.created_at)
    return [v for v in verdicts if (v.judge, v.method) == (last.judge, last.method)]


def apply(cells: list[Cell], verdicts: list[Verdict]) -> None:
    """Fill Cell.judge_score / judge_method / judge_rationale in place from the verdicts."""
    by_place = {(c.prompt_index, c.column): c for c in cells}
    for v in verdicts:
        for column, score, words in zip(v.columns, v.scores, v.rationale, strict=False):
            cell = by_place.get((v.prompt_index, column))
            if cell is not None and cell.run_id == v.run_id:
                cell.judge_score, cell.judge_method, cell.judge_rationale = score, v.method, words
