"""A real llama.cpp server (llama-cpp-python) on loopback, managed by the playground, serving the bundled
SmolLM2 GGUF: streaming, top-5 logprobs, exact templated token ids, Stop, a killed server, a stalled one."""

from __future__ import annotations

import os
import signal
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from playground.backends import llamacpp as managed
from playground.backends import managed_server
from playground.backends.base import BackendError
from playground.backends.local import LocalBackend
from playground.backends.pool import ModelPool
from playground.catalog import SMOLLM2_LLAMACPP, Catalog
from playground.engine import ColumnRequest, Engine, RunRequest
from playground.inspect.run_compare import compare_runs
from playground.record import GenerationParams

pytestmark = pytest.mark.timeout(600)
FRANCE = "What is the capital of France?"
STORY = "Write a long story about a dragon who learns to bake bread."


def col(model: str, **params: object) -> ColumnRequest:
    return ColumnRequest(model, GenerationParams(**params))


def test_streams_with_top5_logprobs_and_the_exact_prompt_ids(engine: Engine, llamacpp, smollm2: LocalBackend
                                                             ) -> None:
    run, events = engine.stream(RunRequest(FRANCE, [col("smollm2-135m-llamacpp", max_new_tokens=12)]))
    deltas = [e.delta for e in events if e.kind == "token"]
    (model,) = run.models
    assert model.error == "" and model.finish_reason in ("length", "eos")
    assert len(model.steps) >= 2 and "".join(deltas) == model.text
    # the server's tokenizer on the chat template: the very ids the local model is fed
    assert model.prompt_token_ids == smollm2.encode_prompt(FRANCE, "").token_ids
    assert model.capabilities.token_ids == "server" and model.capabilities.logprobs
    assert not model.capabilities.attention
    for step in model.steps:
        assert step.logprob <= 0 and len(step.top) == 5
        assert step.top[0].logprob >= step.top[-1].logprob
    assert model.identity.engine == "llama.cpp (managed)" and model.identity.served_model
    assert len(model.identity.sha256) == 64
    m = model.metrics
    assert m.ttft_s > 0 and m.decode_tok_s > 0 and m.weights_bytes > 0
    assert "not available for served models" in model.attention_note


def test_one_run_shows_where_two_engines_part_on_the_same_weights(engine: Engine, llamacpp, smollm2) -> None:
    run = engine.run(RunRequest(FRANCE, [col("smollm2-135m", max_new_tokens=12),
                                         col("smollm2-135m-llamacpp", max_new_tokens=12)]))
    local, served = run.models
    assert local.error == "" and served.error == ""
    assert local.identity.sha256 == served.identity.sha256  # the same GGUF file
    diff = compare_runs(run, run, 0, 1)
    # Run vs run names what differs in the setup (the engine) and diffs the two answers word by word
    assert any(change.name == "engine" for change in diff.identity)
    assert diff.output is not None and diff.output.error == ""
    changed = [op for op in diff.output.ops if op.kind != "equal"]
    assert (local.text == served.text) == (not changed)


def test_stop_ends_a_served_stream_at_once(engine: Engine, llamacpp) -> None:
    cancel = threading.Event()
    run, events = engine.stream(RunRequest(STORY, [col("smollm2-135m-llamacpp", max_new_tokens=400)]), cancel)
    stopped_at = 0.0
    for event in events:
        if event.kind == "token" and not cancel.is_set():
            cancel.set()
            stopped_at = time.perf_counter()
    assert time.perf_counter() - stopped_at < 2.0
    (model,) = run.models
    assert model.finish_reason == "cancelled" and 0 < len(model.steps) < 400


@pytest.fixture
def private_server(data_dir: Path):  # noqa: ANN201 - a served backend on a server of this test's own
    backend = managed.load(SMOLLM2_LLAMACPP, data_dir)
    yield backend
    backend.close()


def _engine_with(catalog: Catalog, data_dir: Path, backend, pool: ModelPool) -> Engine:  # noqa: ANN001
    fresh = ModelPool(data_dir, device="cpu")
    fresh.put(SMOLLM2_LLAMACPP, backend)
    from playground.catalog import SMOLLM2

    fresh.put(SMOLLM2, pool.get(SMOLLM2))
    return Engine(catalog, fresh)


def _server_process(backend) -> int:  # noqa: ANN001
    port = int(backend.spec.base_url.rsplit(":", 1)[1].split("/")[0])
    return next(s.process.pid for s in managed._LIVE if s.port == port)


