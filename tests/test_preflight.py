"""Memory pre-flight on CPU: estimates from the config alone, refusals with numbers, idle models unloaded
to make room. The machine's free memory is simulated; the models and estimates are real."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field, replace
from pathlib import Path

import pytest
import torch

from playground.backends.base import BackendDefaults, BackendError
from playground.backends.local import LocalBackend
from playground.backends.pool import ModelPool
from playground.backends.preflight import GB, estimate
from playground.catalog import GEMMA3, SMOLLM2, Catalog
from playground.engine import ColumnRequest, Engine, RunRequest
from playground.record import GenerationParams, ModelIdentity

pytestmark = pytest.mark.timeout(600)


@pytest.mark.parametrize("which", ["smollm2", "gemma"])
def test_the_estimate_matches_the_loaded_weights(request, which: str, data_dir: Path) -> None:
    backend: LocalBackend = request.getfixturevalue(which)
    spec = SMOLLM2 if which == "smollm2" else GEMMA3
    need = estimate(spec, data_dir, torch.float32, cache_tokens=1000)
    assert need is not None
    assert abs(need.weights_bytes - backend.weights_bytes) <= 0.05 * backend.weights_bytes
    assert need.cache_bytes == backend.kv_cache_bytes(1000)


def test_a_model_that_cannot_fit_is_refused_with_numbers(data_dir: Path, smollm2: LocalBackend) -> None:
    fresh = ModelPool(data_dir, device="cpu", free_memory=lambda _device: 100 * 2**20)
    with pytest.raises(BackendError) as info:
        fresh.get(SMOLLM2)
    message = str(info.value)
    assert "smollm2-135m: needs ~0.5 GB weights + " in message
    assert "0.1 GB free on cpu; free some memory or pick a smaller or quantized model" in message
    assert not fresh.is_loaded(SMOLLM2)


def test_idle_models_are_unloaded_to_make_room(data_dir: Path, smollm2: LocalBackend) -> None:
    fresh = ModelPool(data_dir, device="cpu")
    fresh.get(GEMMA3)
    room = smollm2.weights_bytes + GB // 4  # room for SmolLM2 only once Gemma is gone
    fresh._free = lambda _device: room - (GB if fresh.is_loaded(GEMMA3) else 0)  # noqa: SLF001
    fresh.get(SMOLLM2)
    assert [i.id for i in fresh.loaded()] == ["smollm2-135m"]
    assert fresh.evicted == ["gemma3-270m"]


def test_a_model_in_use_is_named_in_the_refusal_not_unloaded(data_dir: Path, catalog: Catalog) -> None:
    fresh = ModelPool(data_dir, device="cpu")
    fresh.acquire(GEMMA3)
    fresh._free = lambda _device: 10 * 2**20  # noqa: SLF001
    engine = Engine(catalog, fresh)
    run = engine.run(RunRequest("Hi", [ColumnRequest("smollm2-135m", GenerationParams(max_new_tokens=2))]))
    (model,) = run.models
    assert model.finish_reason == "error"
    assert "free on cpu; unload gemma3-270m or pick a smaller" in model.error
    assert fresh.is_loaded(GEMMA3)


def test_on_gpus_the_usable_memory_is_every_gpus_share_and_the_refusal_names_each(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Two simulated GPUs: what a plan may fill (backends/placement.py's headroom) on both counts,
    and the refusal says where memory is free, GPU by GPU."""
    from playground.backends import preflight
    from playground.backends.placement import HEADROOM

    monkeypatch.setattr(preflight.torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(preflight, "gpu_free", lambda: {0: 80 * GB, 1: 40 * GB})
    usable = preflight.free_bytes("cuda")
    assert usable == int(80 * GB * HEADROOM) + int(40 * GB * HEADROOM)
    need = preflight.Estimate(140 * GB, 2 * GB)
    message = preflight.refusal(SMOLLM2, need, usable, "cuda", ["gemma3-270m"])
    assert message == (
        "smollm2-135m: needs ~140.0 GB weights + 2.0 GB cache; 108.0 GB usable (cuda:0 80.0 GB free, "
        "cuda:1 40.0 GB free; a plan fills at most 90% of a GPU); unload gemma3-270m or pick a smaller "
        "or quantized model"
    )


def test_on_a_gpu_unloading_an_idle_model_hands_its_memory_back_to_the_driver(
    monkeypatch: pytest.MonkeyPatch, data_dir: Path, smollm2: LocalBackend, gemma: LocalBackend,
) -> None:
    """Simulated GPU: the driver's free memory (what the pre-flight reads) grows only once the
    allocator's cache is emptied. Unloading used to skip that, so room was never made."""
    emptied: list[bool] = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: emptied.append(True))
    room = smollm2.weights_bytes + GB // 4
    loaded = {SMOLLM2: smollm2, GEMMA3: gemma}  # the session's models: nothing is loaded again
    fresh = ModelPool(data_dir, device="cpu", budget_bytes=8 * GB, loader=lambda spec, *_a: loaded[spec],
                      free_memory=lambda _device: room if emptied else 10 * 2**20)
    fresh.put(GEMMA3, gemma)
    assert fresh.get(SMOLLM2) is smollm2
    assert fresh.evicted == ["gemma3-270m"]
    assert [i.id for i in fresh.loaded()] == ["smollm2-135m"]


@dataclass
class _SlowToStop(BackendDefaults):
    """A loaded model whose close() takes as long as the test says (a managed server stopping)."""

    identity: ModelIdentity
    weights_bytes: int
    stopping: threading.Event = field(default_factory=threading.Event)
    may_stop: threading.Event = field(default_factory=threading.Event)
    load_s: float = 0.0
    loaded_from_cache: bool = True

    def close(self) -> None:
        self.stopping.set()
        self.may_stop.wait(timeout=60)


def test_evicting_a_model_that_is_slow_to_stop_does_not_hold_up_the_pool(
    data_dir: Path, smollm2: LocalBackend,
) -> None:
    """Over the budget after a load, the idle model is evicted; while it stops (a llama.cpp server:
    up to 10 s), the pool line, acquires and releases answer at once."""
    slow = _SlowToStop(replace(smollm2.identity, catalog_id="gemma3-270m"), weights_bytes=GB)
    fresh = ModelPool(data_dir, device="cpu", budget_bytes=smollm2.weights_bytes + 1,
                      loader=lambda *_a: smollm2, free_memory=lambda _device: 64 * GB)
    fresh.put(GEMMA3, slow)
    loading = threading.Thread(target=fresh.get, args=(SMOLLM2,), daemon=True)
    loading.start()
    try:
        assert slow.stopping.wait(timeout=60)
        answered = threading.Thread(target=lambda: (fresh.loaded(), fresh.release(SMOLLM2)), daemon=True)
        answered.start()
        answered.join(timeout=2)
        assert not answered.is_alive(), "the pool waited for an evicted model to stop"
    finally:
        slow.may_stop.set()
        loading.join(timeout=60)
    assert fresh.evicted == ["gemma3-270m"] and [i.id for i in fresh.loaded()] == ["smollm2-135m"]
