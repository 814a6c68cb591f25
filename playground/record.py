"""The run record: everything a run produced, as plain dataclasses.

Every panel is drawn from these objects (never from live models), so a record
serialized to JSON and read back replays the same panels. Bump SCHEMA_VERSION
when a field changes meaning; readers refuse versions newer than their own.
"""

from __future__ import annotations

import dataclasses
import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

SCHEMA_VERSION = 1


@dataclass
class GenerationParams:
    """Per-column decoding parameters. temperature 0 means greedy."""

    max_new_tokens: int = 256
    temperature: float = 0.0
    top_p: float = 1.0
    top_k: int = 0
    repetition_penalty: float = 1.0
    seed: int = 0
    stop: list[str] = field(default_factory=list)
    timeout_s: float = 300.0

    @property
    def greedy(self) -> bool:
        return self.temperature == 0.0


@dataclass
class ModelIdentity:
    """What exactly answered: enough to tell two runs of 'the same' model apart."""

    catalog_id: str
    name: str
    source: str  # "gguf" | "hub" | "dir"
    location: str  # file path, hub id or directory
    sha256: str = ""  # of the GGUF file, when there is one
    revision: str = ""
    dtype: str = ""
    device: str = ""
    context_window: int = 0
    prompt_format: str = ""  # "chat template" | "raw completion"
    libraries: dict[str, str] = field(default_factory=dict)


@dataclass
class TokenAlt:
    token_id: int
    text: str
    logprob: float


@dataclass
class TokenStep:
    """One generated token: its id, the text it added, and how likely it was."""

    token_id: int
    text: str
    logprob: float
    top: list[TokenAlt] = field(default_factory=list)


@dataclass
class Metrics:
    load_s: float = 0.0
    loaded_from_cache: bool = False
    prompt_tokens: int = 0
    output_tokens: int = 0
    ttft_s: float = 0.0
    decode_tok_s: float = 0.0
    total_s: float = 0.0
    peak_memory_bytes: int = 0
    memory_kind: str = ""  # "cuda allocator peak" | "process RSS growth"


@dataclass
class ModelRun:
    """One column of a run."""

    column: int
    identity: ModelIdentity
    params: GenerationParams
    prompt_token_ids: list[int] = field(default_factory=list)
    steps: list[TokenStep] = field(default_factory=list)
    text: str = ""
    finish_reason: str = ""  # eos | stop | length | cancelled | timeout | error
    error: str = ""
    metrics: Metrics = field(default_factory=Metrics)

    @property
    def output_token_ids(self) -> list[int]:
        return [s.token_id for s in self.steps]


@dataclass
class Run:
    prompt: str
    system_prompt: str = ""
    models: list[ModelRun] = field(default_factory=list)
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    created_at: float = field(default_factory=time.time)
    schema_version: int = SCHEMA_VERSION

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self, indent: int | None = None) -> str:
        return json.dumps(self.to_dict(), indent=indent, ensure_ascii=False)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Run:
        version = data.get("schema_version")
        if not isinstance(version, int) or version > SCHEMA_VERSION or version < 1:
            raise ValueError(
                f"unsupported run record schema version {version!r} "
                f"(this playground reads versions 1..{SCHEMA_VERSION})"
            )
        return _build(cls, data)


def _build(cls: type, data: Any) -> Any:
    """Rebuild nested dataclasses from dicts, strictly (unknown keys are errors)."""
    if not isinstance(data, dict):
        raise ValueError(f"expected an object for {cls.__name__}, got {type(data).__name__}")
    hints = {f.name: f for f in dataclasses.fields(cls)}
    unknown = set(data) - set(hints)
    if unknown:
        raise ValueError(f"unknown fields for {cls.__name__}: {sorted(unknown)}")
    kwargs = {}
    for name, value in data.items():
        kwargs[name] = _convert(hints[name].type, value)
    return cls(**kwargs)


_NESTED: dict[str, type] = {}


def _convert(type_name: Any, value: Any) -> Any:
    name = type_name if isinstance(type_name, str) else getattr(type_name, "__name__", "")
    if name in _NESTED:
        return _build(_NESTED[name], value)
    if name.startswith("list[") and name[5:-1] in _NESTED:
        if not isinstance(value, list):
            raise ValueError(f"expected a list for {name}")
        return [_build(_NESTED[name[5:-1]], v) for v in value]
    return value


_NESTED.update(
    {c.__name__: c for c in (GenerationParams, ModelIdentity, TokenAlt, TokenStep, Metrics, ModelRun)}
)
