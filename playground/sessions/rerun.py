"""Compare a re-run with the saved run it repeats, column by column (token ids first)."""

from __future__ import annotations

from dataclasses import dataclass

from playground.engine import ColumnRequest, RunRequest
from playground.record import ModelIdentity, Run, SearchSnapshot

SNIPPET = 40


@dataclass(frozen=True)
class ColumnMatch:
    column: int
    model: str
    identical: bool
    saved_tokens: int
    new_tokens: int
    first_difference: int | None = None  # token index where the outputs part
    saved_snippet: str = ""
    new_snippet: str = ""
    note: str = ""  # e.g. "sampled (temperature 0.7): may differ across machines"


def model_reference(identity: ModelIdentity) -> str:
    """What to load again: what the user picked (schema 5), else the catalog id, else the location.

    A model picked by .gguf path or hub id gets a derived catalog id (the file stem) that the
    catalog cannot find again; the reference is what it was picked by. Older records have no
    reference and were picked by catalog id.
    """
    return identity.reference or identity.catalog_id or identity.location


def request_from(run: Run) -> RunRequest:
    """The same prompt, models, parameters, seeds and system prompts as a saved run; for a turn of a
    conversation, the same earlier turns (the answers as they were), so the turn itself is repeated."""
    columns = [ColumnRequest(model_reference(m.identity), m.params, m.system_prompt) for m in run.models]
    return RunRequest(
        prompt=run.prompt,
        system_prompt=run.system_prompt,
        columns=columns,
        specials_as_text=run.specials_as_text,
        capture_attention=run.capture_attention,
        search=run.search,  # the saved snapshot: Run again never searches again
        history=list(run.history),
        parent_id=run.parent_id,
    )


def follow_up_from(run: Run, prompt: str, search: SearchSnapshot | None = None) -> RunRequest:
    """A next turn of a saved run's conversation: every column continues its own conversation
    (same model, parameters and system prompt; it sees its own earlier answers)."""
    request = request_from(run)
    request.prompt = prompt
    request.search = search
    request.history = [*run.history, run.next_turn()]
    request.parent_id = run.id
    return request


def compare_runs(saved: Run, new: Run) -> list[ColumnMatch]:
    matches = []
    for old, now in zip(saved.models, new.models, strict=True):
        a, b = old.output_token_ids, now.output_token_ids
        note = ""
        if not old.params.greedy:
            note = f"sampled (temperature {old.params.temperature:g}, seed {old.params.seed})"
        if old.error or now.error:
            note = "; ".join(x for x in (note, _errors(old.error, now.error)) if x)
        if a == b and old.text == now.text and old.error == now.error:
            matches.append(ColumnMatch(old.column, old.identity.catalog_id, True, len(a), len(b), note=note))
            continue
        index = next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b)))
        matches.append(
            ColumnMatch(
                old.column,
                old.identity.catalog_id,
                False,
                len(a),
                len(b),
                index,
                _snippet(old, index),
                _snippet(now, index),
                note,
            )
        )
    return matches


def _snippet(run, index: int) -> str:  # noqa: ANN001 - a ModelRun
    """Text of the tokens around the first difference."""
    steps = run.steps[max(0, index - 3) : index + 6]
    text = "".join(s.text for s in steps)
    return text[:SNIPPET] if steps else (run.error[:SNIPPET] if run.error else "(no output)")


def _errors(before: str, after: str) -> str:
    if before and after:
        return "failed both times"
    return "failed when saved" if before else "failed on re-run"
