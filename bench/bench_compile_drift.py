"""Is the compiled decode step's drift bf16 rounding or a bug? Measured on the real SmolLM2 (issue 23).

The fast path's plain CUDA-graph step and its torch.compile'd step (PLAYGROUND_COMPILE=1) both
decode in bf16, so neither is expected to equal the other bit for bit. This script asks a better
question: is the compiled step as close to an fp32 reference as the plain step is? Each path
(eager bf16, fast-path plain bf16, fast-path compiled bf16) decodes greedily; then the fp32 model
(transformers, the same converted weights) scores every step over the same prefix, and the
script reports each path's logprob drift from fp32 (mean and max of |logprob - fp32 logprob| of
the token the path chose) and how often the path's token is fp32's argmax. The compiled step is
built directly (backends/fast_warm.py), whatever backends/fused_step.py's own verdict would say;
that verdict uses this same measure on one fixed prompt.

    python3 bench/bench_compile_drift.py MODEL.gguf --out drift.json [--tokens 64]

CUDA only for the compiled path; on CPU the script runs the eager and plain paths (a dry run).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
import tempfile
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from transformers import AutoModelForCausalLM  # noqa: E402

from playground.backends.pool import ModelPool  # noqa: E402
from playground.catalog import ModelSpec  # noqa: E402
from playground.record import GenerationParams  # noqa: E402

PROMPTS = (
    "Write a short story about a lighthouse keeper who finds a message in a bottle.",
    "Explain step by step how a bill becomes a law in the United States.",
)
def decode(backend, prompt: str, tokens: int, fast: str, compiled: bool) -> dict:  # noqa: ANN001
    """Greedy steps of one path: the token ids, their logprobs, the decode path it took."""
    os.environ["PLAYGROUND_FAST_PATH"] = fast
    os.environ["PLAYGROUND_COMPILE"] = "off"  # the fused workspace is built here, whatever its verdict
    backend.fast.close()  # no workspace of the other mode is reused
    encoding = backend.encode_prompt(prompt, "")
    params = GenerationParams(max_new_tokens=tokens)
    if compiled:
        key = backend.fast.key_for(len(encoding.token_ids), tokens, [params])
        backend.fast.release(backend.fast.warmer.fused_workspace(key), keep=True)
    stream = backend.open_stream(encoding, params, lambda: False)
    steps = list(stream)
    return {"prompt_ids": encoding.token_ids, "ids": [s.token_id for s in steps],
            "logprobs": [s.logprob for s in steps], "decode_path": stream.report().decode_path}


@torch.inference_mode()
def against_reference(reference, path: dict) -> dict:  # noqa: ANN001
    """Score the path's tokens with the fp32 model over the same prefixes."""
    ids = torch.tensor([path["prompt_ids"] + path["ids"]], device=reference.device)
    logits = reference(ids).logits[0, len(path["prompt_ids"]) - 1:-1].float()
    ref = torch.log_softmax(logits, dim=-1)
    chosen = torch.tensor(path["ids"], device=ref.device)
    ref_lp = ref.gather(1, chosen[:, None])[:, 0].cpu()
    drift = (torch.tensor(path["logprobs"]) - ref_lp).abs()
    argmax = (ref.argmax(dim=-1).cpu() == chosen.cpu()).float()
    return {"tokens": len(path["ids"]), "mean_abs_drift": float(drift.mean()),
            "max_abs_drift": float(drift.max()), "p95_abs_drift": float(drift.quantile(0.95)),
            "fp32_argmax_rate": float(argmax.mean()), "decode_path": path["decode_path"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("gguf")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--tokens", type=int, default=64)
    args = parser.parse_args()
    cuda = torch.cuda.is_available()
    data_dir = Path(tempfile.mkdtemp(prefix="drift-"))
    spec = ModelSpec(id="smollm2-135m", name="SmolLM2 135M", source="gguf", location=args.gguf)
    backend = ModelPool(data_dir, device="cuda" if cuda else "cpu").get(spec)
    cache = next((data_dir / "cache").glob("*/config.json")).parent
    reference = AutoModelForCausalLM.from_pretrained(cache, dtype=torch.float32)
    reference = reference.to(backend.model.device).eval()
    paths = {"eager bf16" if cuda else "eager": ("off", False),
             "fast plain bf16" if cuda else "fast plain": ("on" if not cuda else "auto", False)}
    if cuda:
        paths["fast compiled bf16"] = ("auto", True)
    result: dict = {
        "machine": torch.cuda.get_device_name(0) if cuda else f"CPU ({platform.machine()})",
        "date": datetime.date.today().isoformat(), "torch": torch.__version__,
        "dtype": str(backend.model.dtype), "tokens": args.tokens, "prompts": list(PROMPTS), "paths": {},
    }
    for name, (fast, compiled) in paths.items():
        rows = [against_reference(reference, decode(backend, prompt, args.tokens, fast, compiled))
                for prompt in PROMPTS]
        result["paths"][name] = rows
        print(name, json.dumps(rows), flush=True)
    args.out.write_text(json.dumps(result, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
