"""Where a model goes on a machine with any number of GPUs: whole on one GPU if it fits, else spread.

Pure: device names and free bytes in, a plan out, so it is tested on CPU with
simulated device sizes. A model goes whole onto the GPU with the most free
memory (several models then spread over the GPUs one by one, each where there
is most room); a model too big for any single GPU is spread over all of them
with accelerate's `device_map="auto"` and a `max_memory` cap per GPU that keeps
a margin free for activations and the KV cache. When a managed vLLM is configured
(backends/vllm.py), a model too big for one GPU goes to vLLM instead, sharded with tensor
parallelism over the fewest GPUs (a power of two) that hold it: accelerate's spread runs layer
after layer with one GPU busy at a time, vLLM's shards all work at once.
"""

from __future__ import annotations

from dataclasses import dataclass, field

HEADROOM = 0.9  # share of a GPU's free memory a plan may fill


@dataclass(frozen=True)
class Plan:
    """How to load one model: `device_map` and `max_memory` for from_pretrained, and why."""

    device_map: str | dict[str, str]
    max_memory: dict[str | int, int] = field(default_factory=dict)
    devices: tuple[str, ...] = ()
    reason: str = ""
    engine: str = "transformers"  # or "vllm": served by a managed vLLM over `tensor_parallel` GPUs
    tensor_parallel: int = 0

    def kwargs(self) -> dict[str, object]:
        out: dict[str, object] = {"device_map": self.device_map}
        if self.max_memory:
            out["max_memory"] = dict(self.max_memory)
        return out


class PlacementError(ValueError):
    """The model fits nowhere, even spread over every GPU; the message has the numbers."""


def plan_placement(need_bytes: int, free_by_device: dict[int, int], vllm: bool = False) -> Plan:
    """A plan for a model needing `need_bytes`, given each CUDA device index's free bytes; `vllm`:
    a managed vLLM is configured and may take a model no single GPU holds."""
    if not free_by_device:
        raise PlacementError("no GPU to place the model on")
    index, free = max(free_by_device.items(), key=lambda item: (item[1], -item[0]))
    if need_bytes <= free * HEADROOM:
        reason = f"whole on cuda:{index}, the GPU with the most free memory ({free / 2**30:.1f} GB)"
        return Plan({"": f"cuda:{index}"}, devices=(f"cuda:{index}",), reason=reason)
    caps = {i: int(f * HEADROOM) for i, f in sorted(free_by_device.items())}
    sharded = _vllm_plan(need_bytes, caps) if vllm else None
    if sharded is not None:
        return sharded
    if need_bytes > sum(caps.values()):
        shown = ", ".join(f"cuda:{i} {f / 2**30:.1f} GB" for i, f in sorted(free_by_device.items()))
        raise PlacementError(f"needs ~{need_bytes / 2**30:.1f} GB; free: {shown} "
                             f"(a plan fills at most {HEADROOM:.0%} of each)")
    used = tuple(f"cuda:{i}" for i, cap in caps.items() if cap > 0)
    return Plan("auto", max_memory=dict(caps), devices=used,
                reason=f"spread over {len(used)} GPUs: no single GPU has {need_bytes / 2**30:.1f} GB free")


def _vllm_plan(need_bytes: int, caps: dict[int, int]) -> Plan | None:
    """vLLM with tensor parallelism: the fewest GPUs (2, 4, 8: a power of two, as attention heads
    split) whose smallest share holds an even slice of the model; None when no count does."""
    ranked = sorted(caps.items(), key=lambda item: (-item[1], item[0]))
    count = 2
    while count <= len(ranked):
        chosen = ranked[:count]
        if need_bytes / count <= min(cap for _i, cap in chosen):
            devices = tuple(f"cuda:{i}" for i, _cap in sorted(chosen))
            return Plan("", devices=devices, engine="vllm", tensor_parallel=count,
                        reason=f"served by vLLM over {count} GPUs (tensor parallel): no single GPU has "
                               f"{need_bytes / 2**30:.1f} GB free")
        count *= 2
    return None
