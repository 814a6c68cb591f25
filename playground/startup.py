"""The server's start-up: the default models load in the background from the first moment.

`serve` starts loading the page's default models (PLAYGROUND_DEFAULT_MODELS) as soon
as the engine exists, before Gradio is imported and the page is built, so that a
user's first Run finds them loaded. Each model loads in its own thread through the
shared pool (the same path a column takes; a column that asks meanwhile waits for
that load instead of starting another). A model that fails here is only logged: its
column shows the error when it is used.

Until they are ready, the loads get the process to themselves for a few seconds
(`head_start`): building the page is Python work too, and two threads sharing the GIL
would both finish late. Where a load turns out to be slow (a first launch converts a
GGUF file for a minute or more), the page is built at once.

The start-up is timed from the process's start (imports included), stage by stage;
`PLAYGROUND_STARTUP_TRACE=FILE` writes the timeline as JSON (bench/bench_cold_start.py
reads it), and one line on stderr says when the default models are ready.

`compare` takes the same path for the models it names (`quiet`: its output stays the
run's, and a failed load is left for the column to report): they start loading as soon
as torch is imported, in parallel, while the rest of the run (the service, a search)
is set up; the run's columns then find them loaded or wait for those loads.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)
TRACE_ENV = "PLAYGROUND_STARTUP_TRACE"
SLOW_STAGES = ("first load",)  # progress stages of a load that takes minutes (local_load.py names them so)


_IMPORTED = time.time()


def process_started() -> float:
    """When this process started (epoch seconds), from the kernel's record of it.

    Linux: the process's start in clock ticks since boot against /proc/uptime (10 ms steps;
    psutil's create_time adds the boot time rounded to whole seconds). Elsewhere: when this
    module was imported, which leaves the interpreter's own start out."""
    try:
        with open("/proc/self/stat", encoding="ascii") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
        with open("/proc/uptime", encoding="ascii") as handle:
            uptime = float(handle.read().split()[0])
        age = uptime - int(fields[19]) / os.sysconf("SC_CLK_TCK")  # field 22 of stat: starttime
    except (OSError, ValueError, IndexError):
        return _IMPORTED
    return time.time() - max(age, 0.0)


class Startup:
    """The start-up's timeline (seconds since the process started) and the background loads."""

    def __init__(self, started: float | None = None, trace: str | None = None, quiet: bool = False) -> None:
        self.started = process_started() if started is None else started
        self.quiet = quiet  # no line on stderr, failures only at debug level (the CLI's columns report them)
        self.trace = os.environ.get(TRACE_ENV, "") if trace is None else trace
        self.events: list[dict[str, Any]] = []
        self.models: dict[str, dict[str, Any]] = {}
        self.ready = threading.Event()
        self._go_on = threading.Event()  # set when ready, or when a load is slow: head_start returns
        self._lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._pending = 0
        self._done = False

    def elapsed(self) -> float:
        return time.time() - self.started

    def mark(self, stage: str, model: str = "") -> None:
        with self._lock:
            self.events.append({"t": round(self.elapsed(), 3), "model": model, "stage": stage})
        if stage.startswith(SLOW_STAGES):
            self._go_on.set()
        self._write()

    def head_start(self, limit_s: float) -> None:
        """Wait until the default models are ready, a load turns out to be slow, or limit_s passes."""
        self._go_on.wait(limit_s)

    def preload(self, pool: Any, specs: list[Any]) -> None:
        """Load each spec in a daemon thread (the process may stop before they finish)."""
        with self._lock:
            self._pending = len(specs)
        if not specs:
            self._finish()
            return
        for spec in specs:
            threading.Thread(target=self._load, args=(pool, spec), name=f"preload-{spec.id}",
                             daemon=True).start()

    def _load(self, pool: Any, spec: Any) -> None:
        started = time.perf_counter()
        self.mark("load started", spec.id)
        try:
            backend = pool.get(spec, progress=lambda message: self.mark(message, spec.id))
        except Exception as exc:  # noqa: BLE001 - the column will show it when the model is used
            level = logging.DEBUG if self.quiet else logging.WARNING
            log.log(level, "preloading %s failed: %s", spec.id, exc)
            result = {"ok": False, "error": str(exc)[:500]}
        else:
            result = {"ok": True, "from_cache": bool(getattr(backend, "loaded_from_cache", False))}
        result["load_s"] = round(time.perf_counter() - started, 3)
        with self._lock:
            self.models[spec.id] = result | {"ready_at": round(self.elapsed(), 3)}
        self.mark("ready" if result["ok"] else "failed", spec.id)
        with self._lock:
            self._pending -= 1
            last = self._pending == 0
        if last:
            self._finish()

    def _finish(self) -> None:
        self._done = True  # the trace says so from this mark on; waiters wake once it is written
        self.mark("default models ready")
        self.ready.set()
        self._go_on.set()
        if self.models and not self.quiet:
            parts = ", ".join(f"{mid} {m['ready_at']:.1f} s" + ("" if m["ok"] else " (failed)")
                              for mid, m in self.models.items())
            print(f"playground: default models loaded {self.elapsed():.1f} s after start ({parts})",
                  file=sys.stderr, flush=True)

    def wait(self, timeout: float | None = None) -> bool:
        return self.ready.wait(timeout)

    def timeline(self) -> dict[str, Any]:
        with self._lock:
            return {"pid": os.getpid(), "process_started": self.started, "events": list(self.events),
                    "models": dict(self.models), "ready": self._done}

    def _write(self) -> None:
        if not self.trace:
            return
        path = Path(self.trace)
        tmp = path.with_name(f"{path.name}.tmp{os.getpid()}")
        with self._write_lock:  # one writer at a time, each with the newest timeline
            try:
                tmp.write_text(json.dumps(self.timeline()), encoding="utf-8")
                tmp.replace(path)
            except OSError as exc:
                log.warning("could not write the start-up trace %s: %s", path, exc)


def default_specs(settings: Any, catalog: Any) -> list[Any]:
    """The models the page opens with (as the columns pick them), those that load locally."""
    ids = [m for m in settings.default_models if m in catalog.specs] or catalog.ids()[:2]
    return loadable_specs(catalog, ids)


def loadable_specs(catalog: Any, refs: list[str]) -> list[Any]:
    """The specs of these model references that have something to load, each once, in order.

    A model on a server named by its catalog entry has nothing to load here (probing it can wait for
    its column); a managed server (llama.cpp) is started, like a local model is loaded."""
    from playground.backends.registry import source  # the registry imports nothing heavy

    specs = [catalog.get(ref) for ref in dict.fromkeys(refs)]
    return [spec for spec in dict.fromkeys(specs) if not source(spec.source).server_entry]
