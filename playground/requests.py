"""What a caller asks the engine for, and what the engine reports back while it runs.

Plain dataclasses shared by the engine, the run service, the UI and the CLI.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from playground.backends.attention import DEFAULT_BYTE_BUDGET, DEFAULT_TOKEN_CAP
from playground.limits import MAX_COLUMNS, MAX_TEXT_CHARS, MAX_TURNS
from playground.record import GenerationParams, SearchSnapshot, Turn
from playground.wording import plural

MAX_PROMPT_CHARS = MAX_TEXT_CHARS  # a prompt is a text of the record: what a save and an import take


class RequestError(ValueError):
    """The request as a whole cannot run (e.g. empty prompt); nothing was started."""


@dataclass
class ColumnRequest:
    model: str  # catalog id, .gguf path, directory or hub id
    params: GenerationParams = field(default_factory=GenerationParams)
    system_prompt: str | None = None  # this column's own system prompt; None: the run's


@dataclass
class RunRequest:
    prompt: str
    columns: list[ColumnRequest]
    system_prompt: str = ""
    specials_as_text: bool = False  # typed "<|im_end|>" etc. tokenized as plain text
    tokenize_only: bool = False  # stop after the pre-flight: tokens and anomalies, no generation
    capture_attention: bool = True  # one extra forward pass per finished column
    search: SearchSnapshot | None = None  # sources given to every model (searched once, by the caller)
    history: list[Turn] = field(default_factory=list)  # earlier turns: column i continues its own answers
    parent_id: str = ""  # the saved run a follow-up continues


@dataclass(frozen=True)
class AttentionLimits:
    """How much attention a column may keep (see backends/attention.py)."""

    token_cap: int = DEFAULT_TOKEN_CAP
    byte_budget: int = DEFAULT_BYTE_BUDGET


@dataclass
class Event:
    """Something changed in column `column` of the run (-1: the run as a whole)."""

    kind: str  # status | started | token | generated (text complete) | finished | done
    column: int = -1
    message: str = ""
    delta: str = ""


def validate_request(request: RunRequest) -> None:
    if not request.prompt.strip():
        raise RequestError("the prompt is empty: type something to send to the models")
    if len(request.prompt) > MAX_PROMPT_CHARS:
        raise RequestError(
            f"the prompt is {len(request.prompt):,} characters; the limit is {MAX_PROMPT_CHARS:,}"
        )
    if not request.columns:
        raise RequestError("no model picked: choose at least one model column")
    if len(request.columns) > MAX_COLUMNS:
        raise RequestError(f"{len(request.columns)} model columns; a run has at most {MAX_COLUMNS}")
    if len(request.history) > MAX_TURNS:  # what a saved run keeps and an export imports
        raise RequestError(
            f"this conversation already has {len(request.history):,} turns; a conversation keeps at most "
            f"{MAX_TURNS + 1} (its {MAX_TURNS} earlier turns and the latest): start a new run"
        )
    for number, turn in enumerate(request.history, start=1):
        if len(turn.models) != len(request.columns):
            raise RequestError(
                f"turn {number} of the conversation has {plural(len(turn.models), 'column')} and this run "
                f"{len(request.columns)}: a follow-up keeps the conversation's columns"
            )
    total = len(request.prompt) + sum(len(t.prompt) + max((len(m.text) for m in t.models), default=0)
                                      for t in request.history)
    if total > MAX_PROMPT_CHARS:
        raise RequestError(f"the conversation is {total:,} characters; the limit is {MAX_PROMPT_CHARS:,}")
