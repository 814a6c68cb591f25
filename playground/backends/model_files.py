"""A GGUF model file on disk: where it is, its sha256 (the key of its converted cache), its header.

Torch-free: the managed llama.cpp backend needs the same facts about a file as the transformers one.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from playground.backends.base import BackendError
from playground.catalog import ModelSpec, bundled_file

_HASHES: dict[tuple[str, int, int], str] = {}


def gguf_path(spec: ModelSpec, data_dir: Path) -> Path:
    """The spec's .gguf file: a bundled package's file, or the location as written."""
    return bundled_file(spec, data_dir) if spec.bundled else Path(spec.location)


def existing_gguf(spec: ModelSpec, data_dir: Path) -> Path:
    """The spec's .gguf file, refused with a message naming it when it is not there."""
    path = gguf_path(spec, data_dir)
    if not path.is_file():
        raise BackendError(f"{spec.id}: GGUF file {path} does not exist")
    return path


def sha256_file(path: Path) -> str:
    """A file's sha256, remembered per (path, mtime, size): a GGUF of hundreds of MB is read once."""
    stat = path.stat()
    key = (str(path.resolve()), stat.st_mtime_ns, stat.st_size)
    if key not in _HASHES:
        _HASHES[key] = _hash(path)
    return _HASHES[key]


def _hash(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def check_gguf_header(path: Path, model_id: str) -> None:
    """Fail fast, with a plain message, on files that are not GGUF at all."""
    with path.open("rb") as handle:
        magic = handle.read(4)
    if magic != b"GGUF":
        raise BackendError(
            f"{model_id}: {path} is not a GGUF file (it does not start with the GGUF magic bytes); "
            "it may be truncated, corrupt or another format"
        )
