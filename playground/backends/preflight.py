"""Memory pre-flight: estimate what a model will need before loading it, and compare with what is free.

Running out of memory mid-load takes the whole process down on CPU and leaves a
GPU fragmented; refusing first, with numbers, tells the user what to do. Each source's
estimator (backends/registry.py) tells the need: for transformers models from the config
alone (accelerate's empty weights: no memory is touched) and the KV cache from the model's
shape and the column's context; for a managed llama.cpp server, the size of its file.
"""

from __future__ import annotations

import logging
from pathlib import Path

import psutil
import torch

from playground.backends import registry
from playground.backends.placement import HEADROOM
from playground.backends.registry import Estimate
from playground.catalog import ModelSpec

log = logging.getLogger(__name__)
GB = 1024**3


def free_bytes(device: str) -> int:
    """Memory a new model may take: on CUDA, each GPU's free memory up to the share a placement plan
    fills (backends/placement.py; a model too big for one GPU is spread over all); else available RAM."""
    if device.startswith("cuda") and torch.cuda.is_available():
        return sum(int(free * HEADROOM) for free in gpu_free().values())
    return int(psutil.virtual_memory().available)


def gpu_free() -> dict[int, int]:
    """Free bytes on each CUDA device."""
    return {i: int(torch.cuda.mem_get_info(i)[0]) for i in range(torch.cuda.device_count())}


def where_free(free: int, device: str) -> str:
    """What the refusal says about free memory: each GPU's on CUDA, so a user sees where room is."""
    if device.startswith("cuda") and torch.cuda.is_available():
        each = ", ".join(f"cuda:{i} {f / GB:.1f} GB free" for i, f in gpu_free().items())
        return f"{free / GB:.1f} GB usable ({each}; a plan fills at most {HEADROOM:.0%} of a GPU)"
    return f"{free / GB:.1f} GB free on {device}"


def needs_estimate(spec: ModelSpec) -> bool:
    """Does loading `spec` take memory here worth checking first? (A served model's is another machine's.)"""
    return registry.source(spec.source).estimate is not None


def estimate(spec: ModelSpec, data_dir: Path, dtype: torch.dtype, cache_tokens: int) -> Estimate | None:
    """What loading `spec` will take (None when it cannot be told without loading, or takes nothing here)."""
    try:
        estimator = registry.source(spec.source).estimator()
        return estimator(spec, data_dir, dtype, cache_tokens) if estimator is not None else None
    except Exception as exc:  # noqa: BLE001 - an estimate we cannot make never blocks a load
        log.info("no memory estimate for %s: %s", spec.id, exc)
        return None


def refusal(spec: ModelSpec, need: Estimate, free: int, device: str, loaded: list[str]) -> str:
    """The sentence a user sees instead of an out-of-memory crash."""
    others = f"unload {', '.join(loaded)}" if loaded else "free some memory"
    return (f"{spec.id}: needs ~{need.weights_bytes / GB:.1f} GB weights + {need.cache_bytes / GB:.1f} GB "
            f"cache; {where_free(free, device)}; {others} or pick a smaller or quantized model")
