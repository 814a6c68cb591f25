"""Saved runs in SQLite: WAL, one transaction per save, migrations recorded in the DB.

Each call opens its own connection (SQLite connections are not shared across
threads), with a busy timeout so several users or processes saving at once
wait for each other instead of failing. A save is one transaction: a crash in
the middle loses at most that save; WAL keeps earlier runs readable and intact.
"""

from __future__ import annotations

import json
import re
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from playground.limits import check_record, check_record_bytes
from playground.record import RecordError, Run, new_run_id

SESSION_ID = re.compile(r"^[A-Za-z0-9_-]{22,23}$")  # record.new_run_id(): 23 chars, 136 random bits
BUSY_TIMEOUT_MS = 10_000
MAX_CREATED_AT = 253_402_300_799.0  # 9999-12-31 23:59:59 UTC: the last second a date can show
_PAGE = 64  # rows read per query while the history list skips unreadable ones


class SessionError(LookupError):
    """A session id that is malformed or unknown; the message is fit for the user."""


@dataclass(frozen=True)
class RunSummary:
    id: str
    created_at: float
    prompt: str
    models: list[str]
    batch_id: str = ""  # the batch that saved it (batch_items), "" for a run made by hand


@dataclass(frozen=True)
class RunListing:
    """A page of the history, and how many rows in it could not be read (and were left out)."""

    rows: list[RunSummary]
    skipped: int = 0


