"""How big a run record may get: one set of limits for running, saving, exporting and importing.

A served model can send anything (a 30 MB chunk, a million steps); an import file can say
anything. Both meet the same limits, so whatever the engine records can be saved, whatever
is saved can be exported, and whatever is exported imports again. The page's replay is
sized for the largest run these limits allow.

Checked on the plain JSON form of a run (`Run.to_dict()`, or a parsed export file) before
any record object is built: cheap, and the same code for a save and for an import.
"""

from __future__ import annotations

from typing import Any

from playground.params import MAX_NEW_TOKENS_LIMIT, MAX_STOP_STRINGS

MAX_COLUMNS = 64  # model columns of one run (and of each earlier turn)
MAX_TURNS = 200  # earlier turns of a conversation: a follow-up of the 201st is refused
MAX_OUTPUT_CHARS = 200_000  # text one column may produce (32,768 tokens of ~6 characters)
MAX_OUTPUT_STEPS = MAX_NEW_TOKENS_LIMIT  # output tokens (steps) of one column
MAX_TOKEN_CHARS = 1_000  # text of one top alternative (a token)
MAX_TOP_ALTERNATIVES = 20
MAX_MESSAGE_CHARS = 4_000  # a column's error message, as kept (a server's error body can be huge)
MAX_NAME_CHARS = 200  # a served model's own name and fingerprint, as the server reports them
MAX_TEXT_CHARS = 2_000_000  # every other string but the attention data (bounded by the file size)
MAX_PROMPT_TOKENS = 200_000  # prompt token ids and prompt pieces of one column, each
MAX_BUNDLE_BYTES = 64 * 1024 * 1024  # an export file; attention of a few columns takes ~8 MiB each
MAX_RECORD_BYTES = MAX_BUNDLE_BYTES - 4096  # a saved record: its export adds a short envelope
MAX_ANOMALIES = 10_000
MAX_SEARCH_RESULTS = 100
MAX_CITATIONS = 1000
MAX_LIBRARIES = 32
MAX_LAYERS = 1024  # attention layers and per-layer sink figures
MAX_DEPTH = 16  # a run record nests 8 deep (history turns included); anything deeper is not one
INT_RANGE = (-(2**63), 2**63 - 1)  # what SQLite, numpy and the UI's arithmetic take


class LimitError(ValueError):
    """A run record over one of the limits; the message names the field and the limit."""


def cut_notice(limit: int = MAX_OUTPUT_CHARS) -> str:
    """What a column says when the engine cut a served model's output at the limit."""
    return f"output cut at {limit:,} characters (limit); partial output kept"


def check_record(run: object) -> None:
    """LimitError when a run's plain JSON form is over any limit: counts first, then every string
    and integer (valid Unicode, 64-bit). Used on a save, an export and an import alike."""
    _check_counts(run)
    _check_scalars(run)


def check_record_bytes(size: int) -> None:
    """LimitError when a saved record (compact JSON, UTF-8) could not fit in an export file."""
    if size > MAX_RECORD_BYTES:
        raise LimitError(f"the run is {size / 2**20:.1f} MiB; a run is at most "
                         f"{MAX_BUNDLE_BYTES / 2**20:.0f} MiB (the size of a run file)")


# -- list lengths and output sizes: cheap, before any string is walked -------------------------------


def _count(value: object, where: str, limit: int) -> None:
    """A list (or object) longer than its limit; anything else is left to the type checks."""
    if isinstance(value, (list, dict)) and len(value) > limit:
        raise LimitError(f"{where} has {len(value):,} entries; at most {limit:,} are allowed")


def _field(value: object, key: str) -> object:
    return value.get(key) if isinstance(value, dict) else None


def _check_counts(run: object) -> None:
    history = _field(run, "history")
    _count(history, "history", MAX_TURNS)
    for t, turn in enumerate(history if isinstance(history, list) else []):
        _check_turn_counts(turn, f"history[{t}].")
        _count(_field(_field(turn, "search"), "results"), f"history[{t}].search.results", MAX_SEARCH_RESULTS)
    _check_turn_counts(run, "")
    _count(_field(_field(run, "search"), "results"), "search.results", MAX_SEARCH_RESULTS)


