"""The fast decode path on CPU (static KV cache, graphs off) against the eager loop, on the real models.

CI has no GPU, so what the GPU runs as a captured CUDA graph runs here as the same function
called eagerly (PLAYGROUND_FAST_PATH=on): same static cache, same 4-D masks, same batched
per-row sampling. bench/bench_gpu.py checks the graph itself against the eager path on a GPU.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from transformers.generation.logits_process import (
    LogitsProcessorList,
    RepetitionPenaltyLogitsProcessor,
    TemperatureLogitsWarper,
    TopKLogitsWarper,
    TopPLogitsWarper,
)

from playground.backends import fast_decode
from playground.backends.base import StreamInfo
from playground.backends.local import LocalBackend
from playground.backends.pool import ModelPool
from playground.backends.sampling import RowParams, gumbel_argmax, process_rows, seed_words, uniform_noise
from playground.catalog import GEMMA3, SMOLLM2, Catalog
from playground.engine import ColumnRequest, Engine, RunRequest
from playground.record import GenerationParams
from playground.ui.html import fmt_bytes, loaded_models, memory_text

pytestmark = pytest.mark.timeout(600)

QUESTION = "What is the capital of France? Answer in one sentence."
RAW = "The three primary colours are"


def one(max_new_tokens: int) -> ColumnRequest:
    return ColumnRequest(SMOLLM2.id, GenerationParams(max_new_tokens=max_new_tokens))


@pytest.fixture
def fast(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(fast_decode.FAST_PATH_ENV, "on")


@contextlib.contextmanager
def decode_path(mode: str) -> Iterator[None]:
    before = os.environ.get(fast_decode.FAST_PATH_ENV)
    os.environ[fast_decode.FAST_PATH_ENV] = mode
    try:
        yield
    finally:
        if before is None:
            del os.environ[fast_decode.FAST_PATH_ENV]
        else:
            os.environ[fast_decode.FAST_PATH_ENV] = before


def tokens(
    backend: LocalBackend, prompt: str, params: GenerationParams, path: str
) -> tuple[list, StreamInfo]:
    """(token id, logprob, top ids) per step, and what the stream said about its path."""
    with decode_path(path):
        steps = backend.open_stream(backend.encode_prompt(prompt, ""), params, lambda: False)
        return [(s.token_id, s.logprob, [a.token_id for a in s.top]) for s in steps], steps.report()


# -- sampling: the per-row processors are transformers' own, row by row -------------------


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_process_rows_equals_transformers_processors_row_by_row(seed: int) -> None:
    generator = torch.Generator().manual_seed(seed)
    vocab = 500
    logits = torch.randn((4, vocab), generator=generator) * 4
    presence = torch.rand((4, vocab), generator=generator) < 0.05
    rows = [GenerationParams(temperature=0.7, top_k=40, top_p=0.9, repetition_penalty=1.3),
            GenerationParams(temperature=1.3, top_k=0, top_p=0.5),
            GenerationParams(temperature=0.2, top_k=7, top_p=1.0, repetition_penalty=0.8),
            GenerationParams(temperature=1.0, top_k=vocab + 10, top_p=0.99)]
    params = RowParams.empty(4, "cpu")
    params.fill(rows, vocab)
    got = process_rows(logits, presence, params)
    for i, p in enumerate(rows):
        processors = LogitsProcessorList()
        if p.repetition_penalty != 1.0:
            processors.append(RepetitionPenaltyLogitsProcessor(p.repetition_penalty))
        processors.append(TemperatureLogitsWarper(p.temperature))
        if p.top_k > 0:
            processors.append(TopKLogitsWarper(p.top_k))
        if p.top_p < 1.0:
            processors.append(TopPLogitsWarper(p.top_p))
        seen = presence[i].nonzero().view(1, -1)
        want = processors(seen, logits[i : i + 1].clone())[0]
        assert torch.equal(torch.isinf(got[i]), torch.isinf(want)), f"row {i}: different tokens kept"
        kept = ~torch.isinf(want)
        assert torch.allclose(got[i][kept], want[kept], rtol=1e-6, atol=1e-6), f"row {i}"


def test_the_draw_follows_the_distribution_and_is_a_function_of_seed_and_step() -> None:
    probs = torch.tensor([[0.5, 0.3, 0.15, 0.05, 0.0]])
    scores = probs.log()
    counts = torch.zeros(5)
    lo, hi = (torch.tensor([w]) for w in seed_words(2**40 + 12345))
    for step in range(4000):
        counts[gumbel_argmax(scores, lo, hi, torch.tensor([step]))] += 1
    assert counts[4] == 0, "a token of probability 0 was drawn"
    assert torch.allclose(counts / counts.sum(), probs[0], atol=0.03), counts / counts.sum()
    a = uniform_noise(lo, hi, torch.tensor([7]), 64)
    assert torch.equal(a, uniform_noise(lo, hi, torch.tensor([7]), 64))
    assert not torch.equal(a, uniform_noise(lo, hi, torch.tensor([8]), 64))
    assert not torch.equal(a, uniform_noise(lo + 1, hi, torch.tensor([7]), 64))
    assert bool(((a > 0) & (a < 1)).all())


# -- the static-cache step against the eager loop, on the real models ----------------------


@pytest.mark.parametrize(("spec", "prompt"), [(SMOLLM2, QUESTION), (GEMMA3, RAW)], ids=["smollm2", "gemma3"])
def test_greedy_fast_path_is_token_identical_to_the_eager_loop(pool, spec, prompt: str) -> None:
    backend = pool.get(spec)
    params = GenerationParams(max_new_tokens=24)
    eager, eager_info = tokens(backend, prompt, params, "off")
    fast, fast_info = tokens(backend, prompt, params, "on")
    assert eager_info.decode_path == "eager: PLAYGROUND_FAST_PATH=off"
    assert fast_info.decode_path == "fast path: static cache, no graph"
    assert [t[0] for t in fast] == [t[0] for t in eager]
    assert [t[2] for t in fast] == [t[2] for t in eager]  # the same top-5 alternatives
    assert max(abs(f[1] - e[1]) for f, e in zip(fast, eager, strict=True)) < 1e-3


@pytest.mark.parametrize("spec", [SMOLLM2, GEMMA3], ids=["smollm2", "gemma3"])
def test_sampled_rows_match_the_eager_path_alone_and_batched(pool, spec) -> None:
    """A seed gives the same tokens on the eager path, on the fast path alone, and batched."""
    backend = pool.get(spec)
    settings = ((1.0, 1, 1.2), (0.7, 2, 1.0), (1.3, 3, 1.0))  # temperature, seed, repetition penalty
    rows = [GenerationParams(max_new_tokens=12, temperature=t, top_k=40, top_p=0.9, seed=s,
                             repetition_penalty=r) for t, s, r in settings]
    eager = [[t[0] for t in tokens(backend, QUESTION, p, "off")[0]] for p in rows]
    alone = [[t[0] for t in tokens(backend, QUESTION, p, "on")[0]] for p in rows]
    assert alone == eager
    batch = object()
    with decode_path("on"):
        encoding = backend.encode_prompt(QUESTION, "")
        streams = [backend.open_stream(encoding, p, lambda: False, batch=batch) for p in rows]
        infos = [stream.report() for stream in streams]
        got: list[list[int]] = [[] for _ in rows]
        live = set(range(len(rows)))
        while live:
            for i in live:
                streams[i].launch()
            for i in sorted(live):
                try:
                    got[i].append(next(streams[i]).token_id)
                except StopIteration:
                    live.discard(i)
    assert got == eager
    assert {i.decode_path for i in infos} == {"fast path: static cache, no graph, 3 columns batched"}


# -- through the engine ------------------------------------------------------------------


def test_engine_batches_same_model_columns_and_captures_attention_after(engine: Engine, fast: None) -> None:
    columns = [ColumnRequest(SMOLLM2.id, GenerationParams(max_new_tokens=10, temperature=0.9, seed=s))
               for s in (5, 6)] + [ColumnRequest(GEMMA3.id, GenerationParams(max_new_tokens=10))]
    run = engine.run(RunRequest(prompt=QUESTION, columns=columns))
    paths = [m.identity.decode_path for m in run.models]
    alone = "fast path: static cache, no graph"
    assert paths == [f"{alone}, 2 columns batched"] * 2 + [alone]
    for m in run.models:
        assert m.error == "" and m.finish_reason in ("eos", "length", "stop")  # stop: a Q/A frame's end
        assert m.attention is not None and m.attention.tokens > 0, m.attention_note
        assert all(s.logprob <= 0 and len(s.top) == 5 for s in m.steps)
        assert m.metrics.decode_tok_s > 0
    assert run.models[0].output_token_ids != run.models[1].output_token_ids  # two seeds, two answers


def test_concurrent_runs_on_one_model_each_get_their_own_tokens(engine: Engine, fast: None) -> None:
    """Two users' runs of one model at once: each gets its own workspace and the tokens it gets alone."""
    params = [GenerationParams(max_new_tokens=12, temperature=1.0, seed=s) for s in (21, 22, 23)]
    alone = [engine.run(RunRequest(prompt=QUESTION, columns=[ColumnRequest(SMOLLM2.id, p)],
                                   capture_attention=False)).models[0].output_token_ids for p in params]
    results: dict[int, list[int]] = {}
    errors: list[BaseException] = []

    def user(i: int) -> None:
        try:
            run = engine.run(RunRequest(prompt=QUESTION, columns=[ColumnRequest(SMOLLM2.id, params[i])],
                                        capture_attention=i == 0))
            results[i] = run.models[0].output_token_ids
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=user, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not errors, errors
    assert [results[i] for i in range(3)] == alone


