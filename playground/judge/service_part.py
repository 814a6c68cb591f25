"""The judge's part of the run service: RunService (playground/service.py) inherits these, so the page,
the API and the CLI reach the judge through the service like everything else, and service.py stays short."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from playground.batch.book import BatchBook
from playground.judge.agreement import JudgeAgreement, judge_agreement
from playground.judge.batches import JudgeReport, judge_batch, judge_runs
from playground.judge.book import JudgeBook
from playground.judge.spec import JudgeError, JudgeSpec
from playground.judge.verdict import Verdict
from playground.sessions.store import SessionError
from playground.sessions.votes import VoteBook

if TYPE_CHECKING:
    from playground.catalog import Catalog
    from playground.sessions.store import SessionStore


class JudgeFunctions:
    """Mixed into RunService, which provides store, catalog, start and finish (judging.JudgeService
    names what the judge calls of them)."""

    store: SessionStore
    catalog: Catalog

    def check_judge(self, spec: JudgeSpec, columns: int) -> None:
        """JudgeError naming what is wrong: a judge model the catalog cannot find, a bad method or rubric."""
        problems = spec.problems(columns)
        if problems:
            raise JudgeError("; ".join(problems))
        try:
            self.catalog.get(spec.model)
        except ValueError as exc:  # CatalogError
            raise JudgeError(f"judge: {exc}") from exc

    def judge_batch(self, batch_id: str, spec: JudgeSpec, owner: str | None,
                    cancel: threading.Event | None = None,
                    progress: Callable[[int, int], None] | None = None, again: bool = False) -> JudgeReport:
        """Judge a saved batch's answers with any catalog model and store the verdicts with the batch.
        `owner` None: no ownership check (the command line); otherwise only the batch's owner may judge.
        JudgeError for a judge that cannot be used, SessionError for no such batch or someone else's."""
        book = BatchBook(self.store)
        batch = book.get(batch_id)
        if owner is not None and book.owner_of(batch_id) != owner:
            raise SessionError("only the batch's owner can judge it")
        self.check_judge(spec, len(batch.columns))
        return judge_batch(self, batch_id, spec, owner or "judge", cancel, progress, again)

    def batch_verdicts(self, batch_id: str) -> list[Verdict]:
        """Every verdict stored with a batch, oldest first (each holds the judge's prompts and replies)."""
        return JudgeBook(self.store).for_batch(batch_id)

    def judge_agreement(self, judge: str = "", category: str = "") -> JudgeAgreement:
        """How often the judge's pairwise verdicts (of `judge`, or any judge) agree with the blind votes
        (of one category, or all) cast on the same runs, ties counted explicitly (judge/agreement.py)."""
        votes = VoteBook(self.store).votes(category or None)
        verdicts = JudgeBook(self.store).for_runs([v.run_id for v in votes], "pairwise")
        return judge_agreement(votes, verdicts, judge)

    def judge_voted_runs(self, spec: JudgeSpec, category: str = "",
                         cancel: threading.Event | None = None) -> JudgeReport:
        """Judge pairwise (columns 1 and 2, both orders) every blind run with votes (of one category) that
        this judge has not judged yet, so that judge_agreement has verdicts to set against the votes."""
        if spec.method != "pairwise":
            raise JudgeError("agreement with blind votes compares pairwise verdicts: use the pairwise method")
        self.check_judge(spec, 2)
        votes = VoteBook(self.store).votes(category or None)
        return judge_runs(self, [v.run_id for v in votes], spec, "judge", cancel)
