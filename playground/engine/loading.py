"""Loading a column's model in its own thread (I/O and C++ work), and giving back loads that land late.

The loader thread reports exactly one of `loaded`, `failed` or `abandoned` on the run's event
queue, plus `progress` between stages; a column that gave up before its load landed still owes
the pool that hold, which release_late_loads returns when it arrives.
"""

from __future__ import annotations

import logging
import queue
import threading
import time

from playground.backends.base import BackendError, LoadCancelled
from playground.backends.pool import ModelPool
from playground.catalog import CatalogError
from playground.engine.column import Column, ColumnState

log = logging.getLogger(__name__)

LANDINGS = ("loaded", "failed", "abandoned")  # a loader thread's last word


def start_loader(col: Column, pool: ModelPool, timeout_s: float, events: queue.Queue,
                 cancel: threading.Event) -> None:
    """Acquire the column's model from the pool in a thread; its outcome goes on `events`."""
    col.move(ColumnState.LOADING)
    col.load_started = time.perf_counter()
    spec = col.spec
    already = pool.is_loaded(spec)
    deadline = col.load_started + timeout_s

    def progress(message: str) -> None:
        """Report a stage, and abandon the load here if the run was stopped or ran out of time."""
        if cancel.is_set():
            raise LoadCancelled(f"{spec.id}: loading stopped by the user")
        if time.perf_counter() > deadline:
            raise LoadCancelled(f"{spec.id}: loading took longer than {timeout_s:g} s")
        events.put(("progress", col.index, message))

    def load() -> None:
        try:
            backend = pool.acquire(spec, progress=progress, cache_tokens=col.cache_tokens)
            events.put(("loaded", col.index, (backend, already)))
        except LoadCancelled as exc:
            events.put(("abandoned", col.index, str(exc)))
        except (BackendError, CatalogError) as exc:
            events.put(("failed", col.index, str(exc)))
        except Exception as exc:  # noqa: BLE001 - any loader failure stays in its column
            log.exception("loading %s failed", spec.id)
            events.put(("failed", col.index, f"{spec.id}: could not load model: {exc}"))

    threading.Thread(target=load, name=f"load-{spec.id}", daemon=True).start()


def release_late_loads(pool: ModelPool, columns: list[Column], events: queue.Queue) -> None:
    """Loads still running for columns that gave up: give their hold back when they land."""
    pending = [c for c in columns if c.load_started and not c.load_landed]
    if not pending:
        return

    def drain() -> None:
        waiting = {c.index for c in pending}
        while waiting:
            kind, index, payload = events.get()
            if kind in LANDINGS and index in waiting:
                waiting.discard(index)
                if kind == "loaded":
                    pool.release(columns[index].spec, payload[0])

    threading.Thread(target=drain, name="release-late-loads", daemon=True).start()


def load_timeout_message(timeout_s: float) -> str:
    return (f"loading took longer than {timeout_s:g} s "
            "(load timeout, PLAYGROUND_LOAD_TIMEOUT); the column gave up")
