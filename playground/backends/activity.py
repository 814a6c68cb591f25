"""Which generations and loads overlap, so a column knows whether an allocator peak is its own.

Device allocators count process-wide: a peak measured while another column
decoded or another model loaded belongs to both. Every piece of work enters
this register; one that never overlapped another leaves with `alone=True`, and
only then is its allocator peak reported. It is process state (one allocator
per process), not per-user state, hence a module-level instance.
"""

from __future__ import annotations

import itertools
import threading


class Activity:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._overlapped: dict[int, bool] = {}
        self._ids = itertools.count()

    def enter(self) -> int:
        with self._lock:
            token = next(self._ids)
            if self._overlapped:
                for other in self._overlapped:
                    self._overlapped[other] = True
            self._overlapped[token] = bool(self._overlapped)
            return token

    def leave(self, token: int) -> bool:
        """End a piece of work; True when nothing else ran at any time while it did."""
        with self._lock:
            return not self._overlapped.pop(token, True)


ACTIVITY = Activity()
