"""The run record: everything a run produced, as plain dataclasses.

Every panel is drawn from these objects (never from live models), so a record
serialized to JSON and read back replays the same panels. Bump SCHEMA_VERSION
when a field changes meaning; readers refuse versions newer than their own.
"""

from __future__ import annotations

import dataclasses
import json
import math
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

SCHEMA_VERSION = 9  # 2: token pieces, anomalies; 3: attention; 4: search snapshot;
# 5: model reference, weights + KV-cache memory; 6: served models (what a column has, server figures);
# 7: decode path (fast path or eager) and graph capture time; 8: conversations (earlier turns, the
# parent run) and a system prompt per column; 9: per-column clocks (TTFT, total and tok/s count the
# column's own time, Metrics.clock says so; the wall figures beside them; the run's wall time) and
# where the output token count came from
# (older files load: every field added since has a default)
SUPPORTED_VERSIONS = range(1, SCHEMA_VERSION + 1)


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
    prompt_format: str = ""  # "chat template" | "question/answer frame" | "raw completion"
    libraries: dict[str, str] = field(default_factory=dict)
    reference: str = ""  # what the user picked (catalog id, path or hub id): Run again loads this
    served_model: str = ""  # a served model's name as its server reports it
    fingerprint: str = ""  # the server's system_fingerprint, when it sends one
    engine: str = ""  # "transformers" | "llama.cpp (managed)" | "openai-compatible server"
    decode_path: str = ""  # local models: "fast path: CUDA graph" | "eager: <why not>" (numerics differ)


@dataclass
class ColumnCapabilities:
    """What a column's backend could give; panels say plainly what a column lacks.

    token_ids: "exact" (the ids the model was fed), "server" (the server's tokenizer on the
    template it applies), "local tokenizer" (a tokenizer named in the catalog: may differ
    from the server's), or "approximate" (text pieces, no ids).
    """

    token_ids: str = "exact"
    token_ids_note: str = ""  # why, when not exact
    logprobs: bool = True
    logprobs_note: str = ""
    attention: bool = True
    memory: bool = True
    refused: list[str] = field(default_factory=list)  # options the server refused; the run went without

    def lacks(self) -> list[str]:
        """What the column lacks, said plainly (the page's header and the reports show these lines)."""
        lines = []
        if self.token_ids != "exact":
            why = f" ({self.token_ids_note})" if self.token_ids_note else ""
            lines.append(f"tokens: {self.token_ids}{why}")
        if not self.logprobs:
            lines.append(f"token probabilities: {self.logprobs_note or 'not returned'}")
        if self.refused:
            lines.append(f"the server refused {', '.join(self.refused)}; ran without")
        return lines


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
    special: bool = False  # a control token (EOS, end of turn, ...)


@dataclass
class TokenPiece:
    """One prompt token as the model saw it: id, its text, its vocabulary form, and whether it is control."""

    token_id: int
    text: str  # decoded text of this token alone ("\ufffd" where it is part of a multi-byte character)
    raw: str  # the vocabulary entry (e.g. "Ġthe", "▁the", "<0x0A>", "<|im_end|>")
    special: bool = False


@dataclass
class Anomaly:
    """Something about a model's input that looks wrong, found before generating."""

    kind: str  # special_literal | blowup | repeat_run | byte_fallback | context_overflow
    message: str
    severity: str = "warning"  # warning | error
    position: int = -1  # index of the first prompt token concerned, for "jump to anomaly"


@dataclass
class AttentionCapture:
    """Attention weights of chosen layers over the last `tokens` positions, float16, base64.

    `data` holds an array of shape [len(layers), heads, tokens, tokens]: row q,
    column k is how much query position start+q attended to key position start+k.
    The sink figures cover every layer, over full rows (keys before the window too).
    """

    layers: list[int]
    heads: int
    start: int
    tokens: int
    data: str
    num_layers: int = 0
    sink_first: list[float] = field(default_factory=list)  # per layer: mean mass on the first token
    sink_special: list[float] = field(default_factory=list)  # per layer: mean mass on control tokens
    notice: str = ""  # e.g. "windowed: last 256 of 900 tokens (byte budget)"


@dataclass
class Source:
    """One search result as every model received it, numbered by its place in the snapshot."""

    title: str
    url: str
    snippet: str
    text: str = ""  # extracted page text, when fetched


@dataclass
class SearchSnapshot:
    """The one search of a run, given identically to every model (and reused by Run again)."""

    query: str
    provider: str  # web | local
    created_at: float
    results: list[Source] = field(default_factory=list)
    notice: str = ""  # e.g. "no results", "page text not fetched for [2]: timeout"


