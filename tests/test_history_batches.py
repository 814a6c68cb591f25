"""Batches in History: the runs a batch saved are not listed as loose runs unless asked for, and each
batch is one entry (store, batch book, service, the History HTML and `sessions list`). A real SQLite
file per test; the runs are hand-made records saved as a batch saves them (playground/batch/runner.py:
'running' with the run id first, then the run, then 'done')."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sample_runs import make_run

from playground.batch.book import BatchBook
from playground.batch.prompt_set import PromptItem
from playground.batch.score import Scoring
from playground.batch.spec import BatchSpec, ColumnSpec
from playground.cli import main
from playground.config import Settings
from playground.engine import Engine
from playground.record import GenerationParams
from playground.service import RunService
from playground.sessions.store import SessionStore
from playground.ui.history_html import history_html

PROMPTS = ["Where does Maria live? Lisbon.", "What is 2 + 3?", "Name a colour."]


def _spec(name: str = "city <b>check</b> 100%") -> BatchSpec:
    params = GenerationParams(max_new_tokens=4)
    return BatchSpec([PromptItem(p, id=f"p{i}") for i, p in enumerate(PROMPTS)],
                     [ColumnSpec("smollm2-135m", params), ColumnSpec("gemma3-270m", params)],
                     Scoring("contains"), name=name)


def _fill(store: SessionStore, owner: str, t0: float, prompts: int = 3) -> tuple[str, list[str], list[str]]:
    """Two runs by hand around one batch of `prompts` saved runs (the last one saved but still marked
    'running', as a batch killed between saving and marking leaves it). Returns (batch, hand, batch runs)."""
    book = BatchBook(store)
    hand = [store.save(make_run(prompt="A question by hand about Lisbon", created_at=t0), owner)]
    spec = _spec()
    spec.created_at = t0 + 10
    batch_id = book.create(spec, owner)
    batch_runs = []
    for i in range(prompts):
        run = make_run(prompt=PROMPTS[i], created_at=t0 + 11 + i)
        book.running(batch_id, i, run.id)
        batch_runs.append(store.save(run, owner))
        if i < 2:
            book.done(batch_id, i, run.id, 1.0)
    hand.append(store.save(make_run(prompt="Another question by hand", created_at=t0 + 20), owner))
    return batch_id, hand, batch_runs


def test_the_store_hides_a_batchs_runs_unless_asked(tmp_path: Path) -> None:
    store = SessionStore(tmp_path / "runs.sqlite3")
    batch_id, hand, batch_runs = _fill(store, "alice", 1_700_000_000.0)
    assert [r.id for r in store.list_runs().rows] == hand[::-1]
    assert all(r.batch_id == "" for r in store.list_runs().rows)
    listed = store.list_runs(batch_runs=True).rows
    assert [r.id for r in listed] == [hand[1], *batch_runs[::-1], hand[0]]
    assert {r.id: r.batch_id for r in listed if r.batch_id} == dict.fromkeys(batch_runs, batch_id)
    # the search works alike: "Lisbon" is in a hand run and in a batch run
    assert [r.id for r in store.list_runs(query="Lisbon").rows] == [hand[0]]
    assert [r.id for r in store.list_runs(query="Lisbon", batch_runs=True).rows] == [batch_runs[0], hand[0]]
    assert store.list_runs(owner="bob").rows == []
    assert store.list_runs(owner="bob", batch_runs=True).rows == []
    assert store.count() == 5  # nothing was hidden by deleting it


def test_a_failed_prompt_hides_no_hand_run(tmp_path: Path) -> None:
    """A failed prompt's row has no run id (''): it must not match anything."""
    store = SessionStore(tmp_path / "runs.sqlite3")
    book = BatchBook(store)
    kept = store.save(make_run(), "alice")
    batch_id = book.create(_spec(), "alice")
    book.failed(batch_id, 0, "could not run")
    assert [r.id for r in store.list_runs().rows] == [kept]


