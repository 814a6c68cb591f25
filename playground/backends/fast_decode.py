"""The fast decode path: a static KV cache and the whole decode step captured as one CUDA graph.

On a GPU the eager loop is bound by the host: ~450 small kernels a step, each launched from
Python, so a step costs 20-48 ms whatever the model size (README.md, "On a GPU: the fast path",
has the measured tok/s). Here one decode step - forward, repetition
penalty, temperature, top-k, top-p, the draw, log-softmax and top-5 - is captured once per
model and workspace shape and then replayed; the sampled token feeds the next step on the
device, and the host synchronises once a step, to read one small result row per column.

- Workspaces (backends/workspace.py: static cache + buffers + graph) are keyed by rows and cache
  length (powers of two) and whether any row samples; an idle one is kept for the next run.
  A CUDA graph keeps no Python references: the workspace owns every buffer the graph touches.
- Columns of one model in one run with the same prompt decode as one batch (a group): one
  prefill, then rows with their own sampling settings and seeds. The draw is keyed by
  (seed, step, token), so a row gives the same tokens alone or batched (backends/sampling.py).
- Each workspace replays on its own CUDA stream and launches its next step as soon as it has
  read the last one, so several models' steps overlap and the host's per-token work overlaps
  the GPU's (engine/rounds.py launches every active column's step, then collects them).
- Prefill is the eager one (decode.prefill: chunked, interruptible, SDPA kernels); its cache
  is copied into the static one, so the first token is the eager path's own.
- On CPU there are no graphs: PLAYGROUND_FAST_PATH=on runs the same static-cache step eagerly
  (the tests compare it with the eager loop token by token).
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field

import torch

from playground.backends.base import BackendError
from playground.backends.decode import StepOutput, prefill
from playground.backends.sampling import TOP_ALTERNATIVES
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
IDLE_WORKSPACES = 4  # per model: captured workspaces kept for later runs (each holds its static cache)
IDLE_BYTES = 2 * 2**30  # per model: the most their static caches may hold while idle


def fast_path_mode() -> str:
    mode = os.environ.get(FAST_PATH_ENV, "auto").strip().lower() or "auto"
    if mode not in ("auto", "on", "off"):
        raise BackendError(f"{FAST_PATH_ENV} must be auto, on or off, not {mode!r}")
    return mode


def _step_output(row: list[float]) -> StepOutput:
    k = TOP_ALTERNATIVES
    return StepOutput(
        token_id=int(row[0]), logprob=row[1],
        top_ids=[int(v) for v in row[2 : 2 + k]], top_logprobs=row[2 + k :],
    )


@dataclass
class FastRow:
    """One column's steps on the fast path; the engine calls launch() on every column, then next()."""

    group: _Group
    slot: int
    params: GenerationParams
    should_stop: Callable[[], bool]
    on_path: Callable[[str, float, int], None]  # tells the column: decode path, capture time, workspace bytes
    wanted: int = 0  # the step index this row reads next
    ended: bool = False  # after EOS, or when asked to stop: like the eager generator, it yields no more
    closed: bool = False
    fallback: object = None  # the eager generator, when the group could not take the fast path

    def __iter__(self) -> FastRow:
        return self

    def launch(self) -> None:
        if self.fallback is None and not self.closed:
            self.group.launch_ahead()

    def __next__(self) -> StepOutput:
        """The next step; at the end (EOS, max tokens, stop) the row leaves its group at once, so
        the workspace goes back without waiting for the caller to close the stream."""
        if self.closed:
            raise StopIteration
        if self.ended:
            self.close()
            raise StopIteration
        if self.fallback is None:
            self.group.start()
        if self.fallback is not None:
            try:
                return next(self.fallback)
            except StopIteration:
                self.close()
                raise
        if self.wanted >= self.params.max_new_tokens or (self.wanted and self.should_stop()):
            self.close()
            raise StopIteration
        out = _step_output(self.group.result(self.wanted, self.slot))
        self.wanted += 1
        self.ended = out.token_id in self.group.decoder.eos_ids
        return out

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self.fallback is not None:
            self.fallback.close()
        self.group.leave()


