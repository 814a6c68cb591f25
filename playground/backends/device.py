"""Where a local model runs and what it holds there: device, dtype, weights and KV-cache bytes.

Shared by loading and its estimate (local_load.py), the loaded backend (local.py) and the pool,
so that each picks the device and computes a model's bytes the same way.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import transformers

from playground.backends.base import BackendError


def pick_device(requested: str = "") -> str:
    """The device asked for (refused with a message when CUDA is asked for and absent), else the best."""
    if requested in ("cpu", "cuda"):
        if requested == "cuda" and not torch.cuda.is_available():
            raise BackendError("PLAYGROUND_DEVICE=cuda was asked for but no CUDA device is available")
        return requested
    return "cuda" if torch.cuda.is_available() else "cpu"


def pick_dtype(device: str) -> torch.dtype:
    """bf16 on GPUs that support it (fast, same range as fp32); fp32 on CPU (exact, and no slower here)."""
    if device == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.float32


def library_versions() -> dict[str, str]:
    """The versions a run record names, so a result can be traced to the libraries that made it."""
    return {"torch": torch.__version__, "transformers": transformers.__version__}


@dataclass
class CudaPeak:
    """CUDA allocator peak since this probe was made; only meaningful while the column ran alone."""

    device: torch.device
    kind: str = "cuda allocator peak"

    def __post_init__(self) -> None:
        torch.cuda.reset_peak_memory_stats(self.device)

    def peak_bytes(self) -> int:
        return int(torch.cuda.max_memory_allocated(self.device))


def module_bytes(model: torch.nn.Module) -> int:
    """Bytes held by a model's parameters and buffers (what loading it costs)."""
    tensors = [*model.parameters(), *model.buffers()]
    return sum(t.numel() * t.element_size() for t in tensors)


def kv_cache_bytes(config: object, tokens: int, element_size: int) -> int:
    """Keys + values for `tokens` positions, from the model's shape (sliding-window layers capped)."""
    text = getattr(config, "text_config", None) or config
    layers = int(getattr(text, "num_hidden_layers", 0) or 0)
    heads = int(getattr(text, "num_attention_heads", 0) or 0)
    kv_heads = int(getattr(text, "num_key_value_heads", 0) or heads)
    head_dim = int(getattr(text, "head_dim", 0) or (getattr(text, "hidden_size", 0) // max(heads, 1)))
    window = int(getattr(text, "sliding_window", 0) or 0)
    kinds = list(getattr(text, "layer_types", None) or ["full_attention"] * layers)[:layers]
    positions = sum(
        min(tokens, window) if kind == "sliding_attention" and window else tokens for kind in kinds
    )
    return 2 * positions * kv_heads * head_dim * element_size
