"""A server the playground starts and watches (managed llama.cpp, managed vLLM): spawned on a free
loopback port, waited on until it answers, supervised while it runs, stopped with its model.

No orphans: each server is started with the parent-death signal set (Linux), from one long-lived
launcher thread (the signal follows the thread that forked), so it also goes when the app is
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
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import httpx

from playground.backends.base import BackendError
from playground.backends.engine_exit import describe_exit

if TYPE_CHECKING:
    from playground.backends.remote import RemoteBackend
    from playground.catalog import ModelSpec
    from playground.record import ModelIdentity

log = logging.getLogger(__name__)

STOP_TIMEOUT_S = 5.0
_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:  # runs in the child between fork and exec
    """The server leads a process group of its own (vLLM forks an engine and workers: stopping the
    group stops them too), and gets SIGTERM when the thread that forked it dies."""
    os.setsid()
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


class _Launcher:
    """One thread that lives as long as the process and forks every server (see the module doc)."""

    def __init__(self) -> None:
        self._jobs: queue.Queue[tuple[list[str], Path, dict[str, str] | None, queue.Queue]] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def popen(self, argv: list[str], log_path: Path, env: dict[str, str] | None = None) -> subprocess.Popen:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="server-launcher", daemon=True)
                self._thread.start()
        reply: queue.Queue = queue.Queue(maxsize=1)
        self._jobs.put((argv, log_path, env, reply))
        result = reply.get()
        if isinstance(result, BaseException):
            raise result
        return result

    def _run(self) -> None:
        """Answer every job, whatever fails: a thread that died would leave each later start waiting
        on its reply forever (Popen raises SubprocessError too, e.g. when preexec_fn fails)."""
        while True:
            argv, log_path, env, reply = self._jobs.get()
            try:
                reply.put(_spawn(argv, log_path, env))
            except Exception as exc:  # noqa: BLE001 - handed to the caller, who raises it
                reply.put(exc)


def _spawn(argv: list[str], log_path: Path, env: dict[str, str] | None = None) -> subprocess.Popen:
    """Start one server writing to `log_path` (the child keeps its own copy of the descriptor)."""
    preexec = _die_with_parent if sys.platform.startswith("linux") else None
    with log_path.open("wb") as out:
        return subprocess.Popen(  # noqa: PLW1509 - the child only calls prctl
            argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, preexec_fn=preexec,
            env=None if env is None else {**os.environ, **env})


def _log_file() -> Path:
    """A fresh file for a server's log; mkstemp's descriptor is closed here (one leaked per start)."""
    descriptor, name = tempfile.mkstemp(prefix="playground-server-", suffix=".log")
    os.close(descriptor)
    return Path(name)


_LAUNCHER = _Launcher()


@dataclass
class ManagedServer:
    """A running server for one model (`engine` names it in messages: "llama.cpp", "vLLM")."""

    process: subprocess.Popen
    port: int
    alias: str
    log_path: Path
    engine: str = "llama.cpp"
    ready_path: str = "/v1/models"  # answers 200 once the model is served
    started_s: float = 0.0
    exit_reason: str = ""  # set when the server ended without being asked to
    _stopped: bool = field(default=False, repr=False)
    _exited: threading.Event = field(default_factory=threading.Event, repr=False)

    def watch(self) -> None:
        """Reap the server the moment it exits, and say why when nobody asked it to stop."""
        threading.Thread(target=self._wait_exit, name=f"watch-{self.alias}", daemon=True).start()

    def _wait_exit(self) -> None:
        code = self.process.wait()  # reaps the child: no zombie
        self._signal_group(signal.SIGKILL)  # what it forked (vLLM's engine and workers) goes with it
        if not self._stopped:
            tail = self.log_tail(3)
            how = f"crashed: {describe_exit(code)}" if _by_signal(code) else describe_exit(code)
            self.exit_reason = (f"the {self.engine} engine for {self.alias} {how}"
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

    @property
    def root(self) -> str:
        return f"http://127.0.0.1:{self.port}"

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
            self._signal_group(signal.SIGTERM)
            try:
                self.process.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(STOP_TIMEOUT_S)
        self._signal_group(signal.SIGKILL)
        with contextlib.suppress(OSError):
            self.log_path.unlink()

    def _signal_group(self, signum: int) -> None:
        """Signal the server's process group (its own: see _die_with_parent), or the server alone."""
        try:
            if sys.platform.startswith("linux"):
                os.killpg(self.process.pid, signum)
            elif self.process.poll() is None:
                self.process.send_signal(signum)
        except (ProcessLookupError, PermissionError):
            pass

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


def launch(
    argv: list[str], port: int, alias: str, engine: str, ready_path: str, timeout_s: float,
    progress: Callable[[str], None] = lambda _m: None, env: dict[str, str] | None = None,
) -> ManagedServer:
    """Start `argv` (a server listening on `port`), watch it, and wait until `ready_path` answers;
    raises BackendError with its log, leaving nothing running."""
    log_path = _log_file()
    progress(f"starting the {engine} server")
    started = time.perf_counter()
    try:
        process = _LAUNCHER.popen(argv, log_path, env)
    except (OSError, subprocess.SubprocessError) as exc:
        with contextlib.suppress(OSError):
            log_path.unlink()
        raise BackendError(f"{alias}: could not start the {engine} server: {exc}") from exc
    server = ManagedServer(process, port, alias, log_path, engine, ready_path)
    server.watch()
    _LIVE.add(server)
    try:
        _wait_ready(server, timeout_s, progress)
    except BaseException:
        server.stop()
        raise
    server.started_s = time.perf_counter() - started
    return server


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_ready(server: ManagedServer, timeout_s: float, progress: Callable[[str], None]) -> None:
    deadline = time.monotonic() + timeout_s
    with httpx.Client(timeout=2.0) as client:
        while True:
            if server.failure():
                raise BackendError(f"{server.failure()} (while starting)")
            try:
                if client.get(f"{server.root}{server.ready_path}").status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise BackendError(f"{server.alias}: the {server.engine} server did not answer within "
                                   f"{timeout_s:g} s: {server.log_tail()}")
            progress(f"waiting for the {server.engine} server")  # raises LoadCancelled on Stop / load timeout
            time.sleep(0.2)


def served_by(server: ManagedServer, spec: ModelSpec, data_dir: Path, identity: ModelIdentity,
              progress: Callable[[str], None]) -> RemoteBackend:
    """The served backend on a started server, which stops with it (and stops now if it cannot be
    reached); the server's death is the backend's failure. Sampling settings are always sent:
    a managed engine's own defaults differ from the playground's."""
    from playground.backends.remote import load_served  # the openai SDK: at first use

    try:
        backend = load_served(spec, data_dir, progress=progress, identity=identity)
    except BaseException:
        server.stop()
        raise
    backend.on_close = server.stop
    backend.engine_failure = server.failure
    backend.explicit_sampling = True
    return backend
