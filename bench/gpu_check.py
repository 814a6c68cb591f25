"""Run the engine on a CUDA machine and report what it did (placement, streaming, metrics, memory).

Usage: python bench/gpu_check.py MODEL.gguf [--out result.json]

Two columns of the same model (one greedy, one sampled) go through the real
Engine; the script records when each token event arrived (streaming, not one
burst at the end), the identity the record reports (device, dtype), and the
metrics. Plain `generate()` on the same loaded model is timed in the same
process as the baseline.
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import threading
import time
from pathlib import Path

import torch
import transformers

from playground.backends.pool import ModelPool
from playground.catalog import Catalog, ModelSpec
from playground.engine import ColumnRequest, Engine, RunRequest
from playground.record import GenerationParams

PROMPT = "Write a short story about a lighthouse keeper who finds a message in a bottle."


def engine_run(engine: Engine, model_ref: str, tokens: int) -> dict[str, object]:
    request = RunRequest(
        PROMPT,
        [
            ColumnRequest(model_ref, GenerationParams(max_new_tokens=tokens)),
            ColumnRequest(model_ref, GenerationParams(max_new_tokens=tokens, temperature=0.8, seed=7)),
        ],
    )
    run, events = engine.stream(request)
    started = time.perf_counter()
    arrivals: list[float] = []
    for event in events:
        if event.kind == "token":
            arrivals.append(time.perf_counter() - started)
    return {
        "token_events": len(arrivals),
        "first_event_s": arrivals[0] if arrivals else None,
        "last_event_s": arrivals[-1] if arrivals else None,
        "columns": [
            {
                "identity": {"device": m.identity.device, "dtype": m.identity.dtype,
                             "sha256": m.identity.sha256, "libraries": m.identity.libraries},
                "finish_reason": m.finish_reason,
                "error": m.error,
                "metrics": m.metrics.__dict__,
                "text_start": m.text[:160],
                "attention": None if m.attention is None else {
                    "layers": m.attention.layers, "heads": m.attention.heads, "tokens": m.attention.tokens,
                    "notice": m.attention.notice, "sink_first_last_layer": m.attention.sink_first[-1],
                },
                "attention_note": m.attention_note,
            }
            for m in run.models
        ],
    }


def generate_baseline(engine: Engine, model_ref: str, tokens: int) -> dict[str, float]:
    backend = engine.pool.get(engine.catalog.get(model_ref))
    ids = torch.tensor([backend.encode_prompt(PROMPT, "").token_ids], device=backend.model.device)
    backend.model.generate(ids, max_new_tokens=8, do_sample=False)  # warm-up
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    out = backend.model.generate(ids, max_new_tokens=tokens, min_new_tokens=tokens, do_sample=False)
    torch.cuda.synchronize()
    elapsed = time.perf_counter() - t0
    produced = out.shape[1] - ids.shape[1]
    return {"tokens": produced, "seconds": elapsed, "tok_s": produced / elapsed}


# ---------------------------------------------------------------- review checks (issue 20)
# CUDA-only paths the CPU tests can only simulate; each returns what it saw and `ok`.


def check_load_with_empty_estimate_cache(data_dir: Path, gguf: str) -> dict[str, object]:
    """A directory model whose estimate builds an empty model (under weights_lock) loads on CUDA
    with the estimate's cache empty; it used to wait for its own lock forever."""
    from playground.backends.local_load import _shape, load_backend
    from playground.backends.model_files import sha256_file

    folder = data_dir / "cache" / sha256_file(Path(gguf))  # written by the first run
    spec = ModelSpec(id="check-dir", name="check-dir", source="dir", location=str(folder))
    _shape.cache_clear()  # as after a failed earlier pre-flight
    seen: dict[str, object] = {}

    def load() -> None:
        try:
            seen["device"] = load_backend(spec, data_dir, "cuda").identity.device
        except Exception as exc:  # noqa: BLE001 - recorded
            seen["error"] = repr(exc)

    worker = threading.Thread(target=load, daemon=True)
    worker.start()
    worker.join(timeout=180)
    seen["finished"] = not worker.is_alive()
    seen["ok"] = seen["finished"] and str(seen.get("device", "")).startswith("cuda")
    return seen


