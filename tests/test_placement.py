"""The placement plan for any number of GPUs, with simulated device sizes (the plan is pure: no GPU needed),
and a load on a simulated GPU."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
import torch

from playground.backends.local import LocalBackend
from playground.backends.placement import HEADROOM, PlacementError, plan_placement
from playground.catalog import ModelSpec

GB = 2**30


def test_one_gpu_that_fits_takes_the_whole_model() -> None:
    plan = plan_placement(3 * GB, {0: 80 * GB})
    assert plan.kwargs() == {"device_map": {"": "cuda:0"}}
    assert plan.devices == ("cuda:0",)


def test_the_gpu_with_the_most_free_memory_is_chosen_ties_to_the_lowest_index() -> None:
    assert plan_placement(GB, {0: 20 * GB, 1: 60 * GB, 2: 40 * GB}).devices == ("cuda:1",)
    assert plan_placement(GB, {0: 50 * GB, 1: 50 * GB}).devices == ("cuda:0",)


def test_three_models_one_after_another_spread_over_two_gpus() -> None:
    free = {0: 80 * GB, 1: 80 * GB}
    placed = []
    for need in (30 * GB, 30 * GB, 30 * GB):
        plan = plan_placement(need, free)
        (device,) = plan.devices
        placed.append(device)
        free[int(device.split(":")[1])] -= need
    assert placed == ["cuda:0", "cuda:1", "cuda:0"]


def test_a_model_too_big_for_one_gpu_is_spread_with_caps() -> None:
    plan = plan_placement(100 * GB, {0: 80 * GB, 1: 80 * GB})
    assert plan.device_map == "auto"
    assert plan.max_memory == {0: int(80 * GB * HEADROOM), 1: int(80 * GB * HEADROOM)}
    assert plan.devices == ("cuda:0", "cuda:1") and "spread over 2 GPUs" in plan.reason


def test_a_model_too_big_for_all_gpus_is_refused_with_numbers() -> None:
    with pytest.raises(PlacementError, match=r"needs ~200.0 GB; free: cuda:0 80.0 GB, cuda:1 80.0 GB"):
        plan_placement(200 * GB, {0: 80 * GB, 1: 80 * GB})
    with pytest.raises(PlacementError, match="no GPU"):
        plan_placement(GB, {})


class _Placed(Exception):
    """Raised by the recording from_pretrained once it has the placement: no second model is built."""


def test_a_cuda_load_whose_estimate_builds_an_empty_model_does_not_wait_for_itself(
    monkeypatch: pytest.MonkeyPatch, data_dir: Path, smollm2: LocalBackend,
) -> None:
    """Simulated GPU: a directory model (its parameter count needs an empty model built under
    weights_lock) with the estimate's cache empty. The estimate used to run inside that lock and
    take it again: the load hung forever."""
    from playground.backends import local_load, preflight, weights_lock

    folder = data_dir / "cache" / smollm2.identity.sha256  # the converted SmolLM2: a model directory
    spec = ModelSpec(id="smollm2-dir", name="SmolLM2 folder", source="dir", location=str(folder))
    monkeypatch.setattr(preflight, "gpu_free", lambda: {0: 80 * GB, 1: 40 * GB})
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    placed: list[dict[str, object]] = []

    def record(*_args: object, **kwargs: object) -> None:
        placed.append(kwargs)
        raise _Placed

    monkeypatch.setattr(local_load.AutoModelForCausalLM, "from_pretrained", record)
    local_load._shape.cache_clear()  # noqa: SLF001 - as after a failed earlier pre-flight
    outcome: list[BaseException] = []

    def load() -> None:
        try:
            local_load._load_pretrained(spec, torch.bfloat16, "cuda", lambda _m: None, data_dir)  # noqa: SLF001
        except BaseException as exc:  # noqa: BLE001 - handed to the test thread
            outcome.append(exc)

    worker = threading.Thread(target=load, daemon=True)
    worker.start()
    worker.join(timeout=30)
    stuck = worker.is_alive()
    if stuck:
        weights_lock._WEIGHTS_LOCK.release()  # noqa: SLF001 - let the stuck load go on so later tests can load
        worker.join(timeout=60)
    assert not stuck, "the load waited for its own weights lock"
    assert [type(e) for e in outcome] == [_Placed]
    assert placed[0]["device_map"] == {"": "cuda:0"}


def test_with_vllm_configured_a_model_too_big_for_one_gpu_is_sharded_over_the_fewest() -> None:
    """Four 80 GB GPUs, a 140 GB model: vLLM over 2 GPUs (70 GB each fits 72 GB caps); 250 GB needs 4;
    without vLLM the same model is spread by accelerate; a fitting one stays whole on one GPU."""
    free = {0: 80 * GB, 1: 80 * GB, 2: 80 * GB, 3: 80 * GB}
    two = plan_placement(140 * GB, free, vllm=True)
    assert (two.engine, two.tensor_parallel, two.devices) == ("vllm", 2, ("cuda:0", "cuda:1"))
    assert two.reason.startswith("served by vLLM over 2 GPUs")
    four = plan_placement(250 * GB, free, vllm=True)
    assert (four.engine, four.tensor_parallel) == ("vllm", 4)
    assert plan_placement(140 * GB, free).engine == "transformers"
    assert plan_placement(140 * GB, free).device_map == "auto"
    assert plan_placement(10 * GB, free, vllm=True).engine == "transformers"
    uneven = {0: 80 * GB, 1: 80 * GB, 2: 20 * GB}  # three GPUs: 2 cannot hold it, 4 do not exist
    assert plan_placement(150 * GB, uneven, vllm=True).device_map == "auto"
