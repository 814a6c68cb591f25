"""The placement plan for any number of GPUs, with simulated device sizes (it is pure: no GPU needed)."""

from __future__ import annotations

import pytest

from playground.backends.placement import HEADROOM, PlacementError, plan_placement

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
