"""What a batch is: its prompt set, its columns and its default scoring (stored as JSON, checked on read)."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any

from playground.batch.prompt_set import MAX_PROMPTS, PromptItem, PromptSetError, check_item
from playground.batch.score import Scoring
from playground.judge.spec import JudgeSpec
from playground.params import validate_params
from playground.record import GenerationParams, RecordError, _build, new_run_id

MAX_COLUMNS = 16
MAX_NAME_CHARS = 200


class SpecError(ValueError):
    """A batch description that cannot be used; the message names the field."""


@dataclass
class ColumnSpec:
    model: str  # what the user picked: catalog id, .gguf path, directory or hub id
    params: GenerationParams = field(default_factory=GenerationParams)
    system_prompt: str | None = None  # this column's own system prompt; None: the prompt's


@dataclass
class BatchSpec:
    items: list[PromptItem]
    columns: list[ColumnSpec]
    scoring: Scoring = field(default_factory=Scoring)
    name: str = ""
    capture_attention: bool = False  # one extra forward pass per column and prompt: off for batches
    alone: bool = False  # each model runs its prompt by itself, one at a time: wall-clock latency alone
    judge: JudgeSpec | None = None  # a judge model grades the answers after the batch (playground/judge)
    id: str = field(default_factory=new_run_id)
    created_at: float = field(default_factory=time.time)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Any) -> BatchSpec:
        if not isinstance(data, dict):
            raise SpecError("batch: expected an object")
        known = {"items", "columns", "scoring", "judge", *_TOP}
        unknown = set(data) - known
        if unknown:
            raise SpecError(f"batch: unknown fields {sorted(unknown)}")
        items, columns = data.get("items"), data.get("columns")
        if not isinstance(items, list) or not isinstance(columns, list):
            raise SpecError("batch: items and columns must be lists")
        if len(items) > MAX_PROMPTS or len(columns) > MAX_COLUMNS:
            raise SpecError(f"batch: at most {MAX_PROMPTS} prompts and {MAX_COLUMNS} columns")
        try:
            spec = cls(
                items=[_build(PromptItem, x, f"batch.items[{i}]") for i, x in enumerate(items)],
                columns=[_build(ColumnSpec, x, f"batch.columns[{i}]") for i, x in enumerate(columns)],
                scoring=_build(Scoring, data.get("scoring", {}), "batch.scoring"),
                judge=None if data.get("judge") is None else _build(JudgeSpec, data["judge"], "batch.judge"),
                **_build(_Top, {k: data[k] for k in data if k in _TOP}, "batch").__dict__,
            )
        except RecordError as exc:
            raise SpecError(str(exc)) from exc
        problems = spec.problems()
        if problems:
            raise SpecError("; ".join(problems))
        return spec

    def problems(self) -> list[str]:
        out = []
        if not self.items:
            out.append("the batch has no prompts")
        if not self.columns:
            out.append("the batch has no model columns")
        if len(self.name) > MAX_NAME_CHARS:
            out.append(f"the batch name is longer than {MAX_NAME_CHARS} characters")
        ids = set()
        for i, item in enumerate(self.items):
            try:
                check_item(item, f"prompt {i + 1}")
            except PromptSetError as exc:
                out.append(str(exc))
            if item.id in ids:
                out.append(f"prompt {i + 1}: id {item.id!r} appears twice")
            ids.add(item.id)
        for i, column in enumerate(self.columns):
            out += [f"column {i}: {p}" for p in validate_params(column.params)]
            if not column.model.strip():
                out.append(f"column {i}: no model")
        out += self.scoring.problems(len(self.columns))
        if self.judge is not None:
            out += self.judge.problems(len(self.columns))
        return out


@dataclass
class _Top:
    """The scalar fields of a stored batch, read strictly (record._build)."""

    name: str = ""
    capture_attention: bool = False
    alone: bool = False  # absent from batches stored before it existed: they ran side by side
    id: str = ""
    created_at: float = 0.0


_TOP = ("name", "capture_attention", "alone", "id", "created_at")
