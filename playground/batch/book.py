"""Batches in the session store's database (tables of migration 5), written as each result lands."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

from playground.batch.spec import BatchSpec, SpecError
from playground.record import new_run_id
from playground.sessions.store import SessionError, SessionStore, check_id, fts_query, valid_time


@dataclass(frozen=True)
class ItemState:
    index: int
    run_id: str
    status: str  # running | done | failed
    error: str = ""
    elapsed_s: float = 0.0


@dataclass(frozen=True)
class BatchListing:
    id: str
    created_at: float
    name: str
    total: int
    done: int
    failed: int
    models: list[str]
    running: bool = False  # this server is running it now (set by RunService.list_batches)

    @property
    def status(self) -> str:
        """running | complete | stopped (some prompts not run yet: Resume runs them)."""
        if self.running:
            return "running"
        return "complete" if self.done + self.failed >= self.total else "stopped"


class BatchBook:
    def __init__(self, store: SessionStore) -> None:
        self.store = store

    def create(self, spec: BatchSpec, owner: str = "") -> str:
        """Store a new batch; a taken id gets a fresh one (spec.id is set to the id stored)."""
        problems = spec.problems()
        if problems:
            raise SpecError("; ".join(problems))
        with self.store._connect() as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                while db.execute("SELECT 1 FROM batches WHERE id = ?", (spec.id,)).fetchone():
                    spec.id = new_run_id()
                db.execute("INSERT INTO batches(id, owner, created_at, name, total, spec) "
                           "VALUES (?,?,?,?,?,?)",
                           (spec.id, owner, spec.created_at, spec.name, len(spec.items),
                            json.dumps(spec.to_dict(), ensure_ascii=False)))
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
        return spec.id

    def get(self, batch_id: str) -> BatchSpec:
        check_id(batch_id)
        with self.store._connect() as db:
            row = db.execute("SELECT spec FROM batches WHERE id = ?", (batch_id,)).fetchone()
        if row is None:
            raise SessionError(f"no saved batch has the id {batch_id!r}")
        try:
            spec = BatchSpec.from_dict(json.loads(row[0]))
        except (SpecError, ValueError, TypeError, RecursionError) as exc:
            raise SessionError(f"saved batch {batch_id} cannot be read: {str(exc)[:300]}") from exc
        return spec

    def owner_of(self, batch_id: str) -> str:
        check_id(batch_id)
        with self.store._connect() as db:
            row = db.execute("SELECT owner FROM batches WHERE id = ?", (batch_id,)).fetchone()
        if row is None:
            raise SessionError(f"no saved batch has the id {batch_id!r}")
        return row[0]

    def states(self, batch_id: str) -> dict[int, ItemState]:
        with self.store._connect() as db:
            rows = db.execute("SELECT idx, run_id, status, error, elapsed_s FROM batch_items "
                              "WHERE batch_id = ?", (batch_id,)).fetchall()
        return {r[0]: ItemState(*r) for r in rows}

    def _put(self, batch_id: str, state: ItemState) -> None:
        with self.store._connect() as db:
            db.execute("INSERT OR REPLACE INTO batch_items(batch_id, idx, run_id, status, error, elapsed_s, "
                       "updated_at) VALUES (?,?,?,?,?,?,?)",
                       (batch_id, state.index, state.run_id, state.status, state.error, state.elapsed_s,
                        time.time()))

    def running(self, batch_id: str, index: int, run_id: str) -> None:
        """The prompt is about to run and will be saved under run_id (written before it runs)."""
        self._put(batch_id, ItemState(index, run_id, "running"))

    def done(self, batch_id: str, index: int, run_id: str, elapsed_s: float) -> None:
        self._put(batch_id, ItemState(index, run_id, "done", "", elapsed_s))

    def failed(self, batch_id: str, index: int, error: str) -> None:
        self._put(batch_id, ItemState(index, "", "failed", error[:2000]))

    def forget(self, batch_id: str, index: int) -> None:
        """A prompt stopped before its run was saved: it runs again on resume."""
        with self.store._connect() as db:
            db.execute("DELETE FROM batch_items WHERE batch_id = ? AND idx = ? AND status = 'running'",
                       (batch_id, index))

    def run_saved(self, run_id: str) -> bool:
        with self.store._connect() as db:
            return db.execute("SELECT 1 FROM runs WHERE id = ?", (run_id,)).fetchone() is not None

    def list(self, owner: str | None = None, limit: int = 50, query: str = "") -> list[BatchListing]:
        """Newest first; owner None lists everyone's. With a query, the batches whose name has it or one
        of whose saved runs matches it (the history's full-text search). Unreadable rows are left out."""
        conditions: list[str] = []
        params: list[object] = []
        if owner is not None:
            conditions.append("b.owner = ?")
            params.append(owner)
        if query.strip():
            like = query.strip().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            conditions.append("(b.name LIKE ? ESCAPE '\\' OR b.id IN (SELECT i.batch_id FROM runs_fts "
                              "JOIN batch_items i ON i.run_id = runs_fts.id WHERE runs_fts MATCH ?))")
            params += [f"%{like}%", fts_query(query)]
        where = f"WHERE {' AND '.join(conditions)}" if conditions else ""
        sql = (f"SELECT b.id, b.created_at, b.name, b.total, b.spec, "
               "(SELECT COUNT(*) FROM batch_items i WHERE i.batch_id = b.id AND i.status = 'done'), "
               "(SELECT COUNT(*) FROM batch_items i WHERE i.batch_id = b.id AND i.status = 'failed') "
               f"FROM batches b {where} ORDER BY b.created_at DESC, b.id DESC LIMIT ?")
        with self.store._connect() as db:
            rows = db.execute(sql, (*params, limit)).fetchall()
        out = []
        for batch_id, created, name, total, spec, done, failed in rows:
            try:
                columns = json.loads(spec)["columns"]
                models = [str(c["model"]) for c in columns]
            except (ValueError, TypeError, KeyError):
                continue
            if valid_time(created):
                out.append(BatchListing(batch_id, float(created), name, total, done, failed, models))
        return out
