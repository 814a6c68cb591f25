"""The run service shared by the page, the API and the CLI: ownership, saving, import, export.

Real engine (the session's bundled models on CPU) and a real SQLite file per test.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from sample_runs import make_run

from playground.batch.book import BatchBook
from playground.batch.prompt_set import PromptItem
from playground.batch.spec import BatchSpec, ColumnSpec
from playground.batch.summary import ALONE_WALL
from playground.config import Settings
from playground.engine import ColumnRequest, Engine, RunRequest
from playground.record import GenerationParams, new_run_id
from playground.service import RunService
from playground.sessions.bundle import BundleError, export_bundle, import_bundle
from playground.sessions.store import SessionError, SessionStore

pytestmark = pytest.mark.timeout(600)


def _service(engine: Engine, tmp_path: Path, shared: bool = False) -> RunService:
    settings = Settings(data_dir=tmp_path, shared_history=shared)
    return RunService(settings, engine=engine, store=SessionStore(tmp_path / "runs.sqlite3"))


def _request(prompt: str, tokens: int = 3) -> RunRequest:
    return RunRequest(prompt, [ColumnRequest("smollm2-135m", GenerationParams(max_new_tokens=tokens))])


def test_runs_are_saved_under_their_owner_and_listed_for_them_only(engine: Engine, tmp_path: Path) -> None:
    service = _service(engine, tmp_path)
    alice = service.run(_request("alice asks"), key="tab-a", owner="alice")
    bob = service.run(_request("bob asks"), key="tab-b", owner="bob")
    assert alice.saved_id and bob.saved_id and not alice.save_error
    assert [r.id for r in service.history("alice").rows] == [alice.saved_id]
    assert [r.id for r in service.history("bob").rows] == [bob.saved_id]
    assert service.get(alice.saved_id).prompt == "alice asks"  # a share link opens for anyone
    with pytest.raises(SessionError, match="another user"):
        service.delete(alice.saved_id, owner="bob")
    assert service.get(alice.saved_id).prompt == "alice asks"
    assert service.delete(alice.saved_id, owner="alice")
    with pytest.raises(SessionError):
        service.get(alice.saved_id)


def test_shared_history_lists_and_deletes_everyones_runs(engine: Engine, tmp_path: Path) -> None:
    service = _service(engine, tmp_path, shared=True)
    alice = service.run(_request("alice asks"), key="a", owner="alice")
    service.run(_request("bob asks"), key="b", owner="bob")
    assert len(service.history("carol").rows) == 2
    assert service.delete(alice.saved_id, owner="carol")


def test_import_of_an_existing_id_is_stored_under_a_new_one(engine: Engine, tmp_path: Path) -> None:
    service = _service(engine, tmp_path)
    store = service.store
    saved = make_run()
    store.save(saved, owner="alice")
    bundle = tmp_path / "x.json"
    edited = import_bundle(export_bundle(saved))
    edited.prompt = "an edited copy"
    bundle.write_text(export_bundle(edited), encoding="utf-8")
    imported = service.import_file(bundle, owner="bob")
    assert imported.renamed_from == saved.id
    assert imported.run.id != saved.id
    assert store.get(saved.id).prompt == saved.prompt  # untouched
    assert store.get(imported.run.id).prompt == "an edited copy"
    assert store.owner_of(imported.run.id) == "bob"


def test_exports_are_written_on_request_and_removed(engine: Engine, tmp_path: Path) -> None:
    service = _service(engine, tmp_path)
    store = service.store
    run = make_run()
    store.save(run)
    first, second = service.export_file(run.id), service.export_file(run.id)
    assert first.parent != second.parent  # per request: two downloads never share a file
    assert import_bundle(first.read_bytes()).id == run.id
    service._remove_export(first.parent)
    assert not first.parent.exists() and second.exists()
    service.close()
    assert not second.parent.exists()


def test_concurrent_runs_through_the_service_keep_to_themselves(engine: Engine, tmp_path: Path) -> None:
    service = _service(engine, tmp_path)
    markers = [f"zebra{i}" for i in range(6)]
    barrier = threading.Barrier(len(markers))

    def one(marker: str):  # noqa: ANN202
        barrier.wait()
        return service.run(_request(f"Repeat the word {marker}.", 4), key=marker, owner=marker)

    with ThreadPoolExecutor(len(markers)) as pool:
        outcomes = list(pool.map(one, markers))
    for marker, outcome in zip(markers, outcomes, strict=True):
        saved = service.get(outcome.saved_id)
        assert marker in saved.prompt and not any(m in saved.prompt for m in markers if m != marker)
        assert saved.models[0].attention is not None, saved.models[0].attention_note
        assert [r.id for r in service.history(marker).rows] == [outcome.saved_id]


def test_stop_reaches_the_run_of_that_key_only(engine: Engine, tmp_path: Path) -> None:
    service = _service(engine, tmp_path)
    live = service.start(_request("Write a long story about a dragon.", 64), key="tab-1", owner="x")
    other = service.start(_request("Write a long story about a cat.", 8), key="tab-2", owner="y")
    for event in live.events:
        if event.kind == "token":
            assert service.stop("tab-1")
    for _event in other.events:
        pass
    stopped, finished = service.finish(live), service.finish(other)
    assert stopped.stopped and stopped.run.models[0].finish_reason == "cancelled"
    assert not finished.stopped and finished.run.models[0].finish_reason in ("length", "eos")
    assert not service.stop("tab-1")  # ended runs leave the registry


def test_a_follow_up_started_during_a_run_leaves_the_first_stoppable(engine: Engine, tmp_path: Path) -> None:
    """One tab, two runs at once (a follow-up sent while the first still streams): each run has its own
    cancel flag. The tab's one flag was replaced by the second run's and dropped when it ended, so
    Stop could no longer reach the first."""
    service = _service(engine, tmp_path)
    first = service.start(_request("Write a long story about a dragon.", 64), key="tab-1", owner="x")
    follow_up = service.start(_request("And a short one about a cat.", 2), key="tab-1", owner="x")
    for _event in follow_up.events:
        pass
    assert not service.finish(follow_up).stopped
    reached = False
    for event in first.events:
        if event.kind == "token" and not reached:
            reached = service.stop("tab-1")
    stopped = service.finish(first)
    assert reached and stopped.stopped and stopped.run.models[0].finish_reason == "cancelled"
    assert not service.stop("tab-1")


def test_stop_reaches_every_run_of_its_tab(engine: Engine, tmp_path: Path) -> None:
    service = _service(engine, tmp_path)
    runs = [service.start(_request(f"Write a long story about a {animal}.", 64), key="tab-1", owner="x")
            for animal in ("dragon", "cat")]
    assert service.stop("tab-1")
    for live in runs:
        for _event in live.events:
            pass
    assert [service.finish(live).stopped for live in runs] == [True, True]


# -- what the page asks of the service (it never reaches past it: tests/test_structure.py) ---------------


def _stored_batch(service: RunService, owner: str) -> str:
    """A batch stored without running it (the page's start_batch would run it at once)."""
    spec = BatchSpec([PromptItem("2+2?", expected="4", id="sum-1")],
                     [ColumnSpec("smollm2-135m", GenerationParams(max_new_tokens=2))], name="sums")
    return BatchBook(service.store).create(spec, owner)


def test_batches_are_seen_by_anyone_and_resumed_by_their_owner_only(engine: Engine, tmp_path: Path) -> None:
    service = _service(engine, tmp_path, shared=True)  # shared history lets anyone stop, not resume
    batch_id = _stored_batch(service, "alice")
    assert service.batch_spec(batch_id).name == "sums"  # a ?batch= link opens for anyone
    assert service.owns_batch(batch_id, "alice")
    assert not service.owns_batch(batch_id, "bob") and not service.owns_batch("", "alice")
    with pytest.raises(SessionError, match="only the batch's owner can resume it"):
        service.resume_batch(batch_id, "bob")
    assert service.batch_progress(batch_id) is None  # refused: nothing started
    assert not service.stop_batch(batch_id, "alice")  # nothing runs: nothing to stop
    with pytest.raises(SessionError):
        service.batch_spec(new_run_id())


def test_a_batch_started_alone_records_it_and_its_summary_says_wall_clock(engine: Engine,
                                                                          tmp_path: Path) -> None:
    """The page's "Run each model alone" toggle reaches the stored batch through start_batch, and the
    summary the page draws says its latency is the wall clock of each model run alone."""
    service = _service(engine, tmp_path)
    columns = [ColumnSpec("smollm2-135m", GenerationParams(max_new_tokens=2)) for _ in range(2)]
    spec = BatchSpec([PromptItem("2+2?", expected="4", id="sum-1")], columns, name="alone", alone=True)
    batch_id = service.start_batch(spec, "alice")
    deadline = time.monotonic() + 300
    while (progress := service.batch_progress(batch_id)) is not None and progress.state == "running":
        assert time.monotonic() < deadline, "the batch did not finish"
        time.sleep(0.2)
    assert progress is not None and progress.state == "complete", progress
    assert service.batch_spec(batch_id).alone is True
    result = service.batch_result(batch_id)
    assert result.timing == ALONE_WALL and [m.timing for m in result.models] == [ALONE_WALL] * 2
    assert all(m.answered == 1 and m.latency_p50_s > 0 for m in result.models)


def test_a_batch_export_imports_as_the_importers(engine: Engine, tmp_path: Path) -> None:
    service = _service(engine, tmp_path)
    batch_id = _stored_batch(service, "alice")
    path = service.batch_export_file(batch_id)
    assert path.name == f"playground-batch-{batch_id}.json"
    (tmp_path / "other").mkdir()
    other = _service(engine, tmp_path / "other")
    imported = other.import_batch(path.read_bytes(), "carol")
    assert imported.batch_id == batch_id and other.owns_batch(batch_id, "carol")
    assert other.batch_spec(batch_id).to_dict() == service.batch_spec(batch_id).to_dict()
    with pytest.raises(BundleError):
        other.import_batch(b"{}", "carol")
    service.close()
    assert not path.parent.exists()  # written like a run's export: removed when the server stops


def test_downloads_get_a_folder_each(engine: Engine, tmp_path: Path) -> None:
    service = _service(engine, tmp_path)
    first = service.download_file("routing-rules.yaml", "default: a\n")
    second = service.download_file("routing-rules.yaml", "default: b\n")
    assert first.parent != second.parent and first.name == second.name == "routing-rules.yaml"
    assert first.read_text(encoding="utf-8") == "default: a\n"
    service.close()
    assert not first.exists() and not second.exists()


def test_the_pool_line_and_the_model_list_come_from_the_service(engine: Engine, tmp_path: Path) -> None:
    service = _service(engine, tmp_path)
    state = service.pool_state()
    assert state.loaded == engine.pool.loaded() and state.used_bytes == engine.pool.used_bytes()
    assert state.budget_bytes == engine.pool.budget_bytes > 0
    assert service.catalog is engine.catalog and "smollm2-135m" in service.catalog.ids()


def test_semantic_agreement_is_the_services(engine: Engine, tmp_path: Path) -> None:
    """The compare panel's semantic similarity: the embedding model loads behind the service."""
    run = make_run(outputs=("The cat sat on the mat.", "A cat was sitting on the mat.", "Revenue rose 5%."))
    result = _service(engine, tmp_path).semantic_agreement(run)
    assert result.semantic_model.startswith("all-MiniLM-L6-v2")
    assert result.semantic[0][1] > result.semantic[0][2]