def _gone(pid: int, within_s: float = 5.0) -> bool:
    """Reaped, not a zombie: /proc forgets a process only once its parent has waited for it."""
    deadline = time.monotonic() + within_s
    while Path(f"/proc/{pid}").exists():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def test_a_killed_engine_ends_its_column_in_words_and_the_next_run_starts_afresh(
    catalog: Catalog, data_dir: Path, pool: ModelPool
) -> None:
    from playground.catalog import SMOLLM2

    fresh = ModelPool(data_dir, device="cpu")
    fresh.put(SMOLLM2, pool.get(SMOLLM2))
    engine = Engine(catalog, fresh)
    try:
        run, events = engine.stream(RunRequest(STORY, [col("smollm2-135m-llamacpp", max_new_tokens=300),
                                                       col("smollm2-135m", max_new_tokens=6)]))
        pid = 0
        for event in events:
            if event.kind == "token" and event.column == 0 and not pid:
                pid = _server_process(fresh.get(SMOLLM2_LLAMACPP))
                os.kill(pid, signal.SIGKILL)
        served, local = run.models
        assert served.finish_reason == "error"
        crashed = "llama.cpp engine for smollm2-135m-llamacpp crashed: killed (SIGKILL)"
        assert crashed in served.error, served.error
        assert served.error.endswith("partial output kept") and served.steps and served.text
        assert local.error == "" and local.finish_reason in ("length", "eos")  # the other column is untouched
        assert _gone(pid)  # the dead child was reaped
        assert not fresh.is_loaded(SMOLLM2_LLAMACPP)  # the pool let go of it at once
        (again,) = engine.run(RunRequest(FRANCE, [col("smollm2-135m-llamacpp", max_new_tokens=6)])).models
        assert again.error == "" and again.steps  # a fresh server
        assert _server_process(fresh.get(SMOLLM2_LLAMACPP)) != pid
    finally:
        fresh.unload(SMOLLM2_LLAMACPP)


def test_an_engine_that_dies_on_start_says_why(data_dir: Path, tmp_path: Path) -> None:
    from dataclasses import replace

    junk = tmp_path / "broken.gguf"
    junk.write_bytes(b"GGUF" + b"\0" * 64)
    spec = replace(SMOLLM2_LLAMACPP, id="broken", location=str(junk), bundled=False)
    before = set(managed._LIVE)
    with pytest.raises(BackendError) as error:
        managed.load(spec, data_dir)
    message = str(error.value)
    assert "the llama.cpp engine for broken exited with status" in message, message
    assert "(while starting)" in message and "its log ends:" in message
    assert set(managed._LIVE) == before  # nothing left running or listed


def test_the_watcher_reaps_a_crashed_engine_and_names_the_signal(tmp_path: Path) -> None:
    import subprocess
    import sys

    crash = "import os, signal; print('loading', flush=True); os.kill(os.getpid(), signal.SIGILL)"
    log_path = tmp_path / "engine.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen([sys.executable, "-c", crash], stdout=log, stderr=subprocess.STDOUT)
    server = managed.ManagedServer(process, 0, "probe", log_path)
    server.watch()
    reason = server.failure(wait_s=10)
    assert reason.startswith("the llama.cpp engine for probe crashed: illegal instruction (SIGILL)"), reason
    assert "make clean install" in reason and "its log ends: loading" in reason
    assert _gone(process.pid)
    server.stop()  # after a crash, stopping is a no-op that still cleans up
    assert server.failure() == "" and not log_path.exists()


def test_a_stalled_server_hits_the_request_timeout_and_others_finish(
    catalog: Catalog, data_dir: Path, private_server, pool: ModelPool
) -> None:
    engine = _engine_with(catalog, data_dir, private_server, pool)
    pid = _server_process(private_server)
    os.kill(pid, signal.SIGSTOP)  # a real server that stops answering
    try:
        started = time.perf_counter()
        run = engine.run(RunRequest(FRANCE, [col("smollm2-135m-llamacpp", max_new_tokens=8, timeout_s=2.0),
                                             col("smollm2-135m", max_new_tokens=6)]))
        elapsed = time.perf_counter() - started
    finally:
        os.kill(pid, signal.SIGCONT)
    served, local = run.models
    assert served.finish_reason == "timeout", served.error
    assert elapsed < 20
    assert local.error == "" and local.text


def test_connection_refused_names_the_server(engine: Engine, catalog: Catalog) -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    (model,) = engine.run(RunRequest(FRANCE, [col(f"openai:x@http://127.0.0.1:{port}/v1")])).models
    assert model.finish_reason == "error"
    assert "connection refused" in model.error or "could not connect" in model.error


