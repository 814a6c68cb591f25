"""A fast-path workspace: one decode step's static buffers, static KV cache and CUDA graph.

backends/fast_decode.py decides when the fast path applies and drives groups of columns through
workspaces; this module is the step itself: its buffers, its capture (optionally fused by
torch.compile and checked against the plain step), and launching and reading one step.
A CUDA graph keeps no Python references: the workspace owns every buffer the graph touches.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass

import torch
from transformers import DynamicCache, StaticCache

from playground.backends.sampling import TOP_ALTERNATIVES, RowParams, pick
from playground.record import GenerationParams

log = logging.getLogger(__name__)

COMPILE_ENV = "PLAYGROUND_COMPILE"  # 1: fuse the step with torch.compile before capture (CUDA; minutes, once)
COMPILE_DRIFT = 0.25  # the most a fused step's logprob may differ from the plain step's (bf16 rounding)
ROW_BUCKETS = (1, 2, 4, 8)
MIN_LENGTH = 256  # the smallest cache length bucket
_RESULT_WIDTH = 2 + 2 * TOP_ALTERNATIVES  # token, logprob, top ids, top logprobs


def compile_enabled() -> bool:
    return os.environ.get(COMPILE_ENV, "0").strip().lower() in ("1", "true", "yes", "on")


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


@dataclass(frozen=True)
class WorkspaceKey:
    rows: int
    length: int
    sampling: bool  # any row samples (an all-greedy batch skips the sorts)


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
            self.position = torch.zeros((1,), dtype=torch.long, device=device)
            self.step = torch.zeros((1,), dtype=torch.long, device=device)
            self.slots = torch.arange(key.length, device=device)
            self.presence = torch.zeros((key.rows, self.vocab), dtype=torch.bool, device=device)
            self.rows = RowParams.empty(key.rows, device)
            self.result = torch.zeros((key.rows, _RESULT_WIDTH), dtype=torch.float32, device=device)
        self.graph: torch.cuda.CUDAGraph | None = None
        self.compiled = self.cuda and compile_enabled()
        self.note = ""  # why a compiled step was not used, when it was asked for
        if self.cuda:
            self.stream = torch.cuda.Stream(device)
            self.host = torch.empty(self.result.shape, dtype=torch.float32, pin_memory=True)
            self.done = torch.cuda.Event()

    def nbytes(self) -> int:
        layers = [t for layer in self.cache.layers for t in (getattr(layer, "keys", None),
                                                            getattr(layer, "values", None)) if t is not None]
        return sum(t.numel() * t.element_size() for t in [*layers, self.presence])

    # -- the step ---------------------------------------------------------------

    def _decode(self) -> None:
        """Feed `tokens` at `position`, pick the next tokens into `tokens` and `result`."""
        rows, length = self.key.rows, self.key.length
        visible = (self.slots <= self.position).view(1, 1, 1, length).expand(rows, 1, 1, length)
        mask = {kind: visible for kind in self.mask_types} if self.mask_types else visible
        out = self.model(
            input_ids=self.tokens, position_ids=self.position.view(1, 1).expand(rows, 1),
            attention_mask=mask, past_key_values=self.cache, use_cache=True,
        )
        self.position.add_(1)
        self._choose(out.logits[:, -1, :].float())

    def _choose(self, logits: torch.Tensor) -> None:
        picked = pick(logits, self.presence, self.rows, self.step, self.key.sampling)
        self.tokens.copy_(picked.token[:, None])
        self.presence.scatter_(1, picked.token[:, None], True)
        self.result[:, 0].copy_(picked.token.float())  # ids stay exact in float32 below 2^24
        self.result[:, 1].copy_(picked.logprob)
        self.result[:, 2 : 2 + TOP_ALTERNATIVES].copy_(picked.top_ids.float())
        self.result[:, 2 + TOP_ALTERNATIVES :].copy_(picked.top_logprobs)
        self.step.add_(1)

    def _hold(self) -> None:
        """Sliding-window layers count positions in a Python int, which torch.compile would guard on
        (one compilation per value): hold it at 0 while preparing; positions stay below the window."""
        for layer in self.cache.layers:
            if hasattr(layer, "cumulative_length_int"):
                layer.cumulative_length_int = 0

    @torch.inference_mode()
    def prepare(self) -> float:
        """Allocate the cache (outside any capture), warm up and capture the graph; seconds taken."""
        started = time.perf_counter()
        self._decode()  # the static cache's layers allocate on their first update
        step = self._compiled_step() if self.compiled else self._decode
        if self.cuda:
            self.stream.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(self.stream):
                for _ in range(2):
                    self._hold()
                    step()
            torch.cuda.current_stream().wait_stream(self.stream)
            graph = torch.cuda.CUDAGraph()
            self._hold()
            with torch.cuda.graph(graph, stream=self.stream, capture_error_mode="thread_local"):
                step()
            self.stream.synchronize()
            self.graph = graph
        self.reset()
        return time.perf_counter() - started

    def _compiled_step(self) -> Callable[[], None]:
        """The step fused by torch.compile (inductor), checked against the plain step over a few
        steps; the plain step when compiling fails or the check does not pass."""
        import torch._dynamo

        config = torch._dynamo.config
        for name in ("recompile_limit", "cache_size_limit"):  # one compilation per workspace shape
            if hasattr(config, name) and getattr(config, name) < 64:
                setattr(config, name, 64)
        compiled = torch.compile(self._decode, dynamic=False)
        try:
            plain = self._trace(self._decode)
            fused = self._trace(compiled)
        except Exception as exc:  # noqa: BLE001 - the plain step still works
            log.exception("torch.compile of the decode step failed")
            self.compiled, self.note = False, f"compile failed: {type(exc).__name__}"
            return self._decode
        tokens_match = torch.equal(plain[:, :, 0], fused[:, :, 0])
        drift = float((plain[:, :, 1] - fused[:, :, 1]).abs().max())
        if not tokens_match or drift > COMPILE_DRIFT:
            log.warning("compiled decode step disagrees with the plain one (drift %.4f); not used", drift)
            self.compiled, self.note = False, f"compiled step disagreed (logprob drift {drift:.3f})"
            return self._decode
        return compiled

    def _trace(self, step: Callable[[], None], steps: int = 4) -> torch.Tensor:
        """Results of a few steps from an empty cache (the same start for any step function)."""
        self.reset()
        results = []
        for _ in range(steps):
            self._hold()
            step()
            results.append(self.result.clone())
        self.reset()
        return torch.stack(results)

    @torch.inference_mode()
    def reset(self) -> None:
        """Empty the cache in place (the graph holds these addresses) for the next group."""
        if self.cuda:
            self.stream.synchronize()  # a step launched ahead may still be running
        self.cache.reset()
        for buffer in (self.tokens, self.position, self.step, self.presence, self.result):
            buffer.zero_()

    @torch.inference_mode()
    def load(self, filled: DynamicCache, prompt_ids: list[int], rows: list[GenerationParams]) -> None:
        """Copy an eager prefill's cache into every row and set each row's sampling settings."""
        length = len(prompt_ids)
        for static, eager in zip(self.cache.layers, filled.layers, strict=True):
            if eager.keys.shape[-2] != length:
                raise FastPathUnavailable("the model's cache keeps fewer positions than the prompt")
            static.keys[:, :, :length].copy_(eager.keys.expand(self.key.rows, -1, -1, -1))
            static.values[:, :, :length].copy_(eager.values.expand(self.key.rows, -1, -1, -1))
            static.cumulative_length.fill_(length)
            if hasattr(static, "cumulative_length_int"):
                static.cumulative_length_int = length
        self.position.fill_(length)
        self.presence[:, torch.tensor(prompt_ids, device=self.presence.device)] = True
        padded = rows + [rows[0]] * (self.key.rows - len(rows))  # spare rows repeat the first
        self.rows.fill(padded, self.vocab)

    @torch.inference_mode()
    def first(self, logits: torch.Tensor) -> list[list[float]]:
        """Pick the first tokens from the prefill's logits [1, vocab] (eagerly); return the result."""
        self._choose(logits.expand(self.key.rows, -1))
        return self.result.tolist()

    def launch(self, lock: AbstractContextManager) -> None:
        """Start the next step without waiting for it (its own stream on CUDA)."""
        with lock:
            if not self.cuda:
                with torch.inference_mode():
                    self._decode()
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
