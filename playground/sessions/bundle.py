"""Export a run as one JSON file, and import such a file back, validating everything.

A bundle is `{"format": "playground-run", "schema_version": N, "run": {...}}`.
Import never trusts a file: size limit first, then JSON syntax, format and
schema version, then every field's type (record.py) and size limits. Nothing
in a file is executed, and all of it is escaped when shown.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from playground.params import MAX_STOP_STRINGS, validate_params
from playground.record import (
    SCHEMA_VERSION,
    SUPPORTED_VERSIONS,
    AttentionCapture,
    ModelRun,
    RecordError,
    Run,
    Turn,
)
from playground.sessions.store import MAX_CREATED_AT, SessionError, check_id, valid_time

FORMAT = "playground-run"
MAX_BUNDLE_BYTES = 64 * 1024 * 1024  # attention of a few columns takes ~8 MiB each
MAX_MODELS = 64
MAX_TEXT_CHARS = 2_000_000  # every string but the attention data (bounded by the file size)
MAX_TOKENS_PER_MODEL = 200_000  # prompt token ids, output steps and prompt pieces, each
MAX_TOP_ALTERNATIVES = 20
MAX_ANOMALIES = 10_000
MAX_SEARCH_RESULTS = 100
MAX_CITATIONS = 1000
MAX_LIBRARIES = 32
MAX_LAYERS = 1024  # attention layers and per-layer sink figures
MAX_LOGPROB = 1e-3  # a log-probability is at most 0; this much above it is float rounding
MAX_DEPTH = 16  # a run record nests 8 deep (history turns included); anything deeper is not one
MAX_TURNS = 200  # earlier turns of a conversation
INT_RANGE = (-(2**63), 2**63 - 1)  # what SQLite, numpy and the UI's arithmetic take


class BundleError(ValueError):
    """Why a file cannot be imported; nothing was stored."""


def export_bundle(run: Run) -> str:
    return json.dumps(
        {"format": FORMAT, "schema_version": SCHEMA_VERSION, "run": run.to_dict()},
        ensure_ascii=False,
        indent=1,
    )


def import_bundle(data: bytes | str) -> Run:
    """The run in an export file, checked throughout; BundleError says what is wrong.

    Order matters for cost: size before parsing, list lengths and string sizes on the parsed
    JSON before any record object is built (a million prompt pieces are refused in a moment,
    not after a minute of building), then types (record.py), then values and ranges.
    """
    size = len(data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data)
    if size > MAX_BUNDLE_BYTES:
        raise BundleError(
            f"the file is {size / 2**20:.1f} MiB; run files are at most {MAX_BUNDLE_BYTES / 2**20:.0f} MiB"
        )
    try:
        text = data.decode("utf-8-sig") if isinstance(data, bytes) else data.removeprefix("\ufeff")
    except UnicodeDecodeError as exc:
        raise BundleError(f"the file is not UTF-8 text (byte {exc.start}): not a run export") from exc
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise BundleError(
            f"the file is not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg}); "
            "it may be truncated"
        ) from exc
    except (ValueError, RecursionError) as exc:  # a number of over 4300 digits; nesting too deep
        raise BundleError(f"the file is not a run export: {exc}") from exc
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise BundleError(f"not a playground run export (expected \"format\": \"{FORMAT}\")")
    version = doc.get("schema_version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise BundleError("the export has no integer schema_version")
    if version > SCHEMA_VERSION:
        raise BundleError(
            f"the export uses schema version {version}, newer than this playground reads "
            f"({SCHEMA_VERSION}): upgrade playground to open it"
        )
    if version not in SUPPORTED_VERSIONS:
        raise BundleError(
            f"the export has schema version {version}, which no playground wrote "
            f"(this one reads versions {SUPPORTED_VERSIONS.start}..{SCHEMA_VERSION})"
        )
    raw = doc.get("run")
    _check_counts(raw)
    _check_scalars(raw)
    try:
        run = Run.from_dict(raw)
    except RecordError as exc:
        raise BundleError(f"the export is malformed: {exc}") from exc
    try:
        check_id(run.id)  # saved under it: a malformed id could never be shown or deleted again
    except SessionError as exc:
        raise BundleError(f"the export is malformed: run.id: {exc}") from exc
    _check_values(run)
    return run


# -- on the parsed JSON, before any record is built ------------------------------------------------


def _count(value: object, where: str, limit: int) -> None:
    """A list (or object) longer than its limit; anything else is left to the type checks."""
    if isinstance(value, (list, dict)) and len(value) > limit:
        raise BundleError(f"{where} has {len(value):,} entries; at most {limit:,} are allowed")


def _field(value: object, key: str) -> object:
    return value.get(key) if isinstance(value, dict) else None


def _check_counts(run: object) -> None:
    """Every list a file can make long, by its length alone: cheap, and before building anything."""
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
    if isinstance(models, list) and len(models) > MAX_MODELS:
        raise BundleError(f"the export has {len(models)} model columns; at most {MAX_MODELS} are allowed")
    for i, model in enumerate(models if isinstance(models, list) else []):
        where = f"{prefix}models[{i}]"
        for key in ("prompt_token_ids", "steps", "prompt_pieces"):
            _count(_field(model, key), f"{where}.{key}", MAX_TOKENS_PER_MODEL)
        _count(_field(model, "anomalies"), f"{where}.anomalies", MAX_ANOMALIES)
        for key in ("cited", "invalid_citations"):
            _count(_field(model, key), f"{where}.{key}", MAX_CITATIONS)
        _count(_field(_field(model, "params"), "stop"), f"{where}.params.stop", MAX_STOP_STRINGS)
        _count(_field(_field(model, "identity"), "libraries"), f"{where}.identity.libraries", MAX_LIBRARIES)
        attention = _field(model, "attention")
        for key in ("layers", "sink_first", "sink_special"):
            _count(_field(attention, key), f"{where}.attention.{key}", MAX_LAYERS)
        steps = _field(model, "steps")
        for j, step in enumerate(steps if isinstance(steps, list) else []):
            _count(_field(step, "top"), f"{where}.steps[{j}].top", MAX_TOP_ALTERNATIVES)


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
        raise BundleError(f"{where or 'run'} {bad.problem}") from None


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
        for key, item in value.items():
            _check_text(key, "has a key of")
            if key == "data" and isinstance(item, str):
                continue  # attention weights: bounded by the file size, checked with their shape
            try:
                _walk(item, depth + 1)
            except _Bad as bad:
                bad.path.append(f".{key}")
                raise
    elif isinstance(value, list):
        for index, item in enumerate(value):
            try:
                _walk(item, depth + 1)
            except _Bad as bad:
                bad.path.append(f"[{index}]")
                raise


# -- on the built record: values and ranges ----------------------------------------------------------


def _check_values(run: Run) -> None:
    _check_time(run.created_at, "run.created_at")
    for t, turn in enumerate(run.history):
        if len(turn.models) != len(run.models):
            raise BundleError(f"run.history[{t}] has {len(turn.models)} column(s) and the run "
                              f"{len(run.models)}: each column is one model's own conversation")
        if turn.created_at:
            _check_time(turn.created_at, f"run.history[{t}].created_at")
        _check_turn_values(turn, f"run.history[{t}].")
    _check_turn_values(run, "run.")


def _check_turn_values(turn: Run | Turn, prefix: str) -> None:
    """One turn's search time and columns (the run itself is the latest turn)."""
    if turn.search is not None:
        _check_time(turn.search.created_at, f"{prefix}search.created_at")
    for i, model in enumerate(turn.models):
        where, short = f"{prefix}models[{i}]", f"{prefix.removeprefix('run.')}models[{i}]"
        problems = validate_params(model.params)
        if problems and not _refused_by_the_engine(model, problems):
            raise BundleError(f"{short}.params (column {model.column}): {'; '.join(problems)}")
        for j, step in enumerate(model.steps):
            _check_logprob(step.logprob, f"{where}.steps[{j}].logprob")
            for k, alt in enumerate(step.top):
                _check_logprob(alt.logprob, f"{where}.steps[{j}].top[{k}].logprob")
        for name, value in vars(model.metrics).items():
            if not isinstance(value, bool) and isinstance(value, (int, float)) and value < 0:
                raise BundleError(f"{where}.metrics.{name} is {value}: a measurement cannot be negative")
        if model.attention is not None:
            _check_attention(model.attention, model, f"{short}.attention")


