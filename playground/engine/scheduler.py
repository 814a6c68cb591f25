"""Run one prompt on N models: load in the background, decode round-robin, stream events.

The Engine validates a request, opens a column per model (column.py: its state machine),
starts each column's loader thread (loading.py) and hands the run to its loop (rounds.py),
which streams served columns from their own workers (served.py) and steps local ones in turn.
A column that fails, times out or raises ends with an error in its own record (endings.py);
the others go on. Each column keeps its own clock (playground/clocks.py, figures.py): taking
turns must not make a fast model's figures count a slow neighbour's steps.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Iterator
from dataclasses import replace

from playground.backends.pool import ModelPool
from playground.backends.registry import source as registered_source
from playground.catalog import Catalog, CatalogError
from playground.engine.column import Column
from playground.engine.endings import Endings
from playground.engine.loading import release_late_loads, start_loader
from playground.engine.prompting import exchanges
from playground.engine.rounds import Round
from playground.params import validate_params
from playground.record import ModelIdentity, ModelRun, Run
from playground.requests import AttentionLimits, ColumnRequest, Event, RunRequest, validate_request
from playground.served import check_served_url

log = logging.getLogger(__name__)

DEFAULT_LOAD_TIMEOUT_S = 900.0


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
        self.endings = Endings(pool, self.attention, redact)

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
        self, run: Run, columns: list[Column], cancel: threading.Event, tokenize_only: bool = False
    ) -> Iterator[Event]:
        events: queue.Queue[tuple[str, int, object]] = queue.Queue()
        started = time.perf_counter()
        for col in columns:
            if not col.done:
                start_loader(col, self.pool, self.load_timeout_s, events, cancel)
        try:
            yield Event("status", message="started")
            for col in columns:
                if col.done:
                    yield Event("finished", col.index)
            loop = Round(self.endings, self.load_timeout_s, run, columns, events, cancel, tokenize_only)
            yield from loop.loop()
            run.wall_s = time.perf_counter() - started
            yield Event("done")
        finally:  # also when the consumer goes away mid-run (a closed page): end and release everything
            for col in columns:
                if not col.done:
                    self.endings.finish(col, "cancelled", "the run was abandoned before it finished")
            release_late_loads(self.pool, columns, events)

    def _open_column(self, index: int, request: ColumnRequest, run: Run) -> Column:
        identity = ModelIdentity(catalog_id=request.model, name=request.model, source="", location="",
                                 reference=request.model)
        record = ModelRun(column=index, identity=identity, params=request.params,
                          system_prompt=request.system_prompt)
        run.models.append(record)
        col = Column(index, record)
        chars = len(run.prompt) + sum(len(user) + len(answer) for user, answer in exchanges(run, index))
        col.cache_tokens = chars // 2 + request.params.max_new_tokens  # <= 2 characters a token
        problems = validate_params(request.params)
        try:
            col.spec = self.catalog.get(request.model, allow_any=self.allow_any_model)
            typed_url = (registered_source(col.spec.source).server_entry
                         and request.model.strip() not in self.catalog.specs)
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
            self.endings.finish(col, "error", "; ".join(problems))
        return col

