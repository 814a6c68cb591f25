"""A second real OpenAI-compatible server, one that returns no logprobs: `transformers serve` on the
converted SmolLM2 folder, on loopback. The column still streams, and says what it lacks."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from playground.backends.local import LocalBackend
from playground.backends.pool import ModelPool
from playground.catalog import Catalog, ModelSpec
from playground.engine import ColumnRequest, Engine, RunRequest
from playground.record import GenerationParams

pytestmark = pytest.mark.timeout(600)


@pytest.fixture(scope="module")
def transformers_server(smollm2: LocalBackend, data_dir: Path) -> Iterator[tuple[str, str]]:
    folder = data_dir / "cache" / smollm2.identity.sha256  # the converted SmolLM2 (with `architectures`)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    cli = Path(sys.executable).parent / "transformers"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_VERBOSITY": "error"}
    process = subprocess.Popen([str(cli), "serve", "--host", "127.0.0.1", "--port", str(port)], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.3)
        else:
            pytest.fail("transformers serve did not start within 120 s")
        yield f"http://127.0.0.1:{port}/v1", str(folder)
    finally:
        process.terminate()
        process.wait(10)


def test_a_server_without_logprobs_streams_and_the_column_says_what_it_lacks(
    transformers_server: tuple[str, str], data_dir: Path, smollm2: LocalBackend
) -> None:
    base_url, folder = transformers_server
    spec = ModelSpec(id="smollm2-served", name="SmolLM2 (transformers serve)", source="openai",
                     location=base_url, base_url=base_url, served_model=folder, tokenizer="smollm2-135m",
                     context_window=8192)
    engine = Engine(Catalog({spec.id: spec}), ModelPool(data_dir, device="cpu"))
    run, events = engine.stream(RunRequest("What is the capital of France?",
                                           [ColumnRequest(spec.id, GenerationParams(max_new_tokens=8))]))
    deltas = [e.delta for e in events if e.kind == "token"]
    (model,) = run.models
    assert model.error == "", model.error
    assert model.text.strip() and "".join(deltas) == model.text
    caps = model.capabilities
    assert not caps.logprobs and "did not return logprobs" in caps.logprobs_note
    assert caps.token_ids == "local tokenizer" and "may differ from the server's" in caps.token_ids_note
    assert model.prompt_token_ids == smollm2.encode_prompt("What is the capital of France?", "").token_ids
    assert not caps.attention and "not available for served models" in model.attention_note


def test_options_a_strict_server_refuses_are_dropped_and_named(
    transformers_server: tuple[str, str], data_dir: Path
) -> None:
    base_url, folder = transformers_server
    spec = ModelSpec(id="strict", name="strict", source="openai", location=base_url, base_url=base_url,
                     served_model=folder)
    engine = Engine(Catalog({spec.id: spec}), ModelPool(data_dir, device="cpu"))
    params = GenerationParams(max_new_tokens=4, top_k=20, repetition_penalty=1.2, temperature=0.7)
    (model,) = engine.run(RunRequest("Hi", [ColumnRequest(spec.id, params)])).models
    assert model.error == "", model.error
    assert set(model.capabilities.refused) == {"top k", "repetition penalty"}
