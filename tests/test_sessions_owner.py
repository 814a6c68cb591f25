"""Who saved a run: the history lists a user's own runs, only the owner deletes, links stay open.

Real SQLite files in tmp_path and hand-built run records; no model is loaded.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from sample_runs import make_run

from playground.sessions.store import MIGRATIONS, SessionError, SessionStore, migrate


@pytest.fixture
def store(tmp_path: Path) -> SessionStore:
    return SessionStore(tmp_path / "runs.sqlite3")


def test_recent_with_an_owner_lists_only_that_owners_runs(store: SessionStore) -> None:
    alice = [make_run(prompt=f"alice asks {i}", created_at=1_700_000_000 + i) for i in range(3)]
    bob = make_run(prompt="bob asks", created_at=1_700_000_010)
    nobody = make_run(prompt="cli asks", created_at=1_700_000_020)
    for run in alice:
        store.save(run, owner="alice")
    store.save(bob, owner="bob")
    store.save(nobody)  # the CLI saves without an owner

    assert [r.id for r in store.recent(owner="alice")] == [r.id for r in reversed(alice)]
    assert [r.id for r in store.recent(owner="bob")] == [bob.id]
    assert [r.id for r in store.recent(owner="")] == [nobody.id]
    assert store.recent(owner="carol") == []
    everyone = [r.id for r in store.recent()]  # owner None: the whole team (CLI, --shared-history)
    assert everyone == [nobody.id, bob.id, *[r.id for r in reversed(alice)]]
    # search and limit combine with the owner
    assert [r.id for r in store.recent(query="asks", owner="alice", limit=2)] == [alice[2].id, alice[1].id]
    assert [r.id for r in store.recent(query="asks", owner="bob")] == [bob.id]
    assert store.recent(query="bob", owner="alice") == []


def test_owner_of_reports_who_saved_a_run(store: SessionStore) -> None:
    mine, cli = make_run(), make_run()
    store.save(mine, owner="alice")
    store.save(cli)
    assert store.owner_of(mine.id) == "alice"
    assert store.owner_of(cli.id) == ""
    with pytest.raises(SessionError, match="no saved run"):
        store.owner_of(make_run().id)
    with pytest.raises(SessionError, match="is not a session id"):
        store.owner_of("../etc/passwd")


def test_someone_else_cannot_delete_a_run(store: SessionStore) -> None:
    run = make_run(prompt="alice's secret question", outputs=("Oslo",))
    store.save(run, owner="alice")
    message = f"run {run.id} belongs to another user: only its owner can delete it"
    with pytest.raises(SessionError, match=message):
        store.delete(run.id, owner="bob")
    with pytest.raises(SessionError, match="belongs to another user"):
        store.delete(run.id, owner="")  # an anonymous user is not the owner either
    assert store.get(run.id) == run  # nothing was deleted
    assert [r.id for r in store.recent(query="Oslo")] == [run.id]  # not even the search entry
    assert store.count() == 1


def test_the_owner_deletes_their_run(store: SessionStore) -> None:
    run = make_run(outputs=("Oslo",))
    store.save(run, owner="alice")
    assert store.delete(run.id, owner="alice") is True
    assert store.count() == 0
    assert store.recent(query="Oslo") == []
    assert store.delete(run.id, owner="alice") is False  # already gone: not an ownership error


def test_without_an_owner_any_run_can_be_deleted(store: SessionStore) -> None:
    """The CLI and the shared-history mode pass owner None."""
    run = make_run()
    store.save(run, owner="alice")
    assert store.delete(run.id) is True
    assert store.count() == 0


def test_get_stays_open_to_anyone_with_the_id(store: SessionStore) -> None:
    run = make_run()
    store.save(run, owner="alice")
    assert store.get(run.id) == run  # a share link works for every logged-in user


def test_a_database_of_the_previous_schema_gets_the_owner_column(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    old = make_run(prompt="saved before owners existed")
    db = sqlite3.connect(path, isolation_level=None)
    try:
        assert migrate(db, upto=2) == 2
        db.execute(
            "INSERT INTO runs(id, created_at, prompt, models, record) VALUES (?, ?, ?, ?, ?)",
            (old.id, old.created_at, old.prompt, json.dumps(["smollm2-135m", "gemma3-270m"]),
             json.dumps(old.to_dict())),
        )
        db.execute("INSERT INTO runs_fts(id, prompt, outputs) VALUES (?, ?, '')", (old.id, old.prompt))
    finally:
        db.close()

    store = SessionStore(path)
    assert len(MIGRATIONS) >= 3
    assert store.owner_of(old.id) == ""  # belongs to nobody in particular
    assert [r.id for r in store.recent(owner="")] == [old.id]
    assert store.recent(owner="alice") == []
    assert store.get(old.id) == old
    db = sqlite3.connect(path)
    try:
        columns = {row[1]: row for row in db.execute("PRAGMA table_info(runs)")}
        assert columns["owner"][2] == "TEXT"
        assert columns["owner"][3] == 1  # NOT NULL
        indexed = {row[2] for name, in db.execute("SELECT name FROM sqlite_master WHERE type='index'")
                   for row in db.execute(f"PRAGMA index_info({name!r})")}
        assert "owner" in indexed
    finally:
        db.close()
