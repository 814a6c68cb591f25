"""Backends keyed by source: what each `source` of a catalog entry is and which function loads it.

A new backend is one module with a loader function plus one `register(Source(...))`: the catalog
validates source names here, and the pool loads through `load_model` and asks the source's
estimator before loading, so neither changes for a new source. Built-in sources are registered below
in exactly the way an extra one is (tests/test_registry.py registers one from a test module).

This module imports nothing heavy and nothing of the playground: the catalog asks it for source
names without importing torch. So built-in loaders are named by "module:function" and imported at
their first load; an extra source may hand over the function itself.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from playground.backends.base import Backend


class Spec(Protocol):
    """What the registry reads of a catalog entry (catalog.ModelSpec; the catalog imports this module)."""

    id: str
    source: str


Loader = Callable[..., "Backend"]  # (spec, data_dir, device, progress) -> a loaded Backend
Estimator = Callable[..., "Estimate"]  # (spec, data_dir, dtype, cache_tokens) -> Estimate


class UnknownSource(KeyError):
    """A source no backend registered; the catalog turns it into a message naming the known ones."""


@dataclass(frozen=True)
class Estimate:
    """What loading a model will take, told before loading it (the memory pre-flight compares it)."""

    weights_bytes: int
    cache_bytes: int

    @property
    def total(self) -> int:
        return self.weights_bytes + self.cache_bytes


@dataclass(frozen=True)
class Source:
    """One kind of catalog entry and the backend that serves it.

    `load(spec, data_dir, device, progress)` returns a loaded Backend; `progress` is called between
    stages and may raise to cancel. `estimate(spec, data_dir, dtype, cache_tokens)` says what the
    load will take on this machine; None means it takes no memory here worth checking (a served
    model's memory is another machine's). `remote`: streamed from a server by a worker thread.
    `server_entry`: a catalog file describes it by `base_url` + `model` instead of a `location`.
    """

    name: str
    load: Loader | str  # a function, or "module:function" imported at the first load
    estimate: Estimator | str | None = None
    remote: bool = False
    server_entry: bool = False

    def loader(self) -> Loader:
        """The load function (imported now if it was named by path)."""
        return _resolve(self.load)

    def estimator(self) -> Estimator | None:
        """The pre-flight estimator, or None when this source needs no memory check."""
        return _resolve(self.estimate) if self.estimate is not None else None


_SOURCES: dict[str, Source] = {}
_GUARD = threading.Lock()


def register(source: Source) -> Source:
    """Add a source (or replace the one of that name); returns it, so a module can keep it."""
    with _GUARD:
        _SOURCES[source.name] = source
    return source


def unregister(name: str) -> None:
    """Forget a source (a test's own, once it is done)."""
    with _GUARD:
        _SOURCES.pop(name, None)


def source(name: str) -> Source:
    """The registered source called `name`; UnknownSource names the known ones."""
    try:
        return _SOURCES[name]
    except KeyError:
        raise UnknownSource(f"unknown source {name!r} (known: {', '.join(names())})") from None


def names() -> tuple[str, ...]:
    """Every registered source name, in registration order (built-ins first)."""
    return tuple(_SOURCES)


def load_model(spec: Spec, data_dir: Path, device: str = "",
               progress: Callable[[str], None] = lambda _m: None) -> Backend:
    """Load `spec` with its source's backend: the one place a load is dispatched on the source."""
    return source(spec.source).loader()(spec, data_dir, device, progress)


def _resolve(target: Any) -> Any:
    if not isinstance(target, str):
        return target
    module, _sep, attribute = target.partition(":")
    return getattr(importlib.import_module(module), attribute)


# The built-in sources, registered as any other. Their modules hold the loading; see README.md
# "Adding a model" for what each source's catalog entry looks like.
for _builtin in (
    # a .gguf file, a Hugging Face Hub id, a model directory: run by transformers in this process
    Source("gguf", "playground.backends.local_load:load_backend", "playground.backends.local_load:estimate"),
    Source("hub", "playground.backends.local_load:load_backend", "playground.backends.local_load:estimate"),
    Source("dir", "playground.backends.local_load:load_backend", "playground.backends.local_load:estimate"),
    # any OpenAI-compatible server; a .gguf file served by a managed llama.cpp server
    Source("openai", "playground.backends.remote:load_served", remote=True, server_entry=True),
    Source("llama.cpp", "playground.backends.llamacpp:load", "playground.backends.llamacpp:estimate",
           remote=True),
    # a model folder, hub id or .gguf file served by a managed vLLM (PLAYGROUND_VLLM), sharded over GPUs
    # (no estimator: its memory is its own process's and its GPUs')
    Source("vllm", "playground.backends.vllm:load", remote=True),
):
    register(_builtin)
