"""Decode speed on CPU: the project's decode loop and engine vs `generate()` vs llama.cpp.

Everything is measured in one run of this script, on the same model (SmolLM2 135M Q4_1),
the same prompt token ids and the same thread count, so the printed ratios compare like
with like. Each figure is the median of --reps runs after one warmup; the methods take
turns within each repetition, so a busy neighbour on the machine slows them all alike.
Model loads (first launch: GGUF conversion into a fresh data dir; second launch: the
converted cache) are timed in fresh subprocesses, so nothing is already in memory.

    PYTHONPATH=. .venv/bin/python bench/bench_decode.py [--tokens 128] [--reps 3] [--out PATH]

Models come from the playground data dir (PLAYGROUND_DATA_DIR or the per-user default), or --data-dir.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

THREADS = 2
torch.set_num_threads(THREADS)
REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # `python bench/bench_decode.py` (make bench) without PYTHONPATH
    sys.path.insert(0, str(REPO))

import llama_cpp  # noqa: E402 - imported after the thread count is fixed
import transformers  # noqa: E402
from transformers.generation.streamers import BaseStreamer  # noqa: E402

from playground.backends.decode import generate_steps  # noqa: E402
from playground.backends.local import LocalBackend  # noqa: E402
from playground.backends.local_load import load_backend  # noqa: E402
from playground.backends.pool import ModelPool  # noqa: E402
from playground.catalog import SMOLLM2, Catalog, bundled_file  # noqa: E402
from playground.config import Settings  # noqa: E402
from playground.engine import ColumnRequest, Engine, RunRequest  # noqa: E402
from playground.record import GenerationParams  # noqa: E402

MACHINE = "dev box: 2-core x86_64 CPU, no GPU"
PROMPT = "Write a short story about a robot who learns to paint. Describe its first painting in detail."
AGREE_PREFIX = 32  # greedy tokens compared between implementations
LABELS = {
    "engine_steps": "engine decode loop (generate_steps)",
    "generate": "transformers generate()",
    "llama_cpp": "llama.cpp (llama-cpp-python)",
    "engine_run": "Engine.run (stops on EOS)",
    "engine_run_no_eos": "Engine.run (EOS ignored)",
}


@dataclass
class Timing:
    """One generation: wall time from the call to the last token and to the first token."""

    tokens: int
    total_s: float
    ttft_s: float
    token_ids: list[int]
    cpu_s: float = 0.0  # process CPU time during the call (all threads)
    extra: dict[str, object] = field(default_factory=dict)

    @property
    def tok_s(self) -> float:
        """Tokens over total wall time, prefill included: the figure compared across methods."""
        return self.tokens / self.total_s

    @property
    def decode_tok_s(self) -> float:
        """Tokens after the first over the time after the first (prefill excluded)."""
        return (self.tokens - 1) / (self.total_s - self.ttft_s)

    def summary(self) -> dict[str, object]:
        return {
            "tokens": self.tokens,
            "total_s": round(self.total_s, 4),
            "ttft_s": round(self.ttft_s, 4),
            "tok_s": round(self.tok_s, 2),
            "decode_tok_s": round(self.decode_tok_s, 2),
            "cpu_s": round(self.cpu_s, 3),
        } | self.extra


def timed(run: Callable[[], Timing]) -> Timing:
    """Call `run`, recording the process CPU time it used."""
    cpu = time.process_time()
    result = run()
    result.cpu_s = time.process_time() - cpu
    return result


def interleaved(methods: dict[str, Callable[[], Timing]], reps: int) -> dict[str, list[Timing]]:
    """One warmup each, then `reps` rounds in which every method runs once, in turn."""
    for name, run in methods.items():
        print(f"warmup {name} ...", flush=True)
        run()
    runs: dict[str, list[Timing]] = {name: [] for name in methods}
    for rep in range(reps):
        for name, run in methods.items():
            runs[name].append(timed(run))
            print(f"rep {rep + 1}/{reps} {name}: {runs[name][-1].tok_s:.1f} tok/s", flush=True)
    return runs


def median_run(runs: list[Timing]) -> Timing:
    """The run with the median total time."""
    return sorted(runs, key=lambda t: t.total_s)[len(runs) // 2]


# ---------------------------------------------------------------- the three decoders


def time_engine_steps(model: torch.nn.Module, prompt_ids: list[int], tokens: int) -> Timing:
    """The project's decode loop (prefill, decode_step, sample) with EOS off, so all tokens come."""
    params = GenerationParams(max_new_tokens=tokens, temperature=0.0)
    ids: list[int] = []
    first = 0.0
    started = time.perf_counter()
    for step in generate_steps(model, prompt_ids, params, eos_ids=set(), should_stop=lambda: False):
        if not ids:
            first = time.perf_counter()
        ids.append(step.token_id)
    return Timing(len(ids), time.perf_counter() - started, first - started, ids)


