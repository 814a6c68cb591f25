"""Capture overhead: a run with attention + probabilities vs the same run without attention.

Both bundled models, a 256-token prompt and 256 new tokens, EOS ignored so every
run produces exactly 256 tokens; measured in one process, the two variants taking
turns within each repetition. The token probabilities (log-prob and top-5 per
token) are part of the decode loop in both variants; the attention variant adds
the extra eager forward pass over prompt + output after generation. A third
figure times plain `generate()` for the same tokens, for scale.

    python bench/bench_attention.py [--reps 3] [--out bench/results/attention_cpu.json]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

torch.set_num_threads(2)
REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import transformers  # noqa: E402

from playground.backends.pool import ModelPool  # noqa: E402
from playground.catalog import GEMMA3, SMOLLM2, Catalog  # noqa: E402
from playground.config import Settings  # noqa: E402
from playground.engine import ColumnRequest, Engine, RunRequest  # noqa: E402
from playground.record import GenerationParams  # noqa: E402

NEW_TOKENS = 256
PROMPT_TOKENS = 256


def prompt_of(backend, tokens: int) -> str:  # noqa: ANN001
    """A prompt that encodes to exactly `tokens` ids for this model (template included)."""
    text = "The history of the lighthouse begins with fires lit on hills near harbours. " * 40
    words = text.split()
    lo, hi = 1, len(words)
    while lo < hi:  # longest word prefix that fits
        mid = (lo + hi + 1) // 2
        if len(backend.encode_prompt(" ".join(words[:mid]), "").token_ids) <= tokens:
            lo = mid
        else:
            hi = mid - 1
    return " ".join(words[:lo])


def timed_run(engine: Engine, model: str, prompt: str, attention: bool) -> tuple[float, int, int]:
    request = RunRequest(prompt, [ColumnRequest(model, GenerationParams(max_new_tokens=NEW_TOKENS))],
                         capture_attention=attention)
    started = time.perf_counter()
    run = engine.run(request)
    elapsed = time.perf_counter() - started
    m = run.models[0]
    assert not m.error, m.error
    assert (m.attention is not None) == attention, m.attention_note
    return elapsed, len(m.prompt_token_ids), len(m.steps)


def timed_generate(backend, prompt: str) -> float:  # noqa: ANN001
    ids = torch.tensor([backend.encode_prompt(prompt, "").token_ids])
    started = time.perf_counter()
    backend.model.generate(ids, max_new_tokens=NEW_TOKENS, min_new_tokens=NEW_TOKENS, do_sample=False)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--data-dir", type=Path, default=Settings.from_env().data_dir)
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "attention_cpu.json")
    args = parser.parse_args()
    pool = ModelPool(args.data_dir, device="cpu")
    engine = Engine(Catalog.build(), pool)
    results = {}
    for spec in (SMOLLM2, GEMMA3):
        backend = pool.get(spec)
        backend.eos_ids = set()  # this benchmark's own copy of the behaviour: always 256 new tokens
        prompt = prompt_of(backend, PROMPT_TOKENS)
        timed_run(engine, spec.id, prompt, attention=True)  # warm-up
        with_attn, without, plain = [], [], []
        for rep in range(args.reps):
            t_with, n_prompt, n_out = timed_run(engine, spec.id, prompt, attention=True)
            t_without, _, _ = timed_run(engine, spec.id, prompt, attention=False)
            t_plain = timed_generate(backend, prompt)
            with_attn.append(t_with)
            without.append(t_without)
            plain.append(t_plain)
            print(f"{spec.id} rep {rep + 1}: with {t_with:.2f} s, without {t_without:.2f} s, "
                  f"generate() {t_plain:.2f} s ({n_prompt} prompt + {n_out} new tokens)", flush=True)
        med_with, med_without = statistics.median(with_attn), statistics.median(without)
        results[spec.id] = {
            "prompt_tokens": n_prompt,
            "new_tokens": n_out,
            "with_attention_s": with_attn,
            "without_attention_s": without,
            "plain_generate_s": plain,
            "median_with_s": med_with,
            "median_without_s": med_without,
            "overhead_ratio": med_with / med_without,
            "with_vs_plain_generate": med_with / statistics.median(plain),
        }
    both_with = sum(r["median_with_s"] for r in results.values())
    both_without = sum(r["median_without_s"] for r in results.values())
    summary = {
        "machine": "dev box: 2-core x86_64 CPU, no GPU",
        "date": datetime.date.today().isoformat(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "threads": torch.get_num_threads(),
        "target": "overhead ratio <= 1.15",
        "models": results,
        "overall_ratio_both_models": both_with / both_without,
    }
    print()
    for name, r in results.items():
        print(f"{name:<14} with attention {r['median_with_s']:.2f} s / without {r['median_without_s']:.2f} s "
              f"= {r['overhead_ratio']:.3f}x  (vs plain generate(): {r['with_vs_plain_generate']:.3f}x)")
    print(f"both models: {summary['overall_ratio_both_models']:.3f}x (target <= 1.15x)")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(summary, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
