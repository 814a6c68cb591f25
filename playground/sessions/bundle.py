"""Export a run as one JSON file, and import such a file back, validating everything.

A bundle is `{"format": "playground-run", "schema_version": N, "run": {...}}`.
Import never trusts a file: size limit first, then JSON syntax, format and
schema version, then every field's type (record.py) and size limits. Nothing
in a file is executed, and all of it is escaped when shown.
"""

from __future__ import annotations

import json

from playground.record import SCHEMA_VERSION, RecordError, Run
from playground.sessions.store import SessionError, check_id

FORMAT = "playground-run"
MAX_BUNDLE_BYTES = 64 * 1024 * 1024  # attention of a few columns takes ~8 MiB each
MAX_MODELS = 64
MAX_TEXT_CHARS = 2_000_000
MAX_TOKENS_PER_MODEL = 200_000


class BundleError(ValueError):
    """Why a file cannot be imported; nothing was stored."""


def export_bundle(run: Run) -> str:
    return json.dumps(
        {"format": FORMAT, "schema_version": SCHEMA_VERSION, "run": run.to_dict()},
        ensure_ascii=False,
        indent=1,
    )


def import_bundle(data: bytes | str) -> Run:
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
    try:
        run = Run.from_dict(doc.get("run"))
    except RecordError as exc:
        raise BundleError(f"the export is malformed: {exc}") from exc
    try:
        check_id(run.id)  # saved under it: a malformed id could never be shown or deleted again
    except SessionError as exc:
        raise BundleError(f"the export is malformed: run.id: {exc}") from exc
    _check_limits(run)
    try:  # JSON escapes can spell lone surrogates (\ud800), which SQLite (UTF-8) cannot store
        run.to_json().encode("utf-8")
    except UnicodeEncodeError as exc:
        bad = ascii(exc.object[exc.start])
        raise BundleError(f"the export has text that is not valid Unicode (a lone surrogate, {bad})") from exc
    return run


def _check_limits(run: Run) -> None:
    if len(run.models) > MAX_MODELS:
        raise BundleError(f"the export has {len(run.models)} model columns; at most {MAX_MODELS} are allowed")
    texts = {"prompt": run.prompt, "system_prompt": run.system_prompt, "id": run.id}
    for m in run.models:
        texts[f"models[{m.column}].text"] = m.text
        texts[f"models[{m.column}].error"] = m.error
        if len(m.steps) > MAX_TOKENS_PER_MODEL or len(m.prompt_token_ids) > MAX_TOKENS_PER_MODEL:
            raise BundleError(f"model column {m.column} has more than {MAX_TOKENS_PER_MODEL:,} tokens")
    for name, value in texts.items():
        if len(value) > MAX_TEXT_CHARS:
            raise BundleError(f"{name} is {len(value):,} characters; the limit is {MAX_TEXT_CHARS:,}")
