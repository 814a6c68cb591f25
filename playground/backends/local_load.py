"""Loading local models through transformers (sources gguf, hub, dir), and what a load will take.

A GGUF file is dequantized by transformers on first load (tens of seconds), so
the result is written once to a converted cache keyed by the file's sha256
(safetensors + config + tokenizer) and later launches load that in about a second.
Weights are built under weights_lock (weights_lock.py says why); on CUDA they are placed by
the plan of placement.py.
"""

from __future__ import annotations

import functools
import logging
import os
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import torch
from accelerate import init_empty_weights
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

from playground.backends import converted, preflight, registry
from playground.backends.base import Backend, BackendError
from playground.backends.device import kv_cache_bytes, library_versions, pick_device, pick_dtype
from playground.backends.local import LocalBackend
from playground.backends.model_files import check_gguf_header, existing_gguf, gguf_path
from playground.backends.placement import PlacementError, Plan, plan_placement
from playground.backends.registry import Estimate
from playground.backends.weights_lock import reset_wait, waited_s, weights_lock
from playground.catalog import BUNDLED, CatalogError, ModelSpec, spec_from_reference
from playground.record import ModelIdentity

log = logging.getLogger(__name__)
Progress = Callable[[str], None]


def load_backend(spec: ModelSpec, data_dir: Path, device: str = "",
                 progress: Progress = lambda _msg: None) -> LocalBackend | Backend:
    """Load a model for `spec`, converting GGUF files once into the cache (a model too big for one
    GPU goes to a managed vLLM when one is configured: then a served backend comes back).

    `progress` is called between stages; a caller that wants to cancel a load raises
    (LoadCancelled) from it, which abandons the load at the next stage boundary.
    """
    started = time.perf_counter()
    reset_wait()
    device = pick_device(device)
    dtype = pick_dtype(device)
    identity = ModelIdentity(
        catalog_id=spec.id, name=spec.name, source=spec.source, location=spec.location,
        revision=spec.revision, dtype=str(dtype).removeprefix("torch."), device=device,
        libraries=library_versions(),
    )
    sharded = _vllm_plan(spec, data_dir, device)
    if sharded is not None:  # too big for one GPU, and a managed vLLM is configured: it shards it
        log.info("placing %s: %s", spec.id, sharded.reason)
        sharded_spec = replace(spec, source="vllm", tensor_parallel_size=sharded.tensor_parallel)
        return registry.load_model(sharded_spec, data_dir, device, progress)
    from_cache = False
    try:
        if spec.source == "gguf":
            model, tokenizer, from_cache = _load_gguf(spec, data_dir, dtype, device, identity, progress)
        else:
            model, tokenizer = _load_pretrained(spec, dtype, device, progress, data_dir)
    except (BackendError, CatalogError):
        raise
    except torch.OutOfMemoryError as exc:
        raise BackendError(f"{spec.id}: out of memory on {device} while loading") from exc
    except Exception as exc:  # transformers raises many types; the user needs the message
        raise BackendError(f"{spec.id}: could not load model: {_short(exc)}") from exc
    model.eval()
    if device == "cuda":
        identity.device = str(model.device)
    progress("warming up")
    _warm_up(model)
    own = time.perf_counter() - started - waited_s()  # waiting for another model's load is not ours
    backend = LocalBackend(identity, model, tokenizer, own, from_cache, spec.frame)
    backend.warm(data_dir / "cache" / "fused")  # fast-path graphs and the fused step, in the background
    return backend


@torch.inference_mode()
def _warm_up(model: torch.nn.Module) -> None:
    """One tiny forward pass as part of loading.

    Weights from the safetensors cache are memory-mapped: without this, the first
    real forward pays for paging them in (inflating that run's TTFT) and the RSS
    growth lands in whichever column happens to be generating.
    """
    model(input_ids=torch.zeros((1, 1), dtype=torch.long, device=model.device), use_cache=False)


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"[:500]


