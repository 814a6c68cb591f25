"""Loaded models, shared by all users and columns: each loaded at most once, idle ones evicted.

The pool keeps models under a memory budget (bytes of weights): after a load
that goes over it, idle models are unloaded, least recently used first. A model
is idle when no column holds it (acquire/release around a column's use). Loads
of different models run in parallel (each model has its own lock; only the
weights construction inside transformers is serialised, see weights_lock.py).
"""

from __future__ import annotations

import gc
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import psutil
import torch

from playground.backends.activity import ACTIVITY
from playground.backends.base import Backend, BackendError
from playground.backends.device import pick_device, pick_dtype
from playground.backends.preflight import estimate, free_bytes, needs_estimate, refusal
from playground.backends.registry import load_model
from playground.catalog import ModelSpec

log = logging.getLogger(__name__)
DEFAULT_BUDGET_SHARE = 0.6  # of the device's memory, when no budget is set

Loader = Callable[..., Backend]


@dataclass(frozen=True)
class LoadedInfo:
    id: str
    device: str
    dtype: str
    load_s: float
    from_cache: bool
    weights_bytes: int = 0
    in_use: int = 0  # columns holding it right now
    workspace_bytes: int = 0  # the fast path's workspaces, idle and in use


@dataclass
class _Entry:
    backend: Backend
    last_used: float
    in_use: int = 0


def _close(backend: Backend) -> None:
    """Backends that hold a resource besides memory (a managed server's process) release it here."""
    try:
        backend.close()
    except Exception:  # noqa: BLE001 - unloading must go on
        log.exception("closing %s failed", backend.identity.catalog_id)


def _held_bytes(backend: Backend) -> int:
    """What a loaded model holds against the budget: its weights and its fast-path workspaces."""
    return int(backend.weights_bytes) + int(backend.workspace_bytes())


def _return_memory() -> None:
    """Collect an unloaded model's tensors and hand the cached CUDA blocks back to the driver: the
    pre-flight reads the driver's free memory, which the allocator's cache would still hold."""
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def default_budget(device: str) -> int:
    """60% of the GPU's memory on CUDA, of the machine's RAM otherwise."""
    if device.startswith("cuda") and torch.cuda.is_available():
        total = torch.cuda.get_device_properties(0).total_memory
    else:
        total = psutil.virtual_memory().total
    return int(total * DEFAULT_BUDGET_SHARE)


