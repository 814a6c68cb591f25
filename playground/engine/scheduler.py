"""Run one prompt on N models: load in the background, decode round-robin, stream events.

Loading happens in one thread per column (it is I/O and C++ work). Decoding
happens in the caller's thread, one token per active column in turn: threads
fighting over the GIL were measured slower than taking turns (3 models: 8.9 s threaded, 4.0 s in turn). A
column that fails, times out or raises ends with an error in its own record;
the others go on. Each column keeps its own clock (playground/clocks.py): taking
turns must not make a fast model's figures count a slow neighbour's steps.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace

from playground.backends.activity import ACTIVITY
from playground.backends.base import (
    AllocatorProbe,
    Backend,
    BackendError,
    LoadCancelled,
    PromptEncoding,
    StreamInfo,
)
from playground.backends.pool import ModelPool
from playground.catalog import Catalog, CatalogError, ModelSpec
from playground.clocks import ColumnClock
from playground.grounding.citations import check_citations
from playground.grounding.prompt import build_grounded_prompt
from playground.grounding.providers import SearchResult
from playground.inspect.tokens import find_anomalies
from playground.limits import (
    MAX_MESSAGE_CHARS,
    MAX_NAME_CHARS,
    MAX_OUTPUT_CHARS,
    MAX_PROMPT_TOKENS,
    MAX_TOKEN_CHARS,
    MAX_TOP_ALTERNATIVES,
    cut_notice,
)
from playground.params import MAX_NEW_TOKENS_LIMIT, validate_params  # noqa: F401 - re-exported
from playground.record import (
    ColumnCapabilities,
    Metrics,
    ModelIdentity,
    ModelRun,
    Run,
    TokenStep,
)
from playground.redact import redact_paths
from playground.requests import (  # noqa: F401 - re-exported: callers import them from the engine
    AttentionLimits,
    ColumnRequest,
    Event,
    RequestError,
    RunRequest,
    validate_request,
)
from playground.served import check_served_url
from playground.streaming import IncrementalDecoder, StopScanner

log = logging.getLogger(__name__)

GROUNDING_MARGIN_TOKENS = 16  # slack between the fitted sources and the window
DEFAULT_LOAD_TIMEOUT_S = 900.0


@dataclass
class _Column:
    """Book-keeping for one column while the run is live."""

    index: int
    record: ModelRun
    spec: ModelSpec | None = None
    backend: Backend | None = None
    steps: Iterator[TokenStep] | None = None
    probe: AllocatorProbe | None = None
    activity: int | None = None  # token in the process-wide activity register while generating
    held: bool = False  # the pool holds the model for this column until it finishes
    cache_tokens: int = 0  # the KV cache the memory pre-flight plans for (prompt, roughly, + new tokens)
    decoder: IncrementalDecoder | None = None  # None for served models: their steps carry their text
    info: StreamInfo = field(default_factory=StreamInfo)
    pumped: bool = False  # a served model's stream runs in its own worker thread
    go: threading.Event | None = None  # lets a served column's worker start streaming
    scanner: StopScanner | None = None
    flushed: str = ""  # held-back text released when the column ended, not yet sent as an event
    load_started: float = 0.0
    gen_started: float = 0.0  # wall clock: its prompt began (the request timeout counts from here)
    clock: ColumnClock = field(default_factory=ColumnClock)  # its own time: TTFT, total, tok/s
    launch_s: float = 0.0  # the fast path's launch() of this round's step (on CPU, the step itself)
    capture: bool = False
    sources: int = 0  # numbered sources this column's prompt carries
    step_chars: int = 0  # text of the steps kept so far, and of the text shown: each at most MAX_OUTPUT_CHARS
    text_chars: int = 0
    done: bool = False


class Engine:
    """Runs requests on models from a shared pool.

    allow_any_model=False limits columns to catalog ids (a server open to a team must not
    load whatever path or hub id a web user types); redact=True removes server paths from
    the messages stored in records, since those are shown and shared.
    """

    def __init__(
        self,
        catalog: Catalog,
        pool: ModelPool,
        attention: AttentionLimits | None = None,
        load_timeout_s: float = DEFAULT_LOAD_TIMEOUT_S,
        allow_any_model: bool = True,
        redact: bool = False,
        fetch_allow: tuple[str, ...] = (),
    ) -> None:
        self.catalog = catalog
        self.pool = pool
        self.attention = attention or AttentionLimits()
        self.load_timeout_s = load_timeout_s
        self.allow_any_model = allow_any_model
        self.redact = redact
        self.fetch_allow = fetch_allow

    def run(self, request: RunRequest, cancel: threading.Event | None = None) -> Run:
        """Run to completion and return the record (for the CLI and tests)."""
        run, events = self.stream(request, cancel)
        for _event in events:
            pass
        return run

    def stream(
        self, request: RunRequest, cancel: threading.Event | None = None
    ) -> tuple[Run, Iterator[Event]]:
        """Validate now, then return the record and the events that fill it as they happen."""
        validate_request(request)
        run = Run(prompt=request.prompt, system_prompt=request.system_prompt,
                  specials_as_text=request.specials_as_text, capture_attention=request.capture_attention,
                  search=request.search, history=list(request.history), parent_id=request.parent_id)
        columns = [self._open_column(i, c, run) for i, c in enumerate(request.columns)]
        return run, self._events(run, columns, cancel or threading.Event(), request.tokenize_only)

    def tokenize(self, request: RunRequest) -> Run:
        """Tokens and anomalies for every column, without generating."""
        return self.run(replace(request, tokenize_only=True))

    def _events(
        self, run: Run, columns: list[_Column], cancel: threading.Event, tokenize_only: bool = False
    ) -> Iterator[Event]:
        events: queue.Queue[tuple[str, int, object]] = queue.Queue()
        started = time.perf_counter()
        for col in columns:
            if not col.done:
                self._start_loader(col, events, cancel)
        try:
            yield Event("status", message="started")
            for col in columns:
                if col.done:
                    yield Event("finished", col.index)
            yield from self._loop(run, columns, events, cancel, tokenize_only)
            run.wall_s = time.perf_counter() - started
            yield Event("done")
        finally:  # also when the consumer goes away mid-run (a closed page): end and release everything
            for col in columns:
                if not col.done:
                    self._finish(col, "cancelled", "the run was abandoned before it finished")
            self._release_late_loads(columns, events)

    # -- column set-up ---------------------------------------------------

    def _open_column(self, index: int, request: ColumnRequest, run: Run) -> _Column:
        identity = ModelIdentity(catalog_id=request.model, name=request.model, source="", location="",
                                 reference=request.model)
        record = ModelRun(column=index, identity=identity, params=request.params,
                          system_prompt=request.system_prompt)
        run.models.append(record)
        col = _Column(index, record)
        chars = len(run.prompt) + sum(len(user) + len(answer) for user, answer in _exchanges(run, index))
        col.cache_tokens = chars // 2 + request.params.max_new_tokens  # <= 2 characters a token
        problems = validate_params(request.params)
        try:
            col.spec = self.catalog.get(request.model, allow_any=self.allow_any_model)
            typed_url = col.spec.source == "openai" and request.model.strip() not in self.catalog.specs
            if self.redact and typed_url:
                pinned = check_served_url(col.spec.base_url, self.fetch_allow)  # a web user's own URL
                col.spec = replace(col.spec, pinned_addresses=pinned)  # connect to what was checked
            record.identity = replace(
                identity, catalog_id=col.spec.id, name=col.spec.name, source=col.spec.source,
                location=col.spec.location,
            )
        except CatalogError as exc:
            problems.insert(0, str(exc))
        if problems:
            self._fail(col, "; ".join(problems))
        return col

    def _start_loader(self, col: _Column, events: queue.Queue, cancel: threading.Event) -> None:
        col.load_started = time.perf_counter()
        spec = col.spec
        already = self.pool.is_loaded(spec)
        deadline = col.load_started + self.load_timeout_s

        def progress(message: str) -> None:
            """Report a stage, and abandon the load here if the run was stopped or ran out of time."""
            if cancel.is_set():
                raise LoadCancelled(f"{spec.id}: loading stopped by the user")
            if time.perf_counter() > deadline:
                raise LoadCancelled(f"{spec.id}: loading took longer than {self.load_timeout_s:g} s")
            events.put(("progress", col.index, message))

        def load() -> None:
            try:
                backend = self.pool.acquire(spec, progress=progress, cache_tokens=col.cache_tokens)
                events.put(("loaded", col.index, (backend, already)))
            except LoadCancelled as exc:
                events.put(("abandoned", col.index, str(exc)))
            except (BackendError, CatalogError) as exc:
                events.put(("failed", col.index, str(exc)))
            except Exception as exc:  # noqa: BLE001 - any loader failure stays in its column
                log.exception("loading %s failed", spec.id)
                events.put(("failed", col.index, f"{spec.id}: could not load model: {exc}"))

        threading.Thread(target=load, name=f"load-{spec.id}", daemon=True).start()

    def _on_loaded(
        self, col: _Column, backend: Backend, already: bool, run: Run, tokenize_only: bool,
        cancel: threading.Event, events: queue.Queue,
    ) -> None:
        record = col.record
        col.held = True
        record.identity = replace(backend.identity, catalog_id=col.spec.id, name=col.spec.name,
                                  reference=record.identity.reference)
        record.metrics.weights_bytes = backend.weights_bytes
        column_capabilities = getattr(backend, "column_capabilities", None)
        record.capabilities = column_capabilities() if column_capabilities else ColumnCapabilities()
        # a model's own load time: not the wait for another model's weights (LocalBackend.load_s)
        record.metrics.load_s = 0.0 if already else getattr(
            backend, "load_s", time.perf_counter() - col.load_started)
        record.metrics.loaded_from_cache = backend.loaded_from_cache
        col.backend = backend
        col.capture = run.capture_attention
        col.scanner = StopScanner(record.params.stop)
        col.gen_started = time.perf_counter()
        col.clock.start(col.gen_started)
        if backend.capabilities.remote:  # tokenizing may ask the server: the column's own worker does it
            self._pump(col, run, events, cancel)
            return
        try:
            prepared = self._prompt(col, backend, run)
        except Exception as exc:  # noqa: BLE001 - a tokenizer failure is this column's problem
            self._fail(col, f"could not build the prompt: {exc}")
            return
        finally:  # building and tokenizing its prompt is the column's own work (part of its TTFT)
            col.clock.spend(time.perf_counter() - col.gen_started)
        if not self._accept_prompt(col, run, prepared, tokenize_only):
            return
        should_stop = lambda: self._should_stop(col, cancel)  # noqa: E731 - read once per prefill chunk
        col.info.batch = run  # the run's columns of one model and prompt may decode as one batch
        try:
            col.steps = backend.stream(prepared[0], record.params, should_stop, col.info)
        except BackendError as exc:
            self._fail(col, str(exc))
            return
        col.activity = ACTIVITY.enter()
        col.probe = backend.allocator_probe()
        col.decoder = IncrementalDecoder(backend.decode)

    def _prompt(self, col: _Column, backend: Backend, run: Run) -> tuple[PromptEncoding, str, int]:
        """The encoded prompt (grounded, templated), the text it came from, and the user text's tokens."""
        prompt_text = self._grounded_prompt(col, backend, run)
        system = run.column_system_prompt(col.record)
        encoding = backend.encode_prompt(prompt_text, system, run.specials_as_text,
                                         history=_exchanges(run, col.index))
        return encoding, prompt_text, backend.count_tokens(run.prompt, run.specials_as_text)

    def _accept_prompt(
        self, col: _Column, run: Run, prepared: tuple[PromptEncoding, str, int], tokenize_only: bool
    ) -> bool:
        """Record the prompt's tokens and anomalies; False when the column ends here."""
        encoding, prompt_text, user_tokens = prepared
        record = col.record
        count = max(len(encoding.token_ids), len(encoding.pieces))
        if count > MAX_PROMPT_TOKENS:  # a record keeps at most this many (a served tokenizer can send more)
            self._fail(col, f"the prompt is {count:,} tokens; a run keeps at most {MAX_PROMPT_TOKENS:,} "
                            "per column (shorten the prompt or the conversation)")
            return False
        record.prompt_token_ids = encoding.token_ids
        record.prompt_pieces = encoding.pieces
        if encoding.stop:  # the prompt's frame ends the answer too (a base model's new "Question:")
            col.scanner = StopScanner([*record.params.stop, *encoding.stop])
        record.user_text_tokens = user_tokens
        record.metrics.prompt_tokens = len(encoding.token_ids)
        record.anomalies = find_anomalies(
            encoding.pieces,
            user_chars=len(prompt_text),
            user_tokens=encoding.user_tokens,
            specials=encoding.special_literals,
            specials_as_text=run.specials_as_text,
            unk_id=encoding.unk_id,
            window=col.backend.context_window,
            max_new_tokens=record.params.max_new_tokens,
        )
        errors = [a.message for a in record.anomalies if a.severity == "error"]
        if errors:
            self._fail(col, "; ".join(errors))
            return False
        if tokenize_only:
            self._finish(col, "tokenized")
            return False
        return True

    def _pump(self, col: _Column, run: Run, events: queue.Queue, cancel: threading.Event) -> None:
        """A served model's column in its own thread: tokenizing (which may ask the server) and streaming.

        A slow or stalled server then never delays another column; the engine thread keeps the
        request timeout and ends the column (closing its HTTP stream) on Stop or the timeout. The
        column's own clock is read here, where each chunk arrives, not when the engine thread gets
        to it: its prompt's preparation, then the time since the request was sent (the wait for
        the engine to accept the prompt is not the column's work).
        """
        col.pumped = True
        col.go = threading.Event()
        backend = col.backend

        def work() -> None:
            began = time.perf_counter()
            try:
                prepared = self._prompt(col, backend, run)
            except Exception as exc:  # noqa: BLE001 - handed to the engine thread
                events.put(("unprepared", col.index, exc))
                return
            preparing_s = time.perf_counter() - began
            events.put(("prepared", col.index, prepared))
            col.go.wait()
            if col.done:
                return
            sent = time.perf_counter()
            try:
                steps = backend.stream(prepared[0], col.record.params, lambda: self._should_stop(col, cancel),
                                       col.info)
                for step in steps:
                    if col.done:
                        return
                    events.put(("step", col.index, (step, preparing_s + time.perf_counter() - sent)))
                events.put(("ended", col.index, preparing_s + time.perf_counter() - sent))
            except Exception as exc:  # noqa: BLE001 - handed to the engine thread, which ends the column
                events.put(("raised", col.index, exc))

        threading.Thread(target=work, name=f"stream-{col.index}", daemon=True).start()

    @staticmethod
    def _should_stop(col: _Column, cancel: threading.Event) -> bool:
        """Asked by the backend inside long work (between prefill chunks): Stop or the timeout."""
        return cancel.is_set() or time.perf_counter() - col.gen_started > col.record.params.timeout_s

    @staticmethod
    def _grounded_prompt(col: _Column, backend: Backend, run: Run) -> str:
        """The run's sources, numbered, fitted to this model's window by its own tokenizer."""
        if run.search is None or not run.search.results:
            return run.prompt
        system = run.column_system_prompt(col.record)
        empty = backend.encode_prompt("", system, history=_exchanges(run, col.index))
        frame = len(empty.token_ids) + GROUNDING_MARGIN_TOKENS  # the conversation so far, templated
        budget = backend.context_window - col.record.params.max_new_tokens - frame
        results = [SearchResult(s.title, s.url, s.snippet, s.text) for s in run.search.results]
        grounded = build_grounded_prompt(run.prompt, results, backend.count_tokens, budget)
        col.record.grounding_notice = grounded.notice
        col.sources = grounded.sources_used
        return grounded.text

    # -- the loop ----------------------------------------------------------

    def _loop(
        self, run: Run, columns: list[_Column], events: queue.Queue, cancel: threading.Event,
        tokenize_only: bool,
    ) -> Iterator[Event]:
        last_tick = time.perf_counter()
        while not all(c.done for c in columns):
            if cancel.is_set():
                for col in columns:
                    if not col.done:
                        self._finish(col, "cancelled", "stopped by the user; partial output kept")
                        yield from self._finished(col)
                break
            active = [c for c in columns if c.steps is not None and not c.done and not c.pumped
                      and not _sibling_loading(c, columns)]
            for kind, index, payload in _drain(events, wait=0 if active else 0.1):
                if kind in ("prepared", "unprepared", "step", "ended", "raised"):
                    yield from self._handle_stream_event(kind, columns[index], payload, run, tokenize_only,
                                                         cancel)
                else:
                    yield from self._handle_load_event(kind, columns[index], payload, run, tokenize_only,
                                                       cancel, events)
            for col in active:  # the fast path starts every column's step before any is collected
                _launch(col)
            shared: dict[tuple, float] = {}  # this round's step time of each batched group (_charge)
            for col in active:
                yield from self._step(col, cancel, shared)
            now = time.perf_counter()
            for col in columns:
                if not col.done and col.backend is None and now - col.load_started > self.load_timeout_s:
                    self._finish(col, "timeout", self._load_timeout_message())
                    yield from self._finished(col)
                elif col.pumped and not col.done and now - col.gen_started > col.record.params.timeout_s:
                    self._finish(col, "timeout", self._timeout_message(col.record))  # aborts the stream
                    yield from self._finished(col)
            if now - last_tick >= 1.0:
                last_tick = now
                for col in columns:
                    if not col.done and col.backend is None:
                        waited = now - col.load_started
                        yield Event("status", col.index, f"loading… {waited:.0f} s")

    def _load_timeout_message(self) -> str:
        return (f"loading took longer than {self.load_timeout_s:g} s "
                "(load timeout, PLAYGROUND_LOAD_TIMEOUT); the column gave up")

    def _release_late_loads(self, columns: list[_Column], events: queue.Queue) -> None:
        """Loads still running for columns that gave up: give their hold back when they land."""
        pending = [c for c in columns if c.spec is not None and not c.held and c.load_started]
        if not pending:
            return

        def drain() -> None:
            waiting = {c.index for c in pending}
            while waiting:
                kind, index, payload = events.get()
                if kind in ("loaded", "failed", "abandoned") and index in waiting:
                    waiting.discard(index)
                    if kind == "loaded":
                        self.pool.release(columns[index].spec, payload[0])

        threading.Thread(target=drain, name="release-late-loads", daemon=True).start()

    def _handle_load_event(
        self, kind: str, col: _Column, payload: object, run: Run, tokenize_only: bool,
        cancel: threading.Event, events: queue.Queue,
    ) -> Iterator[Event]:
        if col.done:
            if kind == "loaded":  # the column gave up (timeout, stop) while its model was loading
                self.pool.release(col.spec, payload[0])
                col.held = True  # released: nothing left to give back
            elif kind in ("failed", "abandoned"):
                col.held = True
            return
        if kind == "progress":
            yield Event("status", col.index, f"loading: {payload}")
        elif kind == "failed":
            col.held = True  # nothing was acquired
            self._fail(col, str(payload))
            yield from self._finished(col)
        elif kind == "abandoned":  # the loader gave up at a stage boundary: Stop or the load timeout
            col.held = True
            if cancel.is_set():
                self._finish(col, "cancelled", "stopped by the user while the model was loading")
            else:
                self._finish(col, "timeout", self._load_timeout_message())
            yield from self._finished(col)
        elif kind == "loaded":
            backend, already = payload
            self._on_loaded(col, backend, already, run, tokenize_only, cancel, events)
            if col.done:
                yield from self._finished(col)
            else:
                yield Event("started", col.index, self._started_message(col))

    def _started_message(self, col: _Column) -> str:
        m = col.record.metrics
        ident = col.record.identity
        how = "already loaded" if m.load_s == 0 else (
            f"loaded in {m.load_s:.1f} s" + (" from converted cache" if m.loaded_from_cache else "")
        )
        path = col.info.decode_path.split(":")[0]
        parts = (how, f"{ident.device} {ident.dtype}", path, "generating")  # the header badges say the format
        return " · ".join(p for p in parts if p)

    def _handle_stream_event(
        self, kind: str, col: _Column, payload: object, run: Run, tokenize_only: bool, cancel: threading.Event
    ) -> Iterator[Event]:
        """A served model's worker reported its prompt, a step, the end of its stream, or an exception."""
        if col.done:
            return
        if kind == "prepared":
            accepted = self._accept_prompt(col, run, payload, tokenize_only)
            col.go.set()  # the worker streams, or sees the column done and leaves
            if not accepted:
                yield from self._finished(col)
        elif kind == "unprepared":
            self._fail(col, f"could not build the prompt: {payload}")
            yield from self._finished(col)
        elif kind == "step":
            step, own_s = payload
            col.clock.reach(own_s)
            yield from self._accept(col, step)
        elif kind == "ended":
            col.clock.reach(payload)
            self._finish(col, self._ended_reason(col, cancel))
            yield from self._complete(col)
        else:
            self._finish(col, "error", self._failure(col, payload))
            yield from self._finished(col)

    def _failure(self, col: _Column, exc: object) -> str:
        if isinstance(exc, BackendError):
            return f"generation failed: {exc}"
        log.error("generation failed in column %d: %r", col.index, exc)
        return f"generation failed: {type(exc).__name__}: {exc}"

    def _step(self, col: _Column, cancel: threading.Event, shared: dict[tuple, float]) -> Iterator[Event]:
        """A local column's next token; the time of its own launch() and next() goes on its clock."""
        started = time.perf_counter()
        try:
            step = next(col.steps)
        except StopIteration:
            _charge(col, time.perf_counter() - started, shared)
            self._finish(col, self._ended_reason(col, cancel))
            yield from self._complete(col)
            return
        except Exception as exc:  # noqa: BLE001 - one model raising never stops the others
            if not isinstance(exc, BackendError):
                log.exception("generation failed in column %d", col.index)
            _charge(col, time.perf_counter() - started, shared)
            self._finish(col, "error", self._failure(col, exc))
            yield from self._finished(col)
            return
        _charge(col, time.perf_counter() - started, shared)
        yield from self._accept(col, step)

    def _accept(self, col: _Column, step: TokenStep) -> Iterator[Event]:
        """One new token (its time already on the column's clock): text (held back for stop strings),
        and whether the column ends."""
        record = col.record
        now = time.perf_counter()
        col.clock.token(now)
        step, cut = _bounded_step(step, MAX_OUTPUT_CHARS - col.step_chars)
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
        elif step.token_id in getattr(col.backend, "eos_ids", ()):
            reason = "eos"
        elif len(record.steps) >= record.params.max_new_tokens:
            reason = "length"
        if shown:
            yield Event("token", col.index, delta=shown)
        if reason:
            self._finish(col, reason)
            yield from self._complete(col)
        elif now - col.gen_started > record.params.timeout_s:
            self._finish(col, "timeout", self._timeout_message(record))
            yield from self._finished(col)

    def _ended_reason(self, col: _Column, cancel: threading.Event) -> str:
        """Why a backend's stream ended by itself: Stop or the timeout (asked mid-prefill), else length."""
        if cancel.is_set():
            col.record.error = "stopped by the user; partial output kept"
            return "cancelled"
        if time.perf_counter() - col.gen_started > col.record.params.timeout_s:
            col.record.error = self._timeout_message(col.record)
            return "timeout"
        return col.record.finish_reason or col.info.finish_reason or "length"

    @staticmethod
    def _timeout_message(record: ModelRun) -> str:
        return f"timed out after {record.params.timeout_s:g} s (request timeout); partial output kept"

    def _complete(self, col: _Column) -> Iterator[Event]:
        """A column that answered: its whole text first (`generated`, so the page shows it at once),
        then the attention pass, then `finished`. Stopped, timed-out and failed columns skip the pass."""
        if col.record.finish_reason not in ("eos", "length", "stop"):
            yield from self._finished(col)
            return
        if col.flushed:
            yield Event("token", col.index, delta=col.flushed)
            col.flushed = ""
        wants = col.capture and not col.backend.capabilities.remote and col.backend.capabilities.attention
        yield Event("generated", col.index, "capturing attention…" if wants else "")
        self._capture(col)
        yield Event("finished", col.index)

    def _finished(self, col: _Column) -> Iterator[Event]:
        """The column's last events: any held-back text, then `finished`."""
        if col.flushed:
            yield Event("token", col.index, delta=col.flushed)
            col.flushed = ""
        yield Event("finished", col.index)

    def _capture(self, col: _Column) -> None:
        """Attention over prompt + output, after generation (never during streaming)."""
        record = col.record
        if not col.capture:
            record.attention_note = "attention capture was off for this run"
            return
        if col.backend.capabilities.remote:
            record.attention_note = "attention: not available for served models"
            return
        if not col.backend.capabilities.attention:
            record.attention_note = "this model's backend cannot return attention weights"
            return
        specials = [i for i, p in enumerate(record.prompt_pieces) if p.special]
        specials += [len(record.prompt_token_ids) + i for i, s in enumerate(record.steps) if s.special]
        try:
            record.attention = col.backend.capture_attention(
                record.prompt_token_ids + record.output_token_ids, specials,
                self.attention.token_cap, self.attention.byte_budget,
            )
        except Exception as exc:  # noqa: BLE001 - a failed capture never loses the answer
            log.exception("attention capture failed in column %d", col.index)
            record.attention_note = f"attention capture failed: {self._public(str(exc))}"

    # -- endings -----------------------------------------------------------

    def _public(self, message: str) -> str:
        return redact_paths(message) if self.redact else message

    def _fail(self, col: _Column, message: str) -> None:
        self._finish(col, "error", message)

    def _finish(self, col: _Column, reason: str, message: str = "") -> None:
        if col.done:
            return
        record = col.record
        record.finish_reason = reason
        if message:
            record.error = message
        if record.error:
            record.error = _clip(self._public(record.error), MAX_MESSAGE_CHARS)
        if reason in ("cancelled", "timeout", "error") and not record.attention_note:
            record.attention_note = "no attention: this column did not finish"
        if col.pumped:
            _abort(col.info)  # the worker may be blocked reading: close its HTTP stream at once
            col.go.set()
        elif col.steps is not None:
            col.steps.close()
        if col.scanner is not None and not col.scanner.stopped:
            col.flushed = col.scanner.flush()
            record.text += col.flushed
        if col.sources:
            report = check_citations(record.text, col.sources)
            record.cited, record.invalid_citations = report.cited, report.invalid
        m: Metrics = record.metrics
        m.output_tokens = len(record.steps)  # a local model's steps are its tokenizer's ids
        m.output_tokens_from = "tokenizer" if col.backend is not None else ""
        self._memory(col)
        if col.info.decode_path:
            record.identity.decode_path = col.info.decode_path
            m.graph_capture_s = col.info.graph_capture_s
            m.workspace_bytes = col.info.workspace_bytes
        if col.pumped:
            self._served_figures(col)
        col.clock.fill(m, time.perf_counter())
        if col.held and col.backend is not None:
            self.pool.release(col.spec, col.backend)
        col.done = True

    @staticmethod
    def _served_figures(col: _Column) -> None:
        """What the server reported: its model name, usage, own speed; cost from the catalog's prices."""
        record, info, spec = col.record, col.info, col.spec
        m = record.metrics
        served = info.served_model or record.identity.served_model
        record.identity.served_model = _clip(served, MAX_NAME_CHARS)
        record.identity.fingerprint = _clip(info.fingerprint, MAX_NAME_CHARS)
        m.usage_prompt_tokens, m.usage_output_tokens = info.usage_prompt_tokens, info.usage_output_tokens
        m.output_tokens, m.output_tokens_from = _served_tokens(col)
        m.server_prompt_tok_s, m.server_decode_tok_s = info.server_prompt_tok_s, info.server_decode_tok_s
        prompt_tokens = info.usage_prompt_tokens or m.prompt_tokens
        output_tokens = info.usage_output_tokens or m.output_tokens
        m.cost_usd = (prompt_tokens * spec.price_in + output_tokens * spec.price_out) / 1e6
        record.capabilities.refused = list(info.dropped)
        if info.logprobs is False:
            record.capabilities.logprobs = False
            record.capabilities.logprobs_note = info.logprobs_note or "this server did not return logprobs"

    @staticmethod
    def _memory(col: _Column) -> None:
        """Weights + this column's KV cache (computed); the allocator peak only if nothing else ran."""
        m = col.record.metrics
        if col.backend is not None and m.prompt_tokens:
            m.kv_cache_bytes = col.backend.kv_cache_bytes(m.prompt_tokens + m.output_tokens)
        if col.activity is None:
            return
        alone = ACTIVITY.leave(col.activity)
        col.activity = None
        if col.probe is not None and alone:
            m.peak_memory_bytes = col.probe.peak_bytes()
            m.memory_kind = col.probe.kind