@dataclass
class _Group:
    """Columns of one model and one run with the same prompt: one prefill, one batched step."""

    decoder: FastDecoder
    prompt_ids: list[int]
    rows: list[FastRow] = field(default_factory=list)
    started: bool = False
    ended: bool = False
    error: BaseException | None = None
    workspace: Workspace | None = None
    results: dict[int, list[list[float]]] = field(default_factory=dict)
    launched: int = -1  # the last step index launched (its result may not be read yet)
    read: int = -1  # the last step index whose result was read
    steps: int = 0  # how many steps the longest row can take

    def live(self) -> list[FastRow]:
        return [r for r in self.rows if not r.closed]

    def start(self) -> None:
        """Prefill once, set up the workspace and read the first tokens (or fall back / fail)."""
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
            self._give_back(keep=False)
            raise

    def _start(self) -> None:
        decoder = self.decoder
        self.steps = max(r.params.max_new_tokens for r in self.rows)
        key = decoder.key_for(len(self.prompt_ids), self.steps, [r.params for r in self.rows])
        workspace, capture_s = decoder.acquire(key)
        self.workspace = workspace
        label = "fast path: CUDA graph" if workspace.cuda else "fast path: static cache, no graph"
        if workspace.compiled:
            label += ", compiled"
        elif workspace.note:
            label += f" ({workspace.note})"
        if len(self.rows) > 1:
            label += f", {len(self.rows)} columns batched"
        for row in self.rows:
            row.on_path(label, capture_s, workspace.nbytes())
        ids = torch.tensor([self.prompt_ids], dtype=torch.long, device=decoder.model.device)
        with torch.inference_mode():
            filled = prefill(decoder.model, ids, lambda: all(r.should_stop() for r in self.live()),
                             decoder.lock)
        if filled is None:  # stopped during the prefill: the rows end with nothing
            self.ended = True
            for row in self.rows:
                row.wanted = row.params.max_new_tokens
            return
        logits, cache = filled
        with decoder.lock:
            workspace.load(cache, self.prompt_ids, [r.params for r in self.rows])
            self.results[0] = workspace.first(logits)
        self.read = self.launched = 0
        self.launch_ahead()

    def _fall_back(self, reason: str) -> None:
        """The fast path could not take this group: each row decodes on the eager path instead."""
        log.warning("fast path unavailable for %s: %s", self.decoder.name, reason)
        self._give_back(keep=False)
        for row in self.rows:
            row.on_path(f"eager: fast path unavailable, {reason}", 0.0, 0)
            row.fallback = self.decoder.eager(self.prompt_ids, row.params, row.should_stop)

    def _fail(self, error: BackendError, cause: BaseException) -> None:
        self.error = error
        self.error.__cause__ = cause
        self._give_back(keep=False)
        raise self.error

    def launch_ahead(self) -> None:
        """Launch the next step if some live row will read it and none is in flight."""
        if not self.started or self.error is not None or self.ended or self.workspace is None:
            return
        following = self.launched + 1
        if self.launched > self.read or following >= self.steps:
            return
        if not any(r.wanted <= following < r.params.max_new_tokens and not r.ended for r in self.live()):
            return
        try:
            self.workspace.launch(self.decoder.lock)
            self.launched = following
        except torch.OutOfMemoryError as exc:
            self.error = BackendError("out of memory on the GPU while decoding")
            self.error.__cause__ = exc
            self._give_back(keep=False)

    def result(self, index: int, slot: int) -> list[float]:
        """Row `slot`'s result of step `index`, waiting for it (and launching the next) if needed."""
        if self.error is not None:
            raise self.error
        if index not in self.results:
            if self.launched < index:
                self.launch_ahead()
            if self.error is not None:
                raise self.error
            if self.launched < index:
                raise BackendError(f"fast path: step {index} was never launched")
            try:
                self.results[index] = self.workspace.wait()
            except torch.OutOfMemoryError as exc:
                self._fail(BackendError("out of memory on the GPU while decoding"), exc)
            self.read = index
            self.launch_ahead()  # the GPU works on the next step while the host handles this one
        oldest = min((r.wanted for r in self.live()), default=index)
        for old in [i for i in self.results if i < oldest]:
            del self.results[old]
        return self.results[index][slot]

    def leave(self) -> None:
        if not self.live():
            self.decoder.seal(self)  # a group whose rows all left before it started takes no others
            self._give_back(keep=self.error is None)

    def _give_back(self, keep: bool) -> None:
        self.ended = True
        workspace, self.workspace = self.workspace, None
        if workspace is not None:
            self.decoder.release(workspace, keep)


