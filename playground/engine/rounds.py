"""One run's loop: events from loaders and served workers, then one step of each decoding column.

Local columns decode in the caller's thread, one token per active column in turn: threads
fighting over the GIL were measured slower than taking turns (3 models: 8.9 s threaded, 4.0 s
in turn). Each step's time goes on its own column's clock (figures.charge).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Iterator
from dataclasses import replace

from playground.backends.activity import ACTIVITY
from playground.backends.base import Backend, BackendError
from playground.engine import figures
from playground.engine.column import Column, ColumnState
from playground.engine.endings import Endings
from playground.engine.loading import LANDINGS, load_timeout_message
from playground.engine.prompting import PreparedPrompt, prepare, record_prompt
from playground.engine.served import WORKER_EVENTS, start_worker
from playground.limits import MAX_OUTPUT_CHARS, cut_notice
from playground.record import ModelRun, Run, TokenStep
from playground.requests import Event
from playground.streaming import IncrementalDecoder, StopScanner

log = logging.getLogger(__name__)

ANSWERED = ("eos", "length", "stop")  # endings whose columns get the attention pass


class Round:
    """One run's loop: events from loaders and workers, then one step of each decoding column."""

    def __init__(self, endings: Endings, load_timeout_s: float, run: Run, columns: list[Column],
                 events: queue.Queue, cancel: threading.Event, tokenize_only: bool) -> None:
        self.engine, self.load_timeout_s, self.run, self.columns = endings, load_timeout_s, run, columns
        self.events, self.cancel, self.tokenize_only = events, cancel, tokenize_only

    def loop(self) -> Iterator[Event]:
        last_tick = time.perf_counter()
        while not all(c.done for c in self.columns):
            if self.cancel.is_set():
                for col in self.columns:
                    if not col.done:
                        self.engine.finish(col, "cancelled", "stopped by the user; partial output kept")
                        yield from _finished(col)
                break
            active = [c for c in self.columns if c.state is ColumnState.DECODING
                      and not _sibling_loading(c, self.columns)]
            for kind, index, payload in _drain(self.events, wait=0 if active else 0.1):
                handle = self._on_worker if kind in WORKER_EVENTS else self._on_loader
                yield from handle(kind, self.columns[index], payload)
            for col in active:  # the fast path starts every column's step before any is collected
                _launch(col)
            shared: dict[tuple, float] = {}  # this round's step time of each batched group (figures.charge)
            for col in active:
                yield from self._step(col, shared)
            now = time.perf_counter()
            yield from self._timeouts(now)
            if now - last_tick >= 1.0:
                last_tick = now
                for col in self.columns:
                    if col.state is ColumnState.LOADING:
                        yield Event("status", col.index, f"loading… {now - col.load_started:.0f} s")

    def _timeouts(self, now: float) -> Iterator[Event]:
        """Columns whose load or request ran past its time (a local one's steps check their own)."""
        for col in self.columns:
            if col.state is ColumnState.LOADING and now - col.load_started > self.load_timeout_s:
                self.engine.finish(col, "timeout", load_timeout_message(self.load_timeout_s))
                yield from _finished(col)
            elif (col.state in (ColumnState.PREPARING, ColumnState.STREAMING)
                  and now - col.gen_started > col.record.params.timeout_s):
                self.engine.finish(col, "timeout", _timeout_message(col.record))  # closes the stream
                yield from _finished(col)

    # -- loading -------------------------------------------------------------

    def _on_loader(self, kind: str, col: Column, payload: object) -> Iterator[Event]:
        if kind in LANDINGS:
            col.load_landed = True
        if col.done:
            if kind == "loaded":  # the column gave up (timeout, stop) while its model was loading
                self.engine.pool.release(col.spec, payload[0])
            return
        if kind == "progress":
            yield Event("status", col.index, f"loading: {payload}")
        elif kind == "failed":
            self.engine.finish(col, "error", str(payload))
            yield from _finished(col)
        elif kind == "abandoned":  # the loader gave up at a stage boundary: Stop or the load timeout
            if self.cancel.is_set():
                self.engine.finish(col, "cancelled", "stopped by the user while the model was loading")
            else:
                self.engine.finish(col, "timeout", load_timeout_message(self.load_timeout_s))
            yield from _finished(col)
        elif kind == "loaded":
            backend, already = payload
            self._loaded(col, backend, already)
            if col.done:
                yield from _finished(col)
            else:
                yield Event("started", col.index, _started_message(col))

    def _loaded(self, col: Column, backend: Backend, already: bool) -> None:
        """The model is held for the column: record what it is, then start its prompt."""
        record, run = col.record, self.run
        col.backend = backend
        record.identity = replace(backend.identity, catalog_id=col.spec.id, name=col.spec.name,
                                  reference=record.identity.reference)
        record.metrics.weights_bytes = backend.weights_bytes
        record.capabilities = backend.column_capabilities()
        # a model's own load time: not the wait for another model's weights (LocalBackend.load_s)
        record.metrics.load_s = 0.0 if already else backend.load_s
        record.metrics.loaded_from_cache = backend.loaded_from_cache
        col.capture = run.capture_attention
        col.scanner = StopScanner(record.params.stop)
        col.gen_started = time.perf_counter()
        col.clock.start(col.gen_started)
        if backend.capabilities.remote:  # tokenizing may ask the server: the column's own worker does it
            col.move(ColumnState.PREPARING)
            start_worker(col, run, self.events)
            return
        try:
            prepared = prepare(col, backend, run)
        except Exception as exc:  # noqa: BLE001 - a tokenizer failure is this column's problem
            self.engine.finish(col, "error", f"could not build the prompt: {exc}")
            return
        finally:  # building and tokenizing its prompt is the column's own work (part of its TTFT)
            col.clock.spend(time.perf_counter() - col.gen_started)
        if not self._accepted(col, prepared):
            return
        try:
            col.stream = backend.open_stream(prepared.encoding, record.params, self._stopper(col), batch=run)
        except BackendError as exc:
            self.engine.finish(col, "error", str(exc))
            return
        col.move(ColumnState.DECODING)
        col.activity = ACTIVITY.enter()
        col.probe = backend.allocator_probe()
        col.decoder = IncrementalDecoder(backend.decode)

    def _accepted(self, col: Column, prepared: PreparedPrompt) -> bool:
        """Record the prompt; False when the column ends here (an error, or tokenizing only)."""
        error = record_prompt(col, self.run, prepared)
        if error:
            self.engine.finish(col, "error", error)
            return False
        if self.tokenize_only:
            self.engine.finish(col, "tokenized")
            return False
        return True

    def _stopper(self, col: Column):  # noqa: ANN202 - a Callable[[], bool]
        """Asked by the backend inside long work (between prefill chunks): Stop or the timeout."""
        cancel, limit = self.cancel, col.record.params.timeout_s
        return lambda: cancel.is_set() or time.perf_counter() - col.gen_started > limit

    # -- served columns' workers --------------------------------------------------

    def _on_worker(self, kind: str, col: Column, payload: object) -> Iterator[Event]:
        """A served column's worker reported its prompt, a step, the end of its stream, or an exception."""
        if col.done:
            return
        if kind == "prepared":
            if self._accepted(col, payload):
                col.stream = col.backend.open_stream(payload.encoding, col.record.params, self._stopper(col))
                col.move(ColumnState.STREAMING)
            col.go.set()  # the worker streams, or sees the column ended and leaves
            if col.done:
                yield from _finished(col)
        elif kind == "unprepared":
            self.engine.finish(col, "error", f"could not build the prompt: {payload}")
            yield from _finished(col)
        elif kind == "step":
            step, own_s = payload
            col.clock.reach(own_s)
            yield from self._accept(col, step)
        elif kind == "ended":
            col.clock.reach(payload)
            self.engine.finish(col, self._ended_reason(col))
            yield from self._complete(col)
        else:
            self.engine.finish(col, "error", _failure(col, payload))
            yield from _finished(col)

    # -- local columns' steps ------------------------------------------------------

    def _step(self, col: Column, shared: dict[tuple, float]) -> Iterator[Event]:
        """A local column's next token; the time of its own launch() and next() goes on its clock."""
        started = time.perf_counter()
        try:
            step = col.stream.next()
        except Exception as exc:  # noqa: BLE001 - one model raising never stops the others
            if not isinstance(exc, BackendError):
                log.exception("generation failed in column %d", col.index)
            figures.charge(col, time.perf_counter() - started, shared)
            self.engine.finish(col, "error", _failure(col, exc))
            yield from _finished(col)
            return
        figures.charge(col, time.perf_counter() - started, shared)
        if step is None:
            self.engine.finish(col, self._ended_reason(col))
            yield from self._complete(col)
        else:
            yield from self._accept(col, step)

    def _accept(self, col: Column, step: TokenStep) -> Iterator[Event]:
        """One new token (its time already on the column's clock): text (held back for stop strings),
        and whether the column ends."""
        record = col.record
        now = time.perf_counter()
        col.clock.token(now)
        step, cut = figures.bounded_step(step, MAX_OUTPUT_CHARS - col.step_chars)
        col.step_chars += len(step.text)
        record.steps.append(step)
        text = col.decoder.push(step.token_id) if col.decoder is not None else step.text
        if len(text) > MAX_OUTPUT_CHARS - col.text_chars:  # a served model's 30 MB chunk stops here
            text, cut = text[: MAX_OUTPUT_CHARS - col.text_chars], True
        col.text_chars += len(text)
        shown = col.scanner.push(text)
        record.text += shown
        reason = ""
        if cut:
            reason = "length"
            record.error = cut_notice()
        elif col.scanner.stopped:
            reason = "stop"
        elif step.token_id in col.backend.eos_ids:
            reason = "eos"
        elif len(record.steps) >= record.params.max_new_tokens:
            reason = "length"
        if shown:
            yield Event("token", col.index, delta=shown)
        if reason:
            self.engine.finish(col, reason)
            yield from self._complete(col)
        elif now - col.gen_started > record.params.timeout_s:
            self.engine.finish(col, "timeout", _timeout_message(record))
            yield from _finished(col)

    def _ended_reason(self, col: Column) -> str:
        """Why a stream ended by itself: Stop or the timeout (asked mid-prefill), else the backend's."""
        if self.cancel.is_set():
            col.record.error = "stopped by the user; partial output kept"
            return "cancelled"
        if time.perf_counter() - col.gen_started > col.record.params.timeout_s:
            col.record.error = _timeout_message(col.record)
            return "timeout"
        return col.record.finish_reason or col.info.finish_reason or "length"

    def _complete(self, col: Column) -> Iterator[Event]:
        """A column that answered: its whole text first (`generated`, so the page shows it at once),
        then the attention pass, then `finished`. Stopped, timed-out and failed columns skip the pass."""
        if col.record.finish_reason not in ANSWERED:
            yield from _finished(col)
            return
        if col.flushed:
            yield Event("token", col.index, delta=col.flushed)
            col.flushed = ""
        caps = col.backend.capabilities
        wants = col.capture and not caps.remote and caps.attention
        yield Event("generated", col.index, "capturing attention…" if wants else "")
        self.engine.capture(col)
        yield Event("finished", col.index)


