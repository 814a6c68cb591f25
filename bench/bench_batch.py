"""A batch's overhead over running the same prompts one by one through the engine (CPU, 2 cores).

Same process, same models (both bundled ones, already loaded), same requests (the batch's own,
built by batch.runner.request_for), greedy, so both sides generate the same tokens. One side is
`Engine.run` per prompt; the other is `run_batch` (the run service: each prompt saved as a run,
the batch's rows written before and after each prompt, progress callbacks). They take turns
within each repetition, so a busy neighbour slows both alike; each figure is the median of --reps.

    PYTHONPATH=. .venv/bin/python bench/bench_batch.py [--prompts 8] [--tokens 16] [--reps 3] [--out PATH]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

torch.set_num_threads(2)
REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import transformers  # noqa: E402

from playground.backends.pool import ModelPool  # noqa: E402
from playground.batch.book import BatchBook  # noqa: E402
from playground.batch.prompt_set import SAMPLE, load_file  # noqa: E402
from playground.batch.runner import request_for, run_batch  # noqa: E402
from playground.batch.spec import BatchSpec, ColumnSpec  # noqa: E402
from playground.catalog import Catalog  # noqa: E402
from playground.config import Settings  # noqa: E402
from playground.engine import Engine  # noqa: E402
from playground.record import GenerationParams  # noqa: E402
from playground.service import RunService  # noqa: E402
from playground.sessions.store import SessionStore  # noqa: E402

MACHINE = "dev box: 2-core x86_64 CPU, no GPU"
MODELS = ("smollm2-135m", "gemma3-270m")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--prompts", type=int, default=8, help="prompts of the sample set (default 8)")
    parser.add_argument("--tokens", type=int, default=16, help="max new tokens (default 16)")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--data-dir", default=os.environ.get("PLAYGROUND_DATA_DIR"))
    parser.add_argument("--out", default=str(REPO / "bench" / "results" / "batch_cpu.json"))
    args = parser.parse_args()

    settings = Settings.from_env()
    data_dir = Path(args.data_dir) if args.data_dir else settings.data_dir
    engine = Engine(Catalog.build(), ModelPool(data_dir, device="cpu"))
    params = GenerationParams(max_new_tokens=args.tokens)
    items = load_file(SAMPLE)[: args.prompts]
    spec_args = {"items": items, "columns": [ColumnSpec(m, params) for m in MODELS]}
    tmp = Path(tempfile.mkdtemp(prefix="bench-batch-"))
    service = RunService(Settings(data_dir=tmp), engine=engine, store=SessionStore(tmp / "runs.sqlite3"))

    def one_by_one() -> float:
        spec = BatchSpec(**spec_args)
        start = time.perf_counter()
        for index in range(len(items)):
            engine.run(request_for(spec, index))
        return time.perf_counter() - start

    def batch() -> float:
        batch_id = BatchBook(service.store).create(BatchSpec(**spec_args), owner="bench")
        start = time.perf_counter()
        progress = run_batch(service, batch_id, progress=lambda p: None)
        elapsed = time.perf_counter() - start
        assert progress.state == "complete" and progress.done == len(items), progress
        return elapsed

    one_by_one()  # warm-up: loads both models, first-call costs
    batch()
    plain, batched = [], []
    for rep in range(args.reps):
        order = (one_by_one, batch) if rep % 2 == 0 else (batch, one_by_one)
        for fn in order:
            (plain if fn is one_by_one else batched).append(fn())
        print(f"rep {rep + 1}: one by one {plain[-1]:.2f} s, batch {batched[-1]:.2f} s", flush=True)
    ratio = statistics.median(batched) / statistics.median(plain)
    per_prompt_ms = (statistics.median(batched) - statistics.median(plain)) / len(items) * 1000
    print(f"batch overhead: {ratio:.3f}x ({per_prompt_ms:+.1f} ms per prompt; target <= 1.05x)")
    result = {
        "machine": MACHINE,
        "date": datetime.date.today().isoformat(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "threads": torch.get_num_threads(),
        "models": list(MODELS),
        "prompts": len(items),
        "max_new_tokens": args.tokens,
        "reps": args.reps,
        "one_by_one_s": plain,
        "batch_s": batched,
        "median_one_by_one_s": statistics.median(plain),
        "median_batch_s": statistics.median(batched),
        "ratio": ratio,
        "overhead_ms_per_prompt": per_prompt_ms,
        "target": "ratio <= 1.05",
        "note": "same process and loaded models; the batch side saves each prompt as a run in SQLite "
                "(WAL) and writes the batch's rows before and after each prompt",
    }
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
