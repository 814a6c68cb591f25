"""Managed vLLM (source "vllm"): a vLLM server per model, for models the in-process path cannot hold.

The in-process path (transformers) gives exact evidence (attention, every token's probabilities)
and stops where one process on one machine stops: accelerate's `device_map` runs layer after
layer with one GPU busy at a time. vLLM shards for real (tensor parallelism). The playground
starts `vllm serve` from the environment PLAYGROUND_VLLM names (its Python, or its `vllm`
executable), on a free loopback port, waits for `/health`, talks to it like any OpenAI-compatible
server (remote.py: exact prompt ids from vLLM's `/tokenize`, top-5 logprobs) and stops it with
the model; supervision is backends/managed_server.py's. Columns show no attention.

`make vllm` builds that environment from requirements-vllm.lock (the CPU build on this machine
kind); tests/test_served_vllm.py runs the real server on the converted SmolLM2 folder.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from playground.backends.base import BackendError
from playground.backends.managed_server import free_port, launch, served_by
from playground.catalog import ModelSpec

if TYPE_CHECKING:
    from playground.backends.remote import RemoteBackend

VLLM_ENV = "PLAYGROUND_VLLM"  # the Python of vLLM's environment, or its `vllm` executable
READY_TIMEOUT_S = 900.0  # a CPU start takes ~2.5 min on 2 cores (imports, profiling, KV cache)
CPU_KV_CACHE_GB = "1"  # VLLM_CPU_KVCACHE_SPACE when the user set none: enough for a few 2k contexts
DEFAULT_MAX_MODEL_LEN = 4096


def configured() -> str:
    """The configured vLLM (a path), or '' when PLAYGROUND_VLLM is unset."""
    return os.environ.get(VLLM_ENV, "").strip()


def command(where: str) -> list[str]:
    """How to start a server from PLAYGROUND_VLLM: `python -m ...api_server` for a Python (the
    `vllm` console script looks up distribution metadata that vllm-cpu does not have)."""
    path = Path(where).expanduser()
    if not path.is_file() or not os.access(path, os.X_OK):
        raise BackendError(f"{VLLM_ENV}={where!r} is not an executable file: name the Python of the "
                           "environment vLLM is installed in (`make vllm` builds .venv-vllm)")
    if path.name.startswith("python"):
        return [str(path), "-m", "vllm.entrypoints.openai.api_server"]
    return [str(path), "serve"]


def served_folder(spec: ModelSpec, data_dir: Path) -> str:
    """What vLLM loads: a hub id as it is; a folder, or a .gguf file's converted folder, as a view
    without a `quantization_config` naming gguf (a converted folder holds dequantized weights,
    and vLLM refuses that config)."""
    if spec.location.lower().endswith(".gguf") or spec.location.startswith("bundled:"):
        folder = _converted(spec, data_dir)
    else:
        folder = Path(spec.location).expanduser()
        if not folder.is_dir():
            return spec.location  # a hub id: vLLM fetches it itself
    config = json.loads((folder / "config.json").read_text())
    if (config.get("quantization_config") or {}).get("quant_method") != "gguf":
        return str(folder)
    del config["quantization_config"]
    view = data_dir / "cache" / "vllm" / hashlib.sha256(str(folder.resolve()).encode()).hexdigest()[:16]
    view.mkdir(parents=True, exist_ok=True)
    for item in folder.iterdir():
        target = view / item.name
        if item.name != "config.json" and not target.exists():
            target.symlink_to(item.resolve())
    (view / "config.json").write_text(json.dumps(config, indent=1))
    return str(view)


def _converted(spec: ModelSpec, data_dir: Path) -> Path:
    """A .gguf file's converted folder (converting it once, as a transformers load does)."""
    from playground.backends import converted
    from playground.backends.model_files import existing_gguf

    path = existing_gguf(spec, data_dir)
    folder = data_dir / "cache" / converted.file_sha256(path, data_dir / "cache")
    if not converted.is_complete(folder):  # converted by the in-process loader, through the registry
        from playground.backends import registry

        registry.load_model(replace(spec, source="gguf"), data_dir, device="cpu").close()
    return folder


