"""Judging a saved batch: each saved prompt's run judged as its JudgeSpec asks, verdicts stored with the
batch as they land (book.py), so a judging stopped halfway keeps what it judged."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from playground.batch.book import BatchBook
from playground.judge.book import JudgeBook
from playground.judge.judging import JudgeService, asker, judge_run
from playground.judge.spec import JudgeError, JudgeSpec
from playground.judge.verdict import Verdict
from playground.requests import RequestError
from playground.sessions.store import SessionError
from playground.wording import plural


@dataclass
class JudgeReport:
    batch_id: str
    judge: str
    method: str
    prompts: int = 0  # saved prompts judged
    verdicts: list[Verdict] = field(default_factory=list)
    unparsed: int = 0  # verdicts the judge gave in no readable form
    stopped: bool = False
    error: str = ""  # the judge failed (e.g. a served judge unreachable): what was judged is kept

    @property
    def summary(self) -> str:
        """One line for the page and the CLI."""
        state = "stopped" if self.stopped else "failed" if self.error else "done"
        text = (f"judge {self.judge} ({self.method}) {state}: {plural(self.prompts, 'prompt')}, "
                f"{plural(len(self.verdicts), 'verdict')}, {self.unparsed} without a readable verdict")
        return text + (f"; {self.error}" if self.error else "")


def judge_batch(service: JudgeService, batch_id: str, spec: JudgeSpec, owner: str = "judge",
                cancel: threading.Event | None = None,
                progress: Callable[[int, int], None] | None = None, again: bool = False,
                only: set[int] | None = None) -> JudgeReport:
    """Judge every saved prompt of a batch (`again` False: those this judge and method have not judged
    yet; `only`: just these prompt indexes). JudgeError when the spec does not fit the batch; a judge
    that fails mid-way, or cannot start, ends the judging with the error in the report (the verdicts so
    far are kept)."""
    book = BatchBook(service.store)
    batch = book.get(batch_id)
    problems = spec.problems(len(batch.columns))
    if problems:
        raise JudgeError("; ".join(problems))
    done = sorted((i, s.run_id) for i, s in book.states(batch_id).items()
                  if s.status == "done" and (only is None or i in only))
    verdicts = JudgeBook(service.store)
    if not again:
        judged = {(v.prompt_index, v.run_id) for v in verdicts.for_batch(batch_id)
                  if (v.judge, v.method) == (spec.model, spec.method)}
        done = [(i, r) for i, r in done if (i, r) not in judged]
    report = JudgeReport(batch_id, spec.model, spec.method)
    ask = asker(service, spec, owner, cancel)
    for n, (index, run_id) in enumerate(done):
        if cancel is not None and cancel.is_set():
            report.stopped = True
            break
        try:
            run = service.store.get(run_id)
        except SessionError:
            continue  # the run was deleted since: nothing to judge
        try:
            found = judge_run(ask, spec, run, index, batch.items[index].expected)
        except (JudgeError, RequestError) as exc:
            report.error = str(exc)
            break
        for verdict in found:
            verdicts.put(verdict, batch_id)
        report.verdicts += found
        report.unparsed += sum(1 for v in found if v.outcome == "none")
        report.prompts += 1
        if progress is not None:
            progress(n + 1, len(done))
    return report


def judge_runs(service: JudgeService, run_ids: list[str], spec: JudgeSpec, owner: str = "judge",
               cancel: threading.Event | None = None) -> JudgeReport:
    """Judge saved runs outside any batch (the blind runs people voted on, for judge_agreement); a run
    this judge has judged by this method already, or one deleted since, is skipped."""
    verdicts = JudgeBook(service.store)
    judged = {v.run_id for v in verdicts.for_runs(run_ids, spec.method) if v.judge == spec.model}
    report = JudgeReport("", spec.model, spec.method)
    ask = asker(service, spec, owner, cancel)
    for run_id in dict.fromkeys(r for r in run_ids if r not in judged):
        if cancel is not None and cancel.is_set():
            report.stopped = True
            break
        try:
            run = service.store.get(run_id)
            found = judge_run(ask, spec, run)
        except SessionError:
            continue
        except (JudgeError, RequestError) as exc:
            report.error = str(exc)
            break
        for verdict in found:
            verdicts.put(verdict)
        report.verdicts += found
        report.unparsed += sum(1 for v in found if v.outcome == "none")
        report.prompts += 1
    return report