class ModelPool:
    """Lazy, thread-safe model loading: the first caller loads, the others wait for it."""

    def __init__(
        self, data_dir: Path, device: str = "", budget_bytes: int = 0, loader: Loader | None = None,
        free_memory: Callable[[str], int] | None = None,
    ) -> None:
        self.data_dir = data_dir
        self.device = device
        self.budget_bytes = budget_bytes or default_budget(device or ("cuda" if torch.cuda.is_available() else
                                                                      "cpu"))
        self._load = loader or load_model
        self._free = free_memory or free_bytes
        self._entries: dict[ModelSpec, _Entry] = {}
        self._locks: dict[ModelSpec, threading.Lock] = {}
        self._guard = threading.Lock()
        self.evicted: list[str] = []  # ids unloaded to stay under the budget, oldest first

    def get(self, spec: ModelSpec, progress: Callable[[str], None] = lambda _m: None) -> Backend:
        """The loaded model (loading it if needed), without holding it."""
        return self._get(spec, progress, hold=False)

    def acquire(self, spec: ModelSpec, progress: Callable[[str], None] = lambda _m: None,
                cache_tokens: int = 0) -> Backend:
        """The loaded model, held (never evicted) until release(spec); cache_tokens sizes the pre-flight."""
        return self._get(spec, progress, hold=True, cache_tokens=cache_tokens)

    def release(self, spec: ModelSpec, backend: Backend | None = None) -> None:
        """Give back a hold; with `backend`, only if that is still the loaded one (not a reload).

        A run may have grown the model's fast-path workspaces: idle models go if that put the pool
        over its budget."""
        with self._guard:
            entry = self._entries.get(spec)
            if backend is not None and entry is not None and entry.backend is not backend:
                return
            if entry is not None and entry.in_use > 0:
                entry.in_use -= 1
                entry.last_used = time.monotonic()
            over = self._over_budget(keep=spec)
        self._evict(over, fresh=True)

    def _get(self, spec: ModelSpec, progress: Callable[[str], None], hold: bool, cache_tokens: int = 0
             ) -> Backend:
        with self._guard:
            lock = self._locks.setdefault(spec, threading.Lock())
        with lock:
            self._drop_failed()
            with self._guard:
                entry = self._entries.get(spec)
                if entry is not None:
                    entry.last_used = time.monotonic()
                    entry.in_use += hold
                    return entry.backend
            self._preflight(spec, cache_tokens, progress)
            token = ACTIVITY.enter()
            try:
                backend = self._load(spec, self.data_dir, self.device, progress)
            finally:
                ACTIVITY.leave(token)
            with self._guard:  # registered only once completely loaded: a failed load leaves nothing
                self._entries[spec] = _Entry(backend, time.monotonic(), int(hold))
                over = self._over_budget(keep=spec)
            self._evict(over, fresh=backend.loaded_from_cache)
            return backend

    def _drop_failed(self) -> None:
        """Forget models whose engine died (a crashed managed server): the next use loads a fresh one."""
        with self._guard:
            dead = [(s, e) for s, e in self._entries.items() if e.backend.failure()]
            for spec, _entry in dead:
                del self._entries[spec]
        for spec, entry in dead:
            log.warning("dropped %s: %s", spec.id, entry.backend.failure())
            _close(entry.backend)

    def _idle(self) -> list[ModelSpec]:
        """Loaded models no column holds, least recently used first (call with the guard held)."""
        idle = [(e.last_used, s) for s, e in self._entries.items() if e.in_use == 0]
        return [s for _used, s in sorted(idle, key=lambda pair: pair[0])]

    def _preflight(self, spec: ModelSpec, cache_tokens: int, progress: Callable[[str], None]) -> None:
        """Refuse, with numbers, a load that would not fit; unload idle models first if that makes room."""
        if not needs_estimate(spec):
            return
        device = pick_device(self.device)
        need = estimate(spec, self.data_dir, pick_dtype(device), cache_tokens)
        if need is None:
            return
        free = self._free(device)
        if need.total <= free:
            return
        with self._guard:
            idle = self._idle()
        for other in idle:
            progress(f"unloading idle {other.id} to make room")
            if self.unload(other):
                self.evicted.append(other.id)
            free = self._free(device)
            if need.total <= free:
                return
        raise BackendError(refusal(spec, need, free, device, [s.id for s in list(self._entries)]))

    def _over_budget(self, keep: ModelSpec) -> list[_Entry]:
        """Take idle models out of the pool, least recently used first, while weights and workspaces
        exceed the budget (call with the guard held); _evict releases them after the guard is let go."""
        taken: list[_Entry] = []
        for spec in [s for s in self._idle() if s != keep]:
            if self.used_bytes() <= self.budget_bytes:
                break
            taken.append(self._entries.pop(spec))
            self.evicted.append(spec.id)
            log.info("unloaded idle model %s to stay under the memory budget", spec.id)
        return taken

    def _evict(self, taken: list[_Entry], fresh: bool) -> None:
        """Stop and free models taken out by _over_budget, outside the guard: stopping a managed
        server takes up to 10 s, and every acquire, release and pool line would wait on the guard."""
        for entry in taken:
            _close(entry.backend)
        # A full collection costs ~0.2 s once transformers is loaded: only when it can free a model
        # (one just unloaded, or the fp32 copy a first-launch conversion leaves behind: not `fresh`).
        if taken or not fresh:
            _return_memory()

    def unload(self, spec: ModelSpec) -> bool:
        """Drop an idle model; False when it is not loaded or a column is using it."""
        with self._guard:
            entry = self._entries.get(spec)
            if entry is None or entry.in_use:
                return False
            del self._entries[spec]
        _close(entry.backend)
        _return_memory()
        return True

    def close(self) -> None:
        """Unload everything (the app is stopping): managed servers stop with their backends."""
        with self._guard:
            entries, self._entries = list(self._entries.values()), {}
        for entry in entries:
            _close(entry.backend)

    def used_bytes(self) -> int:
        """Weights and fast-path workspaces of every loaded model (what the budget limits)."""
        return sum(_held_bytes(e.backend) for e in list(self._entries.values()))

    def is_loaded(self, spec: ModelSpec) -> bool:
        self._drop_failed()
        return spec in self._entries

    def put(self, spec: ModelSpec, backend: Backend) -> None:
        """Register an already-built backend (used for remote backends and tests)."""
        with self._guard:
            self._entries[spec] = _Entry(backend, time.monotonic())

    def loaded(self) -> list[LoadedInfo]:
        self._drop_failed()
        with self._guard:
            items = list(self._entries.items())
        return [
            LoadedInfo(s.id, e.backend.identity.device, e.backend.identity.dtype, e.backend.load_s,
                       e.backend.loaded_from_cache, e.backend.weights_bytes, e.in_use,
                       e.backend.workspace_bytes())
            for s, e in items
        ]
