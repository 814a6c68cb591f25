"""Who may delete a saved run, as the page asks before enabling Delete (issue 22 item 8)."""

from __future__ import annotations

from pathlib import Path

from sample_runs import make_run

from playground.config import Settings
from playground.service import RunService
from playground.sessions.store import SessionStore


def test_only_the_owner_may_delete_unless_history_is_shared(tmp_path: Path) -> None:
    store = SessionStore(tmp_path / "runs.sqlite3")
    run_id = store.save(make_run(prompt="mine"), owner="alice")
    service = RunService(Settings(data_dir=tmp_path), engine=object(), store=store)  # no model needed
    assert service.may_delete(run_id, "alice")
    assert not service.may_delete(run_id, "bob")
    assert not service.may_delete("", "alice") and not service.may_delete("nosuchrun00", "alice")
    shared = RunService(Settings(data_dir=tmp_path, shared_history=True), engine=object(), store=store)
    assert shared.may_delete(run_id, "bob")  # team-wide history: anyone may, as service.delete allows
    store.delete(run_id)
    assert not service.may_delete(run_id, "alice")  # gone meanwhile
