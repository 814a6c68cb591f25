"""Memory pre-flight: estimate what a model will need before loading it, and compare with what is free.

Running out of memory mid-load takes the whole process down on CPU and leaves a
GPU fragmented; refusing first, with numbers, tells the user what to do. The
weights are estimated from the model's config alone (accelerate's empty weights:
no memory is touched), the KV cache from its shape and the column's context.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from pathlib import Path

import psutil
import torch
from accelerate import init_empty_weights
from transformers import AutoConfig, AutoModelForCausalLM

from playground.backends import converted
from playground.backends.local import kv_cache_bytes, pretrained_source, weights_lock
from playground.backends.placement import HEADROOM
from playground.catalog import ModelSpec, bundled_file

log = logging.getLogger(__name__)
GB = 1024**3


@dataclass(frozen=True)
class Estimate:
    weights_bytes: int
    cache_bytes: int

    @property
    def total(self) -> int:
        return self.weights_bytes + self.cache_bytes


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


def estimate(spec: ModelSpec, data_dir: Path, dtype: torch.dtype, cache_tokens: int) -> Estimate | None:
    """What loading `spec` will take (None when it cannot be told without loading, or is not local)."""
    if spec.source == "openai":
        return None  # another machine's memory
    try:
        if spec.source == "llama.cpp":
            path = bundled_file(spec, data_dir) if spec.bundled else Path(spec.location)
            return Estimate(path.stat().st_size, 0)  # llama.cpp maps the quantized file as it is
        config, parameters = _shape(spec, data_dir)
        element = torch.finfo(dtype).bits // 8
        return Estimate(parameters * element, kv_cache_bytes(config, cache_tokens, element))
    except Exception as exc:  # noqa: BLE001 - an estimate we cannot make never blocks a load
        log.info("no memory estimate for %s: %s", spec.id, exc)
        return None


@functools.lru_cache(maxsize=64)
def _shape(spec: ModelSpec, data_dir: Path) -> tuple[object, int]:
    """A model's config and parameter count, built once per model (the pre-flight and the CUDA
    placement both ask, on every load)."""
    where, kwargs = pretrained_source(spec, data_dir)
    config = AutoConfig.from_pretrained(where, **kwargs)
    if isinstance(where, Path) and not kwargs:
        counted = converted.parameter_count(where)  # a converted cache: its header says, at no cost
        if counted is not None:
            return config, counted
    # Building even an empty model goes through transformers' class patches (and accelerate's
    # patch of nn.Module.register_parameter): process-wide, so never beside another model's load.
    with weights_lock(), init_empty_weights():
        model = AutoModelForCausalLM.from_config(config)
    model.tie_weights()  # tied input/output embeddings are one tensor once loaded: count them once
    return config, sum(p.numel() for p in model.parameters())


def refusal(spec: ModelSpec, need: Estimate, free: int, device: str, loaded: list[str]) -> str:
    """The sentence a user sees instead of an out-of-memory crash."""
    others = f"unload {', '.join(loaded)}" if loaded else "free some memory"
    return (f"{spec.id}: needs ~{need.weights_bytes / GB:.1f} GB weights + {need.cache_bytes / GB:.1f} GB "
            f"cache; {where_free(free, device)}; {others} or pick a smaller or quantized model")
