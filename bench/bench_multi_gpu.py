"""Side by side across GPUs (issue 15): placement, a model spread with device_map, and the
pre-flight with several devices, through the project's own catalog, pool and engine.

Sections (each recorded separately; one that needs more GPUs than the machine has says so):
- place: three models (bench/bench_gpu.py's shapes) loaded by the placement plan; which GPU each
  went to; one run of all three against the slowest alone;
- spread: the 1.3B shape forced across every GPU (each GPU's usable memory capped below the model's
  size, so the plan spreads it with accelerate's device_map); its greedy output against the same
  model whole on one GPU, and attention capture on the spread model (needs 2 GPUs);
- preflight: a model too big for all GPUs refused before loading, the message naming each GPU.

    python3 bench/bench_multi_gpu.py --tokenizer <SmolLM2 tokenizer folder> --out multi_gpu.json
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
import tempfile
import time
import traceback
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parent.parent
for path in (REPO, REPO / "bench"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

from bench_gpu import SHAPES  # noqa: E402
from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig  # noqa: E402

from playground.backends import preflight  # noqa: E402
from playground.backends.pool import ModelPool  # noqa: E402
from playground.catalog import Catalog  # noqa: E402
from playground.engine import ColumnRequest, Engine, RunRequest  # noqa: E402
from playground.record import GenerationParams  # noqa: E402

PROMPT = "Write a short story about a robot who learns to paint."
TOKENS = 64


def save(root: Path, name: str, config: object, tokenizer: object, weights: bool = True) -> str:
    path = root / name
    if weights:
        torch.manual_seed(0)
        with torch.device("cuda"):
            model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
        model.save_pretrained(path)
        del model
        torch.cuda.empty_cache()
    else:
        config.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return str(path)


def run(engine: Engine, models: list[str], capture: bool = False):  # noqa: ANN201 - (seconds, Run)
    columns = [ColumnRequest(m, GenerationParams(max_new_tokens=TOKENS)) for m in models]
    started = time.perf_counter()
    record = engine.run(RunRequest(prompt=PROMPT, columns=columns, capture_attention=capture))
    return time.perf_counter() - started, record


def section_place(root: Path, tokenizer: object) -> dict:
    refs = [save(root, name, config, tokenizer) for name, config in SHAPES.items()]
    catalog = Catalog.build(extra=refs)
    engine = Engine(catalog, ModelPool(root / "data-place", device="cuda"))
    ids = [catalog.get(r).id for r in refs]
    for model_id in ids:
        engine.pool.get(catalog.get(model_id)).eos_ids.clear()
    run(engine, ids)  # warm-up: loads (placed by the plan) and captures
    alone = {m: run(engine, [m])[0] for m in ids}
    together, record = run(engine, ids)
    out = {"gpus": torch.cuda.device_count(),
           "devices": {m.identity.catalog_id: m.identity.device for m in record.models},
           "decode_paths": [m.identity.decode_path for m in record.models],
           "alone_s": alone, "three_s": together, "vs_slowest_alone": together / max(alone.values()),
           "errors": [m.error for m in record.models if m.error]}
    engine.pool.close()
    return out


def section_spread(root: Path, tokenizer: object) -> dict:
    gpus = torch.cuda.device_count()
    if gpus < 2:
        return {"skipped": f"needs 2 GPUs to spread a model; this machine has {gpus}"}
    ref = save(root, "llama-1.3b-spread", SHAPES["llama-1.3b-shape"], tokenizer)
    catalog = Catalog.build(extra=[ref])
    model_id = catalog.get(ref).id
    whole = Engine(catalog, ModelPool(root / "data-whole", device="cuda"))
    whole.pool.get(catalog.get(model_id)).eos_ids.clear()
    _, one = run(whole, [model_id])
    whole.pool.close()
    torch.cuda.empty_cache()
    need = preflight.estimate(catalog.get(model_id), root, torch.bfloat16, 0).weights_bytes
    cap = int(need * 0.7)  # no GPU may take it whole: the plan spreads it
    real_free = preflight.gpu_free
    preflight.gpu_free = lambda: {i: cap for i in range(gpus)}
    try:
        spread = Engine(catalog, ModelPool(root / "data-spread", device="cuda"))
        backend = spread.pool.get(catalog.get(model_id))
    finally:
        preflight.gpu_free = real_free
    backend.eos_ids.clear()
    _, two = run(spread, [model_id], capture=True)
    placed = sorted({str(d) for d in getattr(backend.model, "hf_device_map", {}).values()})
    return {"devices": placed, "decode_path": two.models[0].identity.decode_path,
            "greedy_equal_to_one_gpu": two.models[0].output_token_ids == one.models[0].output_token_ids,
            "tokens": len(two.models[0].steps), "attention": two.models[0].attention is not None,
            "attention_note": two.models[0].attention_note, "error": two.models[0].error}


def section_preflight(root: Path, tokenizer: object) -> dict:
    config = LlamaConfig(vocab_size=128256, hidden_size=8192 * 2, intermediate_size=28672 * 2,
                         num_hidden_layers=80, num_attention_heads=128, num_key_value_heads=8)
    ref = save(root, "llama-too-big-shape", config, tokenizer, weights=False)
    catalog = Catalog.build(extra=[ref])
    engine = Engine(catalog, ModelPool(root / "data-preflight", device="cuda"))
    _, record = run(engine, [catalog.get(ref).id])
    model = record.models[0]
    return {"finish": model.finish_reason, "error": model.error,
            "free_gb": {f"cuda:{i}": f / 2**30 for i, f in preflight.gpu_free().items()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tokenizer", required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--sections", default="place,spread,preflight")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="bench-multi-gpu-"))
    tokenizer = AutoTokenizer.from_pretrained(args.tokenizer)
    result = {"machine": f"{torch.cuda.device_count()} x {torch.cuda.get_device_name(0)}",
              "date": datetime.date.today().isoformat(), "torch": torch.__version__, "sections": {}}
    for name in args.sections.split(","):
        try:
            result["sections"][name] = globals()[f"section_{name}"](root, tokenizer)
        except Exception as exc:  # noqa: BLE001 - one section failing keeps the others' figures
            traceback.print_exc()
            result["sections"][name] = {"error": f"{type(exc).__name__}: {exc}"}
        print(name, json.dumps(result["sections"][name], default=str), flush=True)
        args.out.write_text(json.dumps(result, indent=2, default=str))


if __name__ == "__main__":
    main()
