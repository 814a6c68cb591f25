"""The project's decode loop, gpt-fast style: prefill, decode_step, sample.

One token per step, with the model's own log-probability of that token and its
top-k alternatives (from the raw logits, before temperature or top-p reshape
them). Sampling uses transformers' logits processors and the counter-based draw
of backends/sampling.py, which the fast path (backends/fast_decode.py: static
KV cache, CUDA graphs) shares, so a seed gives the same tokens on both paths.
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass

import torch
from transformers import DynamicCache
from transformers.generation.logits_process import (
    LogitsProcessorList,
    RepetitionPenaltyLogitsProcessor,
    TemperatureLogitsWarper,
    TopKLogitsWarper,
    TopPLogitsWarper,
)

from playground.backends.sampling import gumbel_argmax, seed_words
from playground.record import GenerationParams

PREFILL_CHUNK = 512  # prompt tokens per prefill forward: Stop and the timeout are checked between chunks


@dataclass
class StepOutput:
    token_id: int
    logprob: float
    top_ids: list[int]
    top_logprobs: list[float]


def _forward_kwargs(model: torch.nn.Module) -> dict[str, object]:
    """Ask for last-position logits only when the model supports it (saves the prefill's LM head)."""
    params = inspect.signature(model.forward).parameters
    return {"logits_to_keep": 1} if "logits_to_keep" in params else {}


def prefill(
    model: torch.nn.Module,
    prompt_ids: torch.Tensor,
    should_stop: Callable[[], bool] = lambda: False,
    lock: AbstractContextManager | None = None,
    chunk: int = PREFILL_CHUNK,
) -> tuple[torch.Tensor, DynamicCache] | None:
    """Run the prompt in chunks into a KV cache; return last-position logits (float32) and the cache.

    Chunks keep a long prefill interruptible: None means should_stop() asked to stop between
    chunks. The lock (the model's own) is held per forward, never across chunks.
    """
    cache = DynamicCache(config=model.config)
    total = prompt_ids.shape[1]
    logits = None
    for start in range(0, total, chunk):
        if start and should_stop():
            return None
        with lock or contextlib.nullcontext():
            out = model(input_ids=prompt_ids[:, start : start + chunk], past_key_values=cache, use_cache=True,
                        **_forward_kwargs(model))
        logits = out.logits[:, -1, :].float()
    return logits, cache


def decode_step(
    model: torch.nn.Module, token: torch.Tensor, cache: DynamicCache,
    lock: AbstractContextManager | None = None,
) -> torch.Tensor:
    """Feed one token; return the next position's logits (float32)."""
    with lock or contextlib.nullcontext():
        out = model(input_ids=token.view(1, 1), past_key_values=cache, use_cache=True)
    return out.logits[:, -1, :].float()


def build_processors(params: GenerationParams) -> LogitsProcessorList:
    """transformers' own processors, in generate()'s order."""
    processors = LogitsProcessorList()
    if params.repetition_penalty != 1.0:
        processors.append(RepetitionPenaltyLogitsProcessor(params.repetition_penalty))
    if not params.greedy:
        processors.append(TemperatureLogitsWarper(params.temperature))
        if params.top_k > 0:
            processors.append(TopKLogitsWarper(params.top_k))
        if params.top_p < 1.0:
            processors.append(TopPLogitsWarper(params.top_p))
    return processors


def sample(
    logits: torch.Tensor,
    seen_ids: torch.Tensor,
    processors: LogitsProcessorList,
    greedy: bool,
    seed: int,
    step: int,
) -> torch.Tensor:
    """Pick the next token: argmax when greedy, else the draw keyed by (seed, step) from the
    processed distribution (the same draw the fast path makes)."""
    scores = processors(seen_ids, logits) if len(processors) else logits
    if greedy:
        return scores.argmax(dim=-1)
    lo, hi = seed_words(seed)
    words = torch.tensor([[lo], [hi], [step]], dtype=torch.long, device=scores.device)
    return gumbel_argmax(scores, words[0], words[1], words[2])


@torch.inference_mode()
def generate_steps(
    model: torch.nn.Module,
    prompt_ids: list[int],
    params: GenerationParams,
    eos_ids: set[int],
    should_stop: Callable[[], bool],
    top_k_alternatives: int = 5,
    lock: AbstractContextManager | None = None,
    prefill_chunk: int = PREFILL_CHUNK,
) -> Iterator[StepOutput]:
    """Yield one StepOutput per generated token until EOS, max tokens or should_stop().

    should_stop() is also asked between prefill chunks: a stopped prefill yields nothing.
    `lock` guards every forward of a model shared with other runs (see LocalBackend.lock).

    Inference mode is a decorator, not a `with` block: torch then enters it each time
    the generator resumes and leaves it at each `yield`. A `with` block would leak the
    mode into the caller between tokens, and when the engine interleaves several
    generators, the first to finish would switch it off under the others.
    """
    device = model.device
    seen = torch.tensor([prompt_ids], dtype=torch.long, device=device)
    processors = build_processors(params)
    filled = prefill(model, seen, should_stop, lock, prefill_chunk)
    if filled is None:
        return
    logits, cache = filled
    for step in range(params.max_new_tokens):
        token = sample(logits, seen, processors, params.greedy, params.seed, step)
        logprobs = torch.log_softmax(logits, dim=-1)[0]
        top = torch.topk(logprobs, top_k_alternatives)
        token_id = int(token.item())
        yield StepOutput(
            token_id=token_id,
            logprob=float(logprobs[token_id]),
            top_ids=top.indices.tolist(),
            top_logprobs=top.values.tolist(),
        )
        if token_id in eos_ids or should_stop():
            return
        if processors:
            seen = torch.cat([seen, token.view(1, 1)], dim=1)
        logits = decode_step(model, token, cache, lock)
