"""A fast-path workspace: one decode step's static buffers, static KV cache and CUDA graph.

backends/fast_decode.py decides when the fast path applies and drives batches of rows through
workspaces; this module is the step itself: its buffers, its capture (plain, or fused by
torch.compile: backends/fused_step.py), and launching and reading one step.

Every row has its own position: each row's keys and values are written at that row's position
(`_RowWrites` replaces the static cache's shared write index), its mask shows slots 0..position
and its position ids are its own. So rows from different runs, with different prompts and
lengths, share one step, and a row joins a running batch between two steps (`admit`) without
the others waiting. Its cache holds exactly its own prompt at slots 0..n-1, masked slots add
nothing, and its draw is keyed by its own step count, so in fp32 (CPU, the tests) a row gets the
tokens it gets alone; in bf16 on a GPU, the kernels for other batch sizes and cache lengths round
differently, and a near tie can go the other way (README.md, "On a GPU", has the figures).
A CUDA graph keeps no Python references: the workspace owns every buffer the graph touches.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass

import torch
from transformers import DynamicCache, StaticCache

from playground.backends.sampling import TOP_ALTERNATIVES, RowParams, pick
from playground.record import GenerationParams

log = logging.getLogger(__name__)

ROW_BUCKETS = (1, 2, 4, 8, 16, 32)
MIN_LENGTH = 256  # the smallest cache length bucket
_RESULT_WIDTH = 2 + 2 * TOP_ALTERNATIVES  # token, logprob, top ids, top logprobs


def length_bucket(tokens: int) -> int:
    """The cache length for `tokens` positions: a power of two, at least MIN_LENGTH."""
    length = MIN_LENGTH
    while length < tokens:
        length *= 2
    return length


def rows_bucket(rows: int) -> int:
    return next(b for b in ROW_BUCKETS if b >= rows)


class FastPathUnavailable(Exception):
    """This model or request cannot take the fast path; the message says why (shown in the column)."""


@dataclass(frozen=True, order=True)
class WorkspaceKey:
    rows: int
    length: int
    sampling: bool  # the step can sample (an all-greedy workspace skips the sorts)

    def holds(self, other: WorkspaceKey) -> bool:
        """A workspace of this shape can take what one of `other`'s shape holds."""
        return self.rows >= other.rows and self.length >= other.length and self.sampling >= other.sampling


class _RowWrites:
    """A cache layer's update that writes each row's new key and value at that row's own position."""

    def __init__(self, layer: object, rows: torch.Tensor, position: torch.Tensor) -> None:
        self.layer, self.rows, self.position = layer, rows, position

    def __call__(self, key_states: torch.Tensor, value_states: torch.Tensor, *args: object, **kwargs: object):
        layer = self.layer
        if not layer.is_initialized:
            layer.lazy_initialization(key_states, value_states)
        layer.keys[self.rows, :, self.position] = key_states[:, :, -1]
        layer.values[self.rows, :, self.position] = value_states[:, :, -1]
        return layer.keys, layer.values