class _FirstTokenClock(BaseStreamer):
    """Notes when generate() emits its first new token (its first put() carries the prompt)."""

    def __init__(self) -> None:
        self.puts = 0
        self.first_at = 0.0

    def put(self, value: torch.Tensor) -> None:
        self.puts += 1
        if self.puts == 2:
            self.first_at = time.perf_counter()

    def end(self) -> None:
        pass


def time_generate(model: torch.nn.Module, prompt_ids: list[int], tokens: int) -> Timing:
    """Plain transformers generate(), greedy, forced to exactly `tokens` new tokens."""
    ids = torch.tensor([prompt_ids], dtype=torch.long)
    clock = _FirstTokenClock()
    started = time.perf_counter()
    with torch.inference_mode():
        out = model.generate(
            ids,
            attention_mask=torch.ones_like(ids),
            max_new_tokens=tokens,
            min_new_tokens=tokens,
            do_sample=False,
            pad_token_id=model.generation_config.eos_token_id,
            streamer=clock,
        )
    total = time.perf_counter() - started
    new = out[0, len(prompt_ids) :].tolist()
    return Timing(len(new), total, clock.first_at - started, new)


def time_llama(llm: llama_cpp.Llama, prompt_ids: list[int], tokens: int) -> Timing:
    """llama.cpp greedy through Llama.generate, which never stops on EOS by itself."""
    llm.reset()  # no KV-cache prefix reuse between runs: every run pays its prefill
    ids: list[int] = []
    first = 0.0
    started = time.perf_counter()
    stream = llm.generate(prompt_ids, top_k=1, top_p=1.0, min_p=0.0, temp=0.0, repeat_penalty=1.0)
    for token in stream:
        if not ids:
            first = time.perf_counter()
        ids.append(int(token))
        if len(ids) >= tokens:
            break
    total = time.perf_counter() - started
    stream.close()
    return Timing(len(ids), total, first - started, ids)


# ---------------------------------------------------------------- the full engine path


def time_engine_run(engine: Engine, backend: LocalBackend, tokens: int, keep_eos: bool) -> Timing:
    """One Engine.run with a single SmolLM2 column, timed by the record's own metrics.

    total_s runs from generation start (after load and prompt encoding) to the finish. With
    keep_eos=False the backend's EOS ids are cleared for this run only, so all tokens come.
    """
    request = RunRequest(PROMPT, [ColumnRequest(SMOLLM2.id, GenerationParams(max_new_tokens=tokens))])
    saved = backend.eos_ids
    if not keep_eos:
        backend.eos_ids = set()
    try:
        record = engine.run(request).models[0]
    finally:
        backend.eos_ids = saved
    if record.error:
        raise RuntimeError(f"engine run failed: {record.error}")
    m = record.metrics
    extra = {"metrics_decode_tok_s": round(m.decode_tok_s, 2), "finish_reason": record.finish_reason}
    return Timing(m.output_tokens, m.total_s, m.ttft_s, record.output_token_ids, extra=extra)


def engine_over(backend: LocalBackend, data_dir: Path) -> Engine:
    """An Engine whose pool already holds `backend` (no load inside the timed runs)."""
    pool = ModelPool(data_dir)
    pool.put(SMOLLM2, backend)
    return Engine(Catalog.build(), pool)


