"""Continuous batching on the fast path: rows of one model from different runs share one step.

On CPU the step runs eagerly (PLAYGROUND_FAST_PATH=on) with the GPU's workspaces, per-row
positions and masks, so what the GPU replays as one CUDA graph is checked here on the real
models: each row's tokens equal the same request decoded alone on the eager path, whatever
joined or left around it. bench/bench_gpu.py (section `users`) measures it on a GPU.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from playground.backends import fast_decode, fast_warm
from playground.backends.local import LocalBackend
from playground.backends.workspace import WorkspaceKey
from playground.catalog import SMOLLM2
from playground.engine import ColumnRequest, Engine, RunRequest
from playground.record import GenerationParams

pytestmark = pytest.mark.timeout(900)

PROMPTS = (
    "What is the capital of France? Answer in one sentence.",
    "Name three animals that live in the sea.",
    "Write one sentence about the moon, please, and make it short and clear.",
    "2 + 2 =",
)


@pytest.fixture
def fast(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv(fast_decode.FAST_PATH_ENV, "on")
    yield


def eager(backend: LocalBackend, prompt: str, params: GenerationParams, monkeypatch) -> list[int]:
    monkeypatch.setenv(fast_decode.FAST_PATH_ENV, "off")
    try:
        stream = backend.open_stream(backend.encode_prompt(prompt, ""), params, lambda: False)
        return [s.token_id for s in stream]
    finally:
        monkeypatch.setenv(fast_decode.FAST_PATH_ENV, "on")


def open_row(backend: LocalBackend, prompt: str, params: GenerationParams, stop=lambda: False):  # noqa: ANN001, ANN201
    return backend.open_stream(backend.encode_prompt(prompt, ""), params, stop)


def test_rows_join_and_leave_a_running_batch_and_keep_their_own_tokens(
    smollm2: LocalBackend, fast: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Four requests with different prompts, lengths and settings; each joins while the others are
    mid-answer (the batch grows 1 -> 2 -> 4 rows, moving on the device), one leaves early, and
    every row's tokens equal its request decoded alone on the eager path."""
    smollm2.fast.close()
    params = [
        GenerationParams(max_new_tokens=14),
        GenerationParams(max_new_tokens=9, temperature=0.9, top_k=40, top_p=0.9, seed=7),
        GenerationParams(max_new_tokens=16, repetition_penalty=1.3),
        GenerationParams(max_new_tokens=6, temperature=1.2, seed=11),
    ]
    alone = [eager(smollm2, p, q, monkeypatch) for p, q in zip(PROMPTS, params, strict=True)]
    streams = [None] * 4
    got: list[list[int]] = [[] for _ in PROMPTS]
    sizes: list[list[int]] = []
    joins = {0: 0, 1: 3, 2: 5, 3: 6}  # request i opens after that many rounds
    rounds = 0
    while rounds < 60:
        for i, at in joins.items():
            if at == rounds:
                streams[i] = open_row(smollm2, PROMPTS[i], params[i])
        live = [i for i, s in enumerate(streams) if s is not None and s not in ("done",)]
        if not live and rounds > max(joins.values()):
            break
        for i in live:
            streams[i].launch()
        for i in live:
            step = streams[i].next()
            if step is None:
                streams[i] = "done"
            else:
                got[i].append(step.token_id)
        sizes.append(smollm2.fast.batch_rows())
        rounds += 1
    assert got == alone
    assert max(max(s, default=0) for s in sizes) >= 3, sizes  # they did share one batch
    assert all(len(s) <= 1 for s in sizes), f"one batch at a time, not one per run: {sizes}"
    assert smollm2.fast.batch_rows() == []  # every row left, the batch ended
    kept = {key for key, _fused in smollm2.fast.idle_keys()}
    assert any(k.rows == 4 and k.sampling for k in kept), kept  # it grew into a 4-row sampling workspace


