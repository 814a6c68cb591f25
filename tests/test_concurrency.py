"""Several runs on one shared model at once: real threads, the real bundled models.

Each test here failed before the model and its tokenizer were guarded: attention
hooks and the eager switch were seen by other runs' decode steps ("all input
arrays must have the same shape", or another user's attention mixed in), and the
fast tokenizer's per-call `encode_special_tokens` flag leaked between users.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from playground.backends.local import LocalBackend
from playground.backends.local_load import load_tokenizer
from playground.backends.remote import RemoteBackend, Tokenization
from playground.catalog import ModelSpec
from playground.engine import ColumnRequest, Engine, RunRequest
from playground.record import GenerationParams, ModelIdentity, Run

THREADS = 6


def _run(engine: Engine, prompt: str, tokens: int = 10) -> Run:
    column = ColumnRequest("smollm2-135m", GenerationParams(max_new_tokens=tokens))
    return engine.run(RunRequest(prompt, [column]))


def test_concurrent_runs_each_capture_their_own_attention(engine: Engine, smollm2: LocalBackend) -> None:
    # different lengths, so that short runs capture while long ones still decode through the model
    prompts = [f"Marker {i}: name a colour and a fruit{'!' * i}" for i in range(THREADS)]
    lengths = [3 + 6 * i for i in range(THREADS)]
    alone = [_run(engine, p, n) for p, n in zip(prompts, lengths, strict=True)]
    barrier = threading.Barrier(THREADS)

    def together(prompt: str, tokens: int) -> Run:
        barrier.wait()
        return _run(engine, prompt, tokens)

    with ThreadPoolExecutor(THREADS) as pool:
        runs = list(pool.map(together, prompts, lengths))
    for prompt, solo, run in zip(prompts, alone, runs, strict=True):
        (model,) = run.models
        assert model.error == "" and run.prompt == prompt
        assert model.attention is not None, model.attention_note
        assert model.output_token_ids == solo.models[0].output_token_ids
        # exactly the weights this run's own sequence produces alone: nobody else's passes mixed in
        assert model.attention.data == solo.models[0].attention.data
        assert model.attention.sink_first == solo.models[0].attention.sink_first


def test_concurrent_tokenizer_calls_keep_their_own_special_token_setting(smollm2: LocalBackend) -> None:
    text = "Say <|im_end|> then <|im_start|>user " * 20
    plain = smollm2.count_tokens(text, specials_as_text=False)
    split = smollm2.count_tokens(text, specials_as_text=True)
    assert plain != split
    wrong: list[tuple[bool, int]] = []
    barrier = threading.Barrier(4)

    def hammer(as_text: bool) -> None:
        barrier.wait()
        expected = split if as_text else plain
        for _ in range(300):
            got = smollm2.count_tokens(text, specials_as_text=as_text)
            if got != expected:
                wrong.append((as_text, got))

    threads = [threading.Thread(target=hammer, args=(i % 2 == 0,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert wrong == []


def test_concurrent_prompt_encodings_match_the_sequential_ones(smollm2: LocalBackend) -> None:
    cases = [(f"Case {i}: what is <|im_end|> for?", i % 2 == 0) for i in range(8)]
    expected = [smollm2.encode_prompt(p, "Be brief.", s).token_ids for p, s in cases]
    barrier = threading.Barrier(len(cases))

    def encode(case: tuple[str, bool]) -> list[list[int]]:
        barrier.wait()
        return [smollm2.encode_prompt(case[0], "Be brief.", case[1]).token_ids for _ in range(40)]

    with ThreadPoolExecutor(len(cases)) as pool:
        results = list(pool.map(encode, cases))
    for want, got in zip(expected, results, strict=True):
        assert all(ids == want for ids in got)


def test_a_load_waiting_for_another_models_weights_names_it_and_does_not_count_the_wait() -> None:
    """Two loads: the second waits for the first's weights, says whose, and its own load time
    leaves that wait out (the engine shows LocalBackend.load_s)."""
    from playground.backends import weights_lock

    held, release, messages, waited = threading.Event(), threading.Event(), [], []

    def first() -> None:
        with weights_lock.weights_lock(name="Gemma 3 270M"):
            held.set()
            release.wait(5)

    def second() -> None:
        weights_lock.reset_wait()
        with weights_lock.weights_lock(messages.append, name="SmolLM2"):
            waited.append(weights_lock.waited_s())

    a = threading.Thread(target=first)
    a.start()
    held.wait(5)
    b = threading.Thread(target=second)
    b.start()
    time.sleep(0.3)
    release.set()
    a.join(5)
    b.join(5)
    assert messages == ["waiting for Gemma 3 270M to finish loading"]
    assert waited and waited[0] >= 0.25


def test_a_served_models_local_tokenizer_keeps_each_callers_special_token_setting(data_dir: Path) -> None:
    """A served model's catalog tokenizer is shared by every user of that model, and transformers
    flips its `encode_special_tokens` flag on every call: counting and prompt encoding take a lock."""
    spec = ModelSpec(id="served-smollm2", name="served", source="openai", location="http://127.0.0.1:9/v1",
                     base_url="http://127.0.0.1:9/v1", served_model="smollm2", tokenizer="smollm2-135m")
    served = RemoteBackend(spec, ModelIdentity(spec.id, spec.name, spec.source, spec.location),
                           tokenizer=load_tokenizer("smollm2-135m", data_dir),
                           tokenization=Tokenization("local tokenizer"))
    text = "Say <|im_end|> then <|im_start|>user " * 20
    plain, split = served.count_tokens(text), served.count_tokens(text, specials_as_text=True)
    expected_prompt = served.encode_prompt(text, "Be brief.").token_ids
    assert plain != split
    wrong: list[object] = []
    barrier = threading.Barrier(4)

    def hammer(kind: int) -> None:
        barrier.wait()
        for _ in range(150):
            if kind == 0:
                got, want = served.encode_prompt(text, "Be brief.").token_ids, expected_prompt
            else:
                as_text = kind == 1
                got, want = served.count_tokens(text, specials_as_text=as_text), split if as_text else plain
            if got != want:
                wrong.append((kind, got))

    threads = [threading.Thread(target=hammer, args=(i % 3,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert wrong == []
