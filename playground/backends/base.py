"""The contract every backend meets, and the errors it raises.

The engine only sees this protocol: a backend encodes a prompt into the exact
token ids the model will see, and streams TokenSteps for them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Protocol

from playground.record import GenerationParams, ModelIdentity, TokenStep


class BackendError(RuntimeError):
    """A failure with a message fit for the user (no traceback needed)."""


@dataclass(frozen=True)
class Capabilities:
    logprobs: bool = True
    top_alternatives: bool = True
    chat_template: bool = False


@dataclass(frozen=True)
class PromptEncoding:
    token_ids: list[int]
    prompt_format: str  # "chat template" | "raw completion"
    note: str = ""  # e.g. "no chat template: system prompt prepended as plain text"


class Backend(Protocol):
    identity: ModelIdentity
    capabilities: Capabilities
    load_s: float
    loaded_from_cache: bool

    @property
    def context_window(self) -> int: ...

    def encode_prompt(self, prompt: str, system_prompt: str) -> PromptEncoding: ...

    def decode(self, token_ids: list[int]) -> str: ...

    def stream(
        self, prompt_ids: list[int], params: GenerationParams, should_stop: Callable[[], bool]
    ) -> Iterator[TokenStep]: ...

    def memory_probe(self) -> MemoryProbe: ...


class MemoryProbe(Protocol):
    kind: str

    def sample(self) -> None: ...

    def rebase(self) -> None: ...

    def peak_bytes(self) -> int: ...