def test_a_longer_request_moves_the_batch_into_a_longer_cache(
    smollm2: LocalBackend, fast: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    smollm2.fast.close()
    short, long = GenerationParams(max_new_tokens=10), GenerationParams(max_new_tokens=300)
    alone = [eager(smollm2, PROMPTS[0], short, monkeypatch)[:10],
             eager(smollm2, PROMPTS[1], long, monkeypatch)[:20]]
    first = open_row(smollm2, PROMPTS[0], short)
    got = [[first.next().token_id, first.next().token_id], []]
    (batch,) = smollm2.fast._batches
    assert batch.workspace.key == WorkspaceKey(1, 256, False)
    second = open_row(smollm2, PROMPTS[1], long)
    got[1].append(second.next().token_id)
    assert batch.workspace.key == WorkspaceKey(2, 512, False)  # moved, with the first row's cache
    for _ in range(25):
        for stream, out, limit in zip((first, second), got, (10, 20), strict=True):
            step = stream.next() if len(out) < limit else None
            if step is not None:
                out.append(step.token_id)
    second.close()
    first.close()
    assert got == alone


def test_a_stopped_row_leaves_and_the_others_go_on(smollm2: LocalBackend, fast: None, monkeypatch) -> None:
    smollm2.fast.close()
    stop = threading.Event()
    params = GenerationParams(max_new_tokens=12)
    alone = eager(smollm2, PROMPTS[1], params, monkeypatch)
    a = open_row(smollm2, PROMPTS[0], GenerationParams(max_new_tokens=40), stop.is_set)
    b = open_row(smollm2, PROMPTS[1], params)
    a_tokens = [a.next().token_id]
    got = [b.next().token_id]
    assert smollm2.fast.batch_rows() == [2]
    stop.set()
    assert a.next() is None and a_tokens
    assert smollm2.fast.batch_rows() == [1]
    got += [s.token_id for s in b]
    assert got == alone
    assert smollm2.fast.batch_rows() == []


def test_concurrent_users_share_one_batch_through_the_engine(engine: Engine, smollm2: LocalBackend,
                                                             fast: None) -> None:
    """Six users' runs at once, different prompts and seeds, through the real engine threads: each
    gets the tokens its run gets alone, with probabilities, and the model decoded them in one batch."""
    smollm2.fast.close()
    requests = [RunRequest(prompt=PROMPTS[i % 4] + " " * (i // 4),
                           columns=[ColumnRequest(SMOLLM2.id, GenerationParams(
                               max_new_tokens=10, temperature=0.8 if i % 2 else 0.0, seed=i))],
                           capture_attention=i == 0) for i in range(6)]
    alone = [engine.run(r).models[0].output_token_ids for r in requests]
    seen: list[int] = []
    watching = threading.Event()

    def watch() -> None:
        while not watching.is_set():
            seen.extend(smollm2.fast.batch_rows())
            watching.wait(0.005)

    results: dict[int, object] = {}
    errors: list[BaseException] = []

    def user(i: int) -> None:
        try:
            results[i] = engine.run(requests[i]).models[0]
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    watcher = threading.Thread(target=watch)
    watcher.start()
    threads = [threading.Thread(target=user, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=600)
    watching.set()
    watcher.join()
    assert not errors, errors
    assert [results[i].output_token_ids for i in range(6)] == alone
    for model in results.values():
        assert model.error == "" and all(len(s.top) == 5 and s.logprob <= 0 for s in model.steps)
    assert results[0].attention is not None and results[0].attention.tokens > 0
    assert max(seen, default=0) >= 2, "the users' rows never shared a step"


def test_warm_captures_the_common_workspaces_before_the_first_run(
    smollm2: LocalBackend, fast: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    smollm2.fast.close()
    monkeypatch.setenv(fast_warm.WARM_ENV, "1,2")
    monkeypatch.setenv("PLAYGROUND_COMPILE", "off")
    smollm2.fast.warm([1, 2, 3], None, background=False)
    keys = [(WorkspaceKey(1, 512, False), False),
            (WorkspaceKey(1, 512, True), False), (WorkspaceKey(2, 512, True), False)]
    assert smollm2.fast.idle_keys() == keys
    reports = []
    stream = smollm2.open_stream(smollm2.encode_prompt(PROMPTS[0], ""), GenerationParams(max_new_tokens=4),
                                 lambda: False)
    assert len(list(stream)) == 4
    reports.append(stream.report())
    assert reports[0].graph_capture_s == 0.0  # its workspace was captured at load
    monkeypatch.setenv(fast_warm.WARM_ENV, "1,three")
    with pytest.raises(Exception, match="PLAYGROUND_WARM_ROWS must be row counts"):
        fast_warm.warm_rows()