def valid_time(value: object) -> bool:
    """A run time that every date function can show: a finite number of seconds, 1970 to year 9999."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    return 0 <= value <= MAX_CREATED_AT  # False for NaN and the infinities too


# -- migrations: an ordered list; each runs once, in its own transaction -----------------


def _m001_runs(db: sqlite3.Connection) -> None:
    db.execute(
        """CREATE TABLE runs (
            id TEXT PRIMARY KEY,
            created_at REAL NOT NULL,
            prompt TEXT NOT NULL,
            models TEXT NOT NULL,          -- JSON list of catalog ids, for the history list
            record TEXT NOT NULL           -- the run record, JSON
        )"""
    )
    db.execute("CREATE INDEX runs_created ON runs(created_at DESC)")


def _m002_search(db: sqlite3.Connection) -> None:
    """Full-text search over prompts and outputs; backfills runs saved before it existed."""
    db.execute("CREATE VIRTUAL TABLE runs_fts USING fts5(id UNINDEXED, prompt, outputs)")
    for run_id, prompt, record in db.execute("SELECT id, prompt, record FROM runs").fetchall():
        db.execute(
            "INSERT INTO runs_fts(id, prompt, outputs) VALUES (?, ?, ?)",
            (run_id, prompt, _outputs_text(json.loads(record))),
        )


def _m003_owner(db: sqlite3.Connection) -> None:
    """Who saved each run, so a user's history shows their own runs and only they can delete them.

    Runs saved before it (and by the CLI) belong to nobody in particular: ''.
    """
    db.execute("ALTER TABLE runs ADD COLUMN owner TEXT NOT NULL DEFAULT ''")
    db.execute("CREATE INDEX runs_owner_created ON runs(owner, created_at DESC)")


def _m004_votes(db: sqlite3.Connection) -> None:
    """Blind comparisons: each blind run's letter order, and the votes (playground/sessions/votes.py).

    Votes keep the models they compared, so the leaderboard outlives a deleted run.
    """
    db.execute(
        """CREATE TABLE blind_runs (
            run_id TEXT PRIMARY KEY,
            letters TEXT NOT NULL,         -- JSON list: letters[i] = the run column shown as letter i
            created_at REAL NOT NULL
        )"""
    )
    db.execute(
        """CREATE TABLE votes (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            run_id TEXT NOT NULL,
            models TEXT NOT NULL,          -- JSON list of catalog ids, letter order (A first)
            refs TEXT NOT NULL,            -- JSON list of what the user picked (catalog id, path), same order
            outcome TEXT NOT NULL CHECK (outcome IN ('win', 'tie', 'both_bad')),
            winner TEXT NOT NULL,          -- the winning model's catalog id, or 'tie' / 'both bad'
            winner_letter INTEGER NOT NULL DEFAULT -1,
            voter TEXT NOT NULL,           -- owner id, as runs.owner
            category TEXT NOT NULL DEFAULT '',
            created_at REAL NOT NULL,
            UNIQUE (run_id, voter)
        )"""
    )
    db.execute("CREATE INDEX votes_category ON votes(category, created_at)")


def _m005_batches(db: sqlite3.Connection) -> None:
    """Batch runs of a prompt set (playground/batch/book.py): the batch, and per prompt its saved run.

    A prompt's row is written as 'running' with the run id chosen before it runs, then 'done' once that
    run is saved: a batch killed in between finds the run by its id on resume, and never runs it twice.
    """
    db.execute(
        """CREATE TABLE batches (
            id TEXT PRIMARY KEY,
            owner TEXT NOT NULL DEFAULT '',
            created_at REAL NOT NULL,
            name TEXT NOT NULL DEFAULT '',
            total INTEGER NOT NULL,        -- prompts in the set
            spec TEXT NOT NULL             -- JSON: the prompt set, the columns, the scoring
        )"""
    )
    db.execute("CREATE INDEX batches_owner_created ON batches(owner, created_at DESC)")
    db.execute(
        """CREATE TABLE batch_items (
            batch_id TEXT NOT NULL,
            idx INTEGER NOT NULL,          -- the prompt's place in the set
            run_id TEXT NOT NULL DEFAULT '',
            status TEXT NOT NULL CHECK (status IN ('running', 'done', 'failed')),
            error TEXT NOT NULL DEFAULT '',
            elapsed_s REAL NOT NULL DEFAULT 0,
            updated_at REAL NOT NULL,
            PRIMARY KEY (batch_id, idx)
        )"""
    )


def _m006_judge_verdicts(db: sqlite3.Connection) -> None:
    """A judge model's verdicts on saved runs (playground/judge/book.py), kept with the batch they judged.

    One row per (batch, run, judge model, method, judged columns): judging again with the same judge
    replaces its own earlier verdict, never another judge's. `verdict` is JSON (judge.verdict.Verdict).
    """
    db.execute(
        """CREATE TABLE judge_verdicts (
            batch_id TEXT NOT NULL DEFAULT '',  -- '' for a run judged outside a batch
            run_id TEXT NOT NULL,
            idx INTEGER NOT NULL DEFAULT 0,     -- the prompt's place in the batch
            judge TEXT NOT NULL,                -- the judge model (catalog id or path)
            method TEXT NOT NULL,               -- rubric | pairwise | best
            columns TEXT NOT NULL,              -- JSON list of the judged columns
            verdict TEXT NOT NULL,              -- JSON: scores, rationale, the judge's prompts and outputs
            created_at REAL NOT NULL,
            PRIMARY KEY (batch_id, run_id, judge, method, columns)
        )"""
    )
    db.execute("CREATE INDEX judge_verdicts_run ON judge_verdicts(run_id)")


def _m007_batch_item_runs(db: sqlite3.Connection) -> None:
    """Find a run's batch by its id: the history leaves a batch's runs out of the loose runs (list_runs)."""
    db.execute("CREATE INDEX batch_items_run ON batch_items(run_id)")


def _m008_arena_draws(db: sqlite3.Connection) -> None:
    """The arena's draws (playground/arena.py), kept with the blind run each made: seed and round
    reproduce which models were drawn. IF NOT EXISTS: a database where an earlier version created it on
    first use keeps its rows."""
    db.execute(
        """CREATE TABLE IF NOT EXISTS arena_draws (
            run_id TEXT PRIMARY KEY,
            seed INTEGER NOT NULL,
            round INTEGER NOT NULL,
            prompt_id TEXT NOT NULL DEFAULT '',
            created_at REAL NOT NULL
        )"""
    )


MIGRATIONS: list[Callable[[sqlite3.Connection], None]] = [
    _m001_runs, _m002_search, _m003_owner, _m004_votes, _m005_batches, _m006_judge_verdicts,
    _m007_batch_item_runs, _m008_arena_draws]


def _outputs_text(record: dict) -> str:
    return "\n".join(m.get("text", "") for m in record.get("models", []))


def migrate(db: sqlite3.Connection, upto: int | None = None) -> int:
    """Apply the migrations not yet recorded in schema_migrations; return the schema version.

    Each migration runs in its own write transaction, recorded with it: a failing one leaves
    nothing behind, and two processes opening a new database at once apply each step once
    (the second waits for the first, then sees the step recorded). Explicit BEGIN/COMMIT,
    because `with db:` does nothing on an autocommit connection such as SessionStore's.
    """
    db.execute("CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at REAL)")
    target = len(MIGRATIONS) if upto is None else upto
    for version, step in enumerate(MIGRATIONS[:target], 1):
        db.execute("BEGIN IMMEDIATE")
        try:
            if db.execute("SELECT 1 FROM schema_migrations WHERE version = ?", (version,)).fetchone() is None:
                step(db)
                db.execute("INSERT INTO schema_migrations VALUES (?, ?)", (version, time.time()))
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
    return max((row[0] for row in db.execute("SELECT version FROM schema_migrations")), default=0)


# -- the store -----------------------------------------------------------------------------


class SessionStore:
    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as db:
            _enable_wal(db)
            migrate(db)

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        db = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
        try:
            db.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
            db.execute("PRAGMA synchronous=NORMAL")
            yield db
        finally:
            db.close()

    def save(self, run: Run, owner: str = "") -> str:
        """Store a run as a new row and return the id it was stored under.

        Never replaces a saved run: when the id is taken (an imported file saved twice, or a
        colleague's run with the same id), the run gets a fresh id, `run.id` is set to it, and
        the new id is returned, so callers must show the returned id rather than the old one.
        LimitError for a run over the limits an export and an import apply (limits.py): what is
        saved can always be exported and imported again.
        """
        data = run.to_dict()
        check_record(data)
        record = json.dumps(data, ensure_ascii=False)
        check_record_bytes(len(record.encode("utf-8")))
        outputs = _outputs_text(data)
        models = json.dumps([m.identity.catalog_id for m in run.models])
        original_id = run.id
        with self._connect() as db:
            db.execute("BEGIN IMMEDIATE")  # the write lock: no other save can take the id we check
            try:
                while db.execute("SELECT 1 FROM runs WHERE id = ?", (run.id,)).fetchone() is not None:
                    run.id = new_run_id()
                if run.id != original_id:
                    record = json.dumps({**data, "id": run.id}, ensure_ascii=False)  # with its new id
                db.execute(
                    "INSERT INTO runs(id, created_at, prompt, models, record, owner) VALUES (?,?,?,?,?,?)",
                    (run.id, run.created_at, run.prompt, models, record, owner),
                )
                db.execute("DELETE FROM runs_fts WHERE id = ?", (run.id,))  # a stray entry, if any
                db.execute(
                    "INSERT INTO runs_fts(id, prompt, outputs) VALUES (?, ?, ?)",
                    (run.id, run.prompt, outputs),
                )
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                run.id = original_id  # nothing was stored under a new id
                raise
        return run.id

    def get(self, session_id: str) -> Run:
        """The saved run, for anyone who has its id (share links): no owner check."""
        check_id(session_id)
        with self._connect() as db:
            row = db.execute("SELECT record FROM runs WHERE id = ?", (session_id,)).fetchone()
        if row is None:
            raise SessionError(f"no saved run has the id {session_id!r}: it was deleted or never existed")
        try:
            run = Run.from_dict(json.loads(row[0]))
        except (RecordError, ValueError, TypeError, RecursionError) as exc:  # ValueError: JSON, huge ints
            raise SessionError(f"saved run {session_id} cannot be read: {str(exc)[:300]}") from exc
        if not valid_time(run.created_at):
            raise SessionError(
                f"saved run {session_id} cannot be read: its created_at ({run.created_at!r}) is not a time "
                f"between 1970 and the year 9999"
            )
        if run.id != session_id:
            raise SessionError(
                f"saved run {session_id} cannot be read: its record says it is run {run.id[:40]!r}"
            )
        return run

    def owner_of(self, session_id: str) -> str:
        """Who saved the run ('' for runs saved without an owner, e.g. by the CLI)."""
        check_id(session_id)
        with self._connect() as db:
            row = db.execute("SELECT owner FROM runs WHERE id = ?", (session_id,)).fetchone()
        if row is None:
            raise SessionError(f"no saved run has the id {session_id!r}: it was deleted or never existed")
        return row[0]

    def delete(self, session_id: str, owner: str | None = None) -> bool:
        """Delete a run; False when there was none. With an owner, only that owner's run may go.

        owner None (the CLI, the team-wide shared-history mode) deletes any run.
        """
        check_id(session_id)
        with self._connect() as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                row = db.execute("SELECT owner FROM runs WHERE id = ?", (session_id,)).fetchone()
                if row is not None and owner is not None and row[0] != owner:
                    raise SessionError(
                        f"run {session_id} belongs to another user: only its owner can delete it"
                    )
                gone = db.execute("DELETE FROM runs WHERE id = ?", (session_id,)).rowcount
                db.execute("DELETE FROM runs_fts WHERE id = ?", (session_id,))
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
        return gone > 0

    def recent(self, limit: int = 50, query: str = "", owner: str | None = None,
               batch_runs: bool = False) -> list[RunSummary]:
        """Newest first; see list_runs."""
        return self.list_runs(limit, query, owner, batch_runs).rows

    def list_runs(self, limit: int = 50, query: str = "", owner: str | None = None,
                  batch_runs: bool = False) -> RunListing:
        """Up to `limit` readable runs, newest first, and how many unreadable rows were passed over.

        With a query, only runs whose prompt or outputs match it (FTS5); with an owner, only that
        owner's runs (None: everyone's). A run a batch saved (its id in batch_items) is left out
        unless `batch_runs`: a 24-prompt batch would bury the runs made by hand; the history lists
        the batch itself instead (playground/batch/book.py). A row an older version or a hand edit
        left malformed (a time that is not a time, broken JSON) is skipped and counted rather than
        breaking the whole list; rows after the last one listed are not examined.
        """
        conditions, params = [], []
        if query.strip():
            source = "runs_fts f JOIN runs r ON r.id = f.id"
            conditions.append("runs_fts MATCH ?")
            params.append(fts_query(query))
        else:
            source = "runs r"
        if owner is not None:
            conditions.append("r.owner = ?")
            params.append(owner)
        if not batch_runs:
            conditions.append("NOT EXISTS (SELECT 1 FROM batch_items i WHERE i.run_id = r.id)")
        where = f"WHERE {' AND '.join(conditions)}" if conditions else ""
        sql = ("SELECT r.id, r.created_at, r.prompt, r.models, "
               "(SELECT i.batch_id FROM batch_items i WHERE i.run_id = r.id LIMIT 1) "
               f"FROM {source} {where} ORDER BY r.created_at DESC, r.id DESC LIMIT ? OFFSET ?")
        rows: list[RunSummary] = []
        skipped = offset = 0
        with self._connect() as db:
            db.execute("BEGIN")  # one snapshot for every page: a concurrent save cannot shift them
            try:
                while len(rows) < limit:
                    want = limit - len(rows) if not skipped else max(limit - len(rows), _PAGE)
                    page = db.execute(sql, (*params, want, offset)).fetchall()
                    offset += len(page)
                    for row in page:
                        summary = _summary(row)
                        if summary is None:
                            skipped += 1
                        elif len(rows) < limit:
                            rows.append(summary)
                        else:
                            break
                    if len(page) < want:
                        break
            finally:
                db.execute("COMMIT")
        return RunListing(rows, skipped)

    def count(self) -> int:
        with self._connect() as db:
            return db.execute("SELECT COUNT(*) FROM runs").fetchone()[0]


def _enable_wal(db: sqlite3.Connection) -> None:
    """Switch a new database to WAL. The switch needs an exclusive lock and fails at once with
    "database is locked" (the busy timeout does not apply) while another process opens the same
    new file: retry for as long as the busy timeout. An existing WAL database returns at once."""
    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            db.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)


def _summary(row: tuple) -> RunSummary | None:
    """A history row as a RunSummary, or None when any part of it cannot be shown."""
    run_id, created_at, prompt, models, batch_id = row
    if not isinstance(run_id, str) or not SESSION_ID.match(run_id) or not isinstance(prompt, str):
        return None
    if not valid_time(created_at):
        return None
    try:
        names = json.loads(models)
    except (TypeError, ValueError, RecursionError):
        return None
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        return None
    return RunSummary(run_id, float(created_at), prompt, names, batch_id if isinstance(batch_id, str) else "")


def check_id(session_id: str) -> None:
    if not isinstance(session_id, str) or not SESSION_ID.match(session_id):
        shown = str(session_id)[:40]
        raise SessionError(
            f"{shown!r} is not a session id: ids are 23 characters of letters, digits, '-' and '_'"
        )


def fts_query(text: str) -> str:
    """User words as FTS5 phrase prefixes: no FTS syntax errors, and `par` finds Paris."""
    words = re.findall(r"\w+", text)
    return " ".join(f'"{w}"*' for w in words) or '""'
