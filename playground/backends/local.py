"""Local models through transformers: GGUF files, hub ids and local directories.

A GGUF file is dequantized by transformers on first load (tens of seconds), so
the result is written once to a converted cache keyed by the file's sha256
(safetensors + config + tokenizer) and later launches load that in about a second.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import re
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import torch
import transformers
from transformers import AutoModelForCausalLM, AutoTokenizer

from playground.backends import converted
from playground.backends.attention import capture_attention
from playground.backends.base import (
    BackendError,
    Capabilities,
    Exchange,
    PromptEncoding,
    StreamInfo,
    chat_messages,
)
from playground.backends.decode import StepOutput, generate_steps
from playground.backends.fast_decode import FastDecoder
from playground.catalog import CatalogError, ModelSpec, bundled_file
from playground.inspect.tokens import SpecialLiteral
from playground.record import (
    AttentionCapture,
    GenerationParams,
    ModelIdentity,
    TokenAlt,
    TokenPiece,
    TokenStep,
)

log = logging.getLogger(__name__)


def pick_device(requested: str = "") -> str:
    if requested in ("cpu", "cuda"):
        if requested == "cuda" and not torch.cuda.is_available():
            raise BackendError("PLAYGROUND_DEVICE=cuda was asked for but no CUDA device is available")
        return requested
    return "cuda" if torch.cuda.is_available() else "cpu"


def pick_dtype(device: str) -> torch.dtype:
    """bf16 on GPUs that support it (fast, same range as fp32); fp32 on CPU (exact, and no slower here)."""
    if device == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.float32


_HASHES: dict[tuple[str, int, int], str] = {}


def sha256_file(path: Path) -> str:
    """A file's sha256, remembered per (path, mtime, size): a GGUF of hundreds of MB is read once."""
    stat = path.stat()
    key = (str(path.resolve()), stat.st_mtime_ns, stat.st_size)
    if key not in _HASHES:
        _HASHES[key] = _hash(path)
    return _HASHES[key]


