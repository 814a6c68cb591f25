"""One column while its run is live: its state, an enum with the transitions it may take.

A column is WAITING until its loader thread starts, LOADING until the pool hands it a
model, then, for a local model, DECODING (one step each engine round); for a served one,
PREPARING (its worker builds the prompt, which may ask the server) and then STREAMING (its
worker reads the server's stream). Every path ends in ENDED, the only state that ends it.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from enum import Enum

from playground.backends.base import AllocatorProbe, Backend, ColumnStream, StreamInfo
from playground.catalog import ModelSpec
from playground.clocks import ColumnClock
from playground.record import ModelRun
from playground.streaming import IncrementalDecoder, StopScanner


class ColumnState(Enum):
    WAITING = "waiting"
    LOADING = "loading"
    PREPARING = "preparing"
    DECODING = "decoding"
    STREAMING = "streaming"
    ENDED = "ended"


TRANSITIONS: dict[ColumnState, frozenset[ColumnState]] = {
    ColumnState.WAITING: frozenset({ColumnState.LOADING, ColumnState.ENDED}),
    ColumnState.LOADING: frozenset({ColumnState.PREPARING, ColumnState.DECODING, ColumnState.ENDED}),
    ColumnState.PREPARING: frozenset({ColumnState.STREAMING, ColumnState.ENDED}),
    ColumnState.DECODING: frozenset({ColumnState.ENDED}),
    ColumnState.STREAMING: frozenset({ColumnState.ENDED}),
    ColumnState.ENDED: frozenset(),
}


class IllegalTransition(RuntimeError):
    """A move the state machine does not allow: a bug in the engine, never a user's input."""


@dataclass
class Column:
    """Book-keeping for one column while the run is live."""

    index: int
    record: ModelRun
    spec: ModelSpec | None = None
    state: ColumnState = ColumnState.WAITING
    backend: Backend | None = None  # held from the pool from the moment it is set until the column ends
    stream: ColumnStream | None = None
    load_landed: bool = False  # its loader thread reported (loaded, failed or abandoned)
    probe: AllocatorProbe | None = None
    activity: int | None = None  # token in the process-wide activity register while generating
    cache_tokens: int = 0  # the KV cache the memory pre-flight plans for (prompt, roughly, + new tokens)
    decoder: IncrementalDecoder | None = None  # None for served models: their steps carry their text
    go: threading.Event = field(default_factory=threading.Event)  # a served column's worker may stream
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

    def move(self, state: ColumnState) -> None:
        """Take a transition of TRANSITIONS (IllegalTransition otherwise)."""
        if state not in TRANSITIONS[self.state]:
            raise IllegalTransition(f"column {self.index}: {self.state.value} -> {state.value}")
        self.state = state

    @property
    def done(self) -> bool:
        return self.state is ColumnState.ENDED

    @property
    def served(self) -> bool:
        """Its stream is read by a worker thread (PREPARING or STREAMING), not in the engine's turns."""
        return self.state in (ColumnState.PREPARING, ColumnState.STREAMING) or (
            self.backend is not None and self.backend.capabilities.remote)

    @property
    def info(self) -> StreamInfo:
        """Its stream's report (empty before the stream opens)."""
        return self.stream.report() if self.stream is not None else StreamInfo()