def measure_decoders(
    backend: LocalBackend, data_dir: Path, tokens: int, reps: int
) -> dict[str, list[Timing]]:
    """All decode measurements, on the same prompt ids and thread count, in this process."""
    prompt_ids = backend.encode_prompt(PROMPT, "").token_ids
    llm = llama_cpp.Llama(
        model_path=str(bundled_file(SMOLLM2, data_dir)),
        n_threads=THREADS,
        n_threads_batch=THREADS,
        n_ctx=2048,
        verbose=False,
    )
    engine = engine_over(backend, data_dir)
    methods: dict[str, Callable[[], Timing]] = {
        "engine_steps": lambda: time_engine_steps(backend.model, prompt_ids, tokens),
        "generate": lambda: time_generate(backend.model, prompt_ids, tokens),
        "llama_cpp": lambda: time_llama(llm, prompt_ids, tokens),
        "engine_run": lambda: time_engine_run(engine, backend, tokens, keep_eos=True),
        "engine_run_no_eos": lambda: time_engine_run(engine, backend, tokens, keep_eos=False),
    }
    return interleaved(methods, reps)


# ---------------------------------------------------------------- load times (subprocesses)


def child_load(data_dir: Path) -> None:
    """Subprocess entry: time load_backend once and print the result as one JSON line."""
    started = time.perf_counter()
    backend = load_backend(SMOLLM2, data_dir)
    wall = time.perf_counter() - started
    result = {"load_s": wall, "backend_load_s": backend.load_s, "from_cache": backend.loaded_from_cache}
    print(json.dumps(result))


def load_in_subprocess(data_dir: Path) -> dict[str, object]:
    """Run child_load in a fresh interpreter; also report the whole process wall time (imports too)."""
    env = os.environ | {"PYTHONPATH": str(REPO)}
    command = [sys.executable, str(Path(__file__).resolve()), "--child-load", str(data_dir)]
    started = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"load subprocess failed:\n{done.stderr[-3000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    return result | {"process_wall_s": round(wall, 3)}


def measure_loads() -> dict[str, object]:
    """First launch (fresh data dir: GGUF conversion + cache write) vs second launch (the cache)."""
    with tempfile.TemporaryDirectory(prefix="pgbench-") as tmp:
        first = load_in_subprocess(Path(tmp))
        second = load_in_subprocess(Path(tmp))
    return {
        "first": first,
        "second": second,
        "first_over_second": round(first["load_s"] / second["load_s"], 2),
        "process_first_over_second": round(first["process_wall_s"] / second["process_wall_s"], 2),
    }


# ---------------------------------------------------------------- facts and report


def cpu_model() -> str:
    try:
        text = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return ""
    for line in text.splitlines():
        if line.startswith("Model name:"):
            return line.split(":", 1)[1].strip()
    return ""