def test_a_stopped_fast_path_run_gives_its_workspace_back(engine: Engine, pool, fast: None) -> None:
    backend = pool.get(SMOLLM2)
    cancel = threading.Event()
    request = RunRequest(prompt=QUESTION, columns=[one(200)])
    run, events = engine.stream(request, cancel)
    for event in events:
        if event.kind == "token":
            cancel.set()
    assert run.models[0].finish_reason == "cancelled"
    assert run.models[0].steps, "no partial output kept"
    assert backend.fast.idle_bytes() > 0, "the stopped run's workspace was not kept for the next run"
    again = engine.run(RunRequest(prompt=QUESTION, columns=[one(8)]))
    assert again.models[0].error == "" and again.models[0].steps


def test_past_the_sliding_window_the_eager_path_says_why(gemma: LocalBackend, fast: None) -> None:
    long = GenerationParams(max_new_tokens=600)
    steps = gemma.open_stream(gemma.encode_prompt(RAW, ""), long, lambda: True)
    steps.close()
    assert steps.report().decode_path == "eager: prompt + new tokens past the 512-token sliding window"


def test_a_bad_fast_path_setting_fails_the_column_with_a_message(engine: Engine, monkeypatch) -> None:
    monkeypatch.setenv(fast_decode.FAST_PATH_ENV, "sometimes")
    run = engine.run(RunRequest(prompt=QUESTION, columns=[one(4)]))
    assert "PLAYGROUND_FAST_PATH must be auto, on or off, not 'sometimes'" in run.models[0].error


