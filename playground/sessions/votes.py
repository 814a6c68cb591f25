"""Blind runs and their votes, in the session store's database (tables from migration 4).

A blind run's letter order is stored when the run is saved, so a replay shows the same
letters. One vote per run and voter: a second vote on the same run is refused (the voter has
seen the names by then), and the first one is returned instead.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, replace

from playground.inspect.blind import valid_order
from playground.inspect.leaderboard import OUTCOMES, Vote
from playground.inspect.style_control import style_of
from playground.record import Run
from playground.sessions.store import SessionError, SessionStore, check_id

MAX_CATEGORY = 40  # characters of a prompt category
class VoteError(ValueError):
    """A vote that cannot be stored; the message is fit for the user."""


@dataclass(frozen=True)
class Cast:
    vote: Vote
    new: bool  # False: the voter had voted on this run before; `vote` is that earlier vote


def clean_category(text: str) -> str:
    """A category as stored: one line, no control characters, at most MAX_CATEGORY characters."""
    text = "".join(ch if ch.isprintable() else " " for ch in (text or ""))
    return " ".join(text.split())[:MAX_CATEGORY]


class VoteBook:
    def __init__(self, store: SessionStore) -> None:
        self.store = store

    def mark_blind(self, run_id: str, order: list[int]) -> None:
        check_id(run_id)
        with self.store._connect() as db:
            db.execute("INSERT OR IGNORE INTO blind_runs(run_id, letters, created_at) VALUES (?, ?, ?)",
                       (run_id, json.dumps(order), time.time()))

    def order(self, run_id: str, columns: int) -> list[int] | None:
        """The stored letter order of a blind run (None: not a blind run, or unreadable)."""
        check_id(run_id)
        with self.store._connect() as db:
            row = db.execute("SELECT letters FROM blind_runs WHERE run_id = ?", (run_id,)).fetchone()
        if row is None:
            return None
        try:
            order = json.loads(row[0])
        except (TypeError, ValueError):
            return None
        return order if valid_order(order, columns) else None

    def cast(self, record: Run, order: list[int], outcome: str, winner: int, voter: str,
             category: str = "", now: float | None = None) -> Cast:
        """Store a vote on a blind run (models in letter order); an earlier vote by the voter wins."""
        if outcome not in OUTCOMES:
            raise VoteError(f"unknown vote {outcome!r}")
        if not valid_order(order, len(record.models)) or len(order) < 2:
            raise VoteError("only a blind run of two or more columns can be voted on")
        if outcome == "win" and not 0 <= winner < len(order):
            raise VoteError("the vote names no column")
        winner = winner if outcome == "win" else -1
        models = [record.models[c].identity.catalog_id for c in order]
        refs = [record.models[c].identity.reference or record.models[c].identity.catalog_id for c in order]
        vote = Vote(record.id, models, outcome, winner, voter, clean_category(category),
                    time.time() if now is None else now, refs)
        with self.store._connect() as db:
            gone = db.execute(
                "INSERT OR IGNORE INTO votes(run_id, models, refs, outcome, winner, winner_letter, voter, "
                "category, created_at) VALUES (?,?,?,?,?,?,?,?,?)",
                (vote.run_id, json.dumps(models, ensure_ascii=False), json.dumps(refs, ensure_ascii=False),
                 outcome, vote.winner_model, winner, voter, vote.category, vote.created_at),
            ).rowcount == 0
        if gone:
            earlier = self.vote_of(record.id, voter)
            if earlier is not None:
                return Cast(earlier, new=False)
        return Cast(vote, new=True)

    def record_draw(self, run_id: str, seed: int, round_no: int, prompt_id: str = "") -> None:
        """Keep the arena draw that made a blind run (the first one recorded stays)."""
        check_id(run_id)
        with self.store._connect() as db:  # table arena_draws: store migration 8
            db.execute("INSERT OR IGNORE INTO arena_draws(run_id, seed, round, prompt_id, created_at) "
                       "VALUES (?, ?, ?, ?, ?)",
                       (run_id, int(seed), int(round_no), prompt_id[:80], time.time()))

    def draw_of(self, run_id: str) -> tuple[int, int, str] | None:
        """(seed, round, prompt id) of the arena draw that made a run; None for a run not from the arena."""
        check_id(run_id)
        with self.store._connect() as db:
            row = db.execute("SELECT seed, round, prompt_id FROM arena_draws WHERE run_id = ?",
                             (run_id,)).fetchone()
        return (int(row[0]), int(row[1]), str(row[2])) if row else None

    def with_styles(self, votes: list[Vote]) -> list[Vote]:
        """Each vote with its answers' style features (style control), in letter order, read from the voted
        run's record; a run deleted since keeps its vote, counted with no style difference."""
        styled = []
        for vote in votes:
            try:
                record = self.store.get(vote.run_id)
                order = self.order(vote.run_id, len(record.models)) or []
            except (SessionError, ValueError, OSError):
                order = []
            if len(order) == len(vote.models):
                vote = replace(vote, styles=tuple(style_of(record.models[c].text) for c in order))
            styled.append(vote)
        return styled

    def vote_of(self, run_id: str, voter: str) -> Vote | None:
        found = self._select("WHERE run_id = ? AND voter = ?", (run_id, voter))
        return found[0] if found else None

    def votes(self, category: str | None = None) -> list[Vote]:
        """Every vote (of one category), oldest first."""
        if category:
            return self._select("WHERE category = ?", (category,))
        return self._select("", ())

    def categories(self) -> list[str]:
        with self.store._connect() as db:
            rows = db.execute("SELECT DISTINCT category FROM votes WHERE category != '' ORDER BY category")
            return [r[0] for r in rows.fetchall()]

    def _select(self, where: str, params: tuple) -> list[Vote]:
        sql = ("SELECT run_id, models, refs, outcome, winner_letter, voter, category, created_at FROM votes "
               f"{where} ORDER BY created_at, id")
        with self.store._connect() as db:
            rows = db.execute(sql, params).fetchall()
        found = []
        for run_id, models, refs, outcome, winner, voter, category, created_at in rows:
            try:
                models, refs = json.loads(models), json.loads(refs)
            except (TypeError, ValueError):
                continue  # a hand-edited row: left out rather than breaking the leaderboard
            if isinstance(models, list) and all(isinstance(m, str) for m in models):
                found.append(Vote(run_id, models, outcome, int(winner), voter, category, float(created_at),
                                  [str(r) for r in refs] if isinstance(refs, list) else []))
        return found
