"""One entry point for loading any model: local (transformers), served (OpenAI-compatible), managed llama.cpp.

The pool calls `load_model`; which kind of backend comes back depends only on
the spec's source, so the engine and the UI never branch on it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from playground.backends.base import Backend, BackendError
from playground.backends.local import load_backend, load_tokenizer, sha256_file
from playground.catalog import ModelSpec, bundled_file
from playground.record import ModelIdentity

if TYPE_CHECKING:
    from playground.backends.remote import RemoteBackend

DEFAULT_LLAMACPP_CONTEXT = 4096


def load_model(
    spec: ModelSpec, data_dir: Path, device: str = "", progress: Callable[[str], None] = lambda _m: None
) -> Backend:
    if spec.source == "openai":
        return load_served(spec, data_dir, progress)
    if spec.source == "llama.cpp":
        return load_llamacpp(spec, data_dir, progress)
    return load_backend(spec, data_dir, device, progress)


def _identity(spec: ModelSpec, engine: str, location: str) -> ModelIdentity:
    return ModelIdentity(catalog_id=spec.id, name=spec.name, source=spec.source, location=location,
                         device="remote", served_model=spec.served_model, engine=engine,
                         prompt_format="chat (server's template)", context_window=spec.context_window)


def load_served(spec: ModelSpec, data_dir: Path, progress: Callable[[str], None],
                identity: ModelIdentity | None = None) -> RemoteBackend:
    """A served model: nothing to load but an optional local tokenizer; ask the server what it offers."""
    from playground.backends.remote import RemoteBackend  # openai's SDK: 0.2 s to import, only when needed

    started = time.perf_counter()
    missing = spec.missing_key()
    if missing:
        raise BackendError(f"{spec.id}: set the {missing} environment variable to use this model")
    tokenizer = None
    if spec.tokenizer:
        progress(f"loading local tokenizer {spec.tokenizer}")
        tokenizer = load_tokenizer(spec.tokenizer, data_dir)
    backend = RemoteBackend(spec, identity or _identity(spec, "openai-compatible server", spec.base_url),
                            tokenizer=tokenizer)
    progress("asking the server how it tokenizes")
    backend.probe()
    backend.load_s = time.perf_counter() - started
    return backend


def load_llamacpp(spec: ModelSpec, data_dir: Path, progress: Callable[[str], None]) -> RemoteBackend:
    """Start a managed llama.cpp server for the spec's .gguf file and talk to it as a served model."""
    from dataclasses import replace

    from playground.backends import llamacpp

    started = time.perf_counter()
    path = bundled_file(spec, data_dir) if spec.bundled else Path(spec.location)
    if not path.is_file():
        raise BackendError(f"{spec.id}: GGUF file {path} does not exist")
    context = spec.context_window or DEFAULT_LLAMACPP_CONTEXT
    server = llamacpp.start_server(path, spec.id, context=context, progress=progress)
    served = replace(spec, base_url=server.base_url, served_model=spec.id, context_window=context)
    identity = _identity(served, "llama.cpp (managed)", str(path))
    identity.sha256 = sha256_file(path)
    identity.libraries = {"llama-cpp-python": _version("llama_cpp_python")}
    try:
        backend = load_served(served, data_dir, progress, identity)
    except BaseException:
        server.stop()
        raise
    backend.on_close = server.stop
    backend.engine_failure = server.failure
    backend.weights_bytes = path.stat().st_size
    backend.load_s = time.perf_counter() - started
    return backend


def _version(dist: str) -> str:
    import importlib.metadata

    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return ""
