"""A column's own clock: the time of its own work, apart from the wall clock of the run.

Local columns take turns in the engine's thread (one step each per round) and served columns
stream in their own threads, so the wall clock from a column's start to its first token counts
its neighbours' steps too: beside a slow model, a fast one looked slow (issue 21). The own clock
adds only what the column itself did:

- a local model: the time it took to build and tokenize its prompt, then the duration of each of
  its own steps (`launch()` + `next()`: its prefill is inside its first `next()`);
- a served model: the wall time of its own worker thread, where each chunk arrives: building its
  prompt (which may ask the server to tokenize), then from sending the request to each chunk.

One-time costs met inside a step (the fast path's CUDA graph capture, and compiling with
PLAYGROUND_COMPILE=1) are kept apart, never in TTFT or total; loading is measured by the loader.
The wall clock (from the column's start, neighbours included) is kept beside it.
"""

from __future__ import annotations

from dataclasses import dataclass

from playground.record import Metrics

OWN_CLOCK = "own"  # Metrics.clock of records whose TTFT, total and tok/s count the column's own time


@dataclass
class ColumnClock:
    """Own time so far, its readings at the first and latest token, and the wall clock's."""

    started_at: float = 0.0  # wall clock (perf_counter) when the column's own work began; 0: never
    own_s: float = 0.0  # its own work so far, one-time costs excluded
    one_time_s: float = 0.0  # one-time costs met inside its steps (graph capture, compile)
    first_token_s: float | None = None  # own_s when its first token came
    last_token_s: float = 0.0  # own_s at its latest token
    first_token_at: float = 0.0  # wall clock of its first token

    def start(self, now: float) -> None:
        self.started_at = now

    def spend(self, seconds: float, one_time_so_far: float = 0.0) -> None:
        """Add `seconds` of own work. `one_time_so_far` is the one-time cost the column has met up
        to now (a running total, as the backend reports it): the part not yet kept apart is taken
        out of these seconds, so a capture paid inside the first step never counts as decoding."""
        new_one_time = min(max(one_time_so_far - self.one_time_s, 0.0), seconds)
        self.one_time_s += new_one_time
        self.own_s += seconds - new_one_time

    def reach(self, own_s: float) -> None:
        """A served column's reading, taken in its worker thread (its own wall time is its own work)."""
        self.own_s = max(self.own_s, own_s)

    def token(self, now: float) -> None:
        """A token arrived: the first one fixes TTFT; every one moves the end of decoding."""
        if self.first_token_s is None:
            self.first_token_s = self.own_s
            self.first_token_at = now
        self.last_token_s = self.own_s

    def fill(self, m: Metrics, now: float) -> None:
        """Write TTFT, total and decode speed (own time), and the wall figures, into the metrics.
        Call after m.output_tokens is known; a column that never started keeps zeros."""
        if not self.started_at:
            return
        m.clock = OWN_CLOCK
        m.total_s = self.own_s
        m.wall_total_s = now - self.started_at
        if self.first_token_s is not None:
            m.ttft_s = self.first_token_s
            m.wall_ttft_s = self.first_token_at - self.started_at
        decoding = self.last_token_s - (self.first_token_s or 0.0)
        if m.output_tokens > 1 and decoding > 0:
            m.decode_tok_s = (m.output_tokens - 1) / decoding
