"""Run against run: what changed between two saved runs' columns, listed above their output diff.

An output diff alone invites the wrong conclusion ("the model got worse") when the prompt, the
seed or the weights file changed in between; this lists those differences first.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from playground.inspect.diff import ColumnDiff, DiffOp, abbreviate, word_diff
from playground.record import GenerationParams, ModelIdentity, ModelRun, Run
from playground.wording import plural


@dataclass(frozen=True)
class FieldChange:
    """One field that differs: "temperature", "sha256", "libraries.torch", ...; "" stands for absent."""

    name: str
    old: Any
    new: Any

    def describe(self) -> str:
        return f"{self.name}: {_show(self.old)} → {_show(self.new)}"


@dataclass(frozen=True)
class TextChange:
    """A changed prompt: the full word diff, and a shortened one for a one-line summary."""

    ops: list[DiffOp]
    short: list[DiffOp]


@dataclass
class RunDiff:
    """Differences between column_a of run a and column_b of run b, setup first, then output."""

    run_a: str  # Run.id
    run_b: str
    column_a: int
    column_b: int
    prompt: TextChange | None = None  # None: unchanged
    system_prompt: TextChange | None = None
    identity: list[FieldChange] = field(default_factory=list)
    params: list[FieldChange] = field(default_factory=list)
    specials_as_text: FieldChange | None = None
    conversation: FieldChange | None = None  # the earlier turns this column saw differ
    outcome: list[FieldChange] = field(default_factory=list)  # finish_reason, output token count
    output: ColumnDiff | None = None

    @property
    def same_setup(self) -> bool:
        """Same prompt, model and parameters: any output difference is the model's (or sampling's)."""
        changes = (self.prompt, self.system_prompt, self.identity, self.params, self.specials_as_text,
                   self.conversation)
        return not any(changes)

    def summary(self) -> list[str]:
        """One line per difference, in the order the panel shows them."""
        lines = []
        if self.prompt:
            lines.append(f"prompt changed: {_ops_text(self.prompt.short)}")
        if self.system_prompt:
            lines.append(f"system prompt changed: {_ops_text(self.system_prompt.short)}")
        lines += [f"model {c.describe()}" for c in self.identity]
        lines += [f"parameter {c.describe()}" for c in self.params]
        if self.specials_as_text:
            lines.append(self.specials_as_text.describe())
        if self.conversation:
            lines.append(self.conversation.describe())
        lines += [c.describe() for c in self.outcome]
        return lines


def compare_runs(a: Run, b: Run, column_a: int, column_b: int) -> RunDiff:
    """Compare column `column_a` (ModelRun.column) of run a with column `column_b` of run b."""
    model_a, model_b = _column(a, column_a, "a"), _column(b, column_b, "b")
    return RunDiff(
        run_a=a.id,
        run_b=b.id,
        column_a=column_a,
        column_b=column_b,
        prompt=_text_change(a.prompt, b.prompt),
        # each column's own system prompt (a column may have its own; else the run's)
        system_prompt=_text_change(a.column_system_prompt(model_a), b.column_system_prompt(model_b)),
        identity=identity_changes(model_a.identity, model_b.identity),
        params=param_changes(model_a.params, model_b.params),
        specials_as_text=(
            FieldChange("specials_as_text", a.specials_as_text, b.specials_as_text)
            if a.specials_as_text != b.specials_as_text else None
        ),
        conversation=_conversation_change(a, b, model_a, model_b),
        outcome=_outcome_changes(model_a, model_b),
        output=_output_diff(model_a, model_b),
    )


def _conversation_change(a: Run, b: Run, model_a: ModelRun, model_b: ModelRun) -> FieldChange | None:
    """Earlier turns as each column saw them (the prompts and its own answers), when they differ."""
    def seen(run: Run, model: ModelRun) -> list[tuple[str, str]]:
        index = run.models.index(model)
        return [(turn.prompt, turn.models[index].text) for turn in run.history]

    before, after = seen(a, model_a), seen(b, model_b)
    if before == after:
        return None
    now = plural(len(after), "turn")
    return FieldChange("earlier turns", plural(len(before), "turn"),
                       f"{now}, not the same" if len(before) == len(after) else now)


def _column(run: Run, column: int, which: str) -> ModelRun:
    for model in run.models:
        if model.column == column:
            return model
    have = [m.column for m in run.models]
    raise ValueError(f"run {which} ({run.id}) has no column {column}; it has columns {have}")


def _text_change(old: str, new: str) -> TextChange | None:
    if old == new:
        return None
    ops = word_diff(old, new)
    return TextChange(ops, abbreviate(ops))


def identity_changes(old: ModelIdentity, new: ModelIdentity) -> list[FieldChange]:
    """Every identity field that differs; library versions one by one ("libraries.torch")."""
    changes = _field_changes(old, new, skip={"libraries"})
    for lib in sorted(set(old.libraries) | set(new.libraries)):
        before, after = old.libraries.get(lib, ""), new.libraries.get(lib, "")
        if before != after:
            changes.append(FieldChange(f"libraries.{lib}", before, after))
    return changes


def param_changes(old: GenerationParams, new: GenerationParams) -> list[FieldChange]:
    return _field_changes(old, new)


def _field_changes(old: Any, new: Any, skip: frozenset[str] | set[str] = frozenset()) -> list[FieldChange]:
    return [
        FieldChange(f.name, getattr(old, f.name), getattr(new, f.name))
        for f in dataclasses.fields(old)
        if f.name not in skip and getattr(old, f.name) != getattr(new, f.name)
    ]


def _outcome_changes(a: ModelRun, b: ModelRun) -> list[FieldChange]:
    """How each generation ended: a "length" stop next to an "eos" explains a shorter output."""
    pairs = [
        ("finish_reason", a.finish_reason, b.finish_reason),
        ("output tokens", len(a.steps), len(b.steps)),
    ]
    return [FieldChange(name, x, y) for name, x, y in pairs if x != y]


def _output_diff(a: ModelRun, b: ModelRun) -> ColumnDiff:
    for which, model in (("run a", a), ("run b", b)):
        if model.error:
            message = f"cannot diff: {which} column {model.column + 1} failed: {model.error}"
            return ColumnDiff(a.column, b.column, error=message)
    return ColumnDiff(a.column, b.column, word_diff(a.text, b.text))


def _show(value: Any) -> str:
    if value == "" or value is None:
        return "(none)"
    if isinstance(value, float):
        return f"{value:g}"
    return repr(value) if isinstance(value, list) else str(value)


def _ops_text(ops: list[DiffOp]) -> str:
    marks = {"equal": "", "insert": "+", "delete": "\u2212"}
    return "".join(f"[{marks[op.kind]}{op.text}]" if op.kind != "equal" else op.text for op in ops)