class FastDecoder:
    """A model's fast path: when it applies, its workspaces, and the groups still forming."""

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
        self._idle: dict[WorkspaceKey, list[Workspace]] = {}
        self._busy: list[Workspace] = []  # handed to a group now: counted in workspace_bytes too
        self._forming: dict[tuple[int, tuple[int, ...]], _Group] = {}
        self._guard = threading.Lock()

    # -- when it applies --------------------------------------------------------

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
        window = int(getattr(self.model.config, "max_position_embeddings", 0) or 0)
        if window and length > window:
            if prompt_tokens + steps + 1 > window:
                raise FastPathUnavailable("prompt + new tokens past the context window")
            length = window
        return WorkspaceKey(rows_bucket(len(rows)), length, any(not p.greedy for p in rows))

    # -- groups -----------------------------------------------------------------

    def open_row(
        self, prompt_ids: list[int], params: GenerationParams, should_stop: Callable[[], bool],
        on_path: Callable[[str, float, int], None], batch: object = None,
    ) -> FastRow:
        """A row in a group that has not started yet (same batch token and prompt), or a new group."""
        with self._guard:
            key = (id(batch), tuple(prompt_ids))
            group = self._forming.get(key) if batch is not None else None
            if group is None or len(group.rows) >= ROW_BUCKETS[-1]:
                group = _Group(self, list(prompt_ids))
                if batch is not None:
                    self._forming[key] = group
            row = FastRow(group, len(group.rows), params, should_stop, on_path)
            group.rows.append(row)
            return row

    def seal(self, group: _Group) -> None:
        """A group that started takes no more rows."""
        with self._guard:
            for key, forming in list(self._forming.items()):
                if forming is group:
                    del self._forming[key]

    # -- workspaces -------------------------------------------------------------

    def acquire(self, key: WorkspaceKey) -> tuple[Workspace, float]:
        """An idle workspace of this shape, or a new one captured now (its capture time returned)."""
        with self._guard:
            idle = self._idle.get(key)
            if idle:
                workspace = idle.pop()
                self._busy.append(workspace)
                return workspace, 0.0
        try:
            with self.lock:  # no other forward of this model (or attention switch) during capture
                workspace = Workspace(self.model, key)
                capture_s = workspace.prepare()
            with self._guard:
                self._busy.append(workspace)
            return workspace, capture_s
        except torch.OutOfMemoryError:
            raise
        except Exception as exc:  # noqa: BLE001 - any capture failure sends this model to the eager path
            log.exception("capturing the fast path for %s failed", self.name)
            self.broken = f"capture failed: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
            raise FastPathUnavailable(self.broken) from exc

    def release(self, workspace: Workspace, keep: bool) -> None:
        if keep:
            try:
                workspace.reset()
            except Exception:  # noqa: BLE001 - a workspace that cannot be reset is dropped
                log.exception("resetting a fast-path workspace failed")
                keep = False
        with self._guard:
            self._busy = [w for w in self._busy if w is not workspace]
            kept = [w for ws in self._idle.values() for w in ws]
            room = sum(w.nbytes() for w in kept) + workspace.nbytes() <= IDLE_BYTES
            if keep and room and len(kept) < IDLE_WORKSPACES:
                self._idle.setdefault(workspace.key, []).append(workspace)
                return
        del workspace
        if torch.cuda.is_available():
            torch.cuda.empty_cache()

    def idle_bytes(self) -> int:
        with self._guard:
            return sum(w.nbytes() for ws in self._idle.values() for w in ws)

    def workspace_bytes(self) -> int:
        """What this model's workspaces hold, idle and in use (up to IDLE_BYTES idle, more while
        runs decode): the pool counts it against its budget beside the weights."""
        with self._guard:
            return sum(w.nbytes() for w in [*self._busy, *(w for ws in self._idle.values() for w in ws)])

    def close(self) -> None:
        with self._guard:
            self._idle.clear()
            self._forming.clear()
