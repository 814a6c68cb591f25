"""Judge verdicts in the session store's database (table of migration 6, playground/sessions/store.py)."""

from __future__ import annotations

import json
import logging
import time

from playground.judge.verdict import Verdict
from playground.record import RecordError
from playground.sessions.store import SessionStore

log = logging.getLogger(__name__)


class JudgeBook:
    def __init__(self, store: SessionStore) -> None:
        self.store = store

    def put(self, verdict: Verdict, batch_id: str = "") -> None:
        """Store a verdict; the same judge and method on the same answers replaces its earlier one."""
        verdict.created_at = verdict.created_at or time.time()
        with self.store._connect() as db:
            db.execute("INSERT OR REPLACE INTO judge_verdicts(batch_id, run_id, idx, judge, method, columns, "
                       "verdict, created_at) VALUES (?,?,?,?,?,?,?,?)",
                       (batch_id, verdict.run_id, verdict.prompt_index, verdict.judge, verdict.method,
                        json.dumps(verdict.columns), json.dumps(verdict.to_dict(), ensure_ascii=False),
                        verdict.created_at))

    def for_batch(self, batch_id: str) -> list[Verdict]:
        """Every verdict stored with a batch, oldest first."""
        return self._select("WHERE batch_id = ?", (batch_id,))

    def for_runs(self, run_ids: list[str], method: str = "") -> list[Verdict]:
        """Verdicts on these saved runs (in any batch or none), of one method or all."""
        found: list[Verdict] = []
        ids = list(dict.fromkeys(run_ids))
        for start in range(0, len(ids), 500):  # SQLite's limit on host parameters
            chunk = ids[start:start + 500]
            where = f"WHERE run_id IN ({','.join('?' * len(chunk))})" + (" AND method = ?" if method else "")
            found += self._select(where, (*chunk, *([method] if method else [])))
        return found

    def _select(self, where: str, params: tuple) -> list[Verdict]:
        with self.store._connect() as db:
            rows = db.execute(f"SELECT verdict FROM judge_verdicts {where} ORDER BY created_at",
                              params).fetchall()
        out = []
        for (text,) in rows:
            try:
                out.append(Verdict.from_dict(json.loads(text)))
            except (RecordError, ValueError, TypeError, AttributeError):
                log.warning("a stored judge verdict could not be read; left out")
        return out
