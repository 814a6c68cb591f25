"""A prompt set on a GPU: the bundled 24-prompt sample set over three models, prompts per second,
with the fast path (CUDA graphs) and with the eager path, in one process.

Random-weight models of three real shapes (bench/bench_gpu.py's SMOLLM2-135M, Gemma3-270M and
1.3B Llama shapes, SmolLM2's tokenizer) are saved as local folders and loaded through the
catalog and pool; the batch runs through the run service (each prompt saved as a run, resumable
rows), exactly as `python -m playground batch` runs it. Greedy, EOS ignored (random weights
stop anywhere), so both paths decode the same number of tokens.

    python3 bench/bench_batch_gpu.py --tokenizer <SmolLM2 tokenizer folder> --out batch_gpu.json
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parent.parent
for path in (REPO, REPO / "bench"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

from bench_gpu import SHAPES  # noqa: E402
from transformers import AutoModelForCausalLM, AutoTokenizer  # noqa: E402

from playground.backends.pool import ModelPool  # noqa: E402
from playground.batch.book import BatchBook  # noqa: E402
from playground.batch.prompt_set import SAMPLE, load_file  # noqa: E402
from playground.batch.runner import run_batch  # noqa: E402
from playground.batch.spec import BatchSpec, ColumnSpec  # noqa: E402
from playground.catalog import Catalog  # noqa: E402
from playground.config import Settings  # noqa: E402
from playground.engine import Engine  # noqa: E402
from playground.record import GenerationParams  # noqa: E402
from playground.service import RunService  # noqa: E402
from playground.sessions.store import SessionStore  # noqa: E402


def save_shapes(root: Path, tokenizer: str, device: str, tiny: bool) -> list[str]:
    tok = AutoTokenizer.from_pretrained(tokenizer)
    paths = []
    for name, config in SHAPES.items():
        if tiny:  # a CPU dry run of the script itself
            config.num_hidden_layers = 2
            if hasattr(config, "layer_types"):
                config.layer_types = config.layer_types[:2]
        torch.manual_seed(0)
        with torch.device(device):
            model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
        model.save_pretrained(root / name)
        tok.save_pretrained(root / name)
        paths.append(str(root / name))
        del model
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tokenizer", required=True)
    parser.add_argument("--tokens", type=int, default=64, help="new tokens per prompt and model")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--tiny", action="store_true", help="two-layer shapes, 4 prompts: a CPU dry run")
    args = parser.parse_args()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    root = Path(tempfile.mkdtemp(prefix="bench-batch-gpu-"))
    refs = save_shapes(root, args.tokenizer, device, args.tiny)
    catalog = Catalog.build(extra=refs)
    engine = Engine(catalog, ModelPool(root / "data", device=device))
    for ref in refs:
        engine.pool.get(catalog.get(ref)).eos_ids.clear()  # random weights: every prompt decodes all tokens
    service = RunService(Settings(data_dir=root), engine=engine, store=SessionStore(root / "runs.sqlite3"))
    items = load_file(SAMPLE)[: 4 if args.tiny else None]
    params = GenerationParams(max_new_tokens=args.tokens)
    columns = [ColumnSpec(catalog.get(ref).id, params) for ref in refs]

    fast_mode = "auto" if device == "cuda" else "on"

    def batch(path: str) -> tuple[float, list[str]]:
        os.environ["PLAYGROUND_FAST_PATH"] = fast_mode if path == "auto" else path
        batch_id = BatchBook(service.store).create(BatchSpec(items=items, columns=columns), owner="bench")
        started = time.perf_counter()
        progress = run_batch(service, batch_id)
        elapsed = time.perf_counter() - started
        assert progress.state == "complete" and progress.done == len(items), progress
        run = service.store.get(BatchBook(service.store).states(batch_id)[0].run_id)
        return elapsed, [m.identity.decode_path for m in run.models]

    batch("auto")  # warm-up: loads, first captures
    results = {}
    for path in ("auto", "off", "auto"):
        elapsed, paths = batch(path)
        key = "fast" if path == "auto" else "eager"
        results.setdefault(key, []).append({"seconds": elapsed, "prompts_per_s": len(items) / elapsed,
                                            "decode_paths": paths})
        print(f"{key}: {len(items)} prompts x {len(columns)} models in {elapsed:.2f} s "
              f"({len(items) / elapsed:.2f} prompts/s)", flush=True)
    fast = min(r["seconds"] for r in results["fast"])
    eager = results["eager"][0]["seconds"]
    out = {
        "machine": torch.cuda.get_device_name(0) if device == "cuda" else "CPU",
        "date": datetime.date.today().isoformat(), "torch": torch.__version__,
        "prompts": len(items), "models": list(SHAPES), "new_tokens": args.tokens,
        "results": results, "fast_prompts_per_s": len(items) / fast,
        "eager_prompts_per_s": len(items) / eager,
        "fast_vs_eager": eager / fast,
    }
    args.out.write_text(json.dumps(out, indent=2))
    print(json.dumps({k: v for k, v in out.items() if k != "results"}, indent=1))


if __name__ == "__main__":
    main()