@dataclass
class Metrics:
    """A column's figures. With clock "own" (schema 9 on), TTFT, total and tok/s count the column's own
    time (playground/clocks.py): its prompt, prefill and steps, never its neighbours' steps nor
    one-time costs (load_s, graph_capture_s). Records with clock "" are older: their TTFT and total
    were wall time from the column's start, neighbours' steps included."""

    load_s: float = 0.0
    loaded_from_cache: bool = False
    prompt_tokens: int = 0
    output_tokens: int = 0  # from the column's tokenizer or the server's usage (output_tokens_from says)
    ttft_s: float = 0.0  # own time from the column's start (its prompt built) to its first token
    decode_tok_s: float = 0.0  # tokens after the first / own time from the first token to the last
    total_s: float = 0.0  # own time from the column's start to its end (the attention pass excluded)
    peak_memory_bytes: int = 0  # allocator peak, only when no other column or run overlapped (else 0)
    memory_kind: str = ""  # what peak_memory_bytes measured, e.g. "cuda allocator peak"
    weights_bytes: int = 0  # the model's parameters and buffers (shared by columns of one model)
    kv_cache_bytes: int = 0  # this column's KV cache at its last token, computed from the model shape
    server_prompt_tok_s: float = 0.0  # the server's own figures, when it reports them (llama.cpp timings)
    server_decode_tok_s: float = 0.0
    usage_prompt_tokens: int = 0  # token counts the server reports (usage)
    usage_output_tokens: int = 0
    cost_usd: float = 0.0  # from the catalog's prices per million tokens; 0 when unpriced
    graph_capture_s: float = 0.0  # fast path: capturing the decode step's CUDA graph (0 when reused)
    workspace_bytes: int = 0  # fast path: its workspace's static KV cache and buffers (shared by a group)
    clock: str = ""  # "own": the figures above count the column's own time; "": an older record (wall)
    wall_ttft_s: float = 0.0  # the wall clock from the column's start to its first token, neighbours included
    wall_total_s: float = 0.0  # the wall clock from the column's start to its end, neighbours included
    output_tokens_from: str = ""  # "tokenizer" (a local model's own ids) | "server usage" | "logprobs"
    # (a served model's steps, one a token) | "tokenizer count of the text" (no usage, no logprobs)


# How each finish reason reads on the page and in reports.
FINISH_LABELS = {
    "eos": "done",
    "stop": "done (stop string)",
    "length": "done (max new tokens)",
    "cancelled": "stopped",
    "timeout": "timed out",
    "error": "error",
    "tokenized": "tokenized only",
}


@dataclass
class ModelRun:
    """One column of a run."""

    column: int
    identity: ModelIdentity
    params: GenerationParams
    prompt_token_ids: list[int] = field(default_factory=list)
    steps: list[TokenStep] = field(default_factory=list)
    text: str = ""
    finish_reason: str = ""  # eos | stop | length | cancelled | timeout | error | tokenized
    error: str = ""
    metrics: Metrics = field(default_factory=Metrics)
    prompt_pieces: list[TokenPiece] = field(default_factory=list)
    user_text_tokens: int = 0  # the user's prompt alone, through this model's tokenizer
    anomalies: list[Anomaly] = field(default_factory=list)
    attention: AttentionCapture | None = None
    attention_note: str = ""  # why there is no attention (not asked, not supported, failed)
    grounding_notice: str = ""  # e.g. "3 of 5 sources fit in this model's context window"
    cited: list[int] = field(default_factory=list)  # source numbers the answer cites that exist
    invalid_citations: list[int] = field(default_factory=list)  # cited numbers with no such source
    capabilities: ColumnCapabilities = field(default_factory=ColumnCapabilities)
    system_prompt: str | None = None  # this column's own system prompt; None: the run's

    @property
    def output_token_ids(self) -> list[int]:
        return [s.token_id for s in self.steps]


@dataclass
class Turn:
    """An earlier exchange of a conversation: its prompt and every column's result, evidence included.

    Column i of every turn is one model's own conversation: each model sees its own earlier answers."""

    prompt: str
    models: list[ModelRun] = field(default_factory=list)
    search: SearchSnapshot | None = None
    created_at: float = 0.0


def new_run_id() -> str:
    """136 random bits as 23 URL-safe characters, never starting with "-" (a CLI would read an option)."""
    while True:
        run_id = secrets.token_urlsafe(17)
        if not run_id.startswith("-"):
            return run_id


