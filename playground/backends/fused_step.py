"""The fused decode step: the fast path's step compiled by torch.compile (inductor), when it is right.

The plain CUDA-graph step replays ~1,200 small kernels; inductor fuses the norms, rotary and
elementwise work into far fewer. Both decode in bf16, so neither equals the other bit for bit:
the question is whether the fused step is as close to an fp32 reference as the plain step is
(bench/results/compile_drift_h100.json measured it on the real SmolLM2: it is). `accept` asks
that question of each model once, on a real prompt, and the answer is kept on disk beside the
compiled kernels (inductor's own cache, pointed at DATA_DIR/cache/fused), so a second launch
neither measures nor compiles from scratch.

PLAYGROUND_COMPILE: auto (default: fused on CUDA when accepted) | on (the same, and on CPU too) |
off. The compile runs in the background after load (fast_decode.FastDecoder.warm); the plain
graph serves until the fused one is ready.
"""

from __future__ import annotations

import copy
import json
import logging
import os
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from playground.backends.base import BackendError
from playground.backends.decode import prefill

log = logging.getLogger(__name__)

COMPILE_ENV = "PLAYGROUND_COMPILE"
EMULATE_ENV = "PLAYGROUND_COMPILE_EMULATE"
PROBE_STEPS = 32  # greedy steps each path decodes from the probe prompt
# The fused step is accepted when its mean drift from fp32 is at most the plain step's times
# this, plus a little (both are bf16: ~0.02 nats on the real SmolLM2).
DRIFT_RATIO = 1.25
DRIFT_SLACK = 0.01
# Without room for an fp32 copy, the fused step must stay this close to the plain one (mean |logprob|).
PLAIN_DRIFT = 0.05
VERDICTS = "verdicts.json"
_VERDICT_LOCK = threading.Lock()


def compile_mode() -> str:
    value = os.environ.get(COMPILE_ENV, "auto").strip().lower() or "auto"
    value = {"1": "on", "true": "on", "yes": "on", "0": "off", "false": "off", "no": "off"}.get(value, value)
    if value not in ("auto", "on", "off"):
        raise BackendError(f"{COMPILE_ENV} must be auto, on or off, not {value!r}")
    return value


def wanted(device: torch.device) -> bool:
    """Whether the fused step is tried on this device (auto: CUDA only)."""
    mode = compile_mode()
    return mode == "on" or (mode == "auto" and device.type == "cuda")


def use_disk_cache(root: Path) -> Path:
    """Point inductor's and Triton's caches at `root` (unless the user set them): kept across launches."""
    root.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", str(root / "inductor"))
    os.environ.setdefault("TRITON_CACHE_DIR", str(root / "triton"))
    return root


def compiled(step: Callable[[], torch.Tensor]) -> Callable[[], torch.Tensor]:
    """`step` (a workspace's forward) fused by inductor, one compilation per workspace shape."""
    import torch._dynamo

    config = torch._dynamo.config
    for name in ("recompile_limit", "cache_size_limit"):
        if hasattr(config, name) and getattr(config, name) < 64:
            setattr(config, name, 64)
    return torch.compile(step, dynamic=False, options=_options())


def _options() -> dict[str, object]:
    """Inductor keeps bf16 intermediates in fp32 inside a fused kernel; emulating eager's casts rounds
    them where eager does (PLAYGROUND_COMPILE_EMULATE=0 turns it off, bench/bench_gpu.py compares)."""
    import torch._inductor.config as inductor

    emulate = os.environ.get(EMULATE_ENV, "1").strip() not in ("0", "off", "false", "no")
    return {"emulate_precision_casts": emulate} if hasattr(inductor, "emulate_precision_casts") else {}


@dataclass
class Verdict:
    """Whether a model's fused step may serve, and the measure behind it."""

    accepted: bool
    measure: str  # "fp32" (both steps against an fp32 copy) or "plain" (fused against plain only)
    plain_drift: float  # mean |logprob - fp32 logprob| of the tokens the plain step chose
    fused_drift: float  # the same for the fused step (against the plain step when measure == "plain")
    fused_fp32_argmax: float  # how often the fused step's token is fp32's argmax (-1 without fp32)
    steps: int
    reason: str = ""

    def note(self) -> str:
        if self.accepted:
            return (f"fused step accepted: drift from {self.measure} {self.fused_drift:.3f} "
                    f"vs plain {self.plain_drift:.3f}")
        return f"fused step refused: {self.reason}"