def estimate(spec: ModelSpec, data_dir: Path, dtype: torch.dtype, cache_tokens: int) -> Estimate:
    """What loading `spec` will take: its weights in `dtype` and the KV cache for `cache_tokens`,
    from the config alone (no weights are read); raises when that cannot be told."""
    config, parameters = _shape(spec, data_dir)
    element = torch.finfo(dtype).bits // 8
    return Estimate(parameters * element, kv_cache_bytes(config, cache_tokens, element))


@functools.lru_cache(maxsize=64)
def _shape(spec: ModelSpec, data_dir: Path) -> tuple[object, int]:
    """A model's config and parameter count, built once per model (the pre-flight and the CUDA
    placement both ask, on every load)."""
    where, kwargs = pretrained_source(spec, data_dir)
    config = AutoConfig.from_pretrained(where, **kwargs)
    if isinstance(where, Path) and not kwargs:
        counted = converted.parameter_count(where)  # a converted cache: its header says, at no cost
        if counted is not None:
            return config, counted
    # Building even an empty model goes through transformers' class patches (and accelerate's
    # patch of nn.Module.register_parameter): process-wide, so never beside another model's load.
    with weights_lock(), init_empty_weights():
        model = AutoModelForCausalLM.from_config(config)
    model.tie_weights()  # tied input/output embeddings are one tensor once loaded: count them once
    return config, sum(p.numel() for p in model.parameters())


def _weights_need(device: str, spec: ModelSpec, data_dir: Path) -> int:
    """On CUDA, the estimated weights for the placement plan (0 elsewhere or when unknown).

    Called before weights_lock is taken: the estimate may build an empty model under that lock,
    which is not re-entrant (a load asking for it inside the lock would wait for itself forever)."""
    if device != "cuda":
        return 0
    need = preflight.estimate(spec, data_dir, pick_dtype(device), 0)
    return need.weights_bytes if need else 0


def _vllm_plan(spec: ModelSpec, data_dir: Path, device: str) -> Plan | None:
    """The placement plan when it hands this model to a managed vLLM (PLAYGROUND_VLLM set, CUDA,
    a hub id or folder no single GPU holds); None otherwise."""
    if device != "cuda" or spec.source not in ("hub", "dir") or not os.environ.get("PLAYGROUND_VLLM"):
        return None
    try:
        plan = plan_placement(_weights_need(device, spec, data_dir), preflight.gpu_free(), vllm=True)
    except PlacementError:
        return None
    return plan if plan.engine == "vllm" else None


def _placement(device: str, need_bytes: int, model_id: str) -> dict[str, object]:
    """On CUDA, the placement plan (backends/placement.py): whole on the GPU with the most free
    memory, or spread over all GPUs when none can hold it; plain CPU otherwise. Read inside
    weights_lock, so the free memory is what is left after any load this one waited for."""
    if device != "cuda":
        return {}
    try:
        plan = plan_placement(need_bytes, preflight.gpu_free())
    except PlacementError as exc:
        raise BackendError(f"{model_id}: does not fit on the GPUs: {exc}") from exc
    log.info("placing %s: %s", model_id, plan.reason)
    return plan.kwargs()


def _load_pretrained(
    spec: ModelSpec, dtype: torch.dtype, device: str, progress: Progress, data_dir: Path
) -> tuple[torch.nn.Module, object]:
    kwargs: dict[str, object] = {}
    if spec.revision:
        kwargs["revision"] = spec.revision
    if spec.gguf_file:
        kwargs["gguf_file"] = spec.gguf_file
    where = "hub" if spec.source == "hub" else "directory"
    progress(f"loading tokenizer from {where}")
    try:
        tokenizer = AutoTokenizer.from_pretrained(spec.location, **kwargs)
        progress(f"loading weights from {where}")
        need = _weights_need(device, spec, data_dir)
        with weights_lock(progress, spec.name):
            model = AutoModelForCausalLM.from_pretrained(
                spec.location, dtype=dtype, **_placement(device, need, spec.id), **kwargs
            )
    except OSError as exc:
        raise BackendError(_unloadable(spec, exc)) from exc
    return model, tokenizer