def _clip(text: str, limit: int) -> str:
    """A message or name from a server, at most `limit` characters (an ellipsis says it was cut)."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _bounded_step(step: TokenStep, room: int) -> tuple[TokenStep, bool]:
    """A step within the record's limits: its text cut to the room left in the column (True when cut),
    at most MAX_TOP_ALTERNATIVES alternatives of at most MAX_TOKEN_CHARS each. Only a served model
    can send more; a local model's steps pass unchanged."""
    cut = len(step.text) > room
    trimmed = len(step.top) > MAX_TOP_ALTERNATIVES or any(len(a.text) > MAX_TOKEN_CHARS for a in step.top)
    if cut or trimmed:
        top = [replace(alt, text=_clip(alt.text, MAX_TOKEN_CHARS)) for alt in step.top[:MAX_TOP_ALTERNATIVES]]
        step = replace(step, text=step.text[: max(room, 0)], top=top)
    return step, cut


def _exchanges(run: Run, column: int) -> list[tuple[str, str]]:
    """Column `column`'s own conversation so far: each earlier prompt with this column's answer."""
    return [(turn.prompt, turn.models[column].text) for turn in run.history]


def _sibling_loading(col: _Column, columns: list[_Column]) -> bool:
    """Another column of this model still loading: wait for it, so the two can decode as one batch."""
    return any(
        other is not col and not other.done and other.backend is None and other.spec is not None
        and col.spec is not None and other.spec.id == col.spec.id
        for other in columns
    )


