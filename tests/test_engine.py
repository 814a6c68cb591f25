"""The engine on the two bundled models, for real, on CPU.

Token counts stay small (<= 32) so the whole file runs in a few minutes on two cores.
The first test to touch a model loads it (from the converted cache: seconds; on a
fresh data dir the GGUF conversion takes minutes, hence the generous timeout).
"""

from __future__ import annotations

import dataclasses
import math
import random
import threading
import time
from pathlib import Path

import pytest
import torch

from playground.backends import local_load as local_module
from playground.backends import pool as pool_module
from playground.backends.base import StreamInfo, StreamIteration
from playground.backends.local import LocalBackend, StepStream
from playground.backends.pool import ModelPool
from playground.catalog import GEMMA3, SMOLLM2, Catalog
from playground.engine import MAX_NEW_TOKENS_LIMIT, ColumnRequest, Engine, RequestError, RunRequest
from playground.record import GenerationParams, ModelRun, Run, TokenStep

pytestmark = pytest.mark.timeout(600)

FRANCE = "What is the capital of France?"
FRANCE_RAW = "The capital of France is"  # Gemma 3 270M is a base model: it completes text
STORY = "Write a long story about a dragon who learns to bake bread."


def col(model: str, **params: object) -> ColumnRequest:
    return ColumnRequest(model, GenerationParams(**params))


def run_columns(engine: Engine, prompt: str, *columns: ColumnRequest, system: str = "") -> Run:
    return engine.run(RunRequest(prompt=prompt, columns=list(columns), system_prompt=system))


def assert_answered(model: ModelRun) -> None:
    assert model.error == "", model.error
    assert model.finish_reason in ("eos", "length", "stop"), model.finish_reason
    assert model.text.strip(), "empty answer"
    assert model.steps


# -- both bundled models answer ------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "prompt", "prompt_format"),
    [(SMOLLM2, FRANCE, "chat template"), (GEMMA3, FRANCE, "question/answer frame")],
    ids=["smollm2", "gemma3"],
)
def test_bundled_model_loads_and_answers(engine: Engine, spec, prompt: str, prompt_format: str) -> None:
    run, events = engine.stream(RunRequest(prompt=prompt, columns=[col(spec.id, max_new_tokens=12)]))
    events = list(events)
    (model,) = run.models
    assert_answered(model)

    ident = model.identity
    assert (ident.catalog_id, ident.source) == (spec.id, "gguf")
    assert (ident.device, ident.dtype) == ("cpu", "float32")
    assert ident.prompt_format == prompt_format
    assert len(ident.sha256) == 64
    assert Path(ident.location).is_file()
    assert ident.context_window == (8192 if spec is SMOLLM2 else 32768)
    assert set(ident.libraries) >= {"torch", "transformers"}

    m = model.metrics
    assert m.prompt_tokens == len(model.prompt_token_ids) > 0
    assert m.output_tokens == len(model.steps) > 1
    assert m.ttft_s > 0
    assert m.decode_tok_s > 0
    assert m.total_s >= m.ttft_s
    # memory: the model's own weights (float32: 4 bytes a parameter) and this column's KV cache,
    # computed from the model's shape; no process-wide figure on CPU
    backend = engine.pool.get(spec)
    params = sum(p.numel() for p in backend.model.parameters())
    assert params * 4 <= m.weights_bytes == backend.weights_bytes
    assert m.kv_cache_bytes == backend.kv_cache_bytes(m.prompt_tokens + m.output_tokens) > 0
    assert (m.memory_kind, m.peak_memory_bytes) == ("", 0)

    # each step carries its own probability and five alternatives, greedy picks the top one
    for step in model.steps:
        assert step.logprob <= 0
        assert len(step.top) == 5
        assert step.top[0].token_id == step.token_id
        assert [a.logprob for a in step.top] == sorted((a.logprob for a in step.top), reverse=True)

    # the event stream: started, tokens whose deltas spell the text, finished, then done
    kinds = [e.kind for e in events]
    assert kinds[0] == "status" and kinds[-1] == "done"
    assert kinds.index("started") < kinds.index("token") < kinds.index("finished")
    assert "".join(e.delta for e in events if e.kind == "token") == model.text


