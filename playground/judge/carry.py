"""A batch's judge verdicts travel with its export and come back with its import.

playground/batch/bundle.py carries them as plain data; this module writes them (the batch's stored
verdicts), checks a file's before anything is stored (each must read back as a Verdict, judge one of
the file's runs, name prompts and columns the batch has, and hold scores in [0, 1]), and stores them
under the ids the imported runs were saved with. Nothing a user judged is lost by moving a batch.
"""

from __future__ import annotations

import math

from playground.batch.bundle import BundleError, ImportedBatch
from playground.batch.bundle import export_batch as export_runs
from playground.batch.bundle import import_batch as import_runs
from playground.batch.spec import BatchSpec
from playground.judge.book import JudgeBook
from playground.judge.verdict import Verdict
from playground.record import RecordError, Run
from playground.sessions.store import SessionStore

MAX_VERDICT_TEXT = 200_000  # characters of a verdict's prompts and replies together


def export_batch(store: SessionStore, batch_id: str) -> str:
    """The batch export of batch/bundle.py with the batch's judge verdicts in it."""
    return export_runs(store, batch_id, [v.to_dict() for v in JudgeBook(store).for_batch(batch_id)])


def import_batch(store: SessionStore, data: bytes | str, owner: str = "") -> ImportedBatch:
    """Import a batch export; its verdicts, checked with the rest before anything is stored, are saved
    with the new batch on the runs' new ids."""
    imported = import_runs(store, data, owner, check_verdicts)
    book = JudgeBook(store)
    for raw in imported.verdicts:
        verdict = Verdict.from_dict(raw)
        verdict.run_id = imported.run_ids[verdict.run_id]
        book.put(verdict, imported.batch_id)
    return imported


def check_verdicts(verdicts: list[dict], spec: BatchSpec, runs: list[Run]) -> None:
    """BundleError naming the first verdict that does not fit the batch it came with."""
    by_id = {run.id: run for run in runs}
    for n, raw in enumerate(verdicts):
        where = f"verdicts[{n}]"
        try:
            verdict = Verdict.from_dict(raw)
        except RecordError as exc:
            raise BundleError(f"the batch export is malformed: {where}: {exc}") from exc
        run = by_id.get(verdict.run_id)
        if run is None:
            raise BundleError(f"the batch export is malformed: {where} judges a run the file does not hold")
        problem = _problem(verdict, spec, run)
        if problem:
            raise BundleError(f"the batch export is malformed: {where}: {problem}")


def _problem(v: Verdict, spec: BatchSpec, run: Run) -> str:
    if v.method not in ("rubric", "pairwise", "best"):
        return f"unknown method {v.method[:20]!r}"
    if not 0 <= v.prompt_index < len(spec.items):
        return "its prompt is not one of the set's"
    if not v.columns or any(not 0 <= c < len(run.models) for c in v.columns):
        return "it names a column the batch does not have"
    if len(v.scores) != len(v.columns) or len(v.rationale) != len(v.columns):
        return "one score and one rationale per judged column"
    if any(s is not None and not (isinstance(s, int | float) and math.isfinite(s) and 0 <= s <= 1)
           for s in v.scores):
        return "a score outside 0-1"
    if sum(len(t) for t in (*v.prompts, *v.outputs, *v.rationale)) > MAX_VERDICT_TEXT:
        return f"more than {MAX_VERDICT_TEXT:,} characters of text"
    return ""