def test_the_batch_book_lists_each_batch_once_with_its_status_and_finds_it_by_name_or_run(
        tmp_path: Path) -> None:
    store = SessionStore(tmp_path / "runs.sqlite3")
    batch_id, _, _ = _fill(store, "alice", 1_700_000_000.0)
    book = BatchBook(store)
    (entry,) = book.list("alice")
    assert (entry.id, entry.total, entry.done, entry.failed) == (batch_id, 3, 2, 0)
    assert entry.models == ["smollm2-135m", "gemma3-270m"] and entry.status == "stopped"
    assert [b.id for b in book.list("alice", query="check")] == [batch_id]  # its name
    assert [b.id for b in book.list("alice", query="colour")] == [batch_id]  # one of its runs
    assert [b.id for b in book.list("alice", query="100%")] == [batch_id]
    assert book.list("alice", query="c%k") == [] and book.list("alice", query="1_0") == []  # no wildcards
    assert book.list("alice", query="Tokyo") == [] and book.list("bob") == []
    book.done(batch_id, 2, store.list_runs(batch_runs=True, query="colour").rows[0].id, 1.0)
    assert book.list("alice")[0].status == "complete"


@pytest.fixture
def service(engine: Engine, tmp_path: Path) -> RunService:
    store = SessionStore(tmp_path / "runs.sqlite3")
    return RunService(Settings(data_dir=tmp_path), engine=engine, store=store)


def test_the_service_history_lists_hand_runs_and_one_entry_per_batch(service: RunService) -> None:
    batch_id, hand, batch_runs = _fill(service.store, "alice", 1_700_000_000.0)
    assert [r.id for r in service.history("alice").rows] == hand[::-1]
    assert len(service.history("alice", batch_runs=True).rows) == 5
    assert service.history("bob").rows == [] and service.list_batches("bob") == []
    (batch,) = service.list_batches("alice", query="Lisbon")
    assert batch.id == batch_id and not batch.running

    html = history_html(service.history("alice"), service.list_batches("alice"))
    assert html.count('<tr class="pg-history-batch"') == 1 and html.count('<tr class="pg-history-run"') == 2
    assert f'<a href="?batch={batch_id}">city &lt;b&gt;check&lt;/b&gt; 100%</a>' in html
    assert "3 prompts × 2 models · stopped · 2/3 done" in html and "<b>check" not in html
    order = [m for m in html.split("<tr ") if m.startswith("class=")]
    assert [o.split('"')[1] for o in order] == ["pg-history-run", "pg-history-batch", "pg-history-run"]
    assert all(f"?session={r}" not in html for r in batch_runs)

    shown = history_html(service.history("alice", batch_runs=True), service.list_batches("alice"),
                         batch_runs=True)
    assert all(f'href="?session={r}"' in shown for r in batch_runs)
    assert shown.count('class="pg-history-tag"') == 3  # each batch run names its batch
    empty = history_html(service.history("bob"), service.list_batches("bob"))
    assert empty.endswith("No saved runs yet.</span>")


def test_sessions_list_shows_a_batch_as_one_line_and_its_runs_with_a_flag(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    db = tmp_path / "runs.sqlite3"
    batch_id, hand, batch_runs = _fill(SessionStore(db), "", 1_700_000_000.0)
    monkeypatch.setenv("PLAYGROUND_DATA_DIR", str(tmp_path))
    assert main(["sessions", "--db", str(db), "list", "--json"]) == 0
    entries = json.loads(capsys.readouterr().out)
    assert [(e["kind"], e["id"]) for e in entries] == [("run", hand[1]), ("batch", batch_id),
                                                       ("run", hand[0])]
    assert entries[1]["status"] == "stopped" and entries[1]["total"] == 3
    assert main(["sessions", "--db", str(db), "list", "--batch-runs", "--json"]) == 0
    ids = [e["id"] for e in json.loads(capsys.readouterr().out)]
    assert set(batch_runs) <= set(ids) and batch_id in ids and len(ids) == 6
    assert main(["sessions", "--db", str(db), "list"]) == 0
    human = capsys.readouterr().out
    assert f"{batch_id}" in human and "batch: city <b>check</b> 100% (3 prompts x 2 models, stopped" in human
    assert all(r not in human for r in batch_runs)