def test_smollm2_greedy_knows_the_capital_of_france(engine: Engine) -> None:
    (model,) = run_columns(engine, FRANCE, col("smollm2-135m", max_new_tokens=16)).models
    assert_answered(model)
    assert "Paris" in model.text


def test_system_prompt_goes_into_the_chat_template(engine: Engine, smollm2: LocalBackend) -> None:
    run = run_columns(engine, FRANCE, col("smollm2-135m", max_new_tokens=2), system="Answer in French.")
    (model,) = run.models
    assert model.prompt_token_ids == smollm2.encode_prompt(FRANCE, "Answer in French.").token_ids
    assert "Answer in French." in smollm2.tokenizer.decode(model.prompt_token_ids)


# -- the decode loop is exact ----------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "prompt", "n"),
    [(SMOLLM2, "Name three colours of the rainbow.", 24), (GEMMA3, FRANCE_RAW, 8)],
    ids=["smollm2", "gemma3"],
)
def test_greedy_tokens_and_logprobs_match_the_model(engine: Engine, pool: ModelPool, spec, prompt, n) -> None:
    backend = pool.get(spec)
    prompt_ids = backend.encode_prompt(prompt, "").token_ids
    (model,) = run_columns(engine, prompt, col(spec.id, max_new_tokens=n)).models
    assert_answered(model)
    assert model.prompt_token_ids == prompt_ids
    out_ids = model.output_token_ids

    with torch.inference_mode():
        reference = backend.model.generate(
            torch.tensor([prompt_ids]),
            attention_mask=torch.ones(1, len(prompt_ids), dtype=torch.long),
            do_sample=False,
            max_new_tokens=n,
            pad_token_id=backend.tokenizer.pad_token_id or 0,
        )
        # one forward pass over prompt + output: the model's own logits at every position
        logits = backend.model(torch.tensor([prompt_ids + out_ids])).logits[0].float()
    # the same tokens (the engine may end sooner: a base model's answer ends at its frame's next "Question:")
    assert reference[0, len(prompt_ids) : len(prompt_ids) + len(out_ids)].tolist() == out_ids
    assert len(out_ids) == n or model.finish_reason in ("stop", "eos")

    logprobs = torch.log_softmax(logits[len(prompt_ids) - 1 : -1], dim=-1)
    assert logprobs.shape[0] == len(out_ids)
    for position, step in enumerate(model.steps):
        row = logprobs[position]
        assert step.logprob == pytest.approx(float(row[step.token_id]), abs=1e-4)
        top = torch.topk(row, 5)
        assert [alt.token_id for alt in step.top] == top.indices.tolist()
        assert [alt.logprob for alt in step.top] == pytest.approx(top.values.tolist(), abs=1e-4)
        assert [alt.text for alt in step.top] == [backend.token_text(i) for i in top.indices.tolist()]


# -- sampling ----------------------------------------------------------------------


def test_sampling_is_reproducible_per_seed_and_varies_across_seeds(engine: Engine) -> None:
    seeds = [7, 7, 1, 2]
    columns = [col("smollm2-135m", max_new_tokens=12, temperature=1.0, seed=s) for s in seeds]
    models = run_columns(engine, STORY, *columns).models
    for model in models:
        assert_answered(model)
    assert models[0].output_token_ids == models[1].output_token_ids  # same seed, same tokens
    assert models[0].text == models[1].text
    different = {tuple(m.output_token_ids) for m in models[1:]}  # seeds 7, 1, 2
    assert len(different) > 1, "three seeds at temperature 1.0 gave the same tokens"


# -- how a column ends ---------------------------------------------------------------


@pytest.mark.parametrize("stop", ["Paris", "France is"])
def test_stop_string_truncates_the_text(engine: Engine, stop: str) -> None:
    (full,) = run_columns(engine, FRANCE, col("smollm2-135m", max_new_tokens=16)).models
    assert stop in full.text
    (model,) = run_columns(engine, FRANCE, col("smollm2-135m", max_new_tokens=16, stop=[stop])).models
    assert model.finish_reason == "stop"
    assert model.error == ""
    assert stop not in model.text
    assert model.text == full.text[: full.text.index(stop)]
    assert len(model.steps) < len(full.steps)