def test_web_users_cannot_aim_a_column_at_a_local_url(catalog: Catalog, pool: ModelPool, llamacpp) -> None:
    url = llamacpp.spec.base_url
    closed = Engine(catalog, pool, allow_any_model=False, redact=True)
    (model,) = closed.run(RunRequest(FRANCE, [col(f"openai:smollm2-135m-llamacpp@{url}")])).models
    assert "not in this server's catalog" in model.error
    opened = Engine(catalog, pool, allow_any_model=True, redact=True)
    (model,) = opened.run(RunRequest(FRANCE, [col(f"openai:smollm2-135m-llamacpp@{url}")])).models
    assert "private or local address" in model.error and "PLAYGROUND_FETCH_ALLOW" in model.error
    port = url.rsplit(":", 1)[1].split("/")[0]
    allowed = Engine(catalog, pool, allow_any_model=True, redact=True, fetch_allow=(f"127.0.0.1:{port}",))
    (model,) = allowed.run(RunRequest(FRANCE, [col(f"openai:smollm2-135m-llamacpp@{url}", max_new_tokens=3)]
                                      )).models
    assert model.error == "" and model.steps


def test_a_served_run_saves_replays_and_runs_again(engine: Engine, llamacpp, tmp_path: Path) -> None:
    from playground.sessions.bundle import export_bundle, import_bundle
    from playground.sessions.rerun import compare_runs as compare_rerun
    from playground.sessions.rerun import request_from
    from playground.sessions.store import SessionStore

    run = engine.run(RunRequest(FRANCE, [col("smollm2-135m-llamacpp", max_new_tokens=6)]))
    store = SessionStore(tmp_path / "runs.sqlite3")
    saved = store.get(store.save(run))
    assert saved.models[0].capabilities == run.models[0].capabilities
    assert import_bundle(export_bundle(saved)).models[0].text == run.models[0].text
    again = engine.run(request_from(saved))
    (match,) = compare_rerun(saved, again)
    assert match.identical  # greedy on the same server


def test_the_server_stops_with_its_model(data_dir: Path) -> None:
    backend = managed.load(SMOLLM2_LLAMACPP, data_dir)
    pid = _server_process(backend)
    backend.close()
    with pytest.raises(ProcessLookupError):
        for _ in range(50):
            os.kill(pid, 0)
            time.sleep(0.1)


def test_one_served_model_in_several_columns_and_runs_at_once(engine: Engine, llamacpp) -> None:
    import concurrent.futures

    def one(marker: str):  # noqa: ANN202 - a Run
        columns = [col("smollm2-135m-llamacpp", max_new_tokens=6) for _ in range(2)]
        return engine.run(RunRequest(f"Say the word {marker}.", columns))

    with concurrent.futures.ThreadPoolExecutor(3) as pool:
        runs = list(pool.map(one, ["apple", "river", "cloud"]))
    for run in runs:
        first, second = run.models
        assert first.error == "" and second.error == ""
        assert first.text == second.text and first.prompt_token_ids == second.prompt_token_ids  # greedy
    assert len({run.models[0].text for run in runs} | {""}) >= 2


def _within(seconds: float, call: Callable[[], object]) -> object:
    """What `call` returned or raised, or TimeoutError when it was still waiting after `seconds`."""
    outcome: list[object] = []

    def run() -> None:
        try:
            outcome.append(call())
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            outcome.append(exc)

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(seconds)
    return outcome[0] if outcome else TimeoutError(f"still waiting after {seconds} s")


def _open_descriptors() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_a_launch_that_fails_is_reported_and_later_starts_work_and_leak_nothing(
    monkeypatch: pytest.MonkeyPatch, data_dir: Path,
) -> None:
    """Popen raising SubprocessError (here: the parent-death set-up failing in the child) used to kill
    the launcher thread: that start and every later one waited forever. Each start also leaked the
    log file's descriptor."""
    from playground.catalog import bundled_file

    gguf = bundled_file(SMOLLM2_LLAMACPP, data_dir)
    monkeypatch.setattr(managed_server, "_LAUNCHER", managed_server._Launcher())  # noqa: SLF001 - its own
    real = managed_server._die_with_parent  # noqa: SLF001

    def refuse() -> None:
        raise RuntimeError("prctl refused")

    monkeypatch.setattr(managed_server, "_die_with_parent", refuse)
    logs = set(Path(tempfile.gettempdir()).glob("playground-server-*"))
    failed = _within(30, lambda: managed.start_server(gguf, "refused"))
    assert isinstance(failed, BackendError), failed
    assert "refused: could not start the llama.cpp server" in str(failed)
    assert set(Path(tempfile.gettempdir()).glob("playground-server-*")) == logs  # no log file left
    monkeypatch.setattr(managed_server, "_die_with_parent", real)
    before = _open_descriptors()
    server = _within(120, lambda: managed.start_server(gguf, "after-refusal"))
    assert isinstance(server, managed.ManagedServer), server
    server.stop()
    assert _open_descriptors() == before
