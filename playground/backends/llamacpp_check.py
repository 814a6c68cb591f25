"""Run the installed llama.cpp once, on the bundled SmolLM2 file, before trusting it.

A build that compiles can still die on its first token: a -march=native build used AMX on a
virtual machine that lists AMX and traps it (SIGILL). `make install` runs this after installing
llama-cpp-python; a failure names the signal in plain words and the install stops.

    python -m playground.backends.llamacpp_check
"""

from __future__ import annotations

import subprocess
import sys
import time

from playground.backends.engine_exit import describe_exit
from playground.catalog import SMOLLM2, CatalogError, bundled_file
from playground.config import Settings

# A child process: a crash must be reported, not take this check down with it.
PROBE = """
import sys
from llama_cpp import Llama
model = Llama(model_path=sys.argv[1], n_ctx=256, n_threads=2, verbose=False)
out = model("The capital of France is", max_tokens=8, temperature=0.0)
print(out["usage"]["completion_tokens"])
"""
TIMEOUT_S = 180


def run_probe(gguf: str) -> tuple[int, str, str]:
    """(returncode, stdout, stderr) of generating 8 tokens in a fresh interpreter."""
    try:
        done = subprocess.run([sys.executable, "-c", PROBE, gguf], capture_output=True, text=True,
                              timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return -1000, "", f"no answer within {TIMEOUT_S} s"
    return done.returncode, done.stdout, done.stderr


def main() -> int:
    try:
        gguf = str(bundled_file(SMOLLM2, Settings().data_dir))
    except CatalogError as exc:
        print(f"llama.cpp check: {exc}", file=sys.stderr)
        return 1
    started = time.perf_counter()
    code, out, err = run_probe(gguf)
    if code != 0:
        why = err.strip().splitlines()[-1] if code == -1000 else describe_exit(code)
        tail = "\n".join(err.strip().splitlines()[-5:])
        print(f"llama.cpp check: the engine failed on the bundled SmolLM2 file: {why}\n{tail}",
              file=sys.stderr)
        return 1
    print(f"llama.cpp check: generated {out.strip()} tokens in {time.perf_counter() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