def verdict_key(name: str, model: torch.nn.Module) -> str:
    dtype = str(next(model.parameters()).dtype).removeprefix("torch.")
    return f"{name}|{dtype}|{model.device.type}|torch {torch.__version__}"


def remembered(root: Path, key: str) -> Verdict | None:
    try:
        entry = json.loads((root / VERDICTS).read_text()).get(key)
        return Verdict(**entry) if entry else None
    except (OSError, ValueError, TypeError):
        return None


def remember(root: Path, key: str, verdict: Verdict) -> None:
    with _VERDICT_LOCK:
        path = root / VERDICTS
        try:
            known = json.loads(path.read_text())
        except (OSError, ValueError):
            known = {}
        known[key] = asdict(verdict)
        scratch = path.with_suffix(".tmp")
        scratch.write_text(json.dumps(known, indent=1))
        scratch.replace(path)


def judge(
    decode_plain: Callable[[], list[tuple[int, float]]], decode_fused: Callable[[], list[tuple[int, float]]],
    model: torch.nn.Module, prompt_ids: list[int],
) -> Verdict:
    """Decode the probe greedily with both steps and compare each with an fp32 copy of the model
    (scoring each path's own tokens over its own prefix); without room for the copy, compare the
    fused step with the plain one."""
    plain, fused = decode_plain(), decode_fused()
    reference = _fp32_copy(model)
    if reference is None:
        shared = [abs(a[1] - b[1]) for a, b in zip(plain, fused, strict=False) if a[0] == b[0]]
        drift = sum(shared) / max(len(shared), 1)
        ok = drift <= PLAIN_DRIFT and len(shared) >= len(plain) // 2
        return Verdict(ok, "plain", 0.0, drift, -1.0, len(plain),
                       "" if ok else f"drift from the plain step {drift:.3f} > {PLAIN_DRIFT}")
    try:
        plain_drift, _ = _against(reference, prompt_ids, plain)
        fused_drift, argmax = _against(reference, prompt_ids, fused)
    finally:
        del reference
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    ok = fused_drift <= plain_drift * DRIFT_RATIO + DRIFT_SLACK
    reason = "" if ok else f"drift from fp32 {fused_drift:.3f} vs the plain step's {plain_drift:.3f}"
    return Verdict(ok, "fp32", plain_drift, fused_drift, argmax, len(plain), reason)


def _fp32_copy(model: torch.nn.Module) -> torch.nn.Module | None:
    """The model in float32 on its device, when twice its weights fit beside what is in use."""
    weights = sum(p.numel() for p in model.parameters())
    if model.device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(model.device)
        if weights * 4 * 1.2 > free:
            return None
    try:
        # nn.Module's own float(): transformers refuses .float() on a model loaded from a GGUF file
        # (its weights are already dequantized; the copy only changes their dtype).
        return torch.nn.Module.float(copy.deepcopy(model)).eval()
    except (torch.OutOfMemoryError, RuntimeError) as exc:
        log.warning("no fp32 copy for the fused step's check: %s", exc)
        return None


@torch.inference_mode()
def _against(
    reference: torch.nn.Module, prompt_ids: list[int], path: list[tuple[int, float]]
) -> tuple[float, float]:
    """Mean |path logprob - fp32 logprob| of the path's tokens, and how often each was fp32's argmax."""
    ids = torch.tensor([prompt_ids + [t for t, _ in path]], device=reference.device)
    logits = reference(input_ids=ids).logits[0, len(prompt_ids) - 1 : -1].float()
    logprobs = torch.log_softmax(logits, dim=-1)
    chosen = torch.tensor([t for t, _ in path], device=logits.device)
    fp32 = logprobs.gather(1, chosen[:, None]).squeeze(1).tolist()
    drift = sum(abs(a - lp) for (_, lp), a in zip(path, fp32, strict=True)) / len(path)
    argmax = float((logprobs.argmax(dim=-1) == chosen).float().mean())
    return drift, argmax


def probe_prefill(model: torch.nn.Module, prompt_ids: list[int], lock: object) -> tuple[torch.Tensor, object]:
    """The probe prompt's prefill (the same for both steps)."""
    ids = torch.tensor([prompt_ids], dtype=torch.long, device=model.device)
    with torch.inference_mode():
        filled = prefill(model, ids, lambda: False, lock)
    if filled is None:
        raise BackendError("the probe prefill stopped")
    return filled