def test_max_new_tokens_ends_with_length(engine: Engine) -> None:
    (model,) = run_columns(engine, STORY, col("smollm2-135m", max_new_tokens=3)).models
    assert model.finish_reason == "length"
    assert model.error == ""
    assert len(model.steps) == model.metrics.output_tokens == 3


# -- bad input, and faults that stay in their own column ----------------------------------


@pytest.mark.parametrize("prompt", ["", "   \n\t "])
def test_empty_prompt_is_refused_before_anything_starts(engine: Engine, prompt: str) -> None:
    with pytest.raises(RequestError, match="prompt is empty"):
        engine.stream(RunRequest(prompt=prompt, columns=[col("smollm2-135m")]))


def test_no_columns_is_refused(engine: Engine) -> None:
    with pytest.raises(RequestError, match="no model picked"):
        engine.run(RunRequest(prompt=FRANCE, columns=[]))


def test_prompt_beyond_the_context_window_fails_before_generating(engine: Engine) -> None:
    vocabulary = ["river", "stone", "lantern", "quietly", "over", "the", "north"]
    words = random.Random(0).choices(vocabulary, k=12000)
    prompt = " ".join(words)[:60_000]
    (model,) = run_columns(engine, prompt, col("smollm2-135m", max_new_tokens=16)).models
    assert model.finish_reason == "error"
    assert "context window" in model.error
    assert "8,192" in model.error
    assert "nothing was truncated" in model.error
    assert model.metrics.prompt_tokens > 8192
    assert model.steps == [] and model.text == ""


def test_prompt_too_long_for_one_model_only_fails_that_column(engine: Engine) -> None:
    # Newlines: SmolLM2's tokenizer spends one token per 4 of them (11k tokens, beyond its 8k
    # window), Gemma's one per 31 (1.5k tokens, in its 32k window) - so Gemma's column still
    # answers without a minutes-long prefill on CPU.
    prompt = "\n" * 45_000 + FRANCE_RAW
    small, big = run_columns(
        engine, prompt, col("smollm2-135m", max_new_tokens=8), col("gemma3-270m", max_new_tokens=8)
    ).models
    assert small.finish_reason == "error"
    assert "context window" in small.error
    assert small.metrics.prompt_tokens > 8192
    assert small.steps == [] and small.text == ""
    assert_answered(big)
    assert big.metrics.prompt_tokens < 8192


def test_unknown_model_fails_only_its_column(engine: Engine) -> None:
    good, bad = run_columns(
        engine, FRANCE, col("smollm2-135m", max_new_tokens=16), col("no-such-model", max_new_tokens=16)
    ).models
    assert_answered(good)
    assert "Paris" in good.text
    assert bad.finish_reason == "error"
    assert "unknown model 'no-such-model'" in bad.error
    assert bad.identity.catalog_id == "no-such-model"
    assert bad.steps == []


def _junk(n: int) -> bytes:
    data = random.Random(1).randbytes(n)
    assert not data.startswith(b"GGUF")
    return data


@pytest.mark.parametrize(
    ("content", "expected"),
    [(_junk(4096), "is not a GGUF file"), (b"GGUF" + _junk(4096), "could not load model")],
    ids=["junk", "gguf-magic-then-junk"],
)
def test_corrupt_gguf_fails_only_its_column(engine: Engine, tmp_path: Path, content: bytes, expected) -> None:
    path = tmp_path / "x.gguf"
    path.write_bytes(content)
    good, bad = run_columns(
        engine, FRANCE, col("smollm2-135m", max_new_tokens=16), col(str(path), max_new_tokens=16)
    ).models
    assert_answered(good)
    assert "Paris" in good.text
    assert bad.finish_reason == "error"
    assert bad.error.startswith("x: ")  # names the model
    assert expected in bad.error
    assert "Traceback" not in bad.error
    assert bad.steps == []