def tensor_parallel(spec: ModelSpec, data_dir: Path | None = None) -> int:
    """GPUs to shard over: the catalog's, else what the placement plan gives the model (every GPU it
    needs: 1 when one GPU holds it, on CPU, or when its size cannot be told beforehand)."""
    if spec.tensor_parallel_size or data_dir is None:
        return spec.tensor_parallel_size or 1
    from playground.backends import preflight
    from playground.backends.placement import PlacementError, plan_placement

    free = preflight.gpu_free() if _cuda_count() > 1 else {}
    if len(free) < 2:
        return 1
    try:
        need = preflight.estimate(replace(spec, source=_local_source(spec.location)), data_dir, _bf16(), 0)
        plan = plan_placement(need.weights_bytes if need else 0, free, vllm=True)
    except (PlacementError, BackendError, OSError, ValueError):
        return 1
    return plan.tensor_parallel if plan.engine == "vllm" else 1


def _local_source(location: str) -> str:
    """The in-process source of the same location (its size is estimated as that source's would be)."""
    if location.lower().endswith(".gguf") or location.startswith("bundled:"):
        return "gguf"
    return "dir" if Path(location).expanduser().is_dir() else "hub"


def _cuda_count() -> int:
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def _bf16() -> object:
    import torch

    return torch.bfloat16


def argv(spec: ModelSpec, folder: str, port: int, max_len: int, gpus: int = 0) -> list[str]:
    args = [*command(configured()), "--model", folder, "--host", "127.0.0.1", "--port", str(port),
            "--served-model-name", spec.id, "--max-model-len", str(max_len),
            "--tensor-parallel-size", str(gpus or tensor_parallel(spec)), "--max-logprobs", "20"]
    if spec.revision:
        args += ["--revision", spec.revision]
    return args + list(spec.extra_args)


# ---------------------------------------------------------------- the backend (registry.py)

def load(spec: ModelSpec, data_dir: Path, device: str = "",
         progress: Callable[[str], None] = lambda _m: None) -> RemoteBackend:
    """Start a managed vLLM server for the spec's model and talk to it as a served model."""
    from playground.backends.remote import served_identity  # the openai SDK: at first use

    if not configured():
        raise BackendError(f"{spec.id}: vLLM columns need {VLLM_ENV} set to vLLM's Python "
                           "(`make vllm` builds one in .venv-vllm)")
    started = time.perf_counter()
    folder = served_folder(spec, data_dir)
    max_len = spec.max_model_len or spec.context_window or DEFAULT_MAX_MODEL_LEN
    port = free_port()
    gpus = tensor_parallel(spec, data_dir)
    env = {} if os.environ.get("VLLM_CPU_KVCACHE_SPACE") else {"VLLM_CPU_KVCACHE_SPACE": CPU_KV_CACHE_GB}
    server = launch(argv(spec, folder, port, max_len, gpus), port, spec.id, "vLLM", "/health",
                    READY_TIMEOUT_S, progress, env)
    served = replace(spec, source="vllm", base_url=server.base_url, served_model=spec.id,
                     context_window=max_len)
    identity = served_identity(served, "vLLM (managed)", folder)
    identity.libraries = {"vllm": _version()}
    backend = served_by(server, served, data_dir, identity, progress)  # its defaults: generation_config's
    backend.served_note = (f"served by vLLM over {gpus} GPUs: no attention" if gpus > 1
                           else "served by vLLM: no attention")
    backend.load_s = time.perf_counter() - started
    return backend


def _version() -> str:
    """vLLM's version as its environment reports it (not importable from this one)."""
    where = configured()
    try:
        return importlib.metadata.version("vllm")
    except importlib.metadata.PackageNotFoundError:
        pass
    site = sorted(Path(where).expanduser().parent.parent.glob("lib/python3*/site-packages"))
    for folder in site:
        for meta in folder.glob("vllm*.dist-info"):
            return meta.name.split("-")[1]
    return ""
