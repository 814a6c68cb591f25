"""Served and hosted models: any OpenAI-compatible server, through the official `openai` SDK.

A column streams chat completions and asks for `logprobs` with 5 alternatives;
servers that ignore that (or reject it) still stream, and the column says what
it lacks. The prompt's token ids come from the best source the server offers,
tried in this order by `RemoteBackend.probe`: its own tokenizer on its own chat template (vLLM
`/tokenize`, llama.cpp `/apply-template` + `/tokenize`, TGI `/chat_tokenize`),
else llama-cpp-python's `/extras/tokenize` on the template rendered by a local
tokenizer named in the catalog, else that local tokenizer alone, else
approximate text pieces. Keys come from environment variables only and never
reach a record, a log line or an error message: whatever the server sends (steps, their
alternatives, model names, errors) passes through a KeyBlanker (keys.py) at this boundary.
Connections go only to addresses resolved once (pinned.py) and redirects are not followed.

One HTTP stack: every request, the extra endpoints included, goes through the SDK's own
client (`client.post(url, cast_to=object)`), with the SDK's own types (seconds, `openai.Timeout`),
and only the SDK's exceptions are caught. Nothing of another HTTP library is handed to it: an
`httpx.Timeout` given to an SDK built on `httpx2` failed every served column.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import openai

from playground.backends.base import (
    BackendDefaults,
    BackendError,
    Capabilities,
    Exchange,
    PromptEncoding,
    StreamInfo,
    chat_messages,
)
from playground.backends.keys import KeyBlanker
from playground.backends.pinned import http_client
from playground.backends.served_errors import describe_error, droppable, server_message, short
from playground.backends.served_stream import TOP_LOGPROBS, ServedStream, read_chunks
from playground.catalog import ModelSpec, is_preset_host
from playground.record import (
    ColumnCapabilities,
    GenerationParams,
    ModelIdentity,
    TokenPiece,
    TokenStep,
)

log = logging.getLogger(__name__)

PROBE_TIMEOUT_S = 5.0
APPROX_PIECE = re.compile(r"\s*\S+|\s+")
# An extra endpoint that is missing, refuses, or answers in another shape: try the next source.
ENDPOINT_ERRORS = (openai.APIError, ValueError, KeyError, TypeError)


@dataclass
class Tokenization:
    """How this server's prompt tokens are known (decided once, when the column's model is 'loaded')."""

    kind: str = "approximate"  # vllm | llama.cpp | tgi | extras | local tokenizer | approximate
    note: str = ""


@dataclass
class RemoteBackend(BackendDefaults):
    """One served model. Thread-safe: every call builds its own request; the client pool is shared."""

    spec: ModelSpec
    identity: ModelIdentity
    tokenizer: Any | None = None  # a local transformers tokenizer (catalog `tokenizer`), optional
    load_s: float = 0.0
    loaded_from_cache: bool = False
    weights_bytes: int = 0
    tokenization: Tokenization = field(default_factory=Tokenization)
    on_close: Callable[[], None] | None = None  # stops a managed server
    engine_failure: Callable[[float], str] | None = None  # a managed server's death, in words ('' if alive)
    capabilities: Capabilities = field(default_factory=lambda: Capabilities(
        logprobs=True, top_alternatives=True, chat_template=True, attention=False, remote=True))
    eos_ids: frozenset[int] = frozenset()
    # send top_k and repeat_penalty always: a server whose defaults differ from the playground's
    # (llama-cpp-python: repeat_penalty 1.1, top_k 40; set by backends/llamacpp.py)
    explicit_sampling: bool = False
    served_note: str = ""  # what its columns lack, said by the backend that started its server (vllm.py)
    # transformers sets the fast tokenizer's `encode_special_tokens` flag (shared Rust state) on every
    # call, and every user of this model shares its tokenizer: as LocalBackend.tokenizer_lock.
    tokenizer_lock: threading.RLock = field(default_factory=threading.RLock, repr=False, compare=False)

    def __post_init__(self) -> None:
        self._client = openai.OpenAI(
            base_url=self.spec.base_url, api_key=self._key() or "not-needed", max_retries=0,
            timeout=openai.Timeout(60.0, connect=10.0), http_client=http_client(self.spec),
        )

    # -- identity and set-up ---------------------------------------------------

    @property
    def context_window(self) -> int:
        return self.spec.context_window

    def _key(self) -> str:
        return os.environ.get(self.spec.api_key_env, "") if self.spec.api_key_env else ""

    @property
    def root(self) -> str:
        """The server root (the base URL without its trailing /v1), where extra endpoints live."""
        return re.sub(r"/v1/?$", "", self.spec.base_url.rstrip("/"))

    def probe(self) -> None:
        """Ask the server which tokenize endpoint it has (once, at load)."""
        messages = [{"role": "user", "content": "hi"}]
        for kind, attempt in (("vllm", self._vllm_ids), ("llama.cpp", self._llama_server_ids),
                              ("tgi", self._tgi_ids)):
            try:
                attempt(messages)
            except ENDPOINT_ERRORS:
                continue
            self.tokenization = Tokenization(kind, "")
            return
        if self.tokenizer is not None and self._extras_available():
            self.tokenization = Tokenization(
                "extras", "the server's tokenizer on the chat template rendered by the local tokenizer")
        elif self.tokenizer is not None:
            self.tokenization = Tokenization(
                "local tokenizer", "this server has no tokenize endpoint: counted with the catalog's "
                f"local tokenizer ({self.spec.tokenizer}), which may differ from the server's")
        else:
            self.tokenization = Tokenization(
                "approximate", "tokens: approximate, this server has no tokenize endpoint and the catalog "
                "names no local tokenizer")

    def column_capabilities(self) -> ColumnCapabilities:
        """What a column on this server gives, said plainly for the panels (logprobs: until refused)."""
        exactness = {"vllm": "server", "llama.cpp": "server", "tgi": "server", "extras": "server"}
        kind = self.tokenization.kind
        return ColumnCapabilities(token_ids=exactness.get(kind, kind), token_ids_note=self.tokenization.note,
                                  logprobs=True, attention=False, memory=False)

    def failure(self, wait_s: float = 0.0) -> str:
        """Why this model's managed server died ('' while it runs, and always for a served model)."""
        return self.engine_failure(wait_s) if self.engine_failure is not None else ""

    def _engine_died(self, exc: BaseException, streaming: bool = False) -> None:
        """A request failed: if the managed server is gone, say so instead of 'connection refused'."""
        reason = self.failure(wait_s=1.0 if isinstance(exc, openai.APIConnectionError) else 0.0)
        if reason:
            raise BackendError(reason + ("; partial output kept" if streaming else "")) from exc

    def _extras_available(self) -> bool:
        try:
            return bool(self._extras(["hi"]))
        except ENDPOINT_ERRORS:
            return False

    def _post(self, path: str, body: dict) -> Any:
        """POST to an endpoint beside the API (`root + path`) through the SDK's client; parsed JSON."""
        return self._client.post(self.root + path, cast_to=object, body=body,
                                 options={"timeout": PROBE_TIMEOUT_S})

    def _vllm_ids(self, messages: list[dict]) -> tuple[list[int], list[str]]:
        data = self._post("/tokenize", {"model": self.spec.served_model, "messages": messages,
                                        "add_generation_prompt": True, "return_token_strs": True})
        ids = [int(i) for i in data["tokens"]]
        return ids, list(data.get("token_strs") or [""] * len(ids))

    def _llama_server_ids(self, messages: list[dict]) -> tuple[list[int], list[str]]:
        prompt = self._post("/apply-template", {"messages": messages})["prompt"]
        tokens = self._post("/tokenize", {"content": prompt, "add_special": True, "parse_special": True,
                                          "with_pieces": True})["tokens"]
        return [int(t["id"]) for t in tokens], [str(t["piece"]) for t in tokens]

    def _tgi_ids(self, messages: list[dict]) -> tuple[list[int], list[str]]:
        data = self._post("/chat_tokenize", {"model": self.spec.served_model, "messages": messages})
        tokens = data["tokenize_response"]
        return [int(t["id"]) for t in tokens], [str(t["text"]) for t in tokens]

    def _extras(self, texts: list[str]) -> list[int]:
        return [int(i) for i in self._post("/extras/tokenize", {"input": "".join(texts)})["tokens"]]

    # -- prompts -----------------------------------------------------------------

    @staticmethod
    def messages(prompt: str, system_prompt: str, history: Sequence[Exchange] = ()) -> list[dict[str, str]]:
        return chat_messages(prompt, system_prompt, history)

    def encode_prompt(
        self, prompt: str, system_prompt: str, specials_as_text: bool = False,
        history: Sequence[Exchange] = (),
    ) -> PromptEncoding:
        """The prompt's tokens as well as this server lets us know them (see Tokenization)."""
        messages = self.messages(prompt, system_prompt, history)
        blank = KeyBlanker.for_spec(self.spec)
        with blank.errors():
            ids, pieces = self._prompt_tokens(messages)
        pieces = [replace(p, text=blank.text(p.text), raw=blank.text(p.raw)) for p in pieces]
        note = self.tokenization.note
        if specials_as_text:
            note = "; ".join(x for x in (note, "special-token strings: the server tokenizes them its own way")
                             if x)
        return PromptEncoding(
            token_ids=ids,
            prompt_format="chat (server's template)",
            note=note,
            pieces=pieces,
            user_tokens=self.count_tokens(prompt),
            messages=messages,
        )

    def _prompt_tokens(self, messages: list[dict]) -> tuple[list[int], list[TokenPiece]]:
        kind = self.tokenization.kind
        try:
            if kind in ("vllm", "llama.cpp", "tgi"):
                fetch = {"vllm": self._vllm_ids, "llama.cpp": self._llama_server_ids, "tgi": self._tgi_ids}
                ids, texts = fetch[kind](messages)
                return ids, [TokenPiece(i, t, t, False) for i, t in zip(ids, texts, strict=True)]
            if kind in ("extras", "local tokenizer"):
                with self.tokenizer_lock:
                    text = self.tokenizer.apply_chat_template(messages, add_generation_prompt=True,
                                                              tokenize=False)
                ids = (self._extras([text]) if kind == "extras" else self._local_ids(text))
                return ids, self._local_pieces(ids)
        except ENDPOINT_ERRORS as exc:
            self._engine_died(exc)
            raise BackendError(f"{self.spec.id}: could not tokenize the prompt on the server: "
                               f"{short(exc)}") from exc
        text = "".join(f"{m['role']}: {m['content']}\n" for m in messages)
        return [-1] * len(APPROX_PIECE.findall(text)), [
            TokenPiece(-1, p, p, False) for p in APPROX_PIECE.findall(text)]

    def _local_ids(self, text: str, split: bool = False) -> list[int]:
        with self.tokenizer_lock:
            encoded = self.tokenizer(text, add_special_tokens=False, split_special_tokens=split)
        return list(encoded["input_ids"])

    def _local_pieces(self, ids: list[int]) -> list[TokenPiece]:
        with self.tokenizer_lock:
            raws = self.tokenizer.convert_ids_to_tokens(ids)
            special = set(self.tokenizer.all_special_ids)
            texts = [self.tokenizer.decode([i], skip_special_tokens=False) for i in ids]
        return [TokenPiece(i, t, r or "", i in special) for i, t, r in zip(ids, texts, raws, strict=True)]

    def count_tokens(self, text: str, specials_as_text: bool = False) -> int:
        if self.tokenizer is not None:
            return len(self._local_ids(text, split=specials_as_text))
        return len(APPROX_PIECE.findall(text))

    def decode(self, token_ids: list[int]) -> str:
        if self.tokenizer is None or any(i < 0 for i in token_ids):
            return ""
        with self.tokenizer_lock:
            return self.tokenizer.decode(token_ids, skip_special_tokens=True)

    def kv_cache_bytes(self, tokens: int) -> int:
        return 0  # the server's memory is its own

    def allocator_probe(self) -> None:
        return None

    def capture_attention(self, *_args: object, **_kwargs: object) -> None:
        raise BackendError("attention: not available for served models")

    # -- generation --------------------------------------------------------------

    def open_stream(
        self, encoding: PromptEncoding, params: GenerationParams, should_stop: Callable[[], bool],
        batch: object = None,  # noqa: ARG002 - the contract's: a server batches requests itself
    ) -> ServedStream:
        """One chat completion as a ColumnStream; its report collects what the server said. A key the
        server echoes is blanked in steps, names and errors alike: nothing past this boundary sees one.
        Nothing is sent until the stream's first next()."""
        column = ServedStream()
        if not self.spec.logprobs:
            column.info.logprobs = False
            column.info.logprobs_note = "not asked for (catalog: logprobs = false)"
        column.attach(self._blanked(encoding, params, should_stop, column))
        return column

    def _blanked(self, encoding: PromptEncoding, params: GenerationParams, should_stop: Callable[[], bool],
                 column: ServedStream) -> Iterator[TokenStep]:
        blank = KeyBlanker.for_spec(self.spec)
        with blank.errors():
            yield from blank.steps(self._stream(encoding, params, should_stop, column, blank))

    def _stream(
        self, encoding: PromptEncoding, params: GenerationParams, should_stop: Callable[[], bool],
        column: ServedStream, blank: KeyBlanker,
    ) -> Iterator[TokenStep]:
        info = column.info
        request = self._request(encoding, params)
        started = time.perf_counter()
        stream = self._open(request, info)
        column.opened(stream.close)
        try:
            yield from read_chunks(stream, info, should_stop, blank)
        except openai.APITimeoutError as exc:
            raise BackendError(describe_error(exc, self.spec) + "; partial output kept") from exc
        except openai.APIConnectionError as exc:  # the SDK wraps a read error mid-stream in this
            if should_stop():
                return  # closed on purpose (Stop, timeout): not the server's failure
            self._engine_died(exc, streaming=True)
            raise BackendError(f"the server closed the stream before finishing "
                               f"({short(exc.__cause__ or exc)}); partial output kept") from exc
        except openai.OpenAIError as exc:
            raise BackendError(describe_error(exc, self.spec)) from exc
        except ValueError as exc:  # a chunk that is not JSON (or not a chunk)
            raise BackendError(f"the server sent a malformed chunk ({short(exc, 120)}); "
                               "partial output kept") from exc
        finally:
            stream.close()
            info.elapsed_s = time.perf_counter() - started

    def _open(self, request: dict[str, Any], info: StreamInfo) -> Any:
        """Start the stream; a server that refuses a field we may leave out (logprobs, top-k,
        repetition penalty) is asked again without it, and the column says what was dropped."""
        for _attempt in range(3):
            try:
                return self._client.chat.completions.create(**request)
            except (openai.BadRequestError, openai.UnprocessableEntityError) as exc:
                dropped = droppable(request, server_message(exc))
                if not dropped:
                    raise BackendError(describe_error(exc, self.spec)) from exc
                if "logprobs" in dropped:
                    info.logprobs = False
                    info.logprobs_note = "this server refused logprobs"
                info.dropped += [d for d in dropped if d not in info.dropped]
            except openai.OpenAIError as exc:
                self._engine_died(exc)
                raise BackendError(describe_error(exc, self.spec)) from exc
        raise BackendError(f"{self.spec.id}: the server refused the request")

    def _request(self, encoding: PromptEncoding, params: GenerationParams) -> dict[str, Any]:
        request: dict[str, Any] = {
            "model": self.spec.served_model,
            "messages": encoding.messages,
            "stream": True,
            "stream_options": {"include_usage": True},
            "timeout": openai.Timeout(params.timeout_s, connect=min(10.0, params.timeout_s)),
        }
        if self.spec.logprobs:
            request.update(logprobs=True, top_logprobs=TOP_LOGPROBS)
        hosted = self.spec.preset or is_preset_host(self.spec.base_url)
        request["max_completion_tokens" if hosted else "max_tokens"] = params.max_new_tokens
        if not (hosted and self.spec.served_model.startswith("gpt-5")):  # reasoning models take neither
            request["temperature"] = params.temperature
            if params.top_p < 1:
                request["top_p"] = params.top_p
        if params.stop:
            request["stop"] = params.stop[:4]  # OpenAI's limit; the engine checks every stop string itself
        if not params.greedy:
            request["seed"] = params.seed
        extra: dict[str, Any] = {}
        if self.explicit_sampling:
            extra = {"top_k": params.top_k, "repeat_penalty": params.repetition_penalty}
        elif not hosted:  # sent only when set: strict servers refuse fields they do not know
            if params.top_k:
                extra["top_k"] = params.top_k
            if params.repetition_penalty != 1.0:
                extra["repetition_penalty"] = params.repetition_penalty
        if extra:
            request["extra_body"] = extra
        return request

    def close(self) -> None:
        self._client.close()
        if self.on_close is not None:
            self.on_close()


