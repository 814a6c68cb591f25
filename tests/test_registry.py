"""The backend registry: a new backend is one module plus one registration, and nothing else changes.

This module is that module. It registers a source "greedy-gguf" (a .gguf file run by the transformers
backend, every column decoded greedily whatever its temperature) and runs it through the real
catalog, pool and Engine, with no other file touched.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from playground.backends import registry
from playground.backends.local import LocalBackend, StepStream
from playground.backends.local_load import load_backend
from playground.backends.pool import ModelPool
from playground.backends.registry import Estimate, Source
from playground.catalog import SMOLLM2, Catalog, CatalogError, ModelSpec, bundled_file
from playground.engine import ColumnRequest, Engine, RunRequest
from playground.record import GenerationParams

pytestmark = pytest.mark.timeout(300)

PROMPT = "What is the capital of France?"


@dataclasses.dataclass
class GreedyBackend:
    """A loaded transformers model whose columns always decode greedily (the new backend's one idea)."""

    inner: LocalBackend
    identity: Any

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def open_stream(self, encoding: Any, params: GenerationParams, should_stop: Callable[[], bool],
                    batch: object = None) -> StepStream:
        greedy = dataclasses.replace(params, temperature=0.0)
        return self.inner.open_stream(encoding, greedy, should_stop, batch)


def load_greedy(spec: ModelSpec, data_dir: Path, device: str, progress: Callable[[str], None]
                ) -> GreedyBackend:
    """The loader: the transformers backend's, wrapped."""
    inner = load_backend(dataclasses.replace(spec, source="gguf"), data_dir, device, progress)
    return GreedyBackend(inner, dataclasses.replace(inner.identity, source=spec.source))


ESTIMATES: list[str] = []


def estimate_greedy(spec: ModelSpec, _data_dir: Path, _dtype: object, _tokens: int) -> Estimate:
    ESTIMATES.append(spec.id)
    return Estimate(1, 0)


@pytest.fixture
def greedy_source() -> Iterator[Source]:
    """The one registration (removed afterwards, so other tests see the built-in sources only)."""
    source = registry.register(Source("greedy-gguf", load_greedy, estimate_greedy))
    ESTIMATES.clear()
    yield source
    registry.unregister("greedy-gguf")


def _catalog(tmp_path: Path, data_dir: Path) -> Catalog:
    path = tmp_path / "models.toml"
    path.write_text(f'[[model]]\nid = "greedy-smollm2"\nsource = "greedy-gguf"\n'
                    f'location = "{bundled_file(SMOLLM2, data_dir)}"\n', encoding="utf-8")
    return Catalog.build(catalog_file=path)


def test_a_registered_source_runs_through_the_real_engine(
    greedy_source: Source, tmp_path: Path, data_dir: Path, engine: Engine,
) -> None:
    catalog = _catalog(tmp_path, data_dir)
    spec = catalog.specs["greedy-smollm2"]
    assert (spec.source, spec.remote) == ("greedy-gguf", False)
    pool = ModelPool(data_dir, device="cpu")
    try:
        sampled = GenerationParams(max_new_tokens=12, temperature=1.5, seed=3)
        run = Engine(catalog, pool).run(RunRequest(PROMPT, [ColumnRequest("greedy-smollm2", sampled)]))
    finally:
        pool.close()
    (model,) = run.models
    assert model.error == "", model.error
    assert model.identity.source == "greedy-gguf"
    assert ESTIMATES == ["greedy-smollm2"], "the pool did not ask the source's estimator before loading"
    greedy = GenerationParams(max_new_tokens=12)
    (reference,) = engine.run(RunRequest(PROMPT, [ColumnRequest(SMOLLM2.id, greedy)])).models
    assert model.output_token_ids == reference.output_token_ids
    assert "Paris" in model.text


def test_a_source_nobody_registered_is_refused_with_the_known_ones(tmp_path: Path, data_dir: Path) -> None:
    with pytest.raises(CatalogError, match=r"`source` must be one of \('gguf', 'hub', 'dir', 'openai'"):
        _catalog(tmp_path, data_dir)
    with pytest.raises(registry.UnknownSource, match="greedy-gguf"):
        registry.load_model(ModelSpec("x", "x", "greedy-gguf", "x.gguf"), data_dir)


def test_built_in_sources_say_what_they_are() -> None:
    remote = {name for name in registry.names() if registry.source(name).remote}
    checked = {name for name in registry.names() if registry.source(name).estimate is not None}
    assert set(registry.names()) >= {"gguf", "hub", "dir", "openai", "llama.cpp"}
    assert remote == {"openai", "llama.cpp", "vllm"}
    assert checked == {"gguf", "hub", "dir", "llama.cpp"}  # a served model's memory is another machine's
    for name in registry.names():  # every built-in loader named by path resolves to a function
        assert callable(registry.source(name).loader())