def machine_facts() -> dict[str, object]:
    return {
        "machine": MACHINE,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "cpu_model": cpu_model(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "llama_cpp": llama_cpp.__version__,
        "torch_threads": torch.get_num_threads(),
        "llama_threads": THREADS,
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "loadavg_1m_at_start": round(os.getloadavg()[0], 2),
    }


def common_prefix(a: list[int], b: list[int]) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


def ratios_of(medians: dict[str, Timing]) -> dict[str, float]:
    """Speed ratios between methods (above 1: the first one is faster)."""

    def ratio(a: str, b: str, metric: str = "tok_s") -> float:
        return round(getattr(medians[a], metric) / getattr(medians[b], metric), 3)

    return {
        "engine steps / generate() (tok/s)": ratio("engine_steps", "generate"),
        "engine steps / llama.cpp (tok/s)": ratio("engine_steps", "llama_cpp"),
        "engine steps / generate() (decode tok/s)": ratio("engine_steps", "generate", "decode_tok_s"),
        "engine steps / llama.cpp (decode tok/s)": ratio("engine_steps", "llama_cpp", "decode_tok_s"),
        "Engine.run, EOS ignored / generate() (tok/s)": ratio("engine_run_no_eos", "generate"),
        "Engine.run, EOS ignored / llama.cpp (tok/s)": ratio("engine_run_no_eos", "llama_cpp"),
        "Engine.run, EOS ignored / engine steps (tok/s)": ratio("engine_run_no_eos", "engine_steps"),
    }


def print_report(medians: dict[str, Timing], ratios: dict[str, float], loads: dict | None) -> None:
    header = f"{'method':<38} {'tokens':>6} {'total s':>8} {'TTFT s':>7} {'tok/s':>7} {'decode tok/s':>12}"
    print("\n" + header + "\n" + "-" * len(header))
    for name, t in medians.items():
        print(
            f"{LABELS[name]:<38} {t.tokens:>6} {t.total_s:>8.3f} {t.ttft_s:>7.3f} "
            f"{t.tok_s:>7.1f} {t.decode_tok_s:>12.1f}"
        )
    print("tok/s = tokens / total wall time (prefill included); decode tok/s excludes the first token\n")
    for name, value in ratios.items():
        print(f"  {name:<50} {value:6.2f}x")
    if loads:
        first, second = loads["first"], loads["second"]
        print(
            f"\nload_backend in a fresh subprocess: first launch {first['load_s']:.2f} s "
            f"(convert GGUF + write cache), second {second['load_s']:.2f} s (from cache): "
            f"{loads['first_over_second']:.1f}x"
        )
        print(
            f"whole subprocess, imports included: {first['process_wall_s']:.2f} s vs "
            f"{second['process_wall_s']:.2f} s: {loads['process_first_over_second']:.1f}x"
        )


# ---------------------------------------------------------------- main


def parse_args() -> argparse.Namespace:
    default_data = Settings.from_env().data_dir
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "decode_cpu.json")
    parser.add_argument("--tokens", type=int, default=128, help="new tokens per generation")
    parser.add_argument("--reps", type=int, default=3, help="timed repetitions after one warmup")
    parser.add_argument("--data-dir", type=Path, default=Path(default_data), help="models and caches")
    parser.add_argument("--skip-loads", action="store_true", help="skip the first/second launch timing")
    parser.add_argument("--child-load", type=Path, help=argparse.SUPPRESS)
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    if args.child_load is not None:
        child_load(args.child_load)
        return
    facts = machine_facts()
    loads = None
    if not args.skip_loads:
        print("timing first and second launch (subprocesses) ...", flush=True)
        loads = measure_loads()
    backend = load_backend(SMOLLM2, args.data_dir)
    runs = measure_decoders(backend, args.data_dir, args.tokens, args.reps)
    medians = {name: median_run(r) for name, r in runs.items()}
    ratios = ratios_of(medians)
    reference = medians["engine_steps"].token_ids[:AGREE_PREFIX]
    agreement = {name: common_prefix(reference, t.token_ids[:AGREE_PREFIX]) for name, t in medians.items()}
    facts["loadavg_1m_at_end"] = round(os.getloadavg()[0], 2)
    print_report(medians, ratios, loads)
    print(f"\ngreedy tokens equal to the engine's (of the first {AGREE_PREFIX}): {agreement}")
    result = {
        "machine": MACHINE,
        "facts": facts,
        "config": {
            "model": SMOLLM2.id,
            "gguf_sha256": backend.identity.sha256,
            "torch_dtype": backend.identity.dtype,
            "prompt": PROMPT,
            "prompt_tokens": len(backend.encode_prompt(PROMPT, "").token_ids),
            "new_tokens": args.tokens,
            "reps": args.reps,
            "threads": THREADS,
            "statistic": "median of reps by total time, after one warmup; methods interleaved per rep",
        },
        "decode": {
            name: {"label": LABELS[name], "median": medians[name].summary(), "runs": [t.summary() for t in r]}
            for name, r in runs.items()
        },
        "ratios": ratios,
        "greedy_agreement_prefix": {"of_first": AGREE_PREFIX} | agreement,
        "loads": loads,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
