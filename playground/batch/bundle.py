"""Export a batch (its set, columns, scoring and every saved run) as one JSON file, and import it back.

`{"format": "playground-batch", "version": 1, "batch": {...}, "results": [{"index", "status", "error",
"run"}], "verdicts": [...]}`. Import checks like a run bundle: size first, then JSON, format and version,
the batch's fields strictly (spec.py), and every run through the run importer's own checks
(sessions/bundle.py). Nothing is stored until the whole file has passed; ids already taken get fresh
ones, never overwritten. `verdicts` (optional) are a judge's verdicts on the batch's runs: this module
carries them as they are and says which saved run each file run became; the judge package
(playground/judge/carry.py) writes, checks and stores them.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field

from playground.batch.book import BatchBook
from playground.batch.spec import BatchSpec, SpecError
from playground.record import SCHEMA_VERSION, Run
from playground.sessions.bundle import FORMAT as RUN_FORMAT
from playground.sessions.bundle import MAX_BUNDLE_BYTES, BundleError, import_bundle
from playground.sessions.store import SessionError, SessionStore, check_id, valid_time

FORMAT = "playground-batch"
VERSION = 1
STATUSES = ("done", "failed")


MAX_VERDICTS_PER_PROMPT = 64  # a batch judged by several judges and methods, more than once


@dataclass
class ImportedBatch:
    batch_id: str
    renamed_from: str  # the file's batch id when a saved batch had it ("" otherwise)
    runs: int
    run_ids: dict[str, str] = field(default_factory=dict)  # each run's id in the file -> its saved id
    verdicts: list[dict] = field(default_factory=list)  # the file's verdicts, unchecked (judge/carry.py)


def export_batch(store: SessionStore, batch_id: str, verdicts: list[dict] | None = None) -> str:
    """The batch, its saved runs and (when given) a judge's verdicts on them, as one JSON text."""
    book = BatchBook(store)
    spec = book.get(batch_id)
    results = []
    for index, state in sorted(book.states(batch_id).items()):
        if state.status == "done":
            try:
                run = store.get(state.run_id).to_dict()
            except SessionError:
                continue  # deleted since: exported as not run
            results.append({"index": index, "status": "done", "error": "", "run": run})
        elif state.status == "failed":
            results.append({"index": index, "status": "failed", "error": state.error, "run": None})
    doc = {"format": FORMAT, "version": VERSION, "batch": spec.to_dict(), "results": results}
    if verdicts:
        doc["verdicts"] = verdicts
    return json.dumps(doc, ensure_ascii=False, indent=1)


