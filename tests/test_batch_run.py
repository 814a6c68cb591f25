"""Batches through the real engine and bundled models (CPU, 8 new tokens, three prompts):
every result a saved run, cancel and resume in process, and the CLI killed mid-batch and resumed."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from sample_runs import BUNDLED_MODELS, THREE_PROMPTS

from playground.batch import runner
from playground.batch.book import BatchBook
from playground.batch.prompt_set import parse
from playground.batch.runner import BatchLimit, Progress, batch_result, run_batch
from playground.batch.score import Scoring
from playground.batch.spec import BatchSpec, ColumnSpec
from playground.config import Settings
from playground.engine import Engine
from playground.record import GenerationParams
from playground.service import RunService
from playground.sessions.store import SessionError, SessionStore

REPO = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.timeout(300)

THREE, MODELS = THREE_PROMPTS, BUNDLED_MODELS


def make_spec() -> BatchSpec:
    params = GenerationParams(max_new_tokens=8)
    return BatchSpec(parse(THREE, "jsonl"), [ColumnSpec(m, params) for m in MODELS], Scoring("contains"))


@pytest.fixture
def service(engine: Engine, tmp_path: Path) -> RunService:
    store = SessionStore(tmp_path / "runs.sqlite3")
    return RunService(Settings(data_dir=tmp_path), engine=engine, store=store)


def test_batch_saves_every_result_as_a_run_and_resumes_after_stop(service: RunService) -> None:
    book = BatchBook(service.store)
    batch_id = book.create(make_spec(), owner="alice")
    cancel = threading.Event()
    seen: list[Progress] = []

    def progress(p: Progress) -> None:
        seen.append(p)
        if p.done == 1:
            cancel.set()  # Stop after the first prompt is saved

    stopped = run_batch(service, batch_id, cancel, progress)
    assert stopped.state == "stopped" and stopped.done == 1
    assert service.store.count() == 1
    assert seen[0].done == 0 and seen[0].total == 3 and seen[1].eta_s is not None

    done = run_batch(service, batch_id, progress=seen.append)
    assert done.state == "complete" and done.done == 3 and done.failed == 0
    states = book.states(batch_id)
    run_ids = [states[i].run_id for i in range(3)]
    assert len(set(run_ids)) == 3 and service.store.count() == 3  # nothing ran twice
    for item, run_id in zip(make_spec().items, run_ids, strict=True):
        run = service.get(run_id)  # a normal saved run: /?session=<run_id>
        assert run.prompt == item.prompt and service.store.owner_of(run_id) == "alice"
        assert [m.identity.catalog_id for m in run.models] == list(MODELS)
        assert all(not m.error and 0 < len(m.steps) <= 8 for m in run.models)

    result = batch_result(service, batch_id)
    assert result.complete and len(result.cells) == 6
    assert all(c.run_id and c.total_s > 0 and c.output_tokens > 0 for c in result.cells)
    first = result.models[0]
    assert first.model == "1 · smollm2-135m" and first.answered == 3 and first.scored == 3
    assert 0 <= first.mean_score <= 1 and first.latency_p50_s <= first.latency_p95_s <= first.latency_max_s
    assert result.anomalies_per_prompt == {"add": 0, "city": 0, "def": 0}
    assert [b.id for b in service.list_batches("alice")] == [batch_id]
    assert service.list_batches("bob") == []


def playground(data_dir: Path, db: Path, *args: str, wait: bool = True):  # noqa: ANN201
    env = {**os.environ, "PYTHONPATH": str(REPO), "PLAYGROUND_DATA_DIR": str(data_dir),
           "PLAYGROUND_DEVICE": "cpu", "GRADIO_ANALYTICS_ENABLED": "False", "PLAYGROUND_DB": str(db)}
    for name in ("PLAYGROUND_CATALOG", "PLAYGROUND_MODELS"):
        env.pop(name, None)
    command = [sys.executable, "-m", "playground", "batch", *args]
    if not wait:
        return subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    return subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=240,
                          check=False)


def items_done(db: Path) -> list[tuple[int, str]]:
    if not db.exists():
        return []
    try:
        with sqlite3.connect(db, timeout=10) as conn:
            return conn.execute("SELECT idx, run_id FROM batch_items WHERE status = 'done'").fetchall()
    except sqlite3.OperationalError:  # the tables are not there yet
        return []


def test_cli_killed_mid_batch_resumes_without_running_anything_twice(data_dir: Path, tmp_path: Path) -> None:
    prompts = tmp_path / "three.jsonl"
    prompts.write_text(THREE)
    db = tmp_path / "runs.sqlite3"
    proc = playground(data_dir, db, "--model", MODELS[0], "--model", MODELS[1], "--prompts", str(prompts),
                      "--max-new-tokens", "8", wait=False)
    deadline = time.monotonic() + 180
    while not items_done(db) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    before = dict(items_done(db))
    assert 1 <= len(before) < 3, "the kill should land after the first result and before the last"
    with sqlite3.connect(db) as conn:
        (batch_id,) = conn.execute("SELECT id FROM batches").fetchone()
        runs_before = conn.execute("SELECT COUNT(*) FROM runs").fetchone()[0]
    assert runs_before in (len(before), len(before) + 1)  # at most one saved but not yet marked done

    resumed = playground(data_dir, db, "--resume", batch_id, "--json")
    assert resumed.returncode == 0, resumed.stderr
    result = json.loads(resumed.stdout)
    assert result["batch_id"] == batch_id and result["state"] == "complete" and result["done"] == 3
    after = dict(items_done(db))
    assert {i: after[i] for i in before} == before  # the saved results were kept, not run again
    with sqlite3.connect(db) as conn:
        run_ids = [r[0] for r in conn.execute("SELECT id FROM runs")]
    assert sorted(run_ids) == sorted(after.values()) and len(run_ids) == 3  # nothing lost, nothing twice
    assert {c["run_id"] for c in result["cells"]} == set(run_ids)
    assert [m["model"] for m in result["models"]] == ["1 · smollm2-135m", "2 · gemma3-270m"]

    listed = playground(data_dir, db, "--list", "--json")
    assert json.loads(listed.stdout)[0]["id"] == batch_id and json.loads(listed.stdout)[0]["done"] == 3
    bundle = tmp_path / "batch.json"
    assert playground(data_dir, db, "--export", batch_id, str(bundle)).returncode == 0
    imported = playground(data_dir, tmp_path / "other.sqlite3", "--import", str(bundle), "--json")
    assert imported.returncode == 0 and json.loads(imported.stdout)["batch_id"] == batch_id
    shown = playground(data_dir, tmp_path / "other.sqlite3", "--resume", batch_id)  # complete: summary only
    assert shown.returncode == 0 and "1 · smollm2-135m" in shown.stdout and "[1/3]" not in shown.stderr


@pytest.mark.parametrize(("args", "message"), [
    (["--model", "smollm2-135m"], "give --prompts FILE"),
    (["--model", "smollm2-135m", "--prompts", "missing.jsonl"], "cannot read"),
    (["--model", "no-such-model", "--prompts", "x.txt"], "no-such-model"),
    (["--model", "smollm2-135m", "--prompts", "BAD", "--score", "agreement"], "line 2: not valid JSON"),
    (["--resume", "not-an-id"], "is not a session id"),
    (["--list", "--model", "smollm2-135m"], "leave them out"),
    (["--import", "BAD"], "not valid JSON"),
])
def test_cli_bad_input_exits_2(data_dir: Path, tmp_path: Path, args: list[str], message: str) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "a"}\n{"prompt": \n')
    args = [str(bad) if a == "BAD" else a for a in args]
    result = playground(data_dir, tmp_path / "runs.sqlite3", *args)
    assert result.returncode == 2 and message in result.stderr, result.stderr


def test_service_runs_a_batch_in_the_background(service: RunService) -> None:
    """What the page will use: start_batch returns at once; progress until complete; then the result."""
    spec = make_spec()
    spec.columns = spec.columns[:1]
    spec.columns[0].params.max_new_tokens = 4
    batch_id = service.start_batch(spec, owner="carol")
    deadline = time.monotonic() + 120
    while (p := service.batch_progress(batch_id)).state == "running" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert p.state == "complete" and p.done == p.total == 3
    result = service.batch_result(batch_id)
    assert [m.answered for m in result.models] == [3] and service.store.count() == 3
    assert not service.batches.stop(batch_id, owner="carol")  # finished: nothing to stop


def _small_spec(tokens: int = 4) -> BatchSpec:
    spec = make_spec()
    spec.columns = spec.columns[:1]
    spec.columns[0].params.max_new_tokens = tokens
    return spec


def _wait_until_not_running(service: RunService, batch_id: str) -> Progress:
    deadline = time.monotonic() + 120
    while (p := service.batch_progress(batch_id)).state == "running" and time.monotonic() < deadline:
        time.sleep(0.05)
    return p


def test_only_the_owner_can_stop_a_background_batch(service: RunService) -> None:
    """A `?batch=` link shows a batch to anyone; stopping it is its owner's (as deleting a run is)."""
    batch_id = service.start_batch(_small_spec(16), owner="carol")
    with pytest.raises(SessionError, match="only the batch's owner can stop it"):
        service.batches.stop(batch_id, owner="mallory")
    assert service.batches.stop(batch_id, owner="carol")
    assert _wait_until_not_running(service, batch_id).state == "stopped"


def test_background_batches_are_capped_per_server(service: RunService,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """Each background batch keeps models busy for as long as its set lasts: a server runs at most
    MAX_RUNNING_BATCHES at once, and says so instead of starting (or resuming) one more."""
    monkeypatch.setattr(runner, "MAX_RUNNING_BATCHES", 1)
    first = service.start_batch(_small_spec(16), owner="carol")
    try:
        with pytest.raises(BatchLimit, match="running 1 batches, the most it runs at once: wait for one"):
            service.start_batch(_small_spec(), owner="dave")
        assert service.list_batches("dave") == []  # refused before anything was stored
    finally:
        service.batches.stop(first, owner="carol")
        _wait_until_not_running(service, first)
    second = service.start_batch(_small_spec(), owner="dave")  # room again once the first has ended
    assert _wait_until_not_running(service, second).state == "complete"
