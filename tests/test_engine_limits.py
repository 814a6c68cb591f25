"""Stop and timeouts that reach into prefill and loading; the pool's budget; web-user limits.

Real bundled models on CPU; the pools built here are private so that evictions and
abandoned loads never disturb the session-wide pool the other tests share.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
import torch

from playground.backends.decode import generate_steps
from playground.backends.local import LocalBackend
from playground.backends.pool import ModelPool
from playground.catalog import GEMMA3, SMOLLM2, Catalog
from playground.engine import ColumnRequest, Engine, RunRequest
from playground.record import GenerationParams

pytestmark = pytest.mark.timeout(600)

LONG_PROMPT = "Count the words in this text. " + "word " * 3000  # ~3000 tokens: six prefill chunks


def _forwards(model: torch.nn.Module) -> tuple[list[int], object]:
    """Record the sequence length of every forward pass of a model."""
    lengths: list[int] = []
    handle = model.register_forward_pre_hook(lambda _m, args, kwargs: lengths.append(
        kwargs["input_ids"].shape[1]), with_kwargs=True)
    return lengths, handle


def test_stop_during_prefill_ends_it_between_chunks(smollm2: LocalBackend) -> None:
    ids = smollm2.tokenizer(LONG_PROMPT)["input_ids"]
    asked = []

    def stop_after_first_chunk() -> bool:
        asked.append(1)
        return True

    lengths, handle = _forwards(smollm2.model)
    try:
        steps = list(generate_steps(smollm2.model, ids, GenerationParams(max_new_tokens=4), smollm2.eos_ids,
                                    stop_after_first_chunk, prefill_chunk=512))
    finally:
        handle.remove()
    assert steps == []
    assert lengths == [512], "the prefill went on after Stop"
    assert asked == [1]


def test_chunked_prefill_gives_the_same_tokens(smollm2: LocalBackend) -> None:
    ids = smollm2.tokenizer(LONG_PROMPT[:1500])["input_ids"]
    params = GenerationParams(max_new_tokens=6)
    whole = list(generate_steps(smollm2.model, ids, params, set(), lambda: False, prefill_chunk=100_000))
    chunked = list(generate_steps(smollm2.model, ids, params, set(), lambda: False, prefill_chunk=64))
    assert [s.token_id for s in chunked] == [s.token_id for s in whole]


def test_request_timeout_reaches_into_a_long_prefill(engine: Engine, smollm2: LocalBackend) -> None:
    params = GenerationParams(max_new_tokens=8, timeout_s=0.05)
    run = engine.run(RunRequest(LONG_PROMPT, [ColumnRequest("smollm2-135m", params)]))
    (model,) = run.models
    assert model.finish_reason == "timeout", model.error
    assert model.steps == []  # before: the whole prefill ran, then one token came out
    assert "timed out after 0.05 s" in model.error


def test_stop_reaches_into_a_long_prefill(engine: Engine, smollm2: LocalBackend) -> None:
    cancel = threading.Event()
    run, events = engine.stream(RunRequest(LONG_PROMPT, [ColumnRequest("smollm2-135m", GenerationParams())]),
                                cancel)
    for event in events:
        if event.kind == "started":
            threading.Timer(0.05, cancel.set).start()
    (model,) = run.models
    assert model.finish_reason == "cancelled"
    assert model.steps == []


def test_load_timeout_ends_the_column_and_registers_nothing(data_dir: Path, catalog: Catalog) -> None:
    fresh = ModelPool(data_dir, device="cpu")
    engine = Engine(catalog, fresh, load_timeout_s=0.2)
    run = engine.run(RunRequest("Hi", [ColumnRequest("gemma3-270m", GenerationParams(max_new_tokens=2))]))
    (model,) = run.models
    assert model.finish_reason == "timeout"
    assert "loading took longer than 0.2 s" in model.error
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and any(t.name.startswith("load-") for t in threading.enumerate()):
        time.sleep(0.1)
    assert not fresh.is_loaded(GEMMA3), "an abandoned load was registered"


def test_stop_while_loading_abandons_the_load(data_dir: Path, catalog: Catalog) -> None:
    fresh = ModelPool(data_dir, device="cpu")
    cancel = threading.Event()
    run, events = Engine(catalog, fresh).stream(
        RunRequest("Hi", [ColumnRequest("gemma3-270m", GenerationParams(max_new_tokens=2))]), cancel)
    for event in events:
        if event.kind == "status" and event.column == 0:
            cancel.set()
    assert run.models[0].finish_reason == "cancelled"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and any(t.name.startswith("load-") for t in threading.enumerate()):
        time.sleep(0.1)
    assert not fresh.is_loaded(GEMMA3)


def test_pool_evicts_idle_models_least_recently_used_first(data_dir: Path, smollm2: LocalBackend) -> None:
    budget = smollm2.weights_bytes + 1  # room for SmolLM2 alone
    fresh = ModelPool(data_dir, device="cpu", budget_bytes=budget)
    fresh.get(SMOLLM2)
    fresh.get(GEMMA3)
    assert [i.id for i in fresh.loaded()] == ["gemma3-270m"]
    assert fresh.evicted == ["smollm2-135m"]


def test_pool_never_evicts_a_model_in_use(data_dir: Path, smollm2: LocalBackend) -> None:
    fresh = ModelPool(data_dir, device="cpu", budget_bytes=smollm2.weights_bytes + 1)
    held = fresh.acquire(SMOLLM2)
    fresh.get(GEMMA3)
    assert {i.id for i in fresh.loaded()} == {"smollm2-135m", "gemma3-270m"}
    assert next(i for i in fresh.loaded() if i.id == "smollm2-135m").in_use == 1
    assert fresh.evicted == []  # over the budget, but the only idle model is the one just loaded
    fresh.release(SMOLLM2)
    # released, the pool is over its budget with two idle models: the least recently used one goes
    assert fresh.evicted == ["gemma3-270m"]
    assert [i.id for i in fresh.loaded()] == ["smollm2-135m"]
    assert fresh.used_bytes() == held.weights_bytes + held.workspace_bytes()


def test_engine_releases_models_when_columns_finish(data_dir: Path, catalog: Catalog) -> None:
    fresh = ModelPool(data_dir, device="cpu")
    engine = Engine(catalog, fresh)
    engine.run(RunRequest("Hi", [ColumnRequest("smollm2-135m", GenerationParams(max_new_tokens=2)),
                                 ColumnRequest("smollm2-135m", GenerationParams(max_new_tokens=2))]))
    assert [(i.id, i.in_use) for i in fresh.loaded()] == [("smollm2-135m", 0)]


def test_web_users_may_pick_catalog_models_only(data_dir: Path, catalog: Catalog, pool: ModelPool,
                                                tmp_path: Path) -> None:
    gguf = tmp_path / "secret-dir" / "mine.gguf"
    gguf.parent.mkdir()
    gguf.write_bytes(b"GGUF")
    engine = Engine(catalog, pool, allow_any_model=False, redact=True)
    run = engine.run(RunRequest("Hi", [ColumnRequest(str(gguf), GenerationParams(max_new_tokens=2)),
                                       ColumnRequest("Qwen/Qwen2.5-0.5B", GenerationParams(max_new_tokens=2)),
                                       ColumnRequest("smollm2-135m", GenerationParams(max_new_tokens=2))]))
    by_path, by_hub, listed = run.models
    for refused in (by_path, by_hub):
        assert refused.finish_reason == "error"
        assert "not in this server's catalog" in refused.error
        assert str(tmp_path) not in refused.error and "secret-dir" not in refused.error
    assert listed.error == ""


def test_errors_shown_to_web_users_carry_no_server_paths(
    catalog: Catalog, pool: ModelPool, tmp_path: Path
) -> None:
    broken = tmp_path / "private" / "broken.gguf"
    broken.parent.mkdir()
    broken.write_bytes(b"not a gguf file at all")
    engine = Engine(catalog, pool, redact=True)
    (model,) = engine.run(RunRequest("Hi", [ColumnRequest(str(broken), GenerationParams())])).models
    assert model.finish_reason == "error"
    assert "not a GGUF file" in model.error
    assert str(tmp_path) not in model.error and "…/broken.gguf" in model.error


def test_the_record_keeps_the_reference_the_user_picked(engine: Engine, tmp_path: Path, smollm2: LocalBackend
                                                        ) -> None:
    gguf = Path(smollm2.identity.location)
    link = tmp_path / "picked.gguf"
    link.symlink_to(gguf)
    column = ColumnRequest(str(link), GenerationParams(max_new_tokens=2))
    (model,) = engine.run(RunRequest("Hi", [column])).models
    assert model.error == ""
    assert model.identity.catalog_id == "picked"  # the file stem, which is no catalog id
    assert model.identity.reference == str(link)  # what Run again loads
