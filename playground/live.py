"""Runs in progress and how they ended: what the run service hands its callers.

Kept apart from playground/service.py so that the batch runner (playground/batch/runner.py), which
the service drives, can name these types without importing the service above it.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass

from playground.record import Run
from playground.requests import Event


class LiveRuns:
    """Cancel flags of the runs in progress, one per run, by caller key (a browser tab), so Stop can
    reach them. A tab may have several runs at once (a follow-up sent while a run streams): each keeps
    its own flag, and Stop on the tab sets them all."""

    def __init__(self) -> None:
        self._flags: dict[str, list[threading.Event]] = {}
        self._lock = threading.Lock()

    def start(self, key: str) -> threading.Event:
        flag = threading.Event()
        with self._lock:
            self._flags.setdefault(key, []).append(flag)
        return flag

    def stop(self, key: str) -> bool:
        with self._lock:
            flags = list(self._flags.get(key, ()))
        for flag in flags:
            flag.set()
        return bool(flags)

    def end(self, key: str, flag: threading.Event) -> None:
        with self._lock:
            left = [f for f in self._flags.get(key, ()) if f is not flag]
            if left:
                self._flags[key] = left
            else:
                self._flags.pop(key, None)


@dataclass
class LiveRun:
    """A run in progress: its record (filled as events arrive) and the events."""

    record: Run
    events: Iterator[Event]
    cancel: threading.Event
    key: str
    owner: str
    search_notice: str = ""


@dataclass
class Outcome:
    """A finished run, as saved (or why it could not be)."""

    run: Run
    saved_id: str = ""
    save_error: str = ""
    stopped: bool = False
    summary: str = ""