def _finished(col: Column) -> Iterator[Event]:
    """The column's last events: any held-back text, then `finished`."""
    if col.flushed:
        yield Event("token", col.index, delta=col.flushed)
        col.flushed = ""
    yield Event("finished", col.index)


def _started_message(col: Column) -> str:
    m = col.record.metrics
    ident = col.record.identity
    how = "already loaded" if m.load_s == 0 else (
        f"loaded in {m.load_s:.1f} s" + (" from converted cache" if m.loaded_from_cache else "")
    )
    path = col.info.decode_path.split(":")[0]
    parts = (how, f"{ident.device} {ident.dtype}", path, "generating")  # the header badges say the format
    return " · ".join(p for p in parts if p)


def _failure(col: Column, exc: object) -> str:
    if isinstance(exc, BackendError):
        return f"generation failed: {exc}"
    log.error("generation failed in column %d: %r", col.index, exc)
    return f"generation failed: {type(exc).__name__}: {exc}"


def _timeout_message(record: ModelRun) -> str:
    return f"timed out after {record.params.timeout_s:g} s (request timeout); partial output kept"


def _sibling_loading(col: Column, columns: list[Column]) -> bool:
    """Another column of this model still loading: wait for it, so the two can decode as one batch."""
    return any(
        other is not col and other.state is ColumnState.LOADING and other.spec is not None
        and col.spec is not None and other.spec.id == col.spec.id
        for other in columns
    )


def _launch(col: Column) -> None:
    """Start a column's next step without waiting for it (errors surface at its next()). The time it
    takes is the column's own (on CPU the fast path runs the step right here)."""
    started = time.perf_counter()
    col.stream.launch()
    col.launch_s += time.perf_counter() - started


def _drain(events: queue.Queue, wait: float) -> Iterator[tuple[str, int, object]]:
    """Every event waiting now (after up to `wait` seconds for the first): a fast stream never lags."""
    try:
        yield events.get(timeout=wait) if wait else events.get_nowait()
    except queue.Empty:
        return
    while True:
        try:
            yield events.get_nowait()
        except queue.Empty:
            return
