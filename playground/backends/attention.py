"""Attention capture after generation: one extra forward pass, eager attention, chosen layers.

The fast attention kernels (sdpa, flash) never materialise the weights, so the
capture pass switches the model to eager attention and hooks the attention
modules. Memory is planned before the pass: at most `token_cap` positions and
`byte_budget` bytes of float16 are kept; a longer sequence is captured as a
window of its last N positions. The positions before the window are first run
through the fast kernels into the KV cache, so the window's rows are exact and
the eager pass only ever holds N x T weights per layer, never T x T.
"""

from __future__ import annotations

import base64
import math
import threading
from dataclasses import dataclass

import numpy as np
import torch
from transformers import DynamicCache

from playground.record import AttentionCapture

DEFAULT_TOKEN_CAP = 256
DEFAULT_BYTE_BUDGET = 8 * 1024 * 1024
BYTES_PER_WEIGHT = 2  # float16


@dataclass(frozen=True)
class CapturePlan:
    layers: list[int]
    heads: int
    start: int
    tokens: int
    estimated_bytes: int
    notice: str


def default_layers(num_layers: int, count: int = 5) -> list[int]:
    """First, last and evenly spread layers in between."""
    if num_layers <= count:
        return list(range(num_layers))
    return sorted({round(i * (num_layers - 1) / (count - 1)) for i in range(count)})


def plan_capture(
    seq_len: int,
    num_layers: int,
    heads: int,
    layers: list[int] | None = None,
    token_cap: int = DEFAULT_TOKEN_CAP,
    byte_budget: int = DEFAULT_BYTE_BUDGET,
) -> CapturePlan:
    """Decide which layers and how many trailing positions to keep, before spending any memory."""
    chosen = sorted({layer for layer in (layers or default_layers(num_layers)) if 0 <= layer < num_layers})
    per_square = len(chosen) * heads * BYTES_PER_WEIGHT
    by_budget = int(math.isqrt(max(byte_budget // max(per_square, 1), 0)))
    tokens = max(1, min(seq_len, token_cap, by_budget))
    reasons = []
    if tokens < seq_len:
        if token_cap < seq_len and tokens == token_cap:
            reasons.append(f"token cap {token_cap}")
        if by_budget < min(seq_len, token_cap):
            reasons.append(f"byte budget {byte_budget / 2**20:.0f} MiB")
    notice = ""
    if reasons:
        notice = f"windowed capture: the last {tokens:,} of {seq_len:,} tokens ({', '.join(reasons)})"
    return CapturePlan(chosen, heads, seq_len - tokens, tokens, tokens * tokens * per_square, notice)


class _Recorder:
    """Forward hooks on attention modules: keep chosen layers' window, summarise every layer."""

    def __init__(self, plan: CapturePlan, special_positions: list[int], num_layers: int) -> None:
        self.plan = plan
        self.special = torch.tensor(special_positions, dtype=torch.long)
        self.kept: dict[int, np.ndarray] = {}
        self.sink_first = [0.0] * num_layers
        self.sink_special = [0.0] * num_layers

    def hook(self, layer: int):  # noqa: ANN201 - a torch hook
        def record(_module: torch.nn.Module, _inputs: object, output: object) -> None:
            weights = output[1] if isinstance(output, tuple) and len(output) > 1 else None
            if weights is None:
                raise RuntimeError(f"layer {layer} returned no attention weights (not eager attention)")
            rows = weights[0].float()  # [heads, window queries, all keys]
            self.sink_first[layer] = float(rows[..., 0].mean())
            if len(self.special):
                special = self.special.to(rows.device)
                self.sink_special[layer] = float(rows.index_select(-1, special).sum(-1).mean())
            if layer in self.plan.layers:
                window = rows[..., self.plan.start :]
                self.kept[layer] = window.to(torch.float16).cpu().numpy()

        return record


def attention_modules(model: torch.nn.Module) -> list[torch.nn.Module]:
    """The self-attention module of every decoder layer, in order."""
    decoder = getattr(model, "model", model)
    layers = getattr(decoder, "layers", None)
    if layers is None:
        raise RuntimeError(f"{type(model).__name__}: no decoder layers found to capture attention from")
    return [layer.self_attn for layer in layers]


_SWITCH_LOCK = threading.Lock()


@torch.inference_mode()
def capture_attention(
    model: torch.nn.Module,
    token_ids: list[int],
    special_positions: list[int],
    layers: list[int] | None = None,
    token_cap: int = DEFAULT_TOKEN_CAP,
    byte_budget: int = DEFAULT_BYTE_BUDGET,
) -> AttentionCapture:
    modules = attention_modules(model)
    heads = int(model.config.num_attention_heads)
    plan = plan_capture(len(token_ids), len(modules), heads, layers, token_cap, byte_budget)
    recorder = _Recorder(plan, special_positions, len(modules))
    ids = torch.tensor([token_ids], dtype=torch.long, device=model.device)
    cache = DynamicCache(config=model.config)
    original = model.config._attn_implementation
    with _SWITCH_LOCK:  # one capture at a time switches a shared model's attention kernel
        if plan.start:
            model(input_ids=ids[:, : plan.start], past_key_values=cache, use_cache=True, logits_to_keep=1)
        handles = [m.register_forward_hook(recorder.hook(i)) for i, m in enumerate(modules)]
        try:
            model.set_attn_implementation("eager")
            model(input_ids=ids[:, plan.start :], past_key_values=cache, use_cache=True, logits_to_keep=1)
        finally:
            for handle in handles:
                handle.remove()
            model.set_attn_implementation(original)
    stacked = np.stack([recorder.kept[layer] for layer in plan.layers]).astype(np.float16)
    return AttentionCapture(
        layers=plan.layers,
        heads=heads,
        start=plan.start,
        tokens=plan.tokens,
        data=base64.b64encode(stacked.tobytes()).decode("ascii"),
        num_layers=len(modules),
        sink_first=recorder.sink_first,
        sink_special=recorder.sink_special,
        notice=plan.notice,
    )
