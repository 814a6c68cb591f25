"""Managed llama.cpp (source "llama.cpp"): a `llama-cpp-python` server per .gguf file, on a free
loopback port. The whole backend: `load` and `estimate` are what backends/registry.py registers.

The fast CPU path for GGUF files (quantized kernels instead of dequantized
float32 weights). The playground starts the server, waits until it answers,
talks to it like any OpenAI-compatible server (remote.py), and stops it when
the model is unloaded or the app exits. No orphans: each server is started
with the parent-death signal set (Linux), from one long-lived launcher thread
(the signal follows the thread that forked), so it also goes when the app is
killed by SIGTERM or SIGKILL; `atexit` stops the rest on a normal exit.

Supervised: a watcher thread waits on each server from the moment it starts. When the server
ends without being asked to (a crash, a signal, the OOM killer), the child is reaped at once,
`exit_reason` says why in plain words, and `failure()` reports it: the column that was
streaming ends with that reason and the pool drops the model, so the next run starts afresh.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import ctypes.util
import importlib.metadata
import logging
import os
import queue
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from playground.backends.base import BackendError
from playground.backends.engine_exit import describe_exit
from playground.backends.model_files import existing_gguf, gguf_path, sha256_file
from playground.backends.registry import Estimate
from playground.catalog import ModelSpec

if TYPE_CHECKING:
    from playground.backends.remote import RemoteBackend

log = logging.getLogger(__name__)

DEFAULT_CONTEXT = 4096  # tokens, for a catalog entry that names no context window
READY_TIMEOUT_S = 120.0
STOP_TIMEOUT_S = 5.0
_PR_SET_PDEATHSIG = 1


def available() -> bool:
    """Is llama-cpp-python (with its server extra) installed?"""
    try:
        import llama_cpp.server  # noqa: F401
    except ImportError:
        return False
    return True


def _die_with_parent() -> None:  # runs in the child between fork and exec
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


class _Launcher:
    """One thread that lives as long as the process and forks every server (see the module doc)."""

    def __init__(self) -> None:
        self._jobs: queue.Queue[tuple[list[str], Path, queue.Queue]] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def popen(self, argv: list[str], log_path: Path) -> subprocess.Popen:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="llama.cpp-launcher", daemon=True)
                self._thread.start()
        reply: queue.Queue = queue.Queue(maxsize=1)
        self._jobs.put((argv, log_path, reply))
        result = reply.get()
        if isinstance(result, BaseException):
            raise result
        return result

    def _run(self) -> None:
        """Answer every job, whatever fails: a thread that died would leave each later start waiting
        on its reply forever (Popen raises SubprocessError too, e.g. when preexec_fn fails)."""
        while True:
            argv, log_path, reply = self._jobs.get()
            try:
                reply.put(_spawn(argv, log_path))
            except Exception as exc:  # noqa: BLE001 - handed to the caller, who raises it
                reply.put(exc)


def _spawn(argv: list[str], log_path: Path) -> subprocess.Popen:
    """Start one server writing to `log_path` (the child keeps its own copy of the descriptor)."""
    preexec = _die_with_parent if sys.platform.startswith("linux") else None
    with log_path.open("wb") as out:
        return subprocess.Popen(  # noqa: PLW1509 - the child only calls prctl
            argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, preexec_fn=preexec)


def _log_file() -> Path:
    """A fresh file for a server's log; mkstemp's descriptor is closed here (one leaked per start)."""
    descriptor, name = tempfile.mkstemp(prefix="playground-llamacpp-", suffix=".log")
    os.close(descriptor)
    return Path(name)


_LAUNCHER = _Launcher()


@dataclass
class ManagedServer:
    """A running llama-cpp-python server for one file."""

    process: subprocess.Popen
    port: int
    alias: str
    log_path: Path
    started_s: float = 0.0
    exit_reason: str = ""  # set when the server ended without being asked to
    _stopped: bool = field(default=False, repr=False)
    _exited: threading.Event = field(default_factory=threading.Event, repr=False)

    def watch(self) -> None:
        """Reap the server the moment it exits, and say why when nobody asked it to stop."""
        threading.Thread(target=self._wait_exit, name=f"watch-{self.alias}", daemon=True).start()

    def _wait_exit(self) -> None:
        code = self.process.wait()  # reaps the child: no zombie
        if not self._stopped:
            tail = self.log_tail(3)
            how = f"crashed: {describe_exit(code)}" if _by_signal(code) else describe_exit(code)
            self.exit_reason = (f"the llama.cpp engine for {self.alias} {how}"
                                + (f" (its log ends: {' | '.join(tail.splitlines())})" if tail else ""))
            log.warning("%s", self.exit_reason)
        self._exited.set()

    def failure(self, wait_s: float = 0.0) -> str:
        """Why the server died ('' while it runs); wait_s lets a broken stream wait for the reaper."""
        if self._exited.wait(wait_s) and not self._stopped:
            return self.exit_reason
        return ""

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def log_tail(self, lines: int = 8) -> str:
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        return "\n".join(text.strip().splitlines()[-lines:])

    def stop(self) -> None:
        """Terminate the server (then kill it if it lingers); safe to call twice."""
        if self._stopped:
            return
        self._stopped = True
        _LIVE.discard(self)
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(STOP_TIMEOUT_S)
        with contextlib.suppress(OSError):
            self.log_path.unlink()

    def __hash__(self) -> int:
        return id(self)


_LIVE: set[ManagedServer] = set()


@atexit.register
def stop_all() -> None:
    """Stop every managed server this process started (normal exit)."""
    for server in list(_LIVE):
        server.stop()


def _by_signal(code: int) -> bool:
    return code < 0 or code > 128  # Popen's -N, or a shell's 128 + N


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


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
    port = _free_port()
    log_path = _log_file()
    argv = [sys.executable, "-m", "llama_cpp.server", "--model", str(gguf), "--host", "127.0.0.1",
            "--port", str(port), "--model_alias", alias, "--n_ctx", str(context),
            "--n_threads", str(threads or os.cpu_count() or 1),
            # its default cuts a running stream when another request arrives: columns and users queue instead
            "--interrupt_requests", "False"]
    progress("starting llama.cpp server")
    started = time.perf_counter()
    try:
        process = _LAUNCHER.popen(argv, log_path)
    except (OSError, subprocess.SubprocessError) as exc:
        with contextlib.suppress(OSError):
            log_path.unlink()
        raise BackendError(f"{alias}: could not start the llama.cpp server: {exc}") from exc
    server = ManagedServer(process, port, alias, log_path)
    server.watch()
    _LIVE.add(server)
    try:
        _wait_ready(server, ready_timeout_s, progress)
    except BaseException:
        server.stop()
        raise
    server.started_s = time.perf_counter() - started
    return server


def _wait_ready(server: ManagedServer, timeout_s: float, progress: Callable[[str], None]) -> None:
    deadline = time.monotonic() + timeout_s
    with httpx.Client(timeout=2.0) as client:
        while True:
            if server.failure():
                raise BackendError(f"{server.failure()} (while starting)")
            try:
                if client.get(f"{server.base_url}/models").status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise BackendError(f"{server.alias}: the llama.cpp server did not answer within "
                                   f"{timeout_s:g} s: {server.log_tail()}")
            progress("waiting for the llama.cpp server")  # raises LoadCancelled on Stop / load timeout
            time.sleep(0.2)


# ---------------------------------------------------------------- the backend (registry.py)

def load(spec: ModelSpec, data_dir: Path, device: str = "",
         progress: Callable[[str], None] = lambda _m: None) -> RemoteBackend:
    """Start a managed llama.cpp server for the spec's .gguf file and talk to it as a served model.

    `device` is the registry's loader argument: the server runs on the CPU threads it is given."""
    from playground.backends.remote import load_served, served_identity  # the openai SDK: at first use

    started = time.perf_counter()
    path = existing_gguf(spec, data_dir)
    context = spec.context_window or DEFAULT_CONTEXT
    server = start_server(path, spec.id, context=context, progress=progress)
    served = replace(spec, base_url=server.base_url, served_model=spec.id, context_window=context)
    identity = served_identity(served, "llama.cpp (managed)", str(path))
    identity.sha256 = sha256_file(path)
    identity.libraries = {"llama-cpp-python": _version("llama_cpp_python")}
    try:
        backend = load_served(served, data_dir, progress=progress, identity=identity)
    except BaseException:
        server.stop()
        raise
    backend.on_close = server.stop
    backend.engine_failure = server.failure
    backend.explicit_sampling = True  # its defaults differ (repeat_penalty 1.1, top_k 40)
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