def read_batch(data: bytes | str) -> tuple[BatchSpec, list[tuple[int, str, str, Run | None]], list[dict]]:
    """The batch, its results (all checked) and its verdicts (as dicts, for the judge package to check);
    BundleError says what is wrong."""
    size = len(data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data)
    if size > MAX_BUNDLE_BYTES:
        raise BundleError(f"the file is {size / 2**20:.1f} MiB; batch files are at most "
                          f"{MAX_BUNDLE_BYTES / 2**20:.0f} MiB")
    try:
        text = data.decode("utf-8-sig") if isinstance(data, bytes) else data.removeprefix("\ufeff")
        doc = json.loads(text)
    except UnicodeDecodeError as exc:
        raise BundleError(f"the file is not UTF-8 text (byte {exc.start}): not a batch export") from exc
    except json.JSONDecodeError as exc:
        raise BundleError(f"the file is not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg}); "
                          "it may be truncated") from exc
    except (ValueError, RecursionError) as exc:
        raise BundleError(f"the file is not a batch export: {exc}") from exc
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise BundleError(f"not a playground batch export (expected \"format\": \"{FORMAT}\")")
    if doc.get("version") != VERSION or isinstance(doc.get("version"), bool):
        raise BundleError(f"the batch export has version {str(doc.get('version'))[:20]}; "
                          f"this playground reads version {VERSION}")
    unknown = set(doc) - {"format", "version", "batch", "results", "verdicts"}
    if unknown:
        raise BundleError(f"the batch export has unknown fields {sorted(unknown)}")
    try:
        spec = BatchSpec.from_dict(doc.get("batch"))
        check_id(spec.id)
    except (SpecError, SessionError) as exc:
        raise BundleError(f"the batch export is malformed: {exc}") from exc
    if not valid_time(spec.created_at):
        raise BundleError("the batch export is malformed: batch.created_at is not a time")
    results = doc.get("results")
    if not isinstance(results, list) or len(results) > len(spec.items):
        raise BundleError("the batch export is malformed: results must be a list of at most one entry "
                          "per prompt")
    out, seen = [], set()
    for n, entry in enumerate(results):
        where = f"results[{n}]"
        if not isinstance(entry, dict) or set(entry) != {"index", "status", "error", "run"}:
            raise BundleError(f"the batch export is malformed: {where} must have index, status, error, run")
        index, status, error, raw = entry["index"], entry["status"], entry["error"], entry["run"]
        if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < len(spec.items):
            raise BundleError(f"the batch export is malformed: {where}.index is not a prompt of the set")
        if index in seen:
            raise BundleError(f"the batch export is malformed: prompt {index} has two results")
        seen.add(index)
        if status not in STATUSES or not isinstance(error, str) or len(error) > 2000:
            raise BundleError(f"the batch export is malformed: {where}.status or .error")
        run = None
        if status == "done":
            version = raw.get("schema_version", SCHEMA_VERSION) if isinstance(raw, dict) else SCHEMA_VERSION
            try:
                run = import_bundle(json.dumps({"format": RUN_FORMAT, "schema_version": version, "run": raw}))
            except BundleError as exc:
                raise BundleError(f"{where}.run: {exc}") from exc
            if len(run.models) != len(spec.columns):
                raise BundleError(f"{where}.run has {len(run.models)} columns; the batch has "
                                  f"{len(spec.columns)}")
        elif raw is not None:
            raise BundleError(f"the batch export is malformed: {where} failed but holds a run")
        out.append((index, status, error, run))
    verdicts = doc.get("verdicts", [])
    if not isinstance(verdicts, list) or not all(isinstance(v, dict) for v in verdicts) or len(
            verdicts) > MAX_VERDICTS_PER_PROMPT * len(spec.items):
        raise BundleError("the batch export is malformed: verdicts must be a list of at most "
                          f"{MAX_VERDICTS_PER_PROMPT} objects per prompt")
    return spec, out, verdicts


VerdictCheck = Callable[[list[dict], BatchSpec, list[Run]], None]  # raises BundleError


def import_batch(store: SessionStore, data: bytes | str, owner: str = "",
                 check_verdicts: VerdictCheck | None = None) -> ImportedBatch:
    """Validate the whole file (its verdicts with `check_verdicts`, when given), then save its runs and
    the batch as the importer's. Without a check, a file's verdicts are refused rather than dropped."""
    spec, results, verdicts = read_batch(data)
    if verdicts and check_verdicts is None:
        raise BundleError("the batch export holds judge verdicts: import it through the page or "
                          "`python -m playground batch --import`, which check them")
    if verdicts:
        check_verdicts(verdicts, spec, [run for _i, _s, _e, run in results if run is not None])
    book = BatchBook(store)
    original = spec.id
    saved, run_ids = [], {}
    for index, status, error, run in results:
        file_id = run.id if run is not None else ""
        saved_id = store.save(run, owner=owner) if run is not None else ""
        if file_id:
            run_ids[file_id] = saved_id
        saved.append((index, status, error, saved_id))
    batch_id = book.create(spec, owner)
    for index, status, error, run_id in saved:
        if status == "done":
            book.done(batch_id, index, run_id, 0.0)
        else:
            book.failed(batch_id, index, error)
    return ImportedBatch(batch_id, original if batch_id != original else "", len(saved), run_ids, verdicts)
