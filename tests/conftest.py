"""Shared fixtures: one model pool for the whole session, because loading models is slow.

The data directory (converted GGUF caches, the assembled Gemma file) defaults to
`<repo>/data/test`, which git ignores, so the first run converts the bundled GGUF
files once (a few minutes on CPU) and later runs load the cache in seconds.
Set PLAYGROUND_TEST_DATA_DIR to use another directory.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from playground.backends.local import LocalBackend
from playground.backends.pool import ModelPool
from playground.catalog import GEMMA3, SMOLLM2, Catalog
from playground.engine import Engine

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def data_dir() -> Path:
    path = Path(os.environ.get("PLAYGROUND_TEST_DATA_DIR", REPO / "data" / "test"))
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="session")
def catalog() -> Catalog:
    return Catalog.build()


@pytest.fixture(scope="session")
def pool(data_dir: Path) -> ModelPool:
    # The engine tests check CPU numbers (device "cpu", dtype float32) whatever the machine has.
    return ModelPool(data_dir, device="cpu")


@pytest.fixture(scope="session")
def engine(catalog: Catalog, pool: ModelPool) -> Engine:
    return Engine(catalog, pool)


@pytest.fixture(scope="session")
def smollm2(pool: ModelPool) -> LocalBackend:
    return pool.get(SMOLLM2)


@pytest.fixture(scope="session")
def gemma(pool: ModelPool) -> LocalBackend:
    return pool.get(GEMMA3)


@pytest.fixture(scope="session")
def llamacpp(pool: ModelPool):  # noqa: ANN201 - a RemoteBackend
    """The bundled SmolLM2 file served by a managed llama.cpp server (a real one, on loopback)."""
    from playground.catalog import SMOLLM2_LLAMACPP

    backend = pool.get(SMOLLM2_LLAMACPP)
    yield backend
    pool.unload(SMOLLM2_LLAMACPP)
