"""Loaded models, shared by all users and columns, each loaded at most once."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from playground.backends.base import Backend
from playground.backends.local import load_backend
from playground.catalog import ModelSpec


@dataclass(frozen=True)
class LoadedInfo:
    id: str
    device: str
    dtype: str
    load_s: float
    from_cache: bool


class ModelPool:
    """Lazy, thread-safe model loading: the first caller loads, the others wait for it."""

    def __init__(self, data_dir: Path, device: str = "") -> None:
        self.data_dir = data_dir
        self.device = device
        self._backends: dict[ModelSpec, Backend] = {}
        self._locks: dict[ModelSpec, threading.Lock] = {}
        self._guard = threading.Lock()

    def get(self, spec: ModelSpec, progress: Callable[[str], None] = lambda _m: None) -> Backend:
        with self._guard:
            lock = self._locks.setdefault(spec, threading.Lock())
        with lock:
            backend = self._backends.get(spec)
            if backend is None:
                backend = load_backend(spec, self.data_dir, self.device, progress)
                self._backends[spec] = backend
            return backend

    def is_loaded(self, spec: ModelSpec) -> bool:
        return spec in self._backends

    def put(self, spec: ModelSpec, backend: Backend) -> None:
        """Register an already-built backend (used for remote backends and tests)."""
        with self._guard:
            self._backends[spec] = backend

    def loaded(self) -> list[LoadedInfo]:
        return [
            LoadedInfo(s.id, b.identity.device, b.identity.dtype, b.load_s, b.loaded_from_cache)
            for s, b in list(self._backends.items())
        ]