# ---------------------------------------------------------------- loading (source "openai")

def served_identity(spec: ModelSpec, engine: str, location: str) -> ModelIdentity:
    """The record's description of a model behind a server: what the playground can know of it."""
    return ModelIdentity(catalog_id=spec.id, name=spec.name, source=spec.source, location=location,
                         device="remote", served_model=spec.served_model, engine=engine,
                         prompt_format="chat (server's template)", context_window=spec.context_window)


def load_served(spec: ModelSpec, data_dir: Path, device: str = "",
                progress: Callable[[str], None] = lambda _m: None,
                identity: ModelIdentity | None = None) -> RemoteBackend:
    """A served model: nothing to load but an optional local tokenizer; ask the server what it offers.

    `device` is the registry's loader argument; a server's device is its own."""
    started = time.perf_counter()
    missing = spec.missing_key()
    if missing:
        raise BackendError(f"{spec.id}: set the {missing} environment variable to use this model")
    tokenizer = None
    if spec.tokenizer:
        from playground.backends.local_load import load_tokenizer  # transformers: only when one is named

        progress(f"loading local tokenizer {spec.tokenizer}")
        tokenizer = load_tokenizer(spec.tokenizer, data_dir)
    identity = identity or served_identity(spec, "openai-compatible server", spec.base_url)
    backend = RemoteBackend(spec, identity, tokenizer=tokenizer)
    progress("asking the server how it tokenizes")
    backend.probe()
    backend.load_s = time.perf_counter() - started
    return backend
