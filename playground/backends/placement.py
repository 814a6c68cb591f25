"""Where a model goes on a machine with any number of GPUs: whole on one GPU if it fits, else spread.

Pure: device names and free bytes in, a plan out, so it is tested on CPU with
simulated device sizes. A model goes whole onto the GPU with the most free
memory (several models then spread over the GPUs one by one, each where there
is most room); a model too big for any single GPU is spread over all of them
with accelerate's `device_map="auto"` and a `max_memory` cap per GPU that keeps
a margin free for activations and the KV cache.
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

    def kwargs(self) -> dict[str, object]:
        out: dict[str, object] = {"device_map": self.device_map}
        if self.max_memory:
            out["max_memory"] = dict(self.max_memory)
        return out


class PlacementError(ValueError):
    """The model fits nowhere, even spread over every GPU; the message has the numbers."""


def plan_placement(need_bytes: int, free_by_device: dict[int, int]) -> Plan:
    """A plan for a model needing `need_bytes`, given each CUDA device index's free bytes."""
    if not free_by_device:
        raise PlacementError("no GPU to place the model on")
    index, free = max(free_by_device.items(), key=lambda item: (item[1], -item[0]))
    if need_bytes <= free * HEADROOM:
        reason = f"whole on cuda:{index}, the GPU with the most free memory ({free / 2**30:.1f} GB)"
        return Plan({"": f"cuda:{index}"}, devices=(f"cuda:{index}",), reason=reason)
    caps = {i: int(f * HEADROOM) for i, f in sorted(free_by_device.items())}
    if need_bytes > sum(caps.values()):
        shown = ", ".join(f"cuda:{i} {f / 2**30:.1f} GB" for i, f in sorted(free_by_device.items()))
        raise PlacementError(f"needs ~{need_bytes / 2**30:.1f} GB; free: {shown} "
                             f"(a plan fills at most {HEADROOM:.0%} of each)")
    used = tuple(f"cuda:{i}" for i, cap in caps.items() if cap > 0)
    return Plan("auto", max_memory=dict(caps), devices=used,
                reason=f"spread over {len(used)} GPUs: no single GPU has {need_bytes / 2**30:.1f} GB free")
