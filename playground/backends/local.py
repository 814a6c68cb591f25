"""A loaded local model (transformers) and the stream of its steps.

Loading lives in local_load.py, prompt templating in templating.py, the decode loops in
decode.py (eager) and fast_decode.py (static cache and CUDA graphs); this module joins them into
the backend contract of base.py.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import torch

from playground.backends.attention import capture_attention
from playground.backends.base import (
    BackendDefaults,
    BackendError,
    Capabilities,
    Exchange,
    PromptEncoding,
    StreamInfo,
    StreamIteration,
)
from playground.backends.decode import StepOutput, generate_steps
from playground.backends.device import CudaPeak, kv_cache_bytes, module_bytes
from playground.backends.fast_decode import FastDecoder
from playground.backends.fast_warm import PROBE_TEXT
from playground.backends.templating import Templating
from playground.record import (
    AttentionCapture,
    GenerationParams,
    ModelIdentity,
    TokenAlt,
    TokenPiece,
    TokenStep,
)


class LocalBackend(BackendDefaults):
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
        self.templating = Templating(tokenizer, frame)
        self.capabilities = Capabilities(chat_template=self.templating.chat_template)
        self.frame = self.templating.frame
        self.identity.prompt_format = self.templating.prompt_format
        self.identity.context_window = self.context_window
        self.eos_ids = eos_ids(model, tokenizer)
        self.special_ids = self.templating.special_ids
        self.weights_bytes = module_bytes(model)
        # The model and tokenizer are shared by every user. `lock` guards each forward pass, so an
        # attention capture (eager switch + hooks) never sees another run's decode step; the
        # tokenizer lock guards encoding (see templating.Templating).
        self.lock = threading.RLock()
        self.tokenizer_lock = self.templating.lock
        self._token_texts: dict[int, str] = {}  # token_text's memo (a token's text never changes)
        self.fast = FastDecoder(identity.catalog_id, model, self.lock, self._eager, self.eos_ids)

    def warm(self, cache_root: Path | None) -> None:
        """Capture the fast path's common workspaces and fuse its step, in the background (on CUDA,
        or wherever PLAYGROUND_FAST_PATH=on); a run meanwhile captures what it needs itself."""
        with self.tokenizer_lock:
            probe = self.tokenizer(PROBE_TEXT, add_special_tokens=False)["input_ids"]
        self.fast.warm(list(probe), cache_root)

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
        """The exact ids the model will see (templating.Templating.encode says how)."""
        return self.templating.encode(prompt, system_prompt, specials_as_text, history)

    def count_tokens(self, text: str, specials_as_text: bool = False) -> int:
        return self.templating.count_tokens(text, specials_as_text)

    def pieces(self, ids: list[int]) -> list[TokenPiece]:
        return self.templating.pieces(ids)

    def decode(self, token_ids: list[int]) -> str:
        return self.tokenizer.decode(token_ids, skip_special_tokens=True)

    def token_text(self, token_id: int) -> str:
        """One token's text, remembered: each step shows six (the token and its top-5), and with
        many users on one model the host's per-token work bounds every user's rate."""
        text = self._token_texts.get(token_id)
        if text is None:
            text = self._token_texts[token_id] = self.tokenizer.decode([token_id], skip_special_tokens=False)
        return text

    def capture_attention(
        self, token_ids: list[int], special_positions: list[int], token_cap: int, byte_budget: int
    ) -> AttentionCapture:
        try:
            # no other run's forward may pass the hooks or the eager switch, and no fused step's trace
            with self.fast.tracing, self.lock:
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

    def open_stream(
        self, encoding: PromptEncoding | list[int], params: GenerationParams, should_stop: Callable[[], bool],
        batch: object = None,
    ) -> StepStream:
        """The column's steps: the fast path where it applies (backends/fast_decode.py), else eager.

        The report's `decode_path` says which (the column header shows it); streams opened with the
        same `batch` token and prompt decode as one batch on the fast path."""
        prompt_ids = encoding.token_ids if isinstance(encoding, PromptEncoding) else encoding
        info = StreamInfo()
        reason = self.fast.unavailable(len(prompt_ids), params.max_new_tokens)
        if reason:
            info.decode_path = f"eager: {reason}"
            return StepStream(self, self._eager(prompt_ids, params, should_stop), info)

        def on_path(label: str, capture_s: float, workspace_bytes: int) -> None:
            info.decode_path, info.graph_capture_s, info.workspace_bytes = label, capture_s, workspace_bytes

        info.decode_path = "fast path"
        row = self.fast.open_row(prompt_ids, params, should_stop, on_path, batch)
        return StepStream(self, row, info, launch=row.launch)

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


class StepStream(StreamIteration):
    """A local column's ColumnStream (base.py): TokenSteps from the fast path's row or the eager generator.

    launch() starts the fast path's next step without waiting, so the engine can start every
    column's step before it collects any; on the eager path there is nothing to start."""

    def __init__(self, backend: LocalBackend, outputs: Iterator[StepOutput], info: StreamInfo,
                 launch: Callable[[], None] | None = None) -> None:
        self.backend = backend
        self.outputs = outputs
        self.info = info
        self._launch = launch

    def next(self) -> TokenStep | None:
        try:
            return self.backend.token_step(next(self.outputs))
        except StopIteration:
            return None
        except torch.OutOfMemoryError as exc:
            raise BackendError(
                f"out of memory on {self.backend.identity.device} while generating: try fewer columns, "
                "a shorter prompt or fewer max new tokens"
            ) from exc
        except MemoryError as exc:
            raise BackendError("out of host memory while generating") from exc

    def launch(self) -> None:
        if self._launch is not None:
            self._launch()

    def close(self) -> None:
        self.outputs.close()

    def report(self) -> StreamInfo:
        return self.info


def eos_ids(model: torch.nn.Module, tokenizer: object) -> set[int]:
    """Every id that ends an answer: the generation config's, the model config's and the tokenizer's."""
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
