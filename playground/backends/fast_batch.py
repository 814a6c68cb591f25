"""Continuous batching: a model's rows from any run and any user decoding as one step.

A column is a `FastRow`. Columns of one run with the same prompt share one prefill (`Prefill`,
eager and chunked); then they join the model's running `Batch` between two steps. Rows leave
when they end, and nobody waits for anybody else to finish. A batch that is full, or whose cache
is too short for a newcomer, moves into a larger workspace (rows copied on the device); one
mostly empty moves into a smaller idle one, and one on the plain step moves onto the fused step
(backends/fused_step.py) once that is ready. The draw is keyed by (seed, the row's own step,
token), so who shares a row's batch never changes its draw (backends/sampling.py; bf16 rounding
on a GPU still can, see workspace.py).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Protocol

import torch

from playground.backends.base import BackendError
from playground.backends.decode import StepOutput, prefill
from playground.backends.sampling import TOP_ALTERNATIVES
from playground.backends.workspace import (
    ROW_BUCKETS,
    FastPathUnavailable,
    Workspace,
    WorkspaceKey,
    rows_bucket,
)
from playground.record import GenerationParams

log = logging.getLogger(__name__)


class Decoder(Protocol):
    """What rows and batches use of their model's FastDecoder (backends/fast_decode.py)."""

    name: str
    model: torch.nn.Module
    lock: AbstractContextManager
    batching: AbstractContextManager
    eos_ids: set[int]
    eager: Callable[[list[int], GenerationParams, Callable[[], bool]], object]

    @property
    def max_length(self) -> int: ...
    def admit(
        self, rows: list[FastRow], prompt_ids: list[int], cache: object, logits: torch.Tensor
    ) -> None: ...
    def seal(self, group: Prefill) -> None: ...
    def retire(self, batch: Batch) -> None: ...
    def acquire(self, key: WorkspaceKey) -> tuple[Workspace, float]: ...
    def release(self, workspace: Workspace, keep: bool) -> None: ...
    def idle_fitting(
        self, key: WorkspaceKey, exact_rows: bool = False, compiled: bool = False
    ) -> Workspace | None: ...


def _step_output(row: list[float]) -> StepOutput:
    k = TOP_ALTERNATIVES
    return StepOutput(
        token_id=int(row[0]), logprob=row[1],
        top_ids=[int(v) for v in row[2 : 2 + k]], top_logprobs=row[2 + k :],
    )


@dataclass
class FastRow:
    """One column's steps on the fast path; the engine calls launch() on every column, then next()."""

    prefill: Prefill
    params: GenerationParams
    should_stop: Callable[[], bool]
    on_path: Callable[[str, float, int], None]  # tells the column: decode path, capture time, workspace bytes
    batch: Batch | None = None  # the batch it decodes in, once admitted
    slot: int = -1  # its row in the batch's workspace (may change when the batch moves)
    base: int = 0  # the batch's step index just before this row's first decode step
    ready: dict[int, list[float]] = field(default_factory=dict)  # results read for it, by its own index
    wanted: int = 0  # the step index this row reads next
    ended: bool = False  # after EOS, or when asked to stop: like the eager generator, it yields no more
    closed: bool = False
    fallback: object = None  # the eager generator, when the fast path could not take this row

    def __iter__(self) -> FastRow:
        return self

    def launch(self) -> None:
        if self.batch is not None and not self.closed:
            self.batch.launch_ahead()

    def __next__(self) -> StepOutput:
        """The next step; at the end (EOS, max tokens, stop) the row leaves its batch at once, so
        its slot is free for the next request without waiting for the caller to close the stream."""
        if self.closed:
            raise StopIteration
        if self.ended:
            self.close()
            raise StopIteration
        if self.fallback is None:
            self.prefill.start()
        if self.fallback is not None:
            try:
                return next(self.fallback)
            except StopIteration:
                self.close()
                raise
        if self.batch is None or self.wanted >= self.params.max_new_tokens or (
                self.wanted and self.should_stop()):
            self.close()
            raise StopIteration
        out = _step_output(self.batch.result(self))
        self.wanted += 1
        self.ended = out.token_id in self.prefill.decoder.eos_ids
        return out

    def needs(self, index: int) -> bool:
        """Whether this row will read the batch's step `index`."""
        own = index - self.base
        return not self.closed and not self.ended and self.wanted <= own < self.params.max_new_tokens

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self.fallback is not None:
            self.fallback.close()
        if self.batch is not None:
            self.batch.leave(self)


