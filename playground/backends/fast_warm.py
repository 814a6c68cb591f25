"""Getting a model's fast path ready before users wait: captures at load, then the fused step.

At load (`Warmer.warm`, in a background thread) the common workspaces are captured, so no user's
first token pays for a capture. Where the fused step is wanted (backends/fused_step.py) it is
judged once on a real prompt (or the verdict is read back from disk) and, when accepted,
compiled for those shapes; a shape first met later is compiled in the same thread while its
plain graph serves. Batches move onto a fused workspace between two steps (fast_batch.py).
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Protocol

import torch

from playground.backends import fused_step
from playground.backends.base import BackendError
from playground.backends.workspace import (
    ROW_BUCKETS,
    FastPathUnavailable,
    Workspace,
    WorkspaceKey,
    length_bucket,
)
from playground.record import GenerationParams

log = logging.getLogger(__name__)

WARM_ENV = "PLAYGROUND_WARM_ROWS"  # the row buckets captured at load (default 1,2,4,8)
WARM_LENGTH = 512  # the cache length captured at load: a chat prompt + 256 new tokens
PROBE_TEXT = ("The lighthouse keeper climbed the stairs at dusk, as he had every evening for thirty "
              "years, and found a bottle on the landing with a letter inside.")


def warm_rows() -> list[int]:
    raw = os.environ.get(WARM_ENV, "1,2,4,8")
    try:
        rows = sorted({int(v) for v in raw.split(",") if v.strip()})
    except ValueError as exc:
        raise BackendError(f"{WARM_ENV} must be row counts separated by commas, not {raw!r}") from exc
    return [r for r in rows if r in ROW_BUCKETS]


class Decoder(Protocol):
    """What warming uses of its model's FastDecoder (backends/fast_decode.py)."""

    name: str
    model: torch.nn.Module
    lock: AbstractContextManager
    tracing: AbstractContextManager

    @property
    def max_length(self) -> int: ...
    def unavailable(self, prompt_tokens: int, new_tokens: int) -> str: ...
    def acquire(self, key: WorkspaceKey) -> tuple[Workspace, float]: ...
    def release(self, workspace: Workspace, keep: bool) -> None: ...
    def hold(self, workspace: Workspace) -> None: ...
    def idle_keys(self) -> list[tuple[WorkspaceKey, bool]]: ...
    def idle_fitting(
        self, key: WorkspaceKey, exact_rows: bool = False, compiled: bool = False
    ) -> Workspace | None: ...