def _unloadable(spec: ModelSpec, exc: OSError) -> str:
    """Why a hub id or directory could not be read, and what to do about it."""
    if spec.source == "hub":
        return (f"{spec.id}: could not get {spec.location!r} from the Hugging Face Hub "
                f"(tried the hub and the local hub cache; {_short(exc)}). Download it where the hub "
                "is reachable, or point --model / the catalog at a local directory or .gguf file.")
    return (f"{spec.id}: {spec.location} is not a loadable model directory ({_short(exc)}); "
            "it needs config.json, weights and tokenizer files")


def _load_gguf(
    spec: ModelSpec, data_dir: Path, dtype: torch.dtype, device: str, identity: ModelIdentity,
    progress: Progress,
) -> tuple[torch.nn.Module, object, bool]:
    path = _gguf_file(spec, data_dir)
    if not path.is_file():
        path = existing_gguf(spec, data_dir)  # says which file is missing
    identity.location = str(path)
    progress("checking file hash")
    identity.sha256 = converted.file_sha256(path, data_dir / "cache")
    cache = data_dir / "cache" / identity.sha256
    if converted.is_complete(cache):
        progress("loading converted cache")
        converted.upgrade(cache)
        tokenizer = converted.load_tokenizer(cache)
        return _from_cache(spec, cache, data_dir, dtype, device, progress), tokenizer, True
    check_gguf_header(path, spec.id)
    progress("first load: converting GGUF tokenizer")
    tokenizer = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
    progress("first load: dequantizing GGUF weights")
    with weights_lock(progress, spec.name):
        model = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, dtype=torch.float32)
    progress("first load: writing converted cache")
    converted.write_cache(model, tokenizer, cache, path)
    if dtype != torch.float32 or device != "cpu":
        model = _from_cache(spec, cache, data_dir, dtype, device, progress)
    return model, tokenizer, False


def _from_cache(spec: ModelSpec, cache: Path, data_dir: Path, dtype: torch.dtype, device: str,
                progress: Progress) -> torch.nn.Module:
    """A GGUF file's weights from its converted cache, in `dtype`, placed for `device`."""
    progress("loading weights from converted cache")
    need = _weights_need(device, spec, data_dir)
    with weights_lock(progress, spec.name):
        return AutoModelForCausalLM.from_pretrained(cache, dtype=dtype, **_placement(device, need, spec.id))


def pretrained_source(spec: ModelSpec, data_dir: Path) -> tuple[str | Path, dict[str, str]]:
    """Where transformers reads a model's files from, with the keyword arguments it needs: a GGUF
    file's converted cache when there is one, else the file itself; a directory or hub id as it is."""
    if spec.source == "gguf":
        path = _gguf_file(spec, data_dir)
        cache = data_dir / "cache" / converted.file_sha256(path, data_dir / "cache")
        if converted.is_complete(cache):
            return cache, {}
        return path.parent, {"gguf_file": path.name}
    return spec.location, ({"revision": spec.revision} if spec.revision else {})


_GGUF_FILES: dict[tuple[ModelSpec, Path], Path] = {}


def _gguf_file(spec: ModelSpec, data_dir: Path) -> Path:
    """The spec's .gguf file, found once per process while it stays there (model_files.gguf_path).

    Finding a bundled file is not free: the Gemma package checks its assembled 253 MB file's sha256
    on every call (catalog.bundled_file), and a load asked twice (the pre-flight, then the load).
    Once per process is enough: the cache key (converted.file_sha256) still follows the file."""
    known = _GGUF_FILES.get((spec, data_dir))
    if known is not None and known.is_file():
        return known
    path = _GGUF_FILES[(spec, data_dir)] = gguf_path(spec, data_dir)
    return path


def load_tokenizer(ref: str, data_dir: Path) -> object:
    """Only the tokenizer of a model (bundled id, .gguf path, directory or hub id): to count a served
    model's tokens locally. A GGUF file's converted cache is used when there is one."""
    spec = spec_from_reference(ref, {s.id: s for s in BUNDLED})
    try:
        where, kwargs = pretrained_source(spec, data_dir)
        if isinstance(where, Path) and not kwargs and converted.is_complete(where):
            return converted.load_tokenizer(where)
        return AutoTokenizer.from_pretrained(where, **kwargs)
    except OSError as exc:
        raise BackendError(f"tokenizer {ref!r} could not be loaded: {_short(exc)}") from exc