def check_unload_returns_memory(engine: Engine, model_ref: str) -> dict[str, object]:
    """Unloading an idle model raises the driver's free memory (what the pre-flight reads) by about its
    weights: the allocator's cached blocks are handed back. Run last: it unloads the checked model."""
    spec = engine.catalog.get(model_ref)
    weights = engine.pool.get(spec).weights_bytes
    before = torch.cuda.mem_get_info()[0]
    unloaded = engine.pool.unload(spec)
    freed = torch.cuda.mem_get_info()[0] - before
    return {"unloaded": unloaded, "weights_bytes": weights, "driver_free_gain_bytes": freed,
            "ok": unloaded and freed >= 0.8 * weights}


def check_workspaces_in_budget(engine: Engine, model_ref: str) -> dict[str, object]:
    """The fast path's workspaces (CUDA graphs' static caches) count in the pool's budget and its
    line; a fresh 8-row workspace's counted bytes beside what the CUDA allocator gave it."""
    from playground.backends.workspace import WorkspaceKey

    pool = engine.pool
    backend = pool.get(engine.catalog.get(model_ref))
    held = backend.workspace_bytes()
    weights = sum(info.weights_bytes for info in pool.loaded())
    before = torch.cuda.memory_allocated()
    workspace, _capture_s = backend.fast.acquire(WorkspaceKey(rows=8, length=4096, sampling=True))
    allocated = torch.cuda.memory_allocated() - before
    counted = backend.workspace_bytes() - held
    in_use_counted = pool.used_bytes() == weights + backend.workspace_bytes()
    backend.fast.release(workspace, keep=False)
    return {"workspace_bytes_after_runs": held, "pool_used_bytes": pool.used_bytes(),
            "weights_bytes": weights, "fresh_workspace_counted_bytes": counted,
            "fresh_workspace_allocated_bytes": allocated,
            "ok": held > 0 and in_use_counted and counted > 0}


def review_checks(engine: Engine, data_dir: Path, gguf: str, model_ref: str) -> dict[str, object]:
    checks = {
        "load_with_empty_estimate_cache": check_load_with_empty_estimate_cache(data_dir, gguf),
        "workspaces_in_budget": check_workspaces_in_budget(engine, model_ref),
        "unload_returns_memory": check_unload_returns_memory(engine, model_ref),
    }
    for name, seen in checks.items():
        print(f"review check {name}: {'ok' if seen['ok'] else 'FAILED'} {seen}")
    return checks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("gguf")
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--out", default="gpu_check.json")
    args = parser.parse_args()
    assert torch.cuda.is_available(), "this check needs a CUDA device"
    data_dir = Path(tempfile.mkdtemp(prefix="pg-gpu-"))
    catalog = Catalog.build(extra=[args.gguf])
    engine = Engine(catalog, ModelPool(data_dir))
    model_ref = Path(args.gguf).stem
    first = engine_run(engine, model_ref, args.tokens)  # includes the first load (GGUF conversion)
    warm = engine_run(engine, model_ref, args.tokens)  # model already loaded
    result = {
        "machine": f"lent GPU: {torch.cuda.get_device_name(0)}",
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "model": args.gguf,
        "tokens": args.tokens,
        "first_run": first,
        "warm_run": warm,
        "plain_generate": generate_baseline(engine, model_ref, args.tokens),
        "review_checks": review_checks(engine, data_dir, args.gguf, model_ref),
    }
    for column in warm["columns"]:
        print(column["identity"]["device"], column["identity"]["dtype"], column["finish_reason"],
              {k: round(v, 3) if isinstance(v, float) else v for k, v in column["metrics"].items()})
    print("token events:", warm["token_events"], "first at", warm["first_event_s"], "last at",
          warm["last_event_s"])
    print("plain generate():", result["plain_generate"])
    print("attention:", [c["attention"] or c["attention_note"] for c in warm["columns"]])
    Path(args.out).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