def _refused_by_the_engine(model: ModelRun, problems: list[str]) -> bool:
    """A column the engine failed for these very parameters before generating: its run was saved
    like any other, so its export must import again (Run again refuses the parameters again)."""
    return not model.steps and bool(model.error) and all(problem in model.error for problem in problems)


def _check_time(value: float, where: str) -> None:
    if not valid_time(value):
        raise BundleError(
            f"{where} is {value!r}: a run time is seconds since 1970, between 0 and {MAX_CREATED_AT:.0f} "
            "(the year 9999)"
        )


def _check_logprob(value: float, where: str) -> None:
    if value > MAX_LOGPROB:
        raise BundleError(f"{where} is {value!r}: a log-probability cannot be positive")


def _check_attention(capture: AttentionCapture, model: ModelRun, where: str) -> None:
    """The weights must decode to exactly the shape the capture claims, inside the run's tokens."""
    if capture.heads < 1:
        raise BundleError(f"{where}.heads is {capture.heads}; a capture has at least 1 head")
    if capture.tokens < 1:
        raise BundleError(f"{where}.tokens is {capture.tokens}; a capture covers at least 1 token")
    if capture.start < 0:
        raise BundleError(f"{where}.start is {capture.start}; positions start at 0")
    layers = capture.layers
    if not 1 <= capture.num_layers <= MAX_LAYERS:
        raise BundleError(f"{where}.num_layers is {capture.num_layers}; expected 1..{MAX_LAYERS} layers")
    if not layers or layers != sorted(set(layers)) or not 0 <= layers[0] <= layers[-1] < capture.num_layers:
        raise BundleError(
            f"{where}.layers must be distinct layer numbers in increasing order, within "
            f"0..{capture.num_layers - 1} (num_layers {capture.num_layers})"
        )
    expected = len(layers) * capture.heads * capture.tokens * capture.tokens * 2  # float16
    if expected > MAX_BUNDLE_BYTES:
        raise BundleError(
            f"{where} claims {len(layers)} layers x {capture.heads} heads x {capture.tokens}^2 tokens: "
            f"{expected / 2**20:,.0f} MiB of weights, more than a run file holds "
            f"({MAX_BUNDLE_BYTES / 2**20:.0f} MiB)"
        )
    try:  # at most the file's size: bounded whatever the shape claims
        weights = base64.b64decode(capture.data, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise BundleError(f"{where}.data is not base64 ({exc})") from exc
    if len(weights) != expected:
        raise BundleError(f"{where}.data decodes to {len(weights):,} bytes; the shape needs {expected:,}")
    total = len(model.prompt_token_ids) + len(model.steps)
    if capture.start + capture.tokens > total:
        raise BundleError(
            f"{where} covers positions {capture.start}..{capture.start + capture.tokens - 1}, "
            f"past the {total} tokens of the column"
        )
    for name in ("sink_first", "sink_special"):
        values = getattr(capture, name)
        if values and len(values) != capture.num_layers:
            raise BundleError(
                f"{where}.{name} has {len(values)} values; "
                f"expected one per layer ({capture.num_layers}) or none"
            )