@dataclass
class Prefill:
    """Columns of one run with the same prompt: one prefill, then each joins the model's batch."""

    decoder: Decoder
    prompt_ids: list[int]
    rows: list[FastRow] = field(default_factory=list)
    started: bool = False
    error: BaseException | None = None

    def start(self) -> None:
        """Prefill once and admit every row into a batch (or fall back / fail)."""
        if self.error is not None:
            raise self.error
        if self.started:
            return
        self.started = True
        self.decoder.seal(self)
        try:
            self._start()
        except FastPathUnavailable as exc:
            self._fall_back(str(exc))
        except torch.OutOfMemoryError as exc:
            self._fail(BackendError(
                "out of memory on the GPU while setting up the fast path: try fewer columns, "
                "a shorter prompt or fewer max new tokens"), exc)
        except BackendError as exc:
            self._fail(exc, exc)
        except Exception as exc:  # a prefill that raised: every row of the group ends with it
            self.error = exc
            raise

    def _start(self) -> None:
        decoder = self.decoder
        live = [r for r in self.rows if not r.closed]
        ids = torch.tensor([self.prompt_ids], dtype=torch.long, device=decoder.model.device)
        with torch.inference_mode():
            filled = prefill(decoder.model, ids, lambda: all(r.should_stop() for r in live), decoder.lock)
        if filled is None:  # stopped during the prefill: the rows end with nothing
            for row in self.rows:
                row.wanted = row.params.max_new_tokens
            return
        logits, cache = filled
        decoder.admit(live, self.prompt_ids, cache, logits)

    def _fall_back(self, reason: str) -> None:
        """The fast path could not take these rows: each decodes on the eager path instead."""
        log.warning("fast path unavailable for %s: %s", self.decoder.name, reason)
        for row in self.rows:
            row.on_path(f"eager: fast path unavailable, {reason}", 0.0, 0)
            row.fallback = self.decoder.eager(self.prompt_ids, row.params, row.should_stop)

    def _fail(self, error: BackendError, cause: BaseException) -> None:
        self.error = error
        self.error.__cause__ = cause
        raise self.error