def _hash(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def library_versions() -> dict[str, str]:
    return {"torch": torch.__version__, "transformers": transformers.__version__}


@dataclass
class CudaPeak:
    """CUDA allocator peak since this probe was made; only meaningful while the column ran alone."""

    device: torch.device
    kind: str = "cuda allocator peak"

    def __post_init__(self) -> None:
        torch.cuda.reset_peak_memory_stats(self.device)

    def peak_bytes(self) -> int:
        return int(torch.cuda.max_memory_allocated(self.device))


def module_bytes(model: torch.nn.Module) -> int:
    """Bytes held by a model's parameters and buffers (what loading it costs)."""
    tensors = [*model.parameters(), *model.buffers()]
    return sum(t.numel() * t.element_size() for t in tensors)


def kv_cache_bytes(config: object, tokens: int, element_size: int) -> int:
    """Keys + values for `tokens` positions, from the model's shape (sliding-window layers capped)."""
    text = getattr(config, "text_config", None) or config
    layers = int(getattr(text, "num_hidden_layers", 0) or 0)
    heads = int(getattr(text, "num_attention_heads", 0) or 0)
    kv_heads = int(getattr(text, "num_key_value_heads", 0) or heads)
    head_dim = int(getattr(text, "head_dim", 0) or (getattr(text, "hidden_size", 0) // max(heads, 1)))
    window = int(getattr(text, "sliding_window", 0) or 0)
    kinds = list(getattr(text, "layer_types", None) or ["full_attention"] * layers)[:layers]
    positions = sum(
        min(tokens, window) if kind == "sliding_attention" and window else tokens for kind in kinds
    )
    return 2 * positions * kv_heads * head_dim * element_size


# A model without a chat template would continue the user's text (a base model parrots a question
# back); framed as a question and an answer it answers, and a new "Question:" ends the answer.
# The Tokens panel shows the frame; a catalog entry with `frame = "raw"` feeds the text as is.
QA_FRAME = ("Question: ", "\nAnswer:")
QA_STOP = "\nQuestion:"
FORMATS = {"chat": "chat template", "qa": "question/answer frame", "raw": "raw completion"}


class LocalBackend:
    """A loaded transformers model + tokenizer, shared by every column that picks it."""

    def __init__(
        self,
        identity: ModelIdentity,
        model: torch.nn.Module,
        tokenizer: object,
        load_s: float,
        loaded_from_cache: bool,
        frame: str = "",
    ) -> None:
        self.identity = identity
        self.model = model
        self.tokenizer = tokenizer
        self.load_s = load_s
        self.loaded_from_cache = loaded_from_cache
        has_template = bool(getattr(tokenizer, "chat_template", None))
        self.capabilities = Capabilities(chat_template=has_template)
        self.frame = "chat" if has_template else (frame or "qa")  # qa: QA_FRAME below; raw: the text as is
        self.identity.prompt_format = FORMATS[self.frame]
        self.identity.context_window = self.context_window
        self.eos_ids = _eos_ids(model, tokenizer)
        self.special_ids = set(tokenizer.all_special_ids) | {
            i for i, token in tokenizer.added_tokens_decoder.items() if token.special
        }
        self.weights_bytes = module_bytes(model)
        # The model and tokenizer are shared by every user. `lock` guards each forward pass, so an
        # attention capture (eager switch + hooks) never sees another run's decode step; the
        # tokenizer lock guards encoding, because transformers sets the fast tokenizer's
        # `encode_special_tokens` flag (shared Rust state) on every call.
        self.lock = threading.RLock()
        self.tokenizer_lock = threading.RLock()
        self.fast = FastDecoder(identity.catalog_id, model, self.lock, self._eager, self.eos_ids)

    @property
    def context_window(self) -> int:
        return int(getattr(self.model.config, "max_position_embeddings", 0) or 0)

    def workspace_bytes(self) -> int:
        """The fast path's workspaces (static caches, up to 2 GiB idle): memory held beside the weights."""
        return self.fast.workspace_bytes()

    def encode_prompt(
        self, prompt: str, system_prompt: str, specials_as_text: bool = False,
        history: Sequence[Exchange] = (),
    ) -> PromptEncoding:
        """The exact ids the model will see, with per-token pieces and typed special-token strings.

        `history` holds a conversation's earlier exchanges (this model's own answers): the whole
        conversation is templated, and the Tokens panel shows all of it.

        Normally the chat template is applied by the tokenizer itself. With
        specials_as_text, the template is rendered around placeholders and the
        typed texts are tokenized with split_special_tokens, so a literal
        "<|im_end|>" typed by the user stays text while the template's own
        control tokens stay control tokens.
        """
        with self.tokenizer_lock:
            return self._encode_prompt(prompt, system_prompt, specials_as_text, tuple(history))

    def _encode_prompt(
        self, prompt: str, system_prompt: str, specials_as_text: bool, history: tuple[Exchange, ...]
    ) -> PromptEncoding:
        segments, prompt_format, note = self._segments(prompt, system_prompt, history)
        ids: list[int] = []
        literals: list[SpecialLiteral] = []
        for text, typed in segments:
            normal = self._ids(text, split=False)
            if typed:
                literals += [
                    SpecialLiteral(self.tokenizer.convert_ids_to_tokens(t), t, len(ids) + k)
                    for k, t in enumerate(normal) if t in self.special_ids
                ]
            ids += self._ids(text, split=True) if typed and specials_as_text else normal
        if not specials_as_text:
            ids = self._direct_ids(prompt, system_prompt, history)  # what the library itself would feed
        if self._bos_needed(prompt_format) and (not ids or ids[0] != self.tokenizer.bos_token_id):
            ids = [self.tokenizer.bos_token_id, *ids]
        if prompt_format != "chat template" and ids and ids[0] == self.tokenizer.bos_token_id:
            literals = [replace(lit, position=lit.position + 1) for lit in literals]  # after the BOS
        return PromptEncoding(
            token_ids=ids,
            prompt_format=prompt_format,
            note=note,
            pieces=self.pieces(ids),
            user_tokens=len(self._ids(prompt, split=specials_as_text)),
            special_literals=literals,
            unk_id=self.tokenizer.unk_token_id,
            stop=[QA_STOP] if self.frame == "qa" else [],
        )

    def count_tokens(self, text: str, specials_as_text: bool = False) -> int:
        with self.tokenizer_lock:
            return len(self._ids(text, split=specials_as_text))

    def pieces(self, ids: list[int]) -> list[TokenPiece]:
        texts = self._piece_texts(ids)
        raws = self.tokenizer.convert_ids_to_tokens(ids)
        return [
            TokenPiece(i, text, raw or "", i in self.special_ids)
            for i, text, raw in zip(ids, texts, raws, strict=True)
        ]

    def _piece_texts(self, ids: list[int], max_wait: int = 8) -> list[str]:
        """The text each token adds, so that the pieces concatenate to the decoded sequence.

        A character split over several tokens (UTF-8 bytes of an emoji, byte
        fallback) belongs to the token that completes it; the tokens before it
        add "" and are shown by their vocabulary form.
        """
        texts: list[str] = []
        start = 0
        for i in range(len(ids)):
            text = self.tokenizer.decode(ids[start : i + 1], skip_special_tokens=False)
            if text.endswith("\ufffd") and i - start < max_wait:
                texts.append("")
                continue
            texts.append(text)
            start = i + 1
        return texts

    def _ids(self, text: str, split: bool) -> list[int]:
        return list(self.tokenizer(text, add_special_tokens=False, split_special_tokens=split)["input_ids"])

    def _bos_needed(self, prompt_format: str) -> bool:
        """Text without a chat template starts with BOS when the tokenizer would add one (Gemma does)."""
        if prompt_format == "chat template" or self.tokenizer.bos_token_id is None:
            return False
        probe = self.tokenizer("x", add_special_tokens=True)["input_ids"]
        return bool(probe) and probe[0] == self.tokenizer.bos_token_id

    def _direct_ids(self, prompt: str, system_prompt: str, history: tuple[Exchange, ...] = ()) -> list[int]:
        if self.capabilities.chat_template:
            encoded = self.tokenizer.apply_chat_template(
                chat_messages(prompt, system_prompt, history), add_generation_prompt=True, tokenize=True,
                return_dict=True,
            )
            return list(encoded["input_ids"])
        text = "".join(part for part, _typed in self._segments(prompt, system_prompt, history)[0])
        return list(self.tokenizer(text, add_special_tokens=True)["input_ids"])

    def _segments(
        self, prompt: str, system_prompt: str, history: tuple[Exchange, ...] = ()
    ) -> tuple[list[tuple[str, bool]], str, str]:
        """The conversation as (text, typed-by-the-user) pieces, in order (earlier answers: not typed)."""
        if not self.capabilities.chat_template:
            head = [(system_prompt, True), ("\n\n", False)] if system_prompt else []
            if self.frame == "raw":
                note = "no chat template: system prompt prepended as plain text" if system_prompt else ""
                for user, answer in history:  # a raw conversation is one running text
                    head += [(user, True), (answer, False), ("\n\n", False)]
                return [*head, (prompt, True)], FORMATS["raw"], note
            for user, answer in history:  # the answer follows "Answer:" as the model wrote it
                head += [(QA_FRAME[0], False), (user, True), (QA_FRAME[1], False), (answer, False),
                         ("\n", False)]
            note = ("no chat template: the prompt runs in a question/answer frame and the answer ends "
                    "at a new \"Question:\"")
            if system_prompt:
                note += " (system prompt prepended as plain text)"
            framed = [(QA_FRAME[0], False), (prompt, True), (QA_FRAME[1], False)]
            return [*head, *framed], FORMATS["qa"], note
        # The template is rendered around placeholders, then each placeholder becomes its text.
        sys_mark, user_mark = "\ue000PG-SYSTEM\ue000", "\ue000PG-USER\ue000"
        marks = {sys_mark: (system_prompt, True), user_mark: (prompt, True)}
        marked_history = []
        for k, (user, answer) in enumerate(history):
            u, a = f"\ue000PG-U{k}\ue000", f"\ue000PG-A{k}\ue000"
            marks |= {u: (user, True), a: (answer, False)}
            marked_history.append((u, a))
        rendered = self.tokenizer.apply_chat_template(
            chat_messages(user_mark, sys_mark if system_prompt else "", marked_history),
            add_generation_prompt=True, tokenize=False,
        )
        segments: list[tuple[str, bool]] = []
        for part in re.split("(\ue000PG-[A-Z0-9]+\ue000)", rendered):
            if part in marks:
                segments.append(marks[part])
            elif part:
                segments.append((part, False))
        return segments, "chat template", ""

    def decode(self, token_ids: list[int]) -> str:
        return self.tokenizer.decode(token_ids, skip_special_tokens=True)

    def token_text(self, token_id: int) -> str:
        return self.tokenizer.decode([token_id], skip_special_tokens=False)

    def capture_attention(
        self, token_ids: list[int], special_positions: list[int], token_cap: int, byte_budget: int
    ) -> AttentionCapture:
        try:
            with self.lock:  # no other run's forward may pass the hooks or the eager switch
                return capture_attention(
                    self.model, token_ids, special_positions, None, token_cap, byte_budget
                )
        except torch.OutOfMemoryError as exc:
            raise BackendError(
                "out of memory during the attention pass; lower PLAYGROUND_ATTN_BYTES"
            ) from exc

    def kv_cache_bytes(self, tokens: int) -> int:
        element = torch.finfo(self.model.dtype).bits // 8 if self.model.dtype.is_floating_point else 4
        return kv_cache_bytes(self.model.config, tokens, element)

    def allocator_probe(self) -> CudaPeak | None:
        """The CUDA allocator's peak (None on CPU, where no per-run figure exists)."""
        if self.model.device.type == "cuda":
            return CudaPeak(self.model.device)
        return None

    def stream(
        self, encoding: PromptEncoding | list[int], params: GenerationParams, should_stop: Callable[[], bool],
        info: StreamInfo | None = None,
    ) -> StepStream:
        """The column's steps: the fast path where it applies (backends/fast_decode.py), else eager.

        `info.decode_path` says which (the column header shows it); columns with the same
        `info.batch` token and prompt decode as one batch on the fast path."""
        prompt_ids = encoding.token_ids if isinstance(encoding, PromptEncoding) else encoding
        info = info if info is not None else StreamInfo()
        reason = self.fast.unavailable(len(prompt_ids), params.max_new_tokens)
        if reason:
            info.decode_path = f"eager: {reason}"
            return StepStream(self, self._eager(prompt_ids, params, should_stop))

        def on_path(label: str, capture_s: float, workspace_bytes: int) -> None:
            info.decode_path, info.graph_capture_s, info.workspace_bytes = label, capture_s, workspace_bytes

        info.decode_path = "fast path"
        return StepStream(self, self.fast.open_row(prompt_ids, params, should_stop, on_path, info.batch))

    def _eager(
        self, prompt_ids: list[int], params: GenerationParams, should_stop: Callable[[], bool]
    ) -> Iterator[StepOutput]:
        return generate_steps(self.model, prompt_ids, params, self.eos_ids, should_stop, lock=self.lock)

    def token_step(self, out: StepOutput) -> TokenStep:
        return TokenStep(
            token_id=out.token_id,
            text=self.token_text(out.token_id),
            special=out.token_id in self.special_ids,
            logprob=out.logprob,
            top=[TokenAlt(i, self.token_text(i), lp)
                 for i, lp in zip(out.top_ids, out.top_logprobs, strict=True)],
        )


class StepStream:
    """A column's TokenSteps, from the fast path's row or the eager generator.

    launch() starts the fast path's next step without waiting, so the engine can start every
    column's step before it collects any; on the eager path it does nothing."""

    def __init__(self, backend: LocalBackend, outputs: Iterator[StepOutput]) -> None:
        self.backend = backend
        self.outputs = outputs

    def __iter__(self) -> StepStream:
        return self

    def __next__(self) -> TokenStep:
        try:
            return self.backend.token_step(next(self.outputs))
        except torch.OutOfMemoryError as exc:
            raise BackendError(
                f"out of memory on {self.backend.identity.device} while generating: try fewer columns, "
                "a shorter prompt or fewer max new tokens"
            ) from exc
        except MemoryError as exc:
            raise BackendError("out of host memory while generating") from exc

    def launch(self) -> None:
        launch = getattr(self.outputs, "launch", None)
        if launch is not None:
            launch()

    def close(self) -> None:
        self.outputs.close()


def _eos_ids(model: torch.nn.Module, tokenizer: object) -> set[int]:
    ids: set[int] = set()
    for source in (getattr(model, "generation_config", None), model.config):
        value = getattr(source, "eos_token_id", None)
        if isinstance(value, int):
            ids.add(value)
        elif isinstance(value, list):
            ids.update(v for v in value if isinstance(v, int))
    if getattr(tokenizer, "eos_token_id", None) is not None:
        ids.add(tokenizer.eos_token_id)
    return ids


# ---------------------------------------------------------------- loading

# transformers' model from_pretrained is not thread-safe: it patches class attributes for the
# duration of a load (e.g. `no_tie_weights()` swaps out PreTrainedModel.tie_weights) and
# sets torch's default dtype. Two loads in two threads restore each other's patches in the
# wrong order, which left tied input embeddings randomly initialized for every model loaded
# afterwards. So the process builds one model's weights at a time (the memory pre-flight's
# empty model too: accelerate's init_empty_weights patches nn.Module.register_parameter for the
# whole process, which put another thread's freshly loaded weights on the meta device); hashing
# files, loading tokenizers and warming up run outside this lock, in parallel with other loads.
# From a converted cache the locked part is short (~0.1 s): see backends/converted.py.
_WEIGHTS_LOCK = threading.Lock()


_HOLDER: list[str] = []  # the model whose weights are being built, named to whoever waits for it
_WAITED = threading.local()  # seconds this thread spent waiting for another model's load


@contextlib.contextmanager
def weights_lock(progress: Callable[[str], None] = lambda _msg: None, name: str = "") -> Iterator[None]:
    """Held while transformers builds a model (from_pretrained, from_config): see _WEIGHTS_LOCK.

    The time spent waiting is the other model's, not this one's: load_backend leaves it out of load_s."""
    if not _WEIGHTS_LOCK.acquire(blocking=False):
        holder = _HOLDER[0] if _HOLDER else "another model"
        progress(f"waiting for {holder} to finish loading")
        started = time.perf_counter()
        _WEIGHTS_LOCK.acquire()
        _WAITED.seconds = getattr(_WAITED, "seconds", 0.0) + time.perf_counter() - started
    _HOLDER[:] = [name] if name else []
    try:
        yield
    finally:
        _HOLDER.clear()
        _WEIGHTS_LOCK.release()


def load_backend(
    spec: ModelSpec,
    data_dir: Path,
    device: str = "",
    progress: Callable[[str], None] = lambda _msg: None,
) -> LocalBackend:
    """Load a model for `spec`, converting GGUF files once into the cache.

    `progress` is called between stages; a caller that wants to cancel a load raises
    (LoadCancelled) from it, which abandons the load at the next stage boundary.
    """
    started = time.perf_counter()
    _WAITED.seconds = 0.0
    device = pick_device(device)
    dtype = pick_dtype(device)
    identity = ModelIdentity(
        catalog_id=spec.id,
        name=spec.name,
        source=spec.source,
        location=spec.location,
        revision=spec.revision,
        dtype=str(dtype).removeprefix("torch."),
        device=device,
        libraries=library_versions(),
    )
    from_cache = False
    try:
        if spec.source == "gguf":
            model, tokenizer, from_cache = _load_gguf(spec, data_dir, dtype, device, identity, progress)
        else:
            model, tokenizer = _load_pretrained(spec, dtype, device, progress, data_dir)
    except (BackendError, CatalogError):
        raise
    except torch.OutOfMemoryError as exc:
        raise BackendError(f"{spec.id}: out of memory on {device} while loading") from exc
    except Exception as exc:  # transformers raises many types; the user needs the message
        raise BackendError(f"{spec.id}: could not load model: {_short(exc)}") from exc
    model.eval()
    if device == "cuda":
        identity.device = str(model.device)
    progress("warming up")
    _warm_up(model)
    own = time.perf_counter() - started - _WAITED.seconds  # waiting for another model's load is not ours
    return LocalBackend(identity, model, tokenizer, own, from_cache, spec.frame)


@torch.inference_mode()
def _warm_up(model: torch.nn.Module) -> None:
    """One tiny forward pass as part of loading.

    Weights from the safetensors cache are memory-mapped: without this, the first
    real forward pays for paging them in (inflating that run's TTFT) and the RSS
    growth lands in whichever column happens to be generating.
    """
    model(input_ids=torch.zeros((1, 1), dtype=torch.long, device=model.device), use_cache=False)


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"[:500]


def _weights_need(device: str, spec: ModelSpec, data_dir: Path) -> int:
    """On CUDA, the estimated weights for the placement plan (0 elsewhere or when unknown).

    Called before weights_lock is taken: the estimate may build an empty model under that lock,
    which is not re-entrant (a load asking for it inside the lock would wait for itself forever)."""
    if device != "cuda":
        return 0
    from playground.backends import preflight

    need = preflight.estimate(spec, data_dir, pick_dtype(device), 0)
    return need.weights_bytes if need else 0


def _placement(device: str, need_bytes: int, model_id: str) -> dict[str, object]:
    """On CUDA, the placement plan (backends/placement.py): whole on the GPU with the most free
    memory, or spread over all GPUs when none can hold it; plain CPU otherwise. Read inside
    weights_lock, so the free memory is what is left after any load this one waited for."""
    if device != "cuda":
        return {}
    from playground.backends import preflight
    from playground.backends.placement import PlacementError, plan_placement

    try:
        plan = plan_placement(need_bytes, preflight.gpu_free())
    except PlacementError as exc:
        raise BackendError(f"{model_id}: does not fit on the GPUs: {exc}") from exc
    log.info("placing %s: %s", model_id, plan.reason)
    return plan.kwargs()


def _load_pretrained(
    spec: ModelSpec, dtype: torch.dtype, device: str, progress: Callable[[str], None], data_dir: Path
) -> tuple[torch.nn.Module, object]:
    kwargs: dict[str, object] = {}
    if spec.revision:
        kwargs["revision"] = spec.revision
    if spec.gguf_file:
        kwargs["gguf_file"] = spec.gguf_file
    where = "hub" if spec.source == "hub" else "directory"
    progress(f"loading tokenizer from {where}")
    try:
        tokenizer = AutoTokenizer.from_pretrained(spec.location, **kwargs)
        progress(f"loading weights from {where}")
        need = _weights_need(device, spec, data_dir)
        with weights_lock(progress, spec.name):
            model = AutoModelForCausalLM.from_pretrained(
                spec.location, dtype=dtype, **_placement(device, need, spec.id), **kwargs
            )
    except OSError as exc:
        if spec.source == "hub":
            raise BackendError(
                f"{spec.id}: could not get {spec.location!r} from the Hugging Face Hub "
                f"(tried the hub and the local hub cache; {_short(exc)}). Download it where the hub "
                "is reachable, or point --model / the catalog at a local directory or .gguf file."
            ) from exc
        raise BackendError(
            f"{spec.id}: {spec.location} is not a loadable model directory ({_short(exc)}); "
            "it needs config.json, weights and tokenizer files"
        ) from exc
    return model, tokenizer


def _load_gguf(
    spec: ModelSpec,
    data_dir: Path,
    dtype: torch.dtype,
    device: str,
    identity: ModelIdentity,
    progress: Callable[[str], None],
) -> tuple[torch.nn.Module, object, bool]:
    path = bundled_file(spec, data_dir) if spec.bundled else Path(spec.location)
    if not path.is_file():
        raise BackendError(f"{spec.id}: GGUF file {path} does not exist")
    identity.location = str(path)
    progress("checking file hash")
    identity.sha256 = sha256_file(path)
    cache = data_dir / "cache" / identity.sha256
    if converted.is_complete(cache):
        progress("loading converted cache")
        converted.upgrade(cache)
        tokenizer = converted.load_tokenizer(cache)
        progress("loading weights from converted cache")
        need = _weights_need(device, spec, data_dir)
        with weights_lock(progress, spec.name):
            model = AutoModelForCausalLM.from_pretrained(cache, dtype=dtype,
                                                         **_placement(device, need, spec.id))
        return model, tokenizer, True
    _check_gguf_header(path, spec.id)
    progress("first load: converting GGUF tokenizer")
    tokenizer = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
    progress("first load: dequantizing GGUF weights")
    with weights_lock(progress, spec.name):
        model = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, dtype=torch.float32)
    progress("first load: writing converted cache")
    converted.write_cache(model, tokenizer, cache, path)
    if dtype != torch.float32 or device != "cpu":
        progress("loading weights from converted cache")
        need = _weights_need(device, spec, data_dir)
        with weights_lock(progress, spec.name):
            model = AutoModelForCausalLM.from_pretrained(cache, dtype=dtype,
                                                         **_placement(device, need, spec.id))
    return model, tokenizer, False


def pretrained_source(spec: ModelSpec, data_dir: Path) -> tuple[str | Path, dict[str, str]]:
    """Where transformers reads a model's files from, with the keyword arguments it needs: a GGUF
    file's converted cache when there is one, else the file itself; a directory or hub id as it is."""
    if spec.source == "gguf":
        path = bundled_file(spec, data_dir) if spec.bundled else Path(spec.location)
        cache = data_dir / "cache" / sha256_file(path)
        if converted.is_complete(cache):
            return cache, {}
        return path.parent, {"gguf_file": path.name}
    return spec.location, ({"revision": spec.revision} if spec.revision else {})


def load_tokenizer(ref: str, data_dir: Path) -> object:
    """Only the tokenizer of a model (bundled id, .gguf path, directory or hub id): to count a served
    model's tokens locally. A GGUF file's converted cache is used when there is one."""
    from playground.catalog import BUNDLED, spec_from_reference

    spec = spec_from_reference(ref, {s.id: s for s in BUNDLED})
    try:
        where, kwargs = pretrained_source(spec, data_dir)
        if isinstance(where, Path) and not kwargs and converted.is_complete(where):
            return converted.load_tokenizer(where)
        return AutoTokenizer.from_pretrained(where, **kwargs)
    except OSError as exc:
        raise BackendError(f"tokenizer {ref!r} could not be loaded: {_short(exc)}") from exc


def _check_gguf_header(path: Path, model_id: str) -> None:
    """Fail fast, with a plain message, on files that are not GGUF at all."""
    with path.open("rb") as handle:
        magic = handle.read(4)
    if magic != b"GGUF":
        raise BackendError(
            f"{model_id}: {path} is not a GGUF file (it does not start with the GGUF magic bytes); "
            "it may be truncated, corrupt or another format"
        )
