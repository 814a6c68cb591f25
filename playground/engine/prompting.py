"""A column's prompt: the run's sources fitted to its model's window, templated, checked.

Each column builds its own prompt with its own model's tokenizer: the same run can carry
five sources to a model with a long window and two to one with a short window, and the
anomalies (a stray special token, an overflowing window) are those of the ids that model sees.
"""

from __future__ import annotations

from dataclasses import dataclass

from playground.backends.base import Backend, PromptEncoding
from playground.engine.column import Column
from playground.grounding.citations import check_citations
from playground.grounding.prompt import build_grounded_prompt
from playground.grounding.providers import SearchResult
from playground.inspect.tokens import find_anomalies
from playground.limits import MAX_PROMPT_TOKENS
from playground.record import ModelRun, Run
from playground.streaming import StopScanner

GROUNDING_MARGIN_TOKENS = 16  # slack between the fitted sources and the window


@dataclass(frozen=True)
class PreparedPrompt:
    encoding: PromptEncoding  # the exact ids the model sees
    text: str  # the user's prompt with its sources, before templating
    user_tokens: int  # the user's own text alone, in this model's tokens


def exchanges(run: Run, column: int) -> list[tuple[str, str]]:
    """Column `column`'s own conversation so far: each earlier prompt with this column's answer."""
    return [(turn.prompt, turn.models[column].text) for turn in run.history]


def prepare(col: Column, backend: Backend, run: Run) -> PreparedPrompt:
    """The column's encoded prompt (grounded, templated) and what it came from."""
    text = grounded_prompt(col, backend, run)
    system = run.column_system_prompt(col.record)
    encoding = backend.encode_prompt(text, system, run.specials_as_text, history=exchanges(run, col.index))
    return PreparedPrompt(encoding, text, backend.count_tokens(run.prompt, run.specials_as_text))


def grounded_prompt(col: Column, backend: Backend, run: Run) -> str:
    """The run's sources, numbered, fitted to this model's window by its own tokenizer."""
    if run.search is None or not run.search.results:
        return run.prompt
    system = run.column_system_prompt(col.record)
    empty = backend.encode_prompt("", system, history=exchanges(run, col.index))
    frame = len(empty.token_ids) + GROUNDING_MARGIN_TOKENS  # the conversation so far, templated
    budget = backend.context_window - col.record.params.max_new_tokens - frame
    results = [SearchResult(s.title, s.url, s.snippet, s.text) for s in run.search.results]
    grounded = build_grounded_prompt(run.prompt, results, backend.count_tokens, budget)
    col.record.grounding_notice = grounded.notice
    col.sources = grounded.sources_used
    return grounded.text


def record_prompt(col: Column, run: Run, prepared: PreparedPrompt) -> str:
    """Put the prompt's tokens and anomalies in the column's record; the error that ends the column
    here ('' when it goes on)."""
    encoding, record = prepared.encoding, col.record
    count = max(len(encoding.token_ids), len(encoding.pieces))
    if count > MAX_PROMPT_TOKENS:  # a record keeps at most this many (a served tokenizer can send more)
        return (f"the prompt is {count:,} tokens; a run keeps at most {MAX_PROMPT_TOKENS:,} "
                "per column (shorten the prompt or the conversation)")
    record.prompt_token_ids = encoding.token_ids
    record.prompt_pieces = encoding.pieces
    if encoding.stop:  # the prompt's frame ends the answer too (a base model's new "Question:")
        col.scanner = StopScanner([*record.params.stop, *encoding.stop])
    record.user_text_tokens = prepared.user_tokens
    record.metrics.prompt_tokens = len(encoding.token_ids)
    record.anomalies = find_anomalies(
        encoding.pieces,
        user_chars=len(prepared.text),
        user_tokens=encoding.user_tokens,
        specials=encoding.special_literals,
        specials_as_text=run.specials_as_text,
        unk_id=encoding.unk_id,
        window=col.backend.context_window,
        max_new_tokens=record.params.max_new_tokens,
    )
    return "; ".join(a.message for a in record.anomalies if a.severity == "error")


def record_citations(record: ModelRun, sources: int) -> None:
    """Which numbered sources the answer cites, and which citations point at none."""
    if sources:
        report = check_citations(record.text, sources)
        record.cited, record.invalid_citations = report.cited, report.invalid
