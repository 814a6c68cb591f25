"""A served column's worker thread: it builds the prompt (which may ask the server) and reads the stream.

A slow or stalled server then never delays another column; the engine thread keeps the request
timeout and ends the column (closing its stream, which unblocks this thread) on Stop or the
timeout. The column's own clock is read here, where each chunk arrives, not when the engine
thread gets to it: its prompt's preparation, then the time since the request was sent (the wait
for the engine to accept the prompt is not the column's work).

The worker reports on the run's event queue: `prepared` or `unprepared`, then `step`s and
`ended`, or `raised`. The engine opens the column's stream between `prepared` and the worker's
first read (Column.go), so only the engine thread ever sets or closes it.
"""

from __future__ import annotations

import queue
import threading
import time

from playground.engine.column import Column
from playground.engine.prompting import prepare
from playground.record import Run

WORKER_EVENTS = ("prepared", "unprepared", "step", "ended", "raised")


def start_worker(col: Column, run: Run, events: queue.Queue) -> None:
    """Prepare and read the served column `col` in its own thread."""
    backend = col.backend

    def work() -> None:
        began = time.perf_counter()
        try:
            prepared = prepare(col, backend, run)
        except Exception as exc:  # noqa: BLE001 - handed to the engine thread
            events.put(("unprepared", col.index, exc))
            return
        preparing_s = time.perf_counter() - began
        events.put(("prepared", col.index, prepared))
        col.go.wait()
        stream = col.stream
        if col.done or stream is None:
            return
        sent = time.perf_counter()
        try:
            while (step := stream.next()) is not None:
                if col.done:
                    return
                events.put(("step", col.index, (step, preparing_s + time.perf_counter() - sent)))
            events.put(("ended", col.index, preparing_s + time.perf_counter() - sent))
        except Exception as exc:  # noqa: BLE001 - handed to the engine thread, which ends the column
            events.put(("raised", col.index, exc))

    threading.Thread(target=work, name=f"stream-{col.index}", daemon=True).start()
