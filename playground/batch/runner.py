"""Running a batch: each prompt of the set across the columns, through the run service, saved as it lands.

Each prompt is one normal run (its columns side by side), saved under the batch's owner, so it opens
with /?session=ID like any other. Before a prompt runs, its row records the run id it will be saved
under; once saved, the row says done. A batch killed at any point resumes where it stopped: a prompt
whose run was saved is never run again, and one that was not runs (again) in full.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from playground.batch.book import BatchBook
from playground.batch.score import Embed, Scoring
from playground.batch.spec import BatchSpec
from playground.batch.summary import BatchResult, build_table, prompt_anomalies, summarise, timing_of
from playground.judge.batches import judge_batch
from playground.judge.book import JudgeBook
from playground.judge.verdict import apply as apply_verdicts
from playground.judge.verdict import latest_group
from playground.live import LiveRun, Outcome
from playground.record import Run, new_run_id
from playground.requests import ColumnRequest, RequestError, RunRequest
from playground.sessions.store import SessionError, SessionStore

log = logging.getLogger(__name__)
MAX_RUNNING_BATCHES = 2  # background batches one server runs at once (each keeps its models busy)


class BatchService(Protocol):
    """What a batch needs of the run service (playground/service.py's RunService): the store, and each
    prompt started and finished as the page runs one. Named here, as a protocol, because the service
    drives the batches: this floor must not import the one above it."""

    @property
    def store(self) -> SessionStore: ...

    @property
    def shared_history(self) -> bool: ...

    def start(self, request: RunRequest, key: str, owner: str, search_notice: str = "") -> LiveRun: ...

    def finish(self, live: LiveRun, save: bool = True) -> Outcome: ...


class BatchLimit(SessionError):
    """The server already runs as many background batches as it allows; the message says what to do."""


@dataclass(frozen=True)
class Progress:
    batch_id: str
    done: int  # prompts finished (saved or failed), this session and earlier ones
    total: int
    failed: int = 0
    eta_s: float | None = None  # None until one prompt has run in this session
    current: str = ""  # id of the prompt that just finished
    state: str = "running"  # running | complete | stopped | error
    message: str = ""


ProgressCallback = Callable[[Progress], None]


def request_for(spec: BatchSpec, index: int, columns: list[int] | None = None) -> RunRequest:
    """Prompt `index` on the batch's columns (or on those listed: one, for a batch run alone)."""
    item = spec.items[index]
    chosen = [spec.columns[i] for i in columns] if columns is not None else spec.columns
    return RunRequest(
        prompt=item.prompt, system_prompt=item.system,
        columns=[ColumnRequest(c.model, c.params, c.system_prompt) for c in chosen],
        capture_attention=spec.capture_attention,
    )


def _consume(service: BatchService, request: RunRequest, key: str, owner: str,
             cancel: threading.Event) -> LiveRun:
    """Start a run and take its events to the end (Stop reaches it through `cancel`); not finished."""
    live = service.start(request, key=key, owner=owner)
    try:
        for _event in live.events:
            if cancel.is_set():
                live.cancel.set()
    except BaseException:
        service.finish(live, save=False)
        raise
    return live


def run_prompt(service: BatchService, spec: BatchSpec, index: int, key: str, owner: str,
               cancel: threading.Event) -> LiveRun:
    """Run one prompt of the batch, not yet finished (saved): its columns side by side as one run, or,
    with `spec.alone`, one column at a time, gathered into one record (the same shape as a side-by-side
    run, so it opens, scores and exports the same). Alone, nothing else runs beside a model: its wall
    clock is what a user waits for that model (the latency a routing rule is chosen by)."""
    count = len(spec.columns)
    groups = [[c] for c in range(count)] if spec.alone else [list(range(count))]
    lives: list[LiveRun] = []
    try:
        for columns in groups:
            lives.append(_consume(service, request_for(spec, index, columns), key, owner, cancel))
            if lives[-1].cancel.is_set():
                break
    except BaseException:
        for live in lives:
            service.finish(live, save=False)
        raise
    return _gathered(service, lives)


def _gathered(service: BatchService, lives: list[LiveRun]) -> LiveRun:
    """The first run with every run's column in it (renumbered in order); the others are let go."""
    first = lives[0]
    if len(lives) == 1:
        return first
    first.record.models = [live.record.models[0] for live in lives]
    for column, model in enumerate(first.record.models):
        model.column = column
    first.record.wall_s = sum(live.record.wall_s for live in lives)
    if any(live.cancel.is_set() for live in lives):
        first.cancel.set()  # a stopped prompt is not saved: it runs again in full on resume
    for live in lives[1:]:
        service.finish(live, save=False)
    return first


def run_batch(service: BatchService, batch_id: str, cancel: threading.Event | None = None,
              progress: ProgressCallback | None = None) -> Progress:
    """Run (or resume) a saved batch to its end, or until `cancel` is set; returns the last progress."""
    cancel = cancel or threading.Event()
    book = BatchBook(service.store)
    spec = book.get(batch_id)
    owner = book.owner_of(batch_id)
    total = len(spec.items)
    states = book.states(batch_id)
    for index, state in states.items():  # killed between a save and its 'done': the run is there
        if state.status == "running":
            if book.run_saved(state.run_id):
                book.done(batch_id, index, state.run_id, state.elapsed_s)
            else:
                book.forget(batch_id, index)
    states = book.states(batch_id)
    finished = {i for i, s in states.items() if s.status in ("done", "failed")}
    failed = sum(1 for s in states.values() if s.status == "failed")
    spent: list[float] = []

    def report(current: str, state: str = "running", message: str = "") -> Progress:
        remaining = total - len(finished)
        eta = sum(spent) / len(spent) * remaining if spent else None
        p = Progress(batch_id, len(finished), total, failed, eta, current, state, message)
        if progress is not None:
            progress(p)
        return p

    report("")
    for index, item in enumerate(spec.items):
        if index in finished:
            continue
        if cancel.is_set():
            return report("", "stopped", "stopped: the finished prompts are saved; resume to go on")
        started = time.perf_counter()
        run_id = new_run_id()
        book.running(batch_id, index, run_id)
        try:
            live = run_prompt(service, spec, index, f"batch:{batch_id}", owner, cancel)
        except RequestError as exc:
            book.failed(batch_id, index, str(exc))
            finished.add(index)
            failed += 1
            report(item.id)
            continue
        except BaseException:
            book.forget(batch_id, index)
            raise
        if live.cancel.is_set():  # stopped mid-prompt: not saved; it runs in full on resume
            service.finish(live, save=False)
            book.forget(batch_id, index)
            return report("", "stopped", "stopped: the finished prompts are saved; resume to go on")
        live.record.id = run_id
        outcome = service.finish(live)
        elapsed = time.perf_counter() - started
        if outcome.save_error:
            book.forget(batch_id, index)
            return report(item.id, "error", outcome.save_error)
        book.done(batch_id, index, outcome.saved_id, elapsed)
        finished.add(index)
        spent.append(elapsed)
        report(item.id)
    if spec.judge is not None:  # the batch's judge grades what it has not graded yet (playground/judge)
        judged = judge_batch(service, batch_id, spec.judge, owner, cancel,
                             lambda n, of: report("", message=f"judging {n}/{of} with {spec.judge.model}"))
        if judged.stopped:
            return report("", "stopped", "stopped while judging: resume to judge the rest")
        return report("", "complete", judged.summary)
    return report("", "complete")


def batch_result(service: BatchService, batch_id: str, scoring: Scoring | None = None,
                 embed: Embed | None = None) -> BatchResult:
    """The table and per-model summaries of a saved batch (finished or not), scored as asked
    (default: the batch's own scoring). Semantic and agreement scoring need `embed`."""
    book = BatchBook(service.store)
    spec = book.get(batch_id)
    scoring = scoring or spec.scoring
    states = book.states(batch_id)
    runs: dict[int, Run] = {}
    failed: dict[int, str] = {}
    for index, state in states.items():
        if state.status == "done":
            try:
                runs[index] = service.store.get(state.run_id)
            except SessionError as exc:  # deleted since: shown as a failed prompt
                failed[index] = str(exc)
        elif state.status == "failed":
            failed[index] = state.error
    cells = build_table(spec.items, len(spec.columns), runs, scoring, embed, failed, alone=spec.alone)
    apply_verdicts(cells, latest_group(JudgeBook(service.store).for_batch(batch_id)))
    return BatchResult(batch_id, spec.name, len(spec.items), len(runs), len(failed), scoring, cells,
                       summarise(cells, len(spec.columns)), prompt_anomalies(cells),
                       timing_of([c for c in cells if c.status == "done"]))


def shared_embed() -> Embed:
    """The shipped sentence-embedding model (loaded on first use; imports torch)."""
    from playground.backends.embeddings import EmbeddingModel

    return EmbeddingModel.shared().embed


class BatchJobs:
    """Batches running in the background for the page: one thread each, with its cancel flag and progress."""

    def __init__(self, service: BatchService) -> None:
        self.service = service
        self._jobs: dict[str, tuple[threading.Thread, threading.Event, list[Progress]]] = {}
        self._lock = threading.Lock()

    def start(self, spec: BatchSpec, owner: str) -> str:
        """Store the batch and start it; resuming a stored one: `resume(id)`. BatchLimit when the server
        runs as many batches as it allows (checked first: nothing is stored then)."""
        with self._lock:
            self._check_room()
        batch_id = BatchBook(self.service.store).create(spec, owner)
        self.resume(batch_id)
        return batch_id

    def _check_room(self) -> None:
        """Raise BatchLimit when MAX_RUNNING_BATCHES run already (call with the lock held)."""
        running = sum(1 for thread, _cancel, _last in self._jobs.values() if thread.is_alive())
        if running >= MAX_RUNNING_BATCHES:
            raise BatchLimit(f"this server is running {running} batches, the most it runs at once: "
                             "wait for one to finish (or stop yours), then run or resume this one")

    def resume(self, batch_id: str) -> None:
        with self._lock:
            job = self._jobs.get(batch_id)
            if job is not None and job[0].is_alive():
                return
            self._check_room()
            cancel, last = threading.Event(), [Progress(batch_id, 0, 0)]

            def work() -> None:
                try:
                    run_batch(self.service, batch_id, cancel, lambda p: last.__setitem__(0, p))
                except Exception as exc:  # noqa: BLE001 - shown as the batch's state, and logged
                    log.exception("batch %s failed", batch_id)
                    last[0] = Progress(batch_id, last[0].done, last[0].total, last[0].failed, None, "",
                                       "error", str(exc)[:300])

            thread = threading.Thread(target=work, name=f"batch-{batch_id}", daemon=True)
            self._jobs[batch_id] = (thread, cancel, last)
            thread.start()

    def progress(self, batch_id: str) -> Progress | None:
        """The latest progress of a batch started here (None: not started in this process)."""
        with self._lock:
            job = self._jobs.get(batch_id)
        return None if job is None else job[2][0]

    def stop(self, batch_id: str, owner: str) -> bool:
        """Stop a running batch: only its owner may (anyone with shared history), as with deleting runs.
        A `?batch=` link lets anyone see a batch, not stop it. SessionError for someone else's batch."""
        with self._lock:
            job = self._jobs.get(batch_id)
        if job is None or not job[0].is_alive():
            return False
        if not self.service.shared_history and BatchBook(self.service.store).owner_of(batch_id) != owner:
            raise SessionError("only the batch's owner can stop it")
        job[1].set()
        return True
