"""The contract every backend meets, and the errors it raises.

The engine only sees these protocols: a Backend encodes a prompt into the exact token ids
the model will see and opens a ColumnStream for them; the stream hands out TokenSteps and,
at any time, a StreamInfo report of what it learned. Every member is part of the contract
(BackendDefaults gives the ones most backends leave as they are), so the engine and the
pool call them directly and never probe for optional methods.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from playground.inspect.tokens import SpecialLiteral
from playground.record import (
    AttentionCapture,
    ColumnCapabilities,
    GenerationParams,
    ModelIdentity,
    TokenPiece,
    TokenStep,
)


class BackendError(RuntimeError):
    """A failure with a message fit for the user (no traceback needed)."""


class LoadCancelled(BackendError):
    """A load abandoned at a stage boundary (Stop, or the load timeout); nothing was registered."""


@dataclass(frozen=True)
class Capabilities:
    logprobs: bool = True
    top_alternatives: bool = True
    chat_template: bool = False
    attention: bool = True
    remote: bool = False  # a served model: streamed from a worker thread, text from the steps themselves


@dataclass
class StreamInfo:
    """A ColumnStream's report: what it learned while streaming, beyond the tokens (served models
    fill most of it). Only the stream writes it; the engine reads it (ColumnStream.report)."""

    served_model: str = ""
    fingerprint: str = ""
    usage_prompt_tokens: int = 0
    usage_output_tokens: int = 0
    server_prompt_tok_s: float = 0.0
    server_decode_tok_s: float = 0.0
    logprobs: bool | None = None  # None until known
    logprobs_note: str = ""
    finish_reason: str = ""  # as the server said: eos | length | ...
    dropped: list[str] = field(default_factory=list)  # options the server refused (then sent without)
    elapsed_s: float = 0.0
    decode_path: str = ""  # local models: "fast path: ..." or "eager: <why>"
    graph_capture_s: float = 0.0  # the fast path's graph capture, when this column's run paid for it
    workspace_bytes: int = 0  # the fast path: its workspace's static cache and buffers (shared by a group)


Exchange = tuple[str, str]  # an earlier turn of a conversation: (the user's prompt, this model's answer)


def chat_messages(prompt: str, system_prompt: str, history: Sequence[Exchange] = ()) -> list[dict[str, str]]:
    """The conversation as chat messages: system, then each earlier exchange, then the new prompt."""
    messages = [{"role": "system", "content": system_prompt}] if system_prompt else []
    for user, answer in history:
        messages += [{"role": "user", "content": user}, {"role": "assistant", "content": answer}]
    return [*messages, {"role": "user", "content": prompt}]


@dataclass(frozen=True)
class PromptEncoding:
    token_ids: list[int]
    prompt_format: str  # "chat template" | "question/answer frame" | "raw completion"
    note: str = ""  # e.g. "no chat template: system prompt prepended as plain text"
    pieces: list[TokenPiece] = field(default_factory=list)
    user_tokens: int = 0  # the user's prompt alone
    special_literals: list[SpecialLiteral] = field(default_factory=list)
    unk_id: int | None = None
    stop: list[str] = field(default_factory=list)  # stop strings the prompt's frame adds (a new "Question:")
    messages: list[dict[str, str]] = field(default_factory=list)  # the chat sent to a served model


class ColumnStream(Protocol):
    """One column's answer as the engine reads it, whichever backend makes it.

    launch() starts the next step without waiting for it, so the engine can start every column's
    step before it collects any (the GPU fast path overlaps them; elsewhere it does nothing).
    next() returns that step, or None once the answer ended (its reason is in the report).
    close() ends the stream now; it may be called from another thread while next() blocks (a
    served stream closes its connection). report() is the live StreamInfo.
    """

    def launch(self) -> None: ...

    def next(self) -> TokenStep | None: ...

    def close(self) -> None: ...

    def report(self) -> StreamInfo: ...


class StreamIteration:
    """A ColumnStream read with a for loop (tests and benches); launch() does nothing by default."""

    def __iter__(self) -> StreamIteration:
        return self

    def __next__(self) -> TokenStep:
        step = self.next()  # type: ignore[attr-defined]
        if step is None:
            raise StopIteration
        return step

    def launch(self) -> None:
        return None


class Backend(Protocol):
    identity: ModelIdentity
    capabilities: Capabilities
    load_s: float  # its own load time: not the wait for another model's load
    loaded_from_cache: bool
    eos_ids: frozenset[int] | set[int]  # ids that end an answer (a served model's server decides: empty)
    served_note: str  # a served model's word on what its columns lack ("served by vLLM over 4 GPUs: ...")

    @property
    def context_window(self) -> int: ...

    def encode_prompt(
        self, prompt: str, system_prompt: str, specials_as_text: bool = False,
        history: Sequence[Exchange] = (),
    ) -> PromptEncoding: ...

    def count_tokens(self, text: str, specials_as_text: bool = False) -> int: ...

    def decode(self, token_ids: list[int]) -> str: ...

    def open_stream(
        self, encoding: PromptEncoding, params: GenerationParams, should_stop: Callable[[], bool],
        batch: object = None,
    ) -> ColumnStream:
        """`should_stop` is asked inside long work (between prefill chunks); streams opened with the
        same `batch` token (their run) and prompt may decode as one batch."""
        ...

    @property
    def weights_bytes(self) -> int: ...

    def workspace_bytes(self) -> int:
        """Memory held beside the weights (the fast path's workspaces), counted in the pool's budget."""
        ...

    def column_capabilities(self) -> ColumnCapabilities:
        """What a column on this backend gives, said plainly for the panels."""
        ...

    def failure(self, wait_s: float = 0.0) -> str:
        """Why this backend can no longer serve ('' while it can): a managed server that died."""
        ...

    def close(self) -> None:
        """Release what it holds besides memory (a managed server's process) when unloaded."""
        ...

    def kv_cache_bytes(self, tokens: int) -> int: ...

    def allocator_probe(self) -> AllocatorProbe | None: ...

    def capture_attention(
        self, token_ids: list[int], special_positions: list[int], token_cap: int, byte_budget: int
    ) -> AttentionCapture: ...


class BackendDefaults:
    """The contract's members most backends leave as they are (a backend inherits them)."""

    load_s: float = 0.0
    loaded_from_cache: bool = False
    eos_ids: frozenset[int] = frozenset()
    served_note: str = ""

    def workspace_bytes(self) -> int:
        return 0

    def column_capabilities(self) -> ColumnCapabilities:
        return ColumnCapabilities()

    def failure(self, wait_s: float = 0.0) -> str:  # noqa: ARG002 - the contract's signature
        return ""

    def close(self) -> None:
        return None


class AllocatorProbe(Protocol):
    """A device allocator's peak since the probe was made (process-wide: trusted only when alone)."""

    kind: str

    def peak_bytes(self) -> int: ...