class Workspace:
    """One decode step's static buffers, static KV cache and (on CUDA) its captured graph."""

    def __init__(self, model: torch.nn.Module, key: WorkspaceKey) -> None:
        self.model = model
        self.key = key
        device = model.device
        self.cuda = device.type == "cuda"
        text = model.config.get_text_config()
        self.vocab = int(text.vocab_size)
        types = set(getattr(text, "layer_types", None) or [])
        self.mask_types = sorted(types) if len(types) > 1 else None  # hybrid models take one mask per kind
        with torch.inference_mode():
            self.cache = StaticCache(config=model.config, max_cache_len=key.length)
            self.tokens = torch.zeros((key.rows, 1), dtype=torch.long, device=device)
            self.position = torch.zeros((key.rows,), dtype=torch.long, device=device)  # each row's write slot
            self.step = torch.zeros((key.rows,), dtype=torch.long, device=device)  # each row's draw counter
            self.slots = torch.arange(key.length, device=device)
            self.row_index = torch.arange(key.rows, device=device)
            self.presence = torch.zeros((key.rows, self.vocab), dtype=torch.bool, device=device)
            self.rows = RowParams.empty(key.rows, device)
            self.result = torch.zeros((key.rows, _RESULT_WIDTH), dtype=torch.float32, device=device)
        for layer in self.cache.layers:
            layer.update = _RowWrites(layer, self.row_index, self.position)
        self.graph: torch.cuda.CUDAGraph | None = None
        self.compiled = False  # the captured step is the torch.compile'd one (fused_step.py)
        if self.cuda:
            self.stream = torch.cuda.Stream(device)
            self.host = torch.empty(self.result.shape, dtype=torch.float32, pin_memory=True)
            self.done = torch.cuda.Event()

    def nbytes(self) -> int:
        layers = [t for layer in self.cache.layers for t in (getattr(layer, "keys", None),
                                                            getattr(layer, "values", None)) if t is not None]
        return sum(t.numel() * t.element_size() for t in [*layers, self.presence])

    # -- the step ---------------------------------------------------------------

    def decode(self) -> None:
        """Feed each row's token at its position, pick the next tokens into `tokens` and `result`."""
        self._choose(self.forward())

    def forward(self) -> torch.Tensor:
        """The model's step: each row's logits [rows, vocab] (float32). The fused step compiles
        this part only; the sampling stays as it is (inductor miscompiles top-p's cumsum as a
        split scan for more than one row) and is captured in the same graph."""
        rows, length = self.key.rows, self.key.length
        visible = (self.slots[None, :] <= self.position[:, None]).view(rows, 1, 1, length)
        mask = {kind: visible for kind in self.mask_types} if self.mask_types else visible
        out = self.model(
            input_ids=self.tokens, position_ids=self.position.view(rows, 1),
            attention_mask=mask, past_key_values=self.cache, use_cache=True,
        )
        # A finished row the host has not let go of yet keeps writing its last slot, never past it.
        self.position.add_(1).clamp_(max=length - 1)
        return out.logits[:, -1, :].float()

    def fused(self, forward: Callable[[], torch.Tensor]) -> Callable[[], None]:
        """The step with `forward` (the compiled one) in place of the model's own."""
        def step() -> None:
            self._choose(forward())
        return step

    def _choose(self, logits: torch.Tensor) -> None:
        picked = pick(logits, self.presence, self.rows, self.step, self.key.sampling)
        self.tokens.copy_(picked.token[:, None])
        self.presence.scatter_(1, picked.token[:, None], True)
        _write_result(self.result, picked)
        self.step.add_(1)

    @torch.inference_mode()
    def prepare(self, lock: AbstractContextManager, step: Callable[[], None] | None = None) -> float:
        """Allocate the cache, warm up and capture `step` (the plain one by default); seconds taken.

        The model's lock is held while the step runs: no other forward (or attention switch) then."""
        started = time.perf_counter()
        with lock:
            self.decode()  # the static cache's layers allocate on their first update
        step = step or self.decode
        if self.cuda:
            with lock:
                self.stream.wait_stream(torch.cuda.current_stream())
                with torch.cuda.stream(self.stream):
                    for _ in range(2):
                        step()
                torch.cuda.current_stream().wait_stream(self.stream)
                graph = torch.cuda.CUDAGraph()
                with torch.cuda.graph(graph, stream=self.stream, capture_error_mode="thread_local"):
                    step()
                self.stream.synchronize()
            self.graph = graph
        self.reset()
        return time.perf_counter() - started

    @torch.inference_mode()
    def reset(self) -> None:
        """Empty the cache in place (the graph holds these addresses) for the next batch."""
        if self.cuda:
            self.stream.synchronize()  # a step launched ahead may still be running
        self.cache.reset()
        for buffer in (self.tokens, self.position, self.step, self.presence, self.result):
            buffer.zero_()

    # -- rows joining and moving -------------------------------------------------

    @torch.inference_mode()
    def admit(
        self, slot: int, filled: DynamicCache, prompt_ids: list[int], params: GenerationParams,
        logits: torch.Tensor,
    ) -> list[float]:
        """Put a prefilled prompt into row `slot` (no step may be in flight) and pick its first token
        from the prefill's logits [1, vocab]; return that result row."""
        length = len(prompt_ids)
        if length + 1 >= self.key.length:
            raise FastPathUnavailable("the prompt does not fit the workspace")
        for static, eager in zip(self.cache.layers, filled.layers, strict=True):
            if eager.keys.shape[-2] != length:
                raise FastPathUnavailable("the model's cache keeps fewer positions than the prompt")
            static.keys[slot, :, :length].copy_(eager.keys[0])
            static.values[slot, :, :length].copy_(eager.values[0])
        self.position[slot] = length
        self.step[slot] = 0
        self.presence[slot].zero_()
        self.presence[slot, torch.tensor(prompt_ids, device=self.presence.device)] = True
        self.rows.set_row(slot, params, self.vocab)
        presence = self.presence[slot : slot + 1]
        step = self.step[slot : slot + 1]
        picked = pick(logits.float(), presence, self.rows.row(slot), step, not params.greedy)
        self.tokens[slot, 0] = picked.token[0]
        presence.scatter_(1, picked.token[:, None], True)
        self.step[slot] += 1
        first = torch.zeros((1, _RESULT_WIDTH), dtype=torch.float32, device=self.result.device)
        _write_result(first, picked)
        return first[0].tolist()

    @torch.inference_mode()
    def move_rows(self, target: Workspace, moves: list[tuple[int, int]]) -> None:
        """Copy rows (source slot, target slot) with their cache, token, position, draw counter and
        settings into `target` (a batch growing, shrinking or taking the fused step)."""
        if not moves:
            return
        if self.cuda:
            self.stream.synchronize()
            target.stream.synchronize()
        device = self.tokens.device
        source = torch.tensor([m[0] for m in moves], device=device)
        into = torch.tensor([m[1] for m in moves], device=device)
        span = min(self.key.length, target.key.length)
        for old, new in zip(self.cache.layers, target.cache.layers, strict=True):
            new.keys[into, :, :span] = old.keys[source, :, :span]
            new.values[into, :, :span] = old.values[source, :, :span]
        for name in ("tokens", "position", "step", "presence", "result"):
            getattr(target, name)[into] = getattr(self, name)[source]
        target.rows.take(self.rows, source, into)

    # -- launching and reading ---------------------------------------------------

    def launch(self, lock: AbstractContextManager) -> None:
        """Start the next step without waiting for it (its own stream on CUDA)."""
        with lock:
            if not self.cuda:
                with torch.inference_mode():
                    self.decode()
                return
            self.stream.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(self.stream):
                self.graph.replay()
                self.host.copy_(self.result, non_blocking=True)
                self.done.record(self.stream)

    def wait(self) -> list[list[float]]:
        """The launched step's result: the one host synchronisation of a step."""
        if not self.cuda:
            return self.result.tolist()
        self.done.synchronize()
        return self.host.tolist()


def _write_result(result: torch.Tensor, picked: object) -> None:
    result[:, 0].copy_(picked.token.float())  # ids stay exact in float32 below 2^24
    result[:, 1].copy_(picked.logprob)
    result[:, 2 : 2 + TOP_ALTERNATIVES].copy_(picked.top_ids.float())
    result[:, 2 + TOP_ALTERNATIVES :].copy_(picked.top_logprobs)
