"""Why a managed engine process ended, in plain words (for a column's error and the install check)."""

from __future__ import annotations

import signal

# What each fatal signal usually means for an inference server, and what to do about it.
_SIGNAL_WORDS: dict[int, str] = {
    signal.SIGILL: "illegal instruction (SIGILL): this build uses a CPU instruction the machine refuses; "
                   "rebuild llama.cpp portably with `make clean install`",
    signal.SIGKILL: "killed (SIGKILL): by hand, or by the out-of-memory killer if memory ran short",
    signal.SIGSEGV: "segmentation fault (SIGSEGV)",
    signal.SIGBUS: "bus error (SIGBUS)",
    signal.SIGABRT: "aborted (SIGABRT)",
    signal.SIGFPE: "arithmetic fault (SIGFPE)",
    signal.SIGTERM: "terminated (SIGTERM)",
    signal.SIGINT: "interrupted (SIGINT)",
}


def describe_exit(returncode: int) -> str:
    """`-4` -> 'illegal instruction (SIGILL): ...'; a shell's `128 + n` reads the same; else the status."""
    number = -returncode if returncode < 0 else returncode - 128 if 128 < returncode < 160 else 0
    if number:
        if number in _SIGNAL_WORDS:
            return _SIGNAL_WORDS[number]
        try:
            return f"stopped by signal {signal.Signals(number).name}"
        except ValueError:
            return f"stopped by signal {number}"
    return f"exited with status {returncode}"
