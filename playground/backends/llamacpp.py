"""Managed llama.cpp (source "llama.cpp"): a `llama-cpp-python` server per .gguf file, on a free
loopback port. The whole backend: `load` and `estimate` are what backends/registry.py registers.

The fast CPU path for GGUF files (quantized kernels instead of dequantized
float32 weights). The playground starts the server, waits until it answers,
talks to it like any OpenAI-compatible server (remote.py), and stops it when
the model is unloaded or the app exits; starting, supervision and stopping are
backends/managed_server.py's (shared with the managed vLLM).
"""

from __future__ import annotations

import importlib.metadata
import logging
import os
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from playground.backends.base import BackendError
from playground.backends.managed_server import (  # noqa: F401 - the tests reach these through here
    _LIVE,
    ManagedServer,
    _die_with_parent,
    _Launcher,
    free_port,
    launch,
    served_by,
    stop_all,
)
from playground.backends.model_files import existing_gguf, gguf_path, sha256_file
from playground.backends.registry import Estimate
from playground.catalog import ModelSpec

if TYPE_CHECKING:
    from playground.backends.remote import RemoteBackend

log = logging.getLogger(__name__)

DEFAULT_CONTEXT = 4096  # tokens, for a catalog entry that names no context window
READY_TIMEOUT_S = 120.0


def available() -> bool:
    """Is llama-cpp-python (with its server extra) installed?"""
    try:
        import llama_cpp.server  # noqa: F401
    except ImportError:
        return False
    return True


def start_server(
    gguf: Path,
    alias: str,
    context: int = 4096,
    threads: int = 0,
    progress: Callable[[str], None] = lambda _m: None,
    ready_timeout_s: float = READY_TIMEOUT_S,
) -> ManagedServer:
    """Start a server for `gguf` and wait until it lists its model; raises BackendError with its log."""
    if not available():
        raise BackendError("llama.cpp columns need llama-cpp-python with its server extra: "
                           "run `make install`")
    if not gguf.is_file():
        raise BackendError(f"{alias}: GGUF file {gguf} does not exist")
    port = free_port()
    argv = [sys.executable, "-m", "llama_cpp.server", "--model", str(gguf), "--host", "127.0.0.1",
            "--port", str(port), "--model_alias", alias, "--n_ctx", str(context),
            "--n_threads", str(threads or os.cpu_count() or 1),
            # its default cuts a running stream when another request arrives: columns and users queue instead
            "--interrupt_requests", "False"]
    return launch(argv, port, alias, "llama.cpp", "/v1/models", ready_timeout_s, progress)


# ---------------------------------------------------------------- the backend (registry.py)

def load(spec: ModelSpec, data_dir: Path, device: str = "",
         progress: Callable[[str], None] = lambda _m: None) -> RemoteBackend:
    """Start a managed llama.cpp server for the spec's .gguf file and talk to it as a served model.

    `device` is the registry's loader argument: the server runs on the CPU threads it is given."""
    from playground.backends.remote import served_identity  # the openai SDK: at first use

    started = time.perf_counter()
    path = existing_gguf(spec, data_dir)
    context = spec.context_window or DEFAULT_CONTEXT
    server = start_server(path, spec.id, context=context, progress=progress)
    served = replace(spec, base_url=server.base_url, served_model=spec.id, context_window=context)
    identity = served_identity(served, "llama.cpp (managed)", str(path))
    identity.sha256 = sha256_file(path)
    identity.libraries = {"llama-cpp-python": _version("llama_cpp_python")}
    backend = served_by(server, served, data_dir, identity, progress)  # its defaults: repeat_penalty 1.1
    backend.weights_bytes = path.stat().st_size
    backend.load_s = time.perf_counter() - started
    return backend


def estimate(spec: ModelSpec, data_dir: Path, _dtype: Any, _cache_tokens: int) -> Estimate:
    """llama.cpp maps the quantized file as it is: the file's size is what loading takes."""
    return Estimate(gguf_path(spec, data_dir).stat().st_size, 0)


def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return ""