def _launch(col: _Column) -> None:
    """Start a fast-path column's next step without waiting for it (errors surface at its next()).
    The time it takes is the column's own (on CPU the fast path runs the step right here)."""
    launch = getattr(col.steps, "launch", None)
    if launch is not None:
        started = time.perf_counter()
        launch()
        col.launch_s += time.perf_counter() - started


def _charge(col: _Column, seconds: float, shared: dict[tuple, float]) -> None:
    """Put one step's time on the column's clock: its next() (`seconds`) and this round's launch().

    Local columns take turns, so these durations are the column's own work, whatever its
    neighbours do. Two cases share work, and are attributed so:
    - Columns of one model and prompt batched on the fast path compute each step together: the
      first of them to be read waits for (or, on CPU, ran) the whole step, the others find it done.
      Each is charged the group's step time (the largest charge among them this round), since
      alone each would have taken about that long.
    - Steps of different models on the GPU fast path run at once on their own streams: a column
      read after another waits only for what is left of its own step. The overlapped part stays
      with the column read first, so the sum of the columns' time is the round's time; on CPU
      (and on the eager path) steps never overlap and each column's time is exactly its own.
    One-time costs met inside a step (graph capture, compiling) are kept apart by the clock."""
    seconds += col.launch_s
    col.launch_s = 0.0
    if "batched" in col.info.decode_path and col.spec is not None:
        key = (col.spec.id, tuple(col.record.prompt_token_ids))
        seconds = shared[key] = max(seconds, shared.get(key, 0.0))
    col.clock.spend(seconds, col.info.graph_capture_s)


def _served_tokens(col: _Column) -> tuple[int, str]:
    """A served column's output tokens and where the count came from: the server's usage, else its
    steps when they came with logprobs (one a token), else the column's tokenizer on the text.
    Never a count of chunks: a chunk without logprobs may hold several tokens."""
    info, record = col.info, col.record
    if info.usage_output_tokens:
        return info.usage_output_tokens, "server usage"
    if info.logprobs and record.steps:
        return len(record.steps), "logprobs"
    if not record.text or col.backend is None:
        return 0, ""
    return col.backend.count_tokens(record.text), "tokenizer count of the text"


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


def _abort(info: StreamInfo) -> None:
    if info.abort is not None:
        try:
            info.abort()
        except Exception:  # noqa: BLE001 - closing a stream that is already gone
            log.debug("closing a served stream failed", exc_info=True)
