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

from playground.record import RecordError, Run

SESSION_ID = re.compile(r"^[A-Za-z0-9_-]{22,23}$")  # record.new_run_id(): 23 chars, 136 random bits
BUSY_TIMEOUT_MS = 10_000


class SessionError(LookupError):
    """A session id that is malformed or unknown; the message is fit for the user."""


@dataclass(frozen=True)
class RunSummary:
    id: str
    created_at: float
    prompt: str
    models: list[str]


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


MIGRATIONS: list[Callable[[sqlite3.Connection], None]] = [_m001_runs, _m002_search]


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

    def save(self, run: Run) -> str:
        """Store a run under its id (replacing an earlier save of the same run)."""
        record = run.to_dict()
        models = json.dumps([m.identity.catalog_id for m in run.models])
        with self._connect() as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                db.execute(
                    "INSERT OR REPLACE INTO runs(id, created_at, prompt, models, record) VALUES (?,?,?,?,?)",
                    (run.id, run.created_at, run.prompt, models, json.dumps(record, ensure_ascii=False)),
                )
                db.execute("DELETE FROM runs_fts WHERE id = ?", (run.id,))
                db.execute(
                    "INSERT INTO runs_fts(id, prompt, outputs) VALUES (?, ?, ?)",
                    (run.id, run.prompt, _outputs_text(record)),
                )
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
        return run.id

    def get(self, session_id: str) -> Run:
        check_id(session_id)
        with self._connect() as db:
            row = db.execute("SELECT record FROM runs WHERE id = ?", (session_id,)).fetchone()
        if row is None:
            raise SessionError(f"no saved run has the id {session_id!r}: it was deleted or never existed")
        try:
            return Run.from_dict(json.loads(row[0]))
        except (RecordError, json.JSONDecodeError) as exc:
            raise SessionError(f"saved run {session_id} cannot be read: {exc}") from exc

    def delete(self, session_id: str) -> bool:
        check_id(session_id)
        with self._connect() as db:
            db.execute("BEGIN IMMEDIATE")
            gone = db.execute("DELETE FROM runs WHERE id = ?", (session_id,)).rowcount
            db.execute("DELETE FROM runs_fts WHERE id = ?", (session_id,))
            db.execute("COMMIT")
        return gone > 0

    def recent(self, limit: int = 50, query: str = "") -> list[RunSummary]:
        """Newest first; with a query, only runs whose prompt or outputs match it (FTS5)."""
        with self._connect() as db:
            if query.strip():
                rows = db.execute(
                    "SELECT r.id, r.created_at, r.prompt, r.models FROM runs_fts f "
                    "JOIN runs r ON r.id = f.id WHERE runs_fts MATCH ? ORDER BY r.created_at DESC LIMIT ?",
                    (fts_query(query), limit),
                ).fetchall()
            else:
                rows = db.execute(
                    "SELECT id, created_at, prompt, models FROM runs ORDER BY created_at DESC LIMIT ?",
                    (limit,),
                ).fetchall()
        return [RunSummary(r[0], r[1], r[2], json.loads(r[3])) for r in rows]

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