def _check_turn_counts(turn: object, prefix: str) -> None:
    """One turn's columns (the run itself is the latest turn)."""
    models = _field(turn, "models")
    if isinstance(models, list) and len(models) > MAX_COLUMNS:
        raise LimitError(f"the run has {len(models)} model columns; at most {MAX_COLUMNS} are allowed")
    for i, model in enumerate(models if isinstance(models, list) else []):
        where = f"{prefix}models[{i}]"
        _count(_field(model, "steps"), f"{where}.steps", MAX_OUTPUT_STEPS)
        for key in ("prompt_token_ids", "prompt_pieces"):
            _count(_field(model, key), f"{where}.{key}", MAX_PROMPT_TOKENS)
        _count(_field(model, "anomalies"), f"{where}.anomalies", MAX_ANOMALIES)
        for key in ("cited", "invalid_citations"):
            _count(_field(model, key), f"{where}.{key}", MAX_CITATIONS)
        _count(_field(_field(model, "params"), "stop"), f"{where}.params.stop", MAX_STOP_STRINGS)
        _count(_field(_field(model, "identity"), "libraries"), f"{where}.identity.libraries", MAX_LIBRARIES)
        attention = _field(model, "attention")
        for key in ("layers", "sink_first", "sink_special"):
            _count(_field(attention, key), f"{where}.attention.{key}", MAX_LAYERS)
        _check_output(model, where)


def _check_output(model: object, where: str) -> None:
    """A column's output: its text, its steps' text and each alternative at most what the engine keeps."""
    text = _field(model, "text")
    if isinstance(text, str) and len(text) > MAX_OUTPUT_CHARS:
        raise LimitError(f"{where}.text is {len(text):,} characters; a column's output is at most "
                         f"{MAX_OUTPUT_CHARS:,}")
    steps = _field(model, "steps")
    total = 0
    for j, step in enumerate(steps if isinstance(steps, list) else []):
        step_text = _field(step, "text")
        total += len(step_text) if isinstance(step_text, str) else 0
        top = _field(step, "top")
        _count(top, f"{where}.steps[{j}].top", MAX_TOP_ALTERNATIVES)
        for k, alt in enumerate(top if isinstance(top, list) else []):
            alt_text = _field(alt, "text")
            if isinstance(alt_text, str) and len(alt_text) > MAX_TOKEN_CHARS:
                raise LimitError(f"{where}.steps[{j}].top[{k}].text is {len(alt_text):,} characters; "
                                 f"an alternative token is at most {MAX_TOKEN_CHARS:,}")
    if total > MAX_OUTPUT_CHARS:
        raise LimitError(f"{where}.steps hold {total:,} characters of text; a column's output is at most "
                         f"{MAX_OUTPUT_CHARS:,}")


# -- every string and integer --------------------------------------------------------------------------


class _Bad(Exception):
    """A string or integer out of bounds; the path is collected on the way out (only when one is found)."""

    def __init__(self, problem: str) -> None:
        super().__init__(problem)
        self.problem = problem
        self.path: list[str] = []


def _check_scalars(run: object) -> None:
    """Every string at most MAX_TEXT_CHARS (but the attention data) and valid Unicode, every integer
    within 64 bits. JSON escapes can spell lone surrogates (\\ud800), which SQLite (UTF-8) cannot store.
    """
    try:
        _walk(run, 0)
    except _Bad as bad:
        where = "".join(reversed(bad.path)).removeprefix(".")
        raise LimitError(f"{where or 'run'} {bad.problem}") from None


def _check_text(text: str, what: str) -> None:
    if len(text) > MAX_TEXT_CHARS:
        raise _Bad(f"{what} {len(text):,} characters; the limit is {MAX_TEXT_CHARS:,}")
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as exc:
            bad = ascii(text[exc.start])
            raise _Bad(f"has text that is not valid Unicode (a lone surrogate, {bad})") from None


def _walk(value: Any, depth: int) -> None:
    if isinstance(value, str):
        _check_text(value, "is")
    elif isinstance(value, bool) or value is None or isinstance(value, float):
        return
    elif isinstance(value, int):
        if not INT_RANGE[0] <= value <= INT_RANGE[1]:
            raise _Bad(f"is {str(value)[:30]}{'...' if len(str(value)) > 30 else ''}, "
                       "outside the 64-bit integer range")
    elif depth >= MAX_DEPTH:
        raise _Bad("is nested too deeply to be part of a run record")
    elif isinstance(value, dict):
        _walk_dict(value, depth)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            try:
                _walk(item, depth + 1)
            except _Bad as bad:
                bad.path.append(f"[{index}]")
                raise


def _walk_dict(value: dict, depth: int) -> None:
    for key, item in value.items():
        _check_text(key, "has a key of")
        if key == "data" and isinstance(item, str):
            continue  # attention weights: bounded by the file size, checked with their shape
        try:
            _walk(item, depth + 1)
        except _Bad as bad:
            bad.path.append(f".{key}")
            raise