@dataclass
class Run:
    prompt: str
    system_prompt: str = ""
    models: list[ModelRun] = field(default_factory=list)
    specials_as_text: bool = False  # literal "<|im_end|>" etc. in typed text tokenized as plain text
    capture_attention: bool = True
    search: SearchSnapshot | None = None
    history: list[Turn] = field(default_factory=list)  # earlier turns, oldest first; this run is the latest
    parent_id: str = ""  # the saved run this one continues ("" for a first turn)
    wall_s: float = 0.0  # the run's wall time: from its start (loading included) to its last column's end
    id: str = field(default_factory=lambda: new_run_id())
    created_at: float = field(default_factory=time.time)
    schema_version: int = SCHEMA_VERSION

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def column_system_prompt(self, model: ModelRun) -> str:
        """The system prompt a column ran with: its own, else the run's."""
        return self.system_prompt if model.system_prompt is None else model.system_prompt

    def next_turn(self) -> Turn:
        """This run as the latest earlier turn of a follow-up."""
        return Turn(prompt=self.prompt, models=self.models, search=self.search, created_at=self.created_at)

    def to_json(self, indent: int | None = None) -> str:
        return json.dumps(self.to_dict(), indent=indent, ensure_ascii=False)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Run:
        if not isinstance(data, dict):
            raise RecordError(f"run: expected an object, got {_kind(data)}")
        version = data.get("schema_version")
        if not isinstance(version, int) or isinstance(version, bool) or version not in SUPPORTED_VERSIONS:
            raise RecordError(
                f"unsupported run record schema version {version!r} "
                f"(this playground reads versions 1..{SCHEMA_VERSION})"
            )
        return _build(cls, data)


class RecordError(ValueError):
    """A record that does not have the shape of this schema; the message names the field."""


def _build(cls: type, data: Any, path: str = "run") -> Any:
    """Rebuild nested dataclasses from dicts, strictly: unknown keys and wrong types are errors."""
    if not isinstance(data, dict):
        raise RecordError(f"{path}: expected an object, got {_kind(data)}")
    fields_by_name = {f.name: f for f in dataclasses.fields(cls)}
    unknown = set(data) - set(fields_by_name)
    if unknown:
        raise RecordError(f"{path}: unknown fields {sorted(unknown)}")
    return cls(**{name: _convert(fields_by_name[name].type, value, f"{path}.{name}")
                  for name, value in data.items()})


_NESTED: dict[str, type] = {}
_SCALARS: dict[str, tuple[type, ...]] = {"int": (int,), "float": (int, float), "str": (str,), "bool": (bool,)}


def _kind(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def _convert(type_name: Any, value: Any, path: str) -> Any:
    name = type_name if isinstance(type_name, str) else getattr(type_name, "__name__", str(type_name))
    if name.endswith(" | None"):
        return None if value is None else _convert(name.removesuffix(" | None"), value, path)
    if name in _NESTED:
        return _build(_NESTED[name], value, path)
    if name.startswith("list["):
        if not isinstance(value, list):
            raise RecordError(f"{path}: expected a list, got {_kind(value)}")
        inner = name[5:-1]
        return [_convert(inner, v, f"{path}[{i}]") for i, v in enumerate(value)]
    if name.startswith("dict[str, "):
        if not isinstance(value, dict):
            raise RecordError(f"{path}: expected an object, got {_kind(value)}")
        inner = name[len("dict[str, "):-1]
        return {str(k): _convert(inner, v, f"{path}.{k}") for k, v in value.items()}
    allowed = _SCALARS.get(name)
    if allowed is None:
        raise RecordError(f"{path}: no reader for type {name}")
    if not isinstance(value, allowed) or (name != "bool" and isinstance(value, bool)):
        raise RecordError(f"{path}: expected {name}, got {_kind(value)}")
    if name == "float":
        try:
            number = float(value)
        except OverflowError:  # an int of hundreds of digits
            number = math.inf
        if not math.isfinite(number):
            raise RecordError(f"{path}: expected a finite number, got {str(value)[:40]}")
        return number
    return value


_RECORD_TYPES = (
    GenerationParams, ModelIdentity, TokenAlt, TokenStep, TokenPiece, Anomaly, AttentionCapture, Metrics,
    ModelRun, Source, SearchSnapshot, ColumnCapabilities, Turn,
)
_NESTED.update({c.__name__: c for c in _RECORD_TYPES})
