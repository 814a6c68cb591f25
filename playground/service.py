"""What the web page, the Gradio API and the CLI share: search, run, save, stop, Run again, export.

The callers stay thin: they turn their input into a RunRequest, call this
service, and draw the run record it returns. The service owns the objects that
are shared by every user of one server (the engine and its model pool, the
session store, the search providers, the registry of runs in progress) and
the rules that make sharing safe: whose runs a user sees and may delete, and
that nothing a user saved is overwritten.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import sqlite3
import tempfile
import threading
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from playground.arena import ArenaError, Draw, arena_pool, draw, prompt_set
from playground.batch import bundle as batch_files
from playground.batch.book import BatchBook, BatchListing
from playground.batch.runner import BatchJobs, Progress, batch_result, shared_embed
from playground.batch.score import Scoring
from playground.batch.spec import BatchSpec
from playground.batch.summary import BatchResult
from playground.catalog import Catalog
from playground.config import Settings
from playground.engine import AttentionLimits, Engine, RunRequest
from playground.grounding.snapshot import SearchOptions, SearchProviders
from playground.inspect.leaderboard import Standing, leaderboard, style_coefficients, votes_csv
from playground.judge import carry as judged_batches
from playground.judge.service_part import JudgeFunctions
from playground.limits import LimitError
from playground.live import LiveRun, LiveRuns, Outcome
from playground.record import Run
from playground.sessions.bundle import MAX_BUNDLE_BYTES, BundleError, export_bundle, import_bundle
from playground.sessions.rerun import ColumnMatch, compare_runs, follow_up_from, request_from
from playground.sessions.store import RunListing, SessionError, SessionStore
from playground.sessions.votes import Cast, VoteBook, VoteError
from playground.wording import noun, plural

if TYPE_CHECKING:
    from playground.inspect.agreement import Agreement
    from playground.startup import Startup

log = logging.getLogger(__name__)
EXPORT_TTL_S = 600.0  # an export file lives this long: long enough to download, then it is removed


@dataclass
class Imported:
    run: Run
    renamed_from: str = ""  # the file's id, when a saved run already had it (then left untouched)


@dataclass(frozen=True)
class PoolState:
    """What the model pool holds now, for the line above the columns (backends.pool.LoadedInfo rows)."""

    loaded: list[Any]
    used_bytes: int
    budget_bytes: int


@dataclass
class Rerun:
    saved: Run
    outcome: Outcome
    matches: list[ColumnMatch] = field(default_factory=list)


def pseudonym(voter: str) -> str:
    """A stable stand-in for another voter's id in exported votes (not reversible: ids are random)."""
    return "voter-" + hashlib.sha256(voter.encode("utf-8")).hexdigest()[:10] if voter else ""


def build_engine(settings: Settings, web: bool = False) -> Engine:
    """The engine for these settings; `web` applies the rules for a server shared with others."""
    from playground.backends.pool import ModelPool
    from playground.catalog import Catalog

    catalog = Catalog.build(settings.catalog_file, settings.models)
    pool = ModelPool(settings.data_dir, settings.device, settings.memory_budget_bytes)
    return Engine(
        catalog, pool, AttentionLimits(settings.attention_tokens, settings.attention_bytes),
        load_timeout_s=settings.load_timeout_s,
        allow_any_model=settings.allows_any_model if web else True,
        redact=web,
        fetch_allow=tuple(settings.fetch_allow),
    )


