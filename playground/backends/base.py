"""The contract every backend meets, and the errors it raises.

The engine only sees this protocol: a backend encodes a prompt into the exact
token ids the model will see, and streams TokenSteps for them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from playground.inspect.tokens import SpecialLiteral
from playground.record import AttentionCapture, GenerationParams, ModelIdentity, TokenPiece, TokenStep


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
    """What a backend learned while streaming, beyond the tokens (served models fill most of it)."""

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
    abort: Callable[[], None] | None = None  # ends the HTTP stream at once (Stop, timeout)
    batch: object = None  # local columns with the same token (their run) and prompt may decode as one batch
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


class Backend(Protocol):
    identity: ModelIdentity
    capabilities: Capabilities
    load_s: float
    loaded_from_cache: bool

    @property
    def context_window(self) -> int: ...

    def encode_prompt(
        self, prompt: str, system_prompt: str, specials_as_text: bool = False,
        history: Sequence[Exchange] = (),
    ) -> PromptEncoding: ...

    def count_tokens(self, text: str, specials_as_text: bool = False) -> int: ...

    def decode(self, token_ids: list[int]) -> str: ...

    def stream(
        self, encoding: PromptEncoding, params: GenerationParams, should_stop: Callable[[], bool],
        info: StreamInfo | None = None,
    ) -> Iterator[TokenStep]: ...

    @property
    def weights_bytes(self) -> int: ...

    def kv_cache_bytes(self, tokens: int) -> int: ...

    def allocator_probe(self) -> AllocatorProbe | None: ...

    def capture_attention(
        self, token_ids: list[int], special_positions: list[int], token_cap: int, byte_budget: int
    ) -> AttentionCapture: ...


class AllocatorProbe(Protocol):
    """A device allocator's peak since the probe was made (process-wide: trusted only when alone)."""

    kind: str

    def peak_bytes(self) -> int: ...