@pytest.mark.parametrize("max_new_tokens", [0, -1, MAX_NEW_TOKENS_LIMIT + 1, 10**9])
def test_out_of_range_max_new_tokens_fails_the_column(engine: Engine, max_new_tokens: int) -> None:
    (model,) = run_columns(engine, FRANCE, col("smollm2-135m", max_new_tokens=max_new_tokens)).models
    assert model.finish_reason == "error"
    assert "max new tokens must be between 1 and" in model.error
    assert str(max_new_tokens) in model.error
    assert model.steps == []


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"temperature": -0.5}, "temperature must be 0 (greedy) or a positive number"),
        ({"temperature": math.nan}, "temperature must be 0 (greedy) or a positive number"),
        ({"temperature": math.inf}, "temperature must be 0 (greedy) or a positive number"),
        ({"top_p": 0.0}, "top-p must be in (0, 1]"),
        ({"top_p": math.nan}, "top-p must be in (0, 1]"),
        ({"top_k": -1}, "top-k must be 0 (off) or positive"),
        ({"repetition_penalty": 0.0}, "repetition penalty must be a positive number"),
        ({"repetition_penalty": math.nan}, "repetition penalty must be a positive number"),
        ({"timeout_s": 0.0}, "request timeout must be a positive number"),
        ({"timeout_s": math.nan}, "request timeout must be a positive number"),
        ({"seed": 10**30}, "seed must be between 0 and 2^63-1"),
        ({"seed": -1}, "seed must be between 0 and 2^63-1"),
        ({"stop": [""]}, "stop strings must not be empty"),
    ],
    ids=["temperature", "temperature-nan", "temperature-inf", "top_p", "top_p-nan", "top_k",
         "repetition_penalty", "repetition_penalty-nan", "timeout", "timeout-nan", "seed-huge",
         "seed-negative", "stop"],
)
def test_bad_parameter_fails_the_column(engine: Engine, params: dict, message: str) -> None:
    (bad,) = run_columns(engine, FRANCE, col("smollm2-135m", max_new_tokens=4, **params)).models
    assert bad.finish_reason == "error"
    assert message in bad.error
    assert bad.steps == []


def test_bad_parameters_and_unknown_model_are_reported_together(engine: Engine) -> None:
    (model,) = run_columns(engine, FRANCE, col("nope", max_new_tokens=0, temperature=-1)).models
    assert model.finish_reason == "error"
    for part in ("unknown model 'nope'", "max new tokens", "temperature"):
        assert part in model.error


def test_same_model_in_two_columns_loads_once_and_answers_twice(
    data_dir: Path, catalog: Catalog, monkeypatch
) -> None:
    loads: list[str] = []
    real_load = pool_module.load_model

    def counting_load(spec, *args, **kwargs):
        loads.append(spec.id)
        return real_load(spec, *args, **kwargs)

    monkeypatch.setattr(pool_module, "load_model", counting_load)
    fresh = ModelPool(data_dir, device="cpu")  # both columns race to load into an empty pool
    first, second = run_columns(
        Engine(catalog, fresh), FRANCE,
        col("smollm2-135m", max_new_tokens=16), col("smollm2-135m", max_new_tokens=16),
    ).models
    assert_answered(first)
    assert_answered(second)
    assert first.output_token_ids == second.output_token_ids
    assert first.text == second.text
    assert "Paris" in first.text  # the concurrently loaded weights are the real ones
    assert loads == ["smollm2-135m"]
    assert [info.id for info in fresh.loaded()] == ["smollm2-135m"]


def test_two_models_loaded_at_once_keep_their_real_weights(
    data_dir: Path, catalog: Catalog, engine: Engine, monkeypatch
) -> None:
    # Regression: transformers' from_pretrained is not thread-safe; two columns loading two
    # models in parallel threads left the tied input embeddings randomly initialized.
    # So the weights are built one model at a time (hashing, tokenizers and warm-up run in
    # parallel); the pause below makes overlapping weight loads certain if they were not serialised.
    inside, most_inside, guard = 0, 0, threading.Lock()
    real_from_pretrained = local_module.AutoModelForCausalLM.from_pretrained

    class SlowAutoModel:
        @staticmethod
        def from_pretrained(*args, **kwargs):
            nonlocal inside, most_inside
            with guard:
                inside += 1
                most_inside = max(most_inside, inside)
            try:
                time.sleep(0.5)
                return real_from_pretrained(*args, **kwargs)
            finally:
                with guard:
                    inside -= 1

    monkeypatch.setattr(local_module, "AutoModelForCausalLM", SlowAutoModel)
    columns = [col("smollm2-135m", max_new_tokens=8), col("gemma3-270m", max_new_tokens=8)]
    fresh = ModelPool(data_dir, device="cpu")
    small, big = run_columns(Engine(catalog, fresh), FRANCE, *columns).models
    assert most_inside == 1, "two models' weights were being built at the same time"
    for spec in (SMOLLM2, GEMMA3):
        model = fresh.get(spec).model
        embeddings, head = model.get_input_embeddings().weight, model.get_output_embeddings().weight
        assert embeddings.data_ptr() == head.data_ptr(), f"{spec.id}: input embeddings not tied"
    assert "Paris" in small.text
    # the same answers as models loaded one at a time
    reference = run_columns(engine, FRANCE, *columns).models
    assert [m.output_token_ids for m in reference] == [small.output_token_ids, big.output_token_ids]


