"""A served model's ColumnStream: the chunks of one chat completion read as TokenSteps.

The engine reads a served column in a worker thread and ends it (Stop, the request timeout)
from its own thread, while that worker may be blocked reading the connection: close()
therefore closes the connection first, which is safe from any thread, and only then the
generator, when no thread is inside it. remote.py opens the request; this module reads it.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable, Iterator
from typing import Any

from playground.backends.base import BackendError, StreamInfo, StreamIteration
from playground.backends.keys import KeyBlanker
from playground.record import TokenAlt, TokenStep

log = logging.getLogger(__name__)
TOP_LOGPROBS = 5


class ServedStream(StreamIteration):
    """The ColumnStream of base.py for a served column (remote.RemoteBackend.open_stream makes it)."""

    def __init__(self) -> None:
        self.info = StreamInfo()
        self._steps: Iterator[TokenStep] = iter(())
        self._abort: Callable[[], None] | None = None
        self._closed = threading.Event()
        self._guard = threading.Lock()

    def attach(self, steps: Iterator[TokenStep]) -> None:
        """The steps to read (a generator that sends the request at its first step)."""
        self._steps = steps

    def opened(self, abort: Callable[[], None]) -> None:
        """The request is on the wire; `abort` closes its connection. Closed already: close it now."""
        with self._guard:
            self._abort = abort
        if self._closed.is_set():
            _call(abort)

    def next(self) -> TokenStep | None:
        if self._closed.is_set():
            return None
        try:
            return next(self._steps)
        except StopIteration:
            return None

    def close(self) -> None:
        self._closed.set()
        with self._guard:
            abort = self._abort
        if abort is not None:
            _call(abort)  # a worker blocked reading returns at once
        try:
            self._steps.close()  # type: ignore[attr-defined]
        except ValueError:  # another thread is inside it: the closed connection ends it there
            pass
        except AttributeError:  # nothing was attached
            pass

    def report(self) -> StreamInfo:
        return self.info


def _call(abort: Callable[[], None]) -> None:
    try:
        abort()
    except Exception:  # noqa: BLE001 - closing a connection that is already gone
        log.debug("closing a served stream failed", exc_info=True)


def read_chunks(stream: Any, info: StreamInfo, should_stop: Callable[[], bool],
                blank: KeyBlanker) -> Iterator[TokenStep]:
    """The stream's chunks as TokenSteps (one per logprobs entry, else one per text chunk); the
    server's model name, usage, timings and finish reason go into `info`, keys blanked."""
    for chunk in stream:
        info.served_model = blank.text(chunk.model or "") or info.served_model
        fingerprint = getattr(chunk, "system_fingerprint", None) or ""
        info.fingerprint = blank.text(fingerprint) or info.fingerprint
        if chunk.usage is not None:
            info.usage_prompt_tokens = chunk.usage.prompt_tokens or 0
            info.usage_output_tokens = chunk.usage.completion_tokens or 0
        _read_timings(chunk, info)
        for choice in chunk.choices or []:
            yield from _choice_steps(choice, info)
            if choice.finish_reason:
                info.finish_reason = {"stop": "eos", "length": "length"}.get(
                    choice.finish_reason, blank.text(str(choice.finish_reason)))
        if should_stop():
            return
    if not info.finish_reason and not should_stop():
        raise BackendError("the server closed the stream before finishing (no finish reason came); "
                           "partial output kept")


def _choice_steps(choice: Any, info: StreamInfo) -> Iterator[TokenStep]:
    content = (choice.delta.content if choice.delta else None) or ""
    entries = getattr(choice.logprobs, "content", None) if choice.logprobs else None
    if entries:
        info.logprobs = True
        # vLLM sends the stop token's logprob in the last chunk with no text: it ended the answer
        # and is not part of it (shown in Probabilities as a control token, never in the answer).
        stop_token = not content and choice.finish_reason == "stop"
        for entry in entries:
            top = [TokenAlt(-1, alt.token, _finite(alt.logprob)) for alt in (entry.top_logprobs or [])]
            top.sort(key=lambda alt: alt.logprob, reverse=True)
            yield TokenStep(token_id=-1, text="" if stop_token else entry.token,
                            logprob=_finite(entry.logprob), top=top[:TOP_LOGPROBS], special=stop_token)
        return
    if content:
        if info.logprobs is None:
            info.logprobs = False
            info.logprobs_note = info.logprobs_note or "this server did not return logprobs"
        yield TokenStep(token_id=-1, text=content, logprob=0.0)


def _finite(value: float | None) -> float:
    """Servers send -inf (or nothing) for impossible alternatives: the record keeps finite numbers."""
    if value is None or not math.isfinite(value):
        return -1e4
    return min(float(value), 0.0)


def _read_timings(chunk: Any, info: StreamInfo) -> None:
    """llama.cpp's `timings` (tokens per second of prompt and decode), when the server sends them."""
    timings = (getattr(chunk, "model_extra", None) or {}).get("timings")
    if isinstance(timings, dict):
        info.server_prompt_tok_s = float(timings.get("prompt_per_second") or 0.0)
        info.server_decode_tok_s = float(timings.get("predicted_per_second") or 0.0)
