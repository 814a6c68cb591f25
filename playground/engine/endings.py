"""How a column ends: its stream closed, its text and figures settled, its model given back;
and, for a column that answered, the attention pass after it.

Every ending of every kind (an answer, Stop, a timeout, an error, a run abandoned by its page)
goes through Endings.finish, so nothing a column holds outlives it.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from playground.backends.pool import ModelPool
from playground.engine import figures
from playground.engine.column import Column, ColumnState
from playground.engine.prompting import record_citations
from playground.limits import MAX_MESSAGE_CHARS
from playground.record import Metrics
from playground.redact import redact_paths
from playground.requests import AttentionLimits

log = logging.getLogger(__name__)


@dataclass
class Endings:
    """redact=True removes server paths from the messages stored in records (they are shown and shared)."""

    pool: ModelPool
    attention: AttentionLimits
    redact: bool = False

    def public(self, message: str) -> str:
        """A message as the record keeps it: server paths removed when the engine serves a team."""
        return redact_paths(message) if self.redact else message

    def finish(self, col: Column, reason: str, message: str = "") -> None:
        """End the column: close its stream, settle its text and figures, give its model back."""
        if col.done:
            return
        record = col.record
        record.finish_reason = reason
        if message:
            record.error = message
        if record.error:
            record.error = figures.clip(self.public(record.error), MAX_MESSAGE_CHARS)
        if reason in ("cancelled", "timeout", "error") and not record.attention_note:
            record.attention_note = "no attention: this column did not finish"
        served = col.served
        if col.stream is not None:
            col.stream.close()  # a served worker blocked reading returns at once
        col.go.set()  # a served worker waiting to stream sees the column ended and leaves
        if col.scanner is not None and not col.scanner.stopped:
            col.flushed = col.scanner.flush()
            record.text += col.flushed
        record_citations(record, col.sources)
        m: Metrics = record.metrics
        m.output_tokens = len(record.steps)  # a local model's steps are its tokenizer's ids
        m.output_tokens_from = "tokenizer" if col.backend is not None else ""
        figures.memory(col)
        info = col.info
        if info.decode_path:
            record.identity.decode_path = info.decode_path
            m.graph_capture_s = info.graph_capture_s
            m.workspace_bytes = info.workspace_bytes
        if served and col.backend is not None:
            figures.served_figures(col)
        col.clock.fill(m, time.perf_counter())
        if col.backend is not None:
            self.pool.release(col.spec, col.backend)
        col.move(ColumnState.ENDED)

    def capture(self, col: Column) -> None:
        """Attention over prompt + output, after generation (never during streaming)."""
        record, backend = col.record, col.backend
        if not col.capture:
            record.attention_note = "attention capture was off for this run"
            return
        if backend.capabilities.remote:
            record.attention_note = backend.served_note or "attention: not available for served models"
            return
        if not backend.capabilities.attention:
            record.attention_note = "this model's backend cannot return attention weights"
            return
        specials = [i for i, p in enumerate(record.prompt_pieces) if p.special]
        specials += [len(record.prompt_token_ids) + i for i, s in enumerate(record.steps) if s.special]
        try:
            record.attention = backend.capture_attention(
                record.prompt_token_ids + record.output_token_ids, specials,
                self.attention.token_cap, self.attention.byte_budget,
            )
        except Exception as exc:  # noqa: BLE001 - a failed capture never loses the answer
            log.exception("attention capture failed in column %d", col.index)
            record.attention_note = f"attention capture failed: {self.public(str(exc))}"