class Warmer:
    """One model's captures at load and its fused step (a queue of shapes, one thread)."""

    def __init__(self, decoder: Decoder) -> None:
        self.decoder = decoder
        self.verdict: fused_step.Verdict | None = None
        self.note = ""  # what happened to the fused step ("" before it was tried)
        self.thread: threading.Thread | None = None
        self._queue: queue.Queue[tuple[str, WorkspaceKey | None] | None] = queue.Queue()
        self._asked: set[WorkspaceKey] = set()
        self._probe: list[int] = []
        self._root: Path | None = None

    def keys(self) -> list[WorkspaceKey]:
        length = min(WARM_LENGTH, self.decoder.max_length)
        rows = warm_rows()
        keys = [WorkspaceKey(1, length, False)] if 1 in rows else []
        return keys + [WorkspaceKey(r, length, True) for r in rows]

    def warm(self, probe_ids: list[int], cache_root: Path | None, background: bool = True) -> None:
        """Capture the common shapes and start on the fused step; in a thread unless background=False."""
        if self.decoder.unavailable(len(probe_ids), WARM_LENGTH // 2):
            return
        self._probe, self._root = list(probe_ids), cache_root
        for key in self.keys():
            self._queue.put(("capture", key))
        self._queue.put(("judge", None))
        for key in self.keys():
            self._queue.put(("fuse", key))
        if background:
            self._start()
        else:
            self._queue.put(None)
            self._work()

    def _start(self) -> None:
        if self.thread is None or not self.thread.is_alive():
            self.thread = threading.Thread(target=self._work, name=f"warm-{self.decoder.name}", daemon=True)
            self.thread.start()

    def wait(self, timeout: float | None = None) -> None:
        """Until the queue is done (the bench and the tests wait for it)."""
        if self.thread is not None:
            self._queue.put(None)
            self.thread.join(timeout)
            self.thread = None

    def asked(self, key: WorkspaceKey) -> None:
        """A batch met a shape: compile it in the background when the fused step is accepted."""
        accepted = self.verdict is not None and self.verdict.accepted
        if accepted and key not in self._asked and fused_step.wanted(self.decoder.model.device):
            self._asked.add(key)
            self._queue.put(("fuse", key))
            self._start()

    def _work(self) -> None:
        while True:
            task = self._queue.get()
            if task is None:
                return
            what, key = task
            try:
                if what == "capture":
                    self._capture(key)
                elif what == "judge":
                    self._judge_once()
                else:
                    self._fuse(key)
            except FastPathUnavailable:
                return
            except Exception:  # noqa: BLE001 - warming is an optimisation: runs still capture on demand
                log.exception("warming the fast path of %s failed", self.decoder.name)

    def _capture(self, key: WorkspaceKey) -> None:
        decoder = self.decoder
        found = decoder.idle_fitting(key, exact_rows=True)
        decoder.release(found if found is not None else decoder.acquire(key)[0], keep=True)

    def _judge_once(self) -> None:
        if not fused_step.wanted(self.decoder.model.device):
            return
        root = fused_step.use_disk_cache(self._root) if self._root is not None else None
        key = fused_step.verdict_key(self.decoder.name, self.decoder.model)
        verdict = fused_step.remembered(root, key) if root is not None else None
        if verdict is None:
            verdict = self._judge()
            if root is not None:
                fused_step.remember(root, key, verdict)
        self.verdict, self.note = verdict, verdict.note()
        log.info("%s: %s", self.decoder.name, self.note)

    def _fuse(self, key: WorkspaceKey) -> None:
        if self.verdict is None or not self.verdict.accepted:
            return
        if any(k == key and fused for k, fused in self.decoder.idle_keys()):
            return
        self.decoder.release(self.fused_workspace(key), keep=True)

    def fused_workspace(self, key: WorkspaceKey) -> Workspace:
        """A workspace whose captured step is the compiled one (compiled outside the model's lock)."""
        decoder = self.decoder
        begun = time.perf_counter()
        workspace = Workspace(decoder.model, key)
        decoder.hold(workspace)
        with decoder.tracing:  # no capture meanwhile: compiling syncs the whole device
            with decoder.lock, torch.inference_mode():
                workspace.decode()  # the static cache allocates outside the compiled region
            step = workspace.fused(fused_step.compiled(workspace.forward))
            with torch.inference_mode():  # compiles on its first call, outside the model's lock
                step()
            workspace.prepare(decoder.lock, step)
        workspace.compiled = True
        log.info("%s: fused step for %s compiled and captured in %.1f s", decoder.name, key,
                 time.perf_counter() - begun)
        return workspace

    def _judge(self) -> fused_step.Verdict:
        decoder, probe = self.decoder, self._probe
        key = WorkspaceKey(1, length_bucket(len(probe) + fused_step.PROBE_STEPS + 1), False)
        logits, cache = fused_step.probe_prefill(decoder.model, probe, decoder.lock)
        greedy = GenerationParams(max_new_tokens=fused_step.PROBE_STEPS, temperature=0.0)

        def decode(workspace: Workspace) -> list[tuple[int, float]]:
            first = workspace.admit(0, cache, probe, greedy, logits)
            out = [(int(first[0]), first[1])]
            for _ in range(fused_step.PROBE_STEPS - 1):
                workspace.launch(decoder.lock)
                row = workspace.wait()[0]
                out.append((int(row[0]), row[1]))
            workspace.reset()
            return out

        plain, _ = decoder.acquire(key)
        try:
            fused = self.fused_workspace(key)
        except Exception as exc:  # noqa: BLE001 - a compile that fails leaves the plain step serving
            decoder.release(plain, keep=True)
            log.exception("compiling the fused step of %s failed", decoder.name)
            reason = f"compile failed: {type(exc).__name__}"
            return fused_step.Verdict(False, "none", 0.0, 0.0, -1.0, 0, reason)
        try:
            return fused_step.judge(lambda: decode(plain), lambda: decode(fused), decoder.model, probe)
        finally:
            decoder.release(plain, keep=True)
            decoder.release(fused, keep=True)