def test_cancel_stops_every_column_and_keeps_partial_text(engine: Engine, pool: ModelPool) -> None:
    cancel = threading.Event()
    columns = [col("smollm2-135m", max_new_tokens=32), col("gemma3-270m", max_new_tokens=32)]
    for spec in (SMOLLM2, GEMMA3):
        pool.get(spec)  # loaded, so both columns are generating when we cancel
    run, events = engine.stream(RunRequest(prompt=STORY, columns=columns), cancel)
    kinds = []
    for event in events:
        kinds.append(event.kind)
        if event.kind == "token":
            cancel.set()
    assert kinds[-1] == "done"
    assert kinds.count("finished") == 2
    for model in run.models:
        assert model.finish_reason == "cancelled"
        assert "stopped by the user" in model.error
        assert len(model.steps) < 32
        assert model.metrics.output_tokens == len(model.steps)
        assert model.text == pool.get(SMOLLM2 if model.column == 0 else GEMMA3).decode(model.output_token_ids)
    assert any(model.text for model in run.models), "no partial text was kept"


class FailsAfter:
    """A real backend whose token stream raises after `n` tokens."""

    def __init__(self, inner: LocalBackend, n: int) -> None:
        self._inner = inner
        self._n = n

    def __getattr__(self, name: str):  # noqa: ANN204 - delegate everything else
        return getattr(self._inner, name)

    def open_stream(self, encoding, params, should_stop, batch=None) -> FailingStream:  # noqa: ANN001
        return FailingStream(self._inner.open_stream(encoding, params, should_stop, batch), self._n)


class FailingStream(StreamIteration):
    """A real column stream that raises at its step `n`."""

    def __init__(self, inner: StepStream, n: int) -> None:
        self.inner, self.n, self.taken = inner, n, 0

    def next(self) -> TokenStep | None:
        if self.taken == self.n:
            raise RuntimeError(f"injected failure after {self.n} tokens")
        self.taken += 1
        return self.inner.next()

    def close(self) -> None:
        self.inner.close()

    def report(self) -> StreamInfo:
        return self.inner.report()


def test_model_raising_mid_generation_fails_only_its_column(
    data_dir: Path, catalog: Catalog, smollm2: LocalBackend
) -> None:
    broken = dataclasses.replace(SMOLLM2, id="smollm2-broken")
    fresh = ModelPool(data_dir, device="cpu")
    fresh.put(SMOLLM2, smollm2)
    fresh.put(broken, FailsAfter(smollm2, 3))
    engine = Engine(Catalog({**catalog.specs, broken.id: broken}), fresh)
    bad, good = run_columns(
        engine, FRANCE, col("smollm2-broken", max_new_tokens=16), col("smollm2-135m", max_new_tokens=16)
    ).models
    assert bad.finish_reason == "error"
    assert bad.error == "generation failed: RuntimeError: injected failure after 3 tokens"
    assert len(bad.steps) == bad.metrics.output_tokens == 3
    assert bad.text and bad.text == smollm2.decode(bad.output_token_ids)
    assert good.text.startswith(bad.text)  # same model, greedy: the kept tokens are the real ones
    assert_answered(good)
    assert "Paris" in good.text


def test_request_timeout_ends_the_column_with_partial_output(engine: Engine, smollm2: LocalBackend) -> None:
    (model,) = run_columns(engine, STORY, col("smollm2-135m", max_new_tokens=200, timeout_s=0.01)).models
    assert model.finish_reason == "timeout"
    assert "timed out after 0.01 s" in model.error
    assert 1 <= len(model.steps) < 200
    assert model.text == smollm2.decode(model.output_token_ids)