def test_a_failed_capture_falls_back_to_eager_and_an_oom_ends_only_its_column(
    engine: Engine, pool, fast: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What a GPU can do that a CPU cannot (a capture that fails, an out-of-memory) is raised here
    from Workspace.prepare; bench/bench_gpu.py forces a real out-of-memory on the GPU."""
    smollm2, gemma = pool.get(SMOLLM2), pool.get(GEMMA3)
    real_prepare = fast_decode.Workspace.prepare

    def failing(self: fast_decode.Workspace, lock: object, step: object = None) -> float:
        if self.model is gemma.model:
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        if self.model is smollm2.model:
            raise RuntimeError("operation not permitted when stream is capturing (simulated)")
        return real_prepare(self, lock, step)

    monkeypatch.setattr(fast_decode.Workspace, "prepare", failing)
    monkeypatch.setattr(smollm2.fast, "_idle", {})
    monkeypatch.setattr(gemma.fast, "_idle", {})
    monkeypatch.setattr(smollm2.fast, "broken", "")
    columns = [ColumnRequest(SMOLLM2.id, GenerationParams(max_new_tokens=8)),
               ColumnRequest(GEMMA3.id, GenerationParams(max_new_tokens=8))]
    run = engine.run(RunRequest(prompt=QUESTION, columns=columns, capture_attention=False))
    first, second = run.models
    assert first.error == "" and first.steps
    assert first.identity.decode_path.startswith("eager: fast path unavailable, capture failed: RuntimeError")
    assert second.finish_reason == "error"
    assert "out of memory on the GPU while setting up the fast path" in second.error
    assert gemma.fast.idle_bytes() == 0
    smollm2.fast.broken = ""  # later tests take the fast path again


def test_fast_path_workspaces_count_in_the_pool_budget_and_the_mem_lines(
    catalog: Catalog, data_dir: Path, smollm2: LocalBackend, gemma: LocalBackend, fast: None,
) -> None:
    """On CPU the fast path runs the GPU's step eagerly with the same workspaces (static caches,
    up to 2 GiB a model on a GPU). They were held outside the pool's budget and shown nowhere: now
    the pool counts them, an idle model goes when a run's workspace puts the pool over the budget,
    and the pool line and the column's mem line show them."""
    smollm2.fast.close()  # a known start: no workspace kept from earlier tests
    gemma.fast.close()
    loaded = {SMOLLM2: smollm2, GEMMA3: gemma}  # the session's models: nothing is loaded again
    weights = smollm2.weights_bytes + gemma.weights_bytes
    fresh = ModelPool(data_dir, device="cpu", budget_bytes=weights + 2**20,
                      loader=lambda spec, *_a: loaded[spec], free_memory=lambda _device: 64 * 2**30)
    fresh.put(GEMMA3, gemma)
    fresh.get(SMOLLM2)
    assert fresh.evicted == []  # both models' weights fit
    run = Engine(catalog, fresh).run(RunRequest(prompt=QUESTION, columns=[one(8)]))
    (model,) = run.models
    assert model.error == "" and model.identity.decode_path.startswith("fast path")
    held = smollm2.workspace_bytes()
    assert held > 2**20 and model.metrics.workspace_bytes == held
    assert fresh.evicted == ["gemma3-270m"], "the workspace put the pool over its budget"
    assert fresh.used_bytes() == smollm2.weights_bytes + held
    (info,) = fresh.loaded()
    assert info.workspace_bytes == held
    assert f"+ {fmt_bytes(held)} fast-path workspaces" in loaded_models([info], fresh.used_bytes(), weights)
    assert memory_text(model).endswith(f"+ {fmt_bytes(held)} fast-path workspace")