class RunService(JudgeFunctions):  # judge_batch, batch_verdicts, judge_agreement: judge/service_part.py
    def __init__(
        self,
        settings: Settings,
        engine: Engine | None = None,
        store: SessionStore | None = None,
        providers: SearchProviders | None = None,
    ) -> None:
        self.settings = settings
        self.engine = engine or build_engine(settings, web=True)
        self._store = store
        self.providers = providers or SearchProviders()
        self.live = LiveRuns()
        self._exports: list[Path] = []
        self._exports_lock = threading.Lock()
        self._batches: BatchJobs | None = None

    @property
    def catalog(self) -> Catalog:
        """The models this server offers (the page's model pickers)."""
        return self.engine.catalog

    def preload(self, startup: Startup) -> None:
        """Start loading the models the page opens with, in the background (playground/startup.py):
        the first Run finds them loaded."""
        from playground.startup import default_specs

        startup.preload(self.engine.pool, default_specs(self.settings, self.catalog))

    def pool_state(self) -> PoolState:
        """The models loaded now, what they weigh and the pool's memory budget."""
        pool = self.engine.pool
        return PoolState(pool.loaded(), pool.used_bytes(), getattr(pool, "budget_bytes", 0))

    @property
    def device(self) -> str:
        """The device local models load on ("cuda" or "cpu"): the page sizes its defaults by it."""
        from playground.backends.base import BackendError
        from playground.backends.device import pick_device

        try:
            return pick_device(getattr(self.engine.pool, "device", "") or "")
        except BackendError:  # CUDA asked for and absent: every load will say so; size for a CPU
            return "cpu"

    @property
    def store(self) -> SessionStore:
        """Opened on first use: a CLI run with --no-save never creates the database."""
        if self._store is None:
            self._store = SessionStore(self.settings.database)
        return self._store

    # -- ownership ----------------------------------------------------------------

    @property
    def shared_history(self) -> bool:
        return self.settings.shared_history

    def history(self, owner: str, query: str = "", limit: int = 50, batch_runs: bool = False) -> RunListing:
        """The owner's saved runs (everyone's with shared history), newest first; the runs a batch saved
        only with `batch_runs` (the history lists each batch once instead: list_batches)."""
        return self.store.list_runs(limit=limit, query=query, owner=None if self.shared_history else owner,
                                    batch_runs=batch_runs)

    def delete(self, run_id: str, owner: str) -> bool:
        """Delete a saved run: only its owner may, unless history is shared team-wide."""
        return self.store.delete(run_id, owner=None if self.shared_history else owner)

    def may_delete(self, run_id: str, owner: str) -> bool:
        """Whether `owner` may delete the saved run (the page disables Delete otherwise): its owner, or
        anyone with shared history. False for no run or one that is gone."""
        if not run_id:
            return False
        if self.shared_history:
            return True
        try:
            return self.store.owner_of(run_id) == owner
        except SessionError:
            return False

    def get(self, run_id: str) -> Run:
        """Anyone holding a run's id (a share link) may open it."""
        return self.store.get(run_id)

    # -- running ------------------------------------------------------------------

    def prepare(self, request: RunRequest, search: SearchOptions | None) -> str:
        """Take the run's one search snapshot into the request; the notice says what went wrong."""
        if search is None or search.provider == "none" or not request.prompt.strip():
            return ""
        request.search, notice = self.providers.snapshot(request.prompt, search)
        return notice

    def start(self, request: RunRequest, key: str, owner: str, search_notice: str = "") -> LiveRun:
        """Validate and start a run (RequestError for a request that cannot start at all)."""
        flag = self.live.start(key)
        try:
            record, events = self.engine.stream(request, flag)
        except Exception:
            self.live.end(key, flag)
            raise
        return LiveRun(record, events, flag, key, owner, search_notice)

    def finish(self, live: LiveRun, save: bool = True) -> Outcome:
        """End a run whose events were consumed: save it under its owner and summarise it."""
        self.live.end(live.key, live.cancel)
        record = live.record
        answered = sum(1 for m in record.models if not m.error)
        stopped = live.cancel.is_set()
        summary = "stopped: partial outputs kept" if stopped else (
            f"done: {answered} of {plural(len(record.models), 'column')} answered")
        if record.search is not None and record.search.results:
            summary += (f"; grounded on {len(record.search.results)} {record.search.provider} "
                        f"{noun(len(record.search.results), 'source')}")
        if live.search_notice:
            summary += f" ({live.search_notice})"
        outcome = Outcome(record, stopped=stopped, summary=summary)
        if save:
            try:
                outcome.saved_id = self.store.save(record, owner=live.owner)
            except (sqlite3.Error, LimitError) as exc:  # LimitError: over what an export could hold
                log.exception("saving run %s failed", record.id)
                outcome.save_error = f"could not save the run: {exc}"
                outcome.summary += f"; {outcome.save_error}"
        return outcome

    def run(self, request: RunRequest, key: str, owner: str, search: SearchOptions | None = None,
            save: bool = True) -> Outcome:
        """Search, run to the end and save (the API endpoint and the CLI)."""
        notice = self.prepare(request, search)
        live = self.start(request, key, owner, notice)
        try:
            for _event in live.events:
                pass
        finally:
            outcome = self.finish(live, save)
        return outcome

    def tokenize(self, request: RunRequest) -> Run:
        return self.engine.tokenize(request)

    def stop(self, key: str) -> bool:
        return self.live.stop(key)

    def rerun_request(self, run_id: str) -> tuple[Run, RunRequest]:
        """A saved run and the request that repeats it (same models, parameters, seeds, sources)."""
        saved = self.store.get(run_id)
        return saved, request_from(saved)

    def follow_up_request(self, run_id: str, prompt: str) -> tuple[Run, RunRequest]:
        """A saved run and the request for its conversation's next turn (saved as a new run, linked)."""
        saved = self.store.get(run_id)
        return saved, follow_up_from(saved, prompt)

    @staticmethod
    def compare_rerun(saved: Run, new: Run) -> list[ColumnMatch]:
        return compare_runs(saved, new)

    @staticmethod
    def semantic_agreement(record: Run) -> Agreement:
        """Agreement between a run's answered columns, semantic too: the shipped sentence-embedding
        model loads on first use (it imports torch, so only here, never with the page)."""
        from playground.backends.embeddings import EmbeddingModel
        from playground.inspect.agreement import run_agreement

        return run_agreement(record, EmbeddingModel.shared())

    # -- import / export ----------------------------------------------------------

    def import_file(self, path: str | Path, owner: str) -> Imported:
        """Validate a run file and save it as the importer's; an existing id is never overwritten."""
        path = Path(path)
        size = path.stat().st_size
        if size > MAX_BUNDLE_BYTES:
            raise BundleError(f"the file is {size / 2**20:.1f} MiB; run files are at most "
                              f"{MAX_BUNDLE_BYTES / 2**20:.0f} MiB")
        run = import_bundle(path.read_bytes())
        original = run.id
        saved_id = self.store.save(run, owner=owner)
        return Imported(run, original if saved_id != original else "")

    def export_file(self, run_id: str) -> Path:
        """Write a run's export into a fresh temporary folder of its own, removed after EXPORT_TTL_S."""
        run = self.store.get(run_id)
        return self.download_file(f"playground-run-{run.id}.json", export_bundle(run))

    def report_file(self, run_id: str, fmt: str) -> Path:
        """A run's report ("html" or "markdown"), written like an export: own folder, removed later."""
        from playground.report import render_report, report_filename

        run = self.store.get(run_id)
        return self.download_file(report_filename(run, fmt), render_report(run, fmt, origin="page"))

    # -- batches of a prompt set (playground/batch) -----------------------------------

    @property
    def batches(self) -> BatchJobs:
        with self._exports_lock:
            if self._batches is None:
                self._batches = BatchJobs(self)
            return self._batches

    def start_batch(self, spec: BatchSpec, owner: str) -> str:
        """Store a batch and run it in the background; follow it with batch_progress."""
        return self.batches.start(spec, owner)

    def batch_progress(self, batch_id: str) -> Progress | None:
        return self.batches.progress(batch_id)

    def batch_result(self, batch_id: str, scoring: Scoring | None = None) -> BatchResult:
        method = (scoring or BatchBook(self.store).get(batch_id).scoring).method
        return batch_result(self, batch_id, scoring, shared_embed() if method in ("semantic", "agreement")
                            else None)

    def list_batches(self, owner: str, limit: int = 50, query: str = "") -> list[BatchListing]:
        """The owner's batches (everyone's with shared history), newest first, each saying whether this
        server runs it now; with a query, those whose name or saved runs match it."""
        rows = BatchBook(self.store).list(None if self.shared_history else owner, limit, query)
        jobs = self._batches
        if jobs is None:  # no batch was started or resumed by this server
            return rows
        return [replace(r, running=(p := jobs.progress(r.id)) is not None and p.state == "running")
                for r in rows]

    def batch_spec(self, batch_id: str) -> BatchSpec:
        """A saved batch's prompts, columns and scoring: anyone holding its id (a ?batch= link) may see
        it, as with a run (SessionError when there is no such batch)."""
        return BatchBook(self.store).get(batch_id)

    def owns_batch(self, batch_id: str, owner: str) -> bool:
        """Whether `owner` started (or imported) the batch: only they may resume it, whatever the
        history sharing (SessionError when there is no such batch)."""
        return bool(batch_id) and BatchBook(self.store).owner_of(batch_id) == owner

    def resume_batch(self, batch_id: str, owner: str) -> None:
        """Run a stored batch on from where it stopped. SessionError for someone else's batch (or none),
        BatchLimit when the server runs as many batches as it allows."""
        if not self.owns_batch(batch_id, owner):
            raise SessionError("only the batch's owner can resume it: start a new batch instead")
        self.batches.resume(batch_id)

    def stop_batch(self, batch_id: str, owner: str) -> bool:
        """Stop a running batch (its owner, or anyone with shared history); False when none runs."""
        return bool(batch_id) and self.batches.stop(batch_id, owner)

    def batch_export_file(self, batch_id: str) -> Path:
        """A batch with its saved runs and judge verdicts as one JSON file, written like a run's export
        (removed later)."""
        text = judged_batches.export_batch(self.store, batch_id)
        return self.download_file(f"playground-batch-{batch_id}.json", text)

    def batch_table_file(self, batch_id: str, fmt: str) -> Path:
        """A batch's long table (one row per prompt and model, playground/batch/matrix.py) as "csv" or
        "json", written like an export (removed later). SessionError when there is no such batch."""
        from playground.batch.matrix import table_csv, table_json

        if fmt not in ("csv", "json"):
            raise SessionError(f"a batch table is written as csv or json, not {fmt!r}")
        items = self.batch_spec(batch_id).items
        result = self.batch_result(batch_id)
        text = table_csv(result, items) if fmt == "csv" else table_json(result, items)
        return self.download_file(f"playground-batch-{batch_id}-table.{fmt}", text)

    def import_batch(self, data: bytes, owner: str) -> batch_files.ImportedBatch:
        """Store an exported batch and its runs as the importer's; no model runs (BundleError, SpecError
        or SessionError when the file is refused, and then nothing is stored)."""
        return judged_batches.import_batch(self.store, data, owner)

    # -- blind comparison and leaderboard ---------------------------------------------

    @property
    def votes(self) -> VoteBook:
        return VoteBook(self.store)

    def vote(self, run_id: str, outcome: str, winner: int, voter: str, category: str = "") -> Cast:
        """Store a vote on a saved blind run (VoteError, SessionError when it cannot be)."""
        record = self.store.get(run_id)
        order = self.votes.order(run_id, len(record.models))
        if order is None:
            raise VoteError(f"run {run_id} was not run blind: only blind runs take votes")
        return self.votes.cast(record, order, outcome, winner, voter, category)

    def mark_blind(self, run_id: str, order: list[int]) -> None:
        """Keep a saved run's letter order (order[i]: the column shown as letter i): it takes votes."""
        self.votes.mark_blind(run_id, order)

    def blind_order(self, run_id: str, columns: int) -> list[int] | None:
        """A saved run's letter order when it was run blind (None: it was not, or it is unreadable)."""
        return self.votes.order(run_id, columns)

    def vote_categories(self) -> list[str]:
        """The categories votes were given, for the leaderboard's filter."""
        return self.votes.categories()

    def leaderboard(self, category: str = "", style: bool = False) -> list[Standing]:
        """Models ranked from the votes; `style`: with answer length and Markdown as covariates."""
        votes = self.votes.votes(category or None)
        return leaderboard(self.votes.with_styles(votes) if style else votes, style=style)

    def style_effects(self, category: str = "") -> dict[str, float]:
        """How much each style feature alone sways a vote (log-odds per standard deviation)."""
        return style_coefficients(self.votes.with_styles(self.votes.votes(category or None)))

    def record_arena_draw(self, run_id: str, seed: int, round_no: int, prompt_id: str = "") -> None:
        """Keep the seed and round that drew a blind run's models (SessionError for a bad run id)."""
        self.votes.record_draw(run_id, seed, round_no, prompt_id)

    def arena_draw(self, n: int, seed: int, round_no: int, typed: str = "") -> Draw:
        """A battle round: `n` anonymous local models and the round's prompt (ArenaError when it cannot
        be drawn, e.g. fewer local models than `n`)."""
        return draw(arena_pool(self.catalog), prompt_set(), n, seed, round_no, typed)

    def votes_csv_file(self, requester: str, category: str = "") -> Path:
        """Every vote (of one category) as CSV in a temporary file, removed after EXPORT_TTL_S.

        Other voters' owner ids are replaced by a pseudonym (an owner id lets its holder act as that
        browser), and their run ids are left out unless history is shared team-wide (a run id opens
        the run).
        """
        rows = [v if v.voter == requester else replace(
            v, voter=pseudonym(v.voter), run_id=v.run_id if self.shared_history else "")
            for v in self.votes.votes(category or None)]
        return self.download_file("playground-votes.csv", votes_csv(rows))

    def download_file(self, name: str, text: str) -> Path:
        """Text for the browser to download, in a fresh temporary folder of its own (so two downloads
        of one name never meet), removed after EXPORT_TTL_S or when the server stops."""
        folder = Path(tempfile.mkdtemp(prefix="playground-export-"))
        path = folder / name
        path.write_text(text, encoding="utf-8")
        with self._exports_lock:
            self._exports.append(folder)
        timer = threading.Timer(EXPORT_TTL_S, self._remove_export, args=(folder,))
        timer.daemon = True
        timer.start()
        return path

    def _remove_export(self, folder: Path) -> None:
        shutil.rmtree(folder, ignore_errors=True)
        with self._exports_lock:
            if folder in self._exports:
                self._exports.remove(folder)

    def close(self) -> None:
        """Remove every export still on disk (the server is stopping)."""
        with self._exports_lock:
            folders, self._exports = self._exports, []
        for folder in folders:
            shutil.rmtree(folder, ignore_errors=True)


__all__ = ["ArenaError", "BundleError", "Cast", "Imported", "LiveRun", "Outcome", "PoolState", "RunService",
           "SessionError", "VoteError", "build_engine"]
