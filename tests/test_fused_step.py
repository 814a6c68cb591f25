"""The fused step (torch.compile'd decode step) on CPU, on the real SmolLM2: judged against an fp32
copy, kept on disk, compiled at load, and taken over by a running batch between two steps.

On CPU the model is fp32, so the fp32 copy equals it and the compiled step matches the plain one;
bench/bench_gpu.py (section `fused`) measures the same judgement in bf16 on a GPU.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from playground.backends import fast_decode, fused_step
from playground.backends.fast_warm import PROBE_TEXT, Warmer
from playground.backends.local import LocalBackend
from playground.backends.workspace import WorkspaceKey
from playground.record import GenerationParams

pytestmark = pytest.mark.timeout(1200)

QUESTION = "What is the capital of France? Answer in one sentence."


@pytest.fixture
def fused_on(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, smollm2: LocalBackend) -> Iterator[None]:
    monkeypatch.setenv(fast_decode.FAST_PATH_ENV, "on")
    monkeypatch.setenv(fused_step.COMPILE_ENV, "on")
    monkeypatch.setenv("PLAYGROUND_WARM_ROWS", "1")
    for name in ("TORCHINDUCTOR_CACHE_DIR", "TRITON_CACHE_DIR"):  # set back after the test
        monkeypatch.setenv(name, str(tmp_path / name.lower()))
    yield
    smollm2.fast.close()  # later tests start without fused workspaces
    smollm2.fast.warmer = Warmer(smollm2.fast)


def probe(backend: LocalBackend) -> list[int]:
    return backend.tokenizer(PROBE_TEXT, add_special_tokens=False)["input_ids"]


def greedy_tokens(backend: LocalBackend, monkeypatch: pytest.MonkeyPatch, path: str) -> tuple[list[int], str]:
    monkeypatch.setenv(fast_decode.FAST_PATH_ENV, path)
    stream = backend.open_stream(backend.encode_prompt(QUESTION, ""), GenerationParams(max_new_tokens=12),
                                 lambda: False)
    ids = [s.token_id for s in stream]
    return ids, stream.report().decode_path


def test_the_fused_step_is_judged_compiled_at_load_and_remembered(
    smollm2: LocalBackend, fused_on: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    smollm2.fast.close()
    smollm2.fast.warmer = Warmer(smollm2.fast)
    smollm2.fast.warm(probe(smollm2), tmp_path, background=False)
    verdict = smollm2.fast.warmer.verdict
    assert verdict is not None and verdict.accepted and verdict.measure == "fp32", verdict
    assert verdict.fused_drift <= verdict.plain_drift * fused_step.DRIFT_RATIO + fused_step.DRIFT_SLACK
    assert (WorkspaceKey(1, 512, False), True) in smollm2.fast.idle_keys()  # compiled at load
    key = fused_step.verdict_key(smollm2.fast.name, smollm2.model)
    assert fused_step.remembered(tmp_path, key) == verdict
    eager, _ = greedy_tokens(smollm2, monkeypatch, "off")
    fused, path = greedy_tokens(smollm2, monkeypatch, "on")
    assert path == "fast path: static cache, no graph, compiled"
    assert fused == eager  # fp32 on CPU: the fused step decodes what the eager loop does
    # A second launch reads the verdict back instead of measuring again.
    again = Warmer(smollm2.fast)
    monkeypatch.setattr(again, "_judge", lambda: pytest.fail("judged again despite the kept verdict"))
    again._probe, again._root = probe(smollm2), tmp_path
    again._judge_once()
    assert again.verdict == verdict


def test_a_fused_step_further_from_fp32_than_the_plain_one_is_refused(smollm2: LocalBackend) -> None:
    """judge() on the real model: a path whose logprobs sit 0.5 nats off fp32's is refused."""
    ids = probe(smollm2)
    plain, _ = greedy_tokens_direct(smollm2, ids)
    bent = [(token, logprob - 0.5) for token, logprob in plain]
    verdict = fused_step.judge(lambda: plain, lambda: bent, smollm2.model, ids)
    assert not verdict.accepted and verdict.measure == "fp32"
    assert verdict.fused_drift == pytest.approx(verdict.plain_drift + 0.5, abs=1e-3)
    assert "drift from fp32" in verdict.reason and verdict.note().startswith("fused step refused")
    same = fused_step.judge(lambda: plain, lambda: list(plain), smollm2.model, ids)
    assert same.accepted


def greedy_tokens_direct(backend: LocalBackend, ids: list[int]) -> tuple[list[tuple[int, float]], None]:
    steps = backend._eager(ids, GenerationParams(max_new_tokens=8), lambda: False)
    return [(s.token_id, s.logprob) for s in steps], None


def test_a_running_batch_moves_onto_the_fused_step_between_two_steps(
    smollm2: LocalBackend, fused_on: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    smollm2.fast.close()
    params = GenerationParams(max_new_tokens=12)
    eager, _ = greedy_tokens(smollm2, monkeypatch, "off")
    monkeypatch.setenv(fast_decode.FAST_PATH_ENV, "on")
    stream = smollm2.open_stream(smollm2.encode_prompt(QUESTION, ""), params, lambda: False)
    got = [stream.next().token_id, stream.next().token_id]
    (batch,) = smollm2.fast._batches
    assert not batch.workspace.compiled
    key = batch.workspace.key
    smollm2.fast.release(smollm2.fast.warmer.fused_workspace(key), keep=True)
    got += [s.token_id for s in stream]
    assert got == eager
    assert smollm2.fast.idle_keys().count((key, True)) == 1  # the batch ran on it and gave it back


def test_a_bad_compile_setting_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(fused_step.COMPILE_ENV, "sometimes")
    with pytest.raises(Exception, match="PLAYGROUND_COMPILE must be auto, on or off, not 'sometimes'"):
        fused_step.compile_mode()
    monkeypatch.setenv(fused_step.COMPILE_ENV, "1")
    assert fused_step.compile_mode() == "on"
