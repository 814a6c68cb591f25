"""Export a run as one JSON file, and import such a file back, validating everything.

A bundle is `{"format": "playground-run", "schema_version": N, "run": {...}}`.
Import never trusts a file: size limit first, then JSON syntax, format and
schema version, then the size limits (limits.py: the same ones a save and an
export meet), then every field's type (record.py) and value. Nothing
in a file is executed, and all of it is escaped when shown.
"""

from __future__ import annotations

import base64
import binascii
import json

from playground.limits import (  # noqa: F401 - re-exported: the limits an import applies
    MAX_BUNDLE_BYTES,
    MAX_COLUMNS,
    MAX_LAYERS,
    MAX_PROMPT_TOKENS,
    MAX_TEXT_CHARS,
    MAX_TURNS,
    LimitError,
    check_record,
    check_record_bytes,
)
from playground.params import validate_params
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
from playground.wording import plural

FORMAT = "playground-run"
MAX_LOGPROB = 1e-3  # a log-probability is at most 0; this much above it is float rounding


class BundleError(ValueError):
    """Why a file cannot be imported; nothing was stored."""


def export_bundle(run: Run) -> str:
    """The run as an export file, checked against the limits an import applies (BundleError when over,
    e.g. a run saved before these limits): a file this writes always imports again.

    Compact JSON, the form the store saves: a run the store accepted fits in a file."""
    data = run.to_dict()
    try:
        check_record(data)
        record = json.dumps(data, ensure_ascii=False)
        check_record_bytes(len(record.encode("utf-8")))
    except LimitError as exc:
        raise BundleError(f"this run cannot be exported: {exc}") from exc
    return f'{{"format": "{FORMAT}", "schema_version": {SCHEMA_VERSION}, "run": {record}}}'


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
    try:
        check_record(raw)
    except LimitError as exc:
        raise BundleError(str(exc)) from None
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


# -- on the built record: values and ranges ----------------------------------------------------------


def _check_values(run: Run) -> None:
    _check_time(run.created_at, "run.created_at")
    for t, turn in enumerate(run.history):
        if len(turn.models) != len(run.models):
            raise BundleError(f"run.history[{t}] has {plural(len(turn.models), 'column')} and the run "
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
