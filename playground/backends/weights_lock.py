"""One model's weights built at a time, process-wide, and the wait for it kept out of load times.

transformers' model from_pretrained is not thread-safe: it patches class attributes for the
duration of a load (e.g. `no_tie_weights()` swaps out PreTrainedModel.tie_weights) and
sets torch's default dtype. Two loads in two threads restore each other's patches in the
wrong order, which left tied input embeddings randomly initialized for every model loaded
afterwards. So the process builds one model's weights at a time (the memory pre-flight's
empty model too: accelerate's init_empty_weights patches nn.Module.register_parameter for the
whole process, which put another thread's freshly loaded weights on the meta device); hashing
files, loading tokenizers and warming up run outside this lock, in parallel with other loads.
From a converted cache the locked part is short (~0.1 s): see backends/converted.py.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator

_WEIGHTS_LOCK = threading.Lock()
_HOLDER: list[str] = []  # the model whose weights are being built, named to whoever waits for it
_WAITED = threading.local()  # seconds this thread spent waiting for another model's load


@contextlib.contextmanager
def weights_lock(progress: Callable[[str], None] = lambda _msg: None, name: str = "") -> Iterator[None]:
    """Held while transformers builds a model (from_pretrained, from_config): see the module doc.

    The time spent waiting is the other model's, not this one's: load_backend leaves it out of load_s."""
    if not _WEIGHTS_LOCK.acquire(blocking=False):
        holder = _HOLDER[0] if _HOLDER else "another model"
        progress(f"waiting for {holder} to finish loading")
        started = time.perf_counter()
        _WEIGHTS_LOCK.acquire()
        _WAITED.seconds = getattr(_WAITED, "seconds", 0.0) + time.perf_counter() - started
    _HOLDER[:] = [name] if name else []
    try:
        yield
    finally:
        _HOLDER.clear()
        _WEIGHTS_LOCK.release()


def reset_wait() -> None:
    """Start counting this thread's waits afresh (at the start of a load)."""
    _WAITED.seconds = 0.0


def waited_s() -> float:
    """Seconds this thread waited for other models' weights since reset_wait()."""
    return float(getattr(_WAITED, "seconds", 0.0))
