"""The fast decode path: a static KV cache and the whole decode step captured as one CUDA graph,
shared by every run that decodes the same model (continuous batching).

On a GPU the eager loop is bound by the host: ~450 small kernels a step, each launched from
Python, so a step costs 20-48 ms whatever the model size (README.md, "On a GPU: the fast path",
has the measured tok/s). Here one decode step - forward, repetition penalty, temperature, top-k,
top-p, the draw, log-softmax and top-5 - is captured once per model and workspace shape and then
replayed; the sampled token feeds the next step on the device, and the host synchronises once a
step, to read one small result row per row.

- Workspaces (backends/workspace.py: static cache + buffers + graph) are keyed by rows, cache
  length (powers of two) and whether the step samples. Each row has its own position and mask.
- A model's rows from any run and any user decode as one batch (backends/fast_batch.py,
  continuous batching); columns of one run with the same prompt share one prefill.
- Each batch replays on its own CUDA stream and launches its next step as soon as a step is
  read, so several models' steps overlap and the host's per-token work overlaps the GPU's.
- At load the common workspaces are captured in the background, then the fused step is judged
  and compiled where it is right (backends/fast_warm.py, backends/fused_step.py).
- On CPU there are no graphs: PLAYGROUND_FAST_PATH=on runs the same step eagerly (the tests
  compare it with the eager loop token by token, alone and across concurrent runs).
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path

import torch

from playground.backends.base import BackendError
from playground.backends.fast_batch import Batch, FastRow, Prefill
from playground.backends.fast_warm import Warmer
from playground.backends.workspace import (
    ROW_BUCKETS,
    FastPathUnavailable,
    Workspace,
    WorkspaceKey,
    length_bucket,
    rows_bucket,
)
from playground.record import GenerationParams

log = logging.getLogger(__name__)

FAST_PATH_ENV = "PLAYGROUND_FAST_PATH"  # auto (CUDA only) | on (CUDA, or CPU without graphs) | off
IDLE_WORKSPACES = 8  # per model: captured workspaces kept for later runs (each holds its static cache)
IDLE_BYTES = 2 * 2**30  # per model: the most their static caches may hold while idle


def fast_path_mode() -> str:
    mode = os.environ.get(FAST_PATH_ENV, "auto").strip().lower() or "auto"
    if mode not in ("auto", "on", "off"):
        raise BackendError(f"{FAST_PATH_ENV} must be auto, on or off, not {mode!r}")
    return mode


class FastDecoder:
    """A model's fast path: when it applies, its workspaces, its batches, and the prefills forming."""

    def __init__(
        self, name: str, model: torch.nn.Module, lock: AbstractContextManager,
        eager: Callable[[list[int], GenerationParams, Callable[[], bool]], object], eos_ids: set[int],
    ) -> None:
        self.name = name
        self.eos_ids = eos_ids
        self.model = model
        self.lock = lock
        self.eager = eager  # the eager generator for one row: the fallback
        self.broken = ""  # set when a capture failed: later runs go straight to eager
        self.batching = threading.RLock()  # the batches, their steps and their rows
        # Held while a graph is captured or torch.compile traces: no attention hooks, no other
        # capture and no device-wide sync (a compile's) may happen then.
        self.tracing = threading.Lock()
        self.warmer = Warmer(self)  # captures at load and the fused step (fast_warm.py)
        self._batches: list[Batch] = []
        self._idle: dict[WorkspaceKey, list[Workspace]] = {}
        self._busy: list[Workspace] = []  # handed to a batch now: counted in workspace_bytes too
        self._forming: dict[tuple[int, tuple[int, ...]], Prefill] = {}
        self._guard = threading.Lock()

    # -- when it applies --------------------------------------------------------

    @property
    def max_length(self) -> int:
        """The longest cache a workspace may have: the context window, or the sliding window."""
        text = self.model.config.get_text_config()
        limit = int(getattr(self.model.config, "max_position_embeddings", 0) or 0) or 2**20
        window = int(getattr(text, "sliding_window", 0) or 0)
        if window and "sliding_attention" in (getattr(text, "layer_types", None) or []):
            limit = min(limit, window)
        return limit

    def unavailable(self, prompt_tokens: int, new_tokens: int) -> str:
        """Why this request takes the eager path ('' when the fast path takes it)."""
        mode = fast_path_mode()
        device = self.model.device
        if mode == "off":
            return f"{FAST_PATH_ENV}=off"
        if device.type != "cuda" and mode != "on":
            return "no CUDA device" if device.type == "cpu" else f"not on CUDA ({device.type})"
        if self.broken:
            return self.broken
        if len({str(d) for d in (getattr(self.model, "hf_device_map", None) or {}).values()}) > 1:
            return "the model is spread over several devices"
        if getattr(self.model.config, "_attn_implementation", "sdpa") != "sdpa":
            return f"attention implementation {self.model.config._attn_implementation!r} (needs sdpa)"
        text = self.model.config.get_text_config()
        if getattr(text, "is_encoder_decoder", False):
            return "encoder-decoder model"
        length = length_bucket(prompt_tokens + new_tokens + 1)
        window = int(getattr(text, "sliding_window", 0) or 0)
        if window and "sliding_attention" in (getattr(text, "layer_types", None) or []) and length > window:
            return f"prompt + new tokens past the {window}-token sliding window"
        return ""

    def key_for(self, prompt_tokens: int, steps: int, rows: list[GenerationParams]) -> WorkspaceKey:
        length = length_bucket(prompt_tokens + steps + 1)
        if length > self.max_length:
            if prompt_tokens + steps + 1 > self.max_length:
                raise FastPathUnavailable("prompt + new tokens past the context window")
            length = self.max_length
        return WorkspaceKey(rows_bucket(len(rows)), length, any(not p.greedy for p in rows))

    # -- rows, prefills and batches ------------------------------------------------

    def open_row(
        self, prompt_ids: list[int], params: GenerationParams, should_stop: Callable[[], bool],
        on_path: Callable[[str, float, int], None], batch: object = None,
    ) -> FastRow:
        """A row sharing a prefill that has not started yet (same batch token and prompt), or a new one."""
        with self._guard:
            key = (id(batch), tuple(prompt_ids))
            group = self._forming.get(key) if batch is not None else None
            if group is None or len(group.rows) >= ROW_BUCKETS[-1]:
                group = Prefill(self, list(prompt_ids))
                if batch is not None:
                    self._forming[key] = group
            row = FastRow(group, params, should_stop, on_path)
            group.rows.append(row)
            return row

    def seal(self, group: Prefill) -> None:
        """A prefill that started takes no more rows."""
        with self._guard:
            for key, forming in list(self._forming.items()):
                if forming is group:
                    del self._forming[key]

    def admit(
        self, rows: list[FastRow], prompt_ids: list[int], cache: object, logits: torch.Tensor
    ) -> None:
        """Rows whose prompt is prefilled join a running batch of this model (or start one)."""
        if not rows:
            return
        steps = max(r.params.max_new_tokens for r in rows)
        key = self.key_for(len(prompt_ids), steps, [r.params for r in rows])
        with self.batching:
            batch = next((b for b in self._batches if b.fits(len(rows), key.length)), None)
            if batch is None:
                batch = Batch(self, *self.acquire(key))
                self._batches.append(batch)
            try:
                batch.take(rows, prompt_ids, cache, logits, key)
            finally:
                if not batch.rows():
                    batch.end(keep=batch.error is None)
        label = batch.label(len(rows))
        for row in rows:
            row.on_path(label, batch.capture_s, batch.workspace.nbytes() if batch.workspace else 0)

    def retire(self, batch: Batch) -> None:
        with self.batching:
            self._batches = [b for b in self._batches if b is not batch]

    def batch_rows(self) -> list[int]:
        """How many rows each running batch holds (the bench and the tests read it)."""
        with self.batching:
            return [len(b.rows()) for b in self._batches]

    # -- workspaces -------------------------------------------------------------

    def idle_fitting(
        self, key: WorkspaceKey, exact_rows: bool = False, compiled: bool = False
    ) -> Workspace | None:
        """Take the smallest idle workspace that holds `key` (fused ones first), or None."""
        with self._guard:
            fitting = [w for ws in self._idle.values() for w in ws
                       if w.key.holds(key) and (not exact_rows or w.key.rows == key.rows)
                       and (w.compiled or not compiled)]
            if not fitting:
                return None
            found = min(fitting, key=lambda w: (not w.compiled, w.key.rows, w.key.length, w.key.sampling))
            self._idle[found.key].remove(found)
            self._busy.append(found)
            return found

    def acquire(self, key: WorkspaceKey) -> tuple[Workspace, float]:
        """An idle workspace that holds `key`, or a new one captured now (its capture time returned)."""
        found = self.idle_fitting(key)
        if found is not None:
            return found, 0.0
        try:
            workspace = Workspace(self.model, key)
            with self.tracing:  # no capture while a fused step compiles (its device syncs break one)
                capture_s = workspace.prepare(self.lock)
            self.hold(workspace)
            self.warmer.asked(key)  # its fused twin, compiled in the background when accepted
            return workspace, capture_s
        except torch.OutOfMemoryError:
            raise
        except Exception as exc:  # noqa: BLE001 - any capture failure sends this model to the eager path
            log.exception("capturing the fast path for %s failed", self.name)
            self.broken = f"capture failed: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
            raise FastPathUnavailable(self.broken) from exc

    def hold(self, workspace: Workspace) -> None:
        """Count a workspace that is in use (its bytes are the pool's business)."""
        with self._guard:
            self._busy.append(workspace)

    def warm(self, probe_ids: list[int], cache_root: Path | None, background: bool = True) -> None:
        self.warmer.warm(probe_ids, cache_root, background)

    def release(self, workspace: Workspace, keep: bool) -> None:
        if keep:
            try:
                workspace.reset()
            except Exception:  # noqa: BLE001 - a workspace that cannot be reset is dropped
                log.exception("resetting a fast-path workspace failed")
                keep = False
        with self._guard:
            self._busy = [w for w in self._busy if w is not workspace]
            keep = keep and self._keep(workspace)
            if keep:
                self._idle.setdefault(workspace.key, []).append(workspace)
                return
        del workspace
        if torch.cuda.is_available() and self.tracing.acquire(blocking=False):
            try:  # not while a capture or a compile is under way
                torch.cuda.empty_cache()
            finally:
                self.tracing.release()

    def _keep(self, workspace: Workspace) -> bool:
        """Room for one more idle workspace; a plain one gives way to a fused one of its shape."""
        kept = [w for ws in self._idle.values() for w in ws]
        if workspace.compiled:
            for plain in [w for w in kept if w.key == workspace.key and not w.compiled]:
                self._idle[plain.key].remove(plain)
                kept.remove(plain)
        elif any(w.key == workspace.key and w.compiled for w in kept):
            return False
        room = sum(w.nbytes() for w in kept) + workspace.nbytes() <= IDLE_BYTES
        return room and len(kept) < IDLE_WORKSPACES

    def idle_bytes(self) -> int:
        with self._guard:
            return sum(w.nbytes() for ws in self._idle.values() for w in ws)

    def idle_keys(self) -> list[tuple[WorkspaceKey, bool]]:
        """(shape, fused) of each idle workspace."""
        with self._guard:
            return sorted((w.key, w.compiled) for ws in self._idle.values() for w in ws)

    def workspace_bytes(self) -> int:
        """What this model's workspaces hold, idle and in use (up to IDLE_BYTES idle, more while
        runs decode): the pool counts it against its budget beside the weights."""
        with self._guard:
            return sum(w.nbytes() for w in [*self._busy, *(w for ws in self._idle.values() for w in ws)])

    def close(self) -> None:
        with self._guard:
            self._idle.clear()
            self._forming.clear()