class Batch:
    """A model's rows from any run, decoding as one step in one workspace (continuous batching).

    Every method runs under the decoder's batching lock; the device is waited on under it too
    (one step, a few milliseconds), so a step's result is handed out once and in order."""

    def __init__(self, decoder: Decoder, workspace: Workspace, capture_s: float) -> None:
        self.decoder = decoder
        self.workspace = workspace
        self.capture_s = capture_s
        self.slots: list[FastRow | None] = [None] * workspace.key.rows
        self.launched = -1  # the last step index launched (its result may not be read yet)
        self.read = -1  # the last step index whose result was read
        self.error: BackendError | None = None

    def rows(self) -> list[FastRow]:
        return [r for r in self.slots if r is not None]

    def label(self, columns: int) -> str:
        workspace = self.workspace
        text = "fast path: CUDA graph" if workspace.cuda else "fast path: static cache, no graph"
        if workspace.compiled:
            text += ", compiled"
        if columns > 1:
            text += f", {columns} columns batched"
        return text

    # -- rows coming and going ---------------------------------------------------

    def fits(self, extra: int, length: int) -> bool:
        return len(self.rows()) + extra <= ROW_BUCKETS[-1] and length <= self.decoder.max_length

    def take(self, rows: list[FastRow], prompt_ids: list[int], cache: object, logits: torch.Tensor,
             key: WorkspaceKey) -> None:
        """Admit prefilled rows between two steps, moving to a larger workspace if they need one."""
        self.settle()
        current = self.workspace.key
        want = WorkspaceKey(max(current.rows, rows_bucket(len(self.rows()) + len(rows))),
                            max(current.length, key.length), current.sampling or key.sampling)
        if want != current:
            self.move(self.decoder.acquire(want))
        free = [i for i, r in enumerate(self.slots) if r is None]
        for row, slot in zip(rows, free, strict=False):
            first = self.workspace.admit(slot, cache, prompt_ids, row.params, logits)
            row.batch, row.slot, row.base = self, slot, self.launched
            row.ready[0] = first
            self.slots[slot] = row

    def leave(self, row: FastRow) -> None:
        with self.decoder.batching:
            if 0 <= row.slot < len(self.slots) and self.slots[row.slot] is row:
                self.slots[row.slot] = None
            if not self.rows():
                self.end(keep=self.error is None)

    def end(self, keep: bool) -> None:
        if self.workspace is None:
            return
        try:
            self.settle()
        except BackendError:
            keep = False
        workspace, self.workspace = self.workspace, None
        self.decoder.retire(self)
        self.decoder.release(workspace, keep)

    def move(self, target: tuple[Workspace, float]) -> None:
        """Move every row into another workspace (no step in flight); slots are packed from 0."""
        workspace, capture_s = target
        moves = [(r.slot, new) for new, r in enumerate(self.rows())]
        self.workspace.move_rows(workspace, moves)
        old, self.workspace = self.workspace, workspace
        self.capture_s = max(self.capture_s, capture_s)
        rows = self.rows()
        self.slots = [None] * workspace.key.rows
        for new, row in enumerate(rows):
            row.slot = new
            self.slots[new] = row
        self.decoder.release(old, keep=True)

    # -- steps -----------------------------------------------------------------------

    def settle(self) -> None:
        """Wait for the step in flight, if any, and hand its result to the rows that will read it."""
        if self.error is not None:
            raise self.error
        if self.launched <= self.read:
            return
        try:
            results = self.workspace.wait()
        except torch.OutOfMemoryError as exc:
            self._fail(exc)
        self.read = self.launched
        for slot, row in enumerate(self.slots):
            if row is not None and row.needs(self.read):
                row.ready[self.read - row.base] = results[slot]

    def launch_ahead(self) -> None:
        """Launch the next step if some row will read it and none is in flight."""
        with self.decoder.batching:
            if self.workspace is None or self.error is not None or self.launched > self.read:
                return
            following = self.launched + 1
            if not any(r.needs(following) for r in self.rows()):
                return
            self._resize()
            try:
                self.workspace.launch(self.decoder.lock)
                self.launched = following
            except torch.OutOfMemoryError as exc:
                self._fail(exc, raise_it=False)

    def _resize(self) -> None:
        """Between steps: onto the fused step once it is ready, or into a smaller idle workspace
        when most rows have left (never capturing for it)."""
        key = self.workspace.key
        live = len(self.rows())
        smaller = WorkspaceKey(rows_bucket(live), key.length, key.sampling)
        if live and smaller.rows * 4 <= key.rows:
            found = self.decoder.idle_fitting(smaller, exact_rows=True)
            if found is not None:
                self.move((found, 0.0))
                return
        if not self.workspace.compiled:
            found = self.decoder.idle_fitting(key, exact_rows=True, compiled=True)
            if found is not None:
                self.move((found, 0.0))

    def result(self, row: FastRow) -> list[float]:
        """The row's result for its next index, waiting for that step (and launching it) if needed."""
        with self.decoder.batching:
            while row.wanted not in row.ready:
                if self.error is not None:
                    raise self.error
                if self.launched > self.read:
                    self.settle()
                elif self.launched < row.base + row.wanted:
                    self.launch_ahead()
                    if self.launched < row.base + row.wanted and self.error is None:
                        raise BackendError(f"fast path: step {row.wanted} was never launched")
                else:
                    raise BackendError(f"fast path: step {row.wanted} was read but not kept")
            out = row.ready.pop(row.wanted)
        self.launch_ahead()  # the GPU works on the next step while the host handles this one
        return out

    def _fail(self, exc: BaseException, raise_it: bool = True) -> None:
        self.error = BackendError("out of memory on the GPU while decoding")
        self.error.__cause__ = exc
        self.end(keep=False)
        if raise_it:
            raise self.error
