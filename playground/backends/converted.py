"""The converted cache of a GGUF file: written once, read on every later launch, read fast.

A GGUF file is dequantized once into `DATA_DIR/cache/<sha256>/` (safetensors + config +
tokenizer). What makes a second launch fast is decided here:

- Tied weights (SmolLM2 and Gemma share the input embedding with the output layer) are
  stored under the input embedding's name, the tie's source. Stored under the output
  layer's name (what safetensors' `save_model` picks), transformers treats the
  embedding as missing and fills it with random numbers before tying it back: 0.6 s
  of `normal_` for Gemma's 262k x 640 table on every launch. Caches written before
  (format 1) are upgraded once, in place.
- The tokenizer is read straight from its `tokenizer.json` by the Rust library
  (`TokenizersBackend`), instead of through the model's own tokenizer class, which
  re-parses the 33 MB file in Python and rebuilds the vocabulary (Gemma: 2.5 s -> 0.7 s).
  Both give the same ids (tests/test_cold_start.py).
- The parameter count the memory pre-flight needs comes from the safetensors header,
  without building a model.
- The cache's key, the GGUF file's sha256, is remembered in `DATA_DIR/cache/hashes.json`
  against the file's size, mtime, ctime and inode (as git's index remembers file hashes):
  a later launch reads the key instead of hashing 100-250 MB per model (0.2-0.5 s of CPU
  on the 2-core dev box, bench/bench_cli_start.py). Any change to the file changes its
  ctime, which no user call can set back, so a stale entry is never used.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import struct
import tempfile
import threading
import time
from pathlib import Path

from playground.backends.model_files import sha256_file

log = logging.getLogger(__name__)
CACHE_FORMAT = 2  # 1: tied weights under the output layer's name; 2: under the input embedding's
WEIGHTS = "model.safetensors"
_ARCHITECTURES = {"llama": "LlamaForCausalLM", "gemma3_text": "Gemma3ForCausalLM"}
HASHES = "hashes.json"
_HASHES_LOCK = threading.Lock()  # one writer of hashes.json per process (across processes: atomic renames)


def is_complete(cache: Path) -> bool:
    return (cache / "complete.json").is_file()


def write_cache(model: object, tokenizer: object, cache: Path, source: Path) -> None:
    """Write safetensors + config + tokenizer into a temp dir, then rename: never a half cache.

    The temp dir is a fresh one beside the cache (mkdtemp): two threads or processes converting
    the same file each write their own, and the first rename wins."""
    from safetensors.torch import save_file

    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f"{cache.name}.tmp", dir=cache.parent))
    save_file(unique_tensors(model), str(tmp / WEIGHTS), metadata={"format": "pt"})
    model.config.architectures = [type(model).__name__]  # `transformers serve` needs it to load the folder
    model.config.save_pretrained(tmp)
    model.generation_config.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    _mark_complete(tmp, source)
    try:
        tmp.chmod(0o755)  # mkdtemp makes it private; a cache is as readable as any data file
        tmp.rename(cache)
    except OSError:  # another thread or process finished first: theirs is as good as ours
        shutil.rmtree(tmp, ignore_errors=True)


def _temp_beside(path: Path) -> Path:
    """A fresh, empty file next to `path` to write and then replace it with: unique per caller, so
    two threads upgrading one cache never write into each other's file."""
    descriptor, name = tempfile.mkstemp(prefix=f"{path.name}.tmp", dir=path.parent)
    os.fchmod(descriptor, 0o644)  # mkstemp makes it private; it replaces an ordinary data file
    os.close(descriptor)
    return Path(name)


def unique_tensors(model: object) -> dict[str, object]:
    """The state dict with each shared tensor once, under its first-registered name (for tied
    embeddings: the input embedding, which transformers ties the output layer to)."""
    state = model.state_dict()
    canonical = {name for name, _ in model.named_parameters()} | {name for name, _ in model.named_buffers()}
    seen: set[tuple[int, int, tuple[int, ...], object]] = set()
    out: dict[str, object] = {}
    for name in sorted(state, key=lambda n: n not in canonical):  # stable: canonical names first
        tensor = state[name]
        storage = tensor.untyped_storage().data_ptr()
        key = (storage, tensor.storage_offset(), tuple(tensor.shape), tensor.dtype)
        if key in seen:
            continue
        seen.add(key)
        out[name] = tensor.contiguous()
    return out


def _mark_complete(folder: Path, source: Path | str) -> None:
    (folder / "complete.json").write_text(
        json.dumps({"format": CACHE_FORMAT, "source": str(source), "created": time.time()})
    )


def _read_json(path: Path) -> dict:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def upgrade(cache: Path) -> None:
    """Bring a cache written by an older version up to date, once (each step is atomic)."""
    _ensure_architectures(cache)
    marker = _read_json(cache / "complete.json")
    if int(marker.get("format", 1) or 1) >= CACHE_FORMAT:
        return
    try:
        _store_tied_weights_under_their_source(cache)
    except (OSError, ValueError, KeyError) as exc:  # the cache still loads as it is, only slower
        log.warning("could not upgrade the converted cache %s: %s", cache, exc)
        return
    tmp = _temp_beside(cache / "complete.json")
    tmp.write_text(json.dumps(marker | {"format": CACHE_FORMAT}))
    tmp.replace(cache / "complete.json")


def _ensure_architectures(cache: Path) -> None:
    """Older caches lack `architectures` in config.json; add it (`transformers serve` reads it)."""
    path = cache / "config.json"
    config = _read_json(path)
    if not config or config.get("architectures"):
        return
    if config.get("model_type") in _ARCHITECTURES:
        config["architectures"] = [_ARCHITECTURES[config["model_type"]]]
        tmp = _temp_beside(path)
        tmp.write_text(json.dumps(config, indent=2), encoding="utf-8")
        tmp.replace(path)


def read_header(path: Path) -> dict:
    """A safetensors file's header: {name: {dtype, shape, data_offsets}, "__metadata__": {...}}."""
    with path.open("rb") as handle:
        (size,) = struct.unpack("<Q", handle.read(8))
        if size > 100 * 2**20:
            raise ValueError(f"{path}: implausible safetensors header size {size}")
        return json.loads(handle.read(size))


def _store_tied_weights_under_their_source(cache: Path) -> None:
    """Rename a tied weight stored under its target's name (lm_head.weight) to its source's
    (model.embed_tokens.weight): a new header, the same data bytes, then an atomic rename."""
    import transformers

    config = _read_json(cache / "config.json")
    architectures = config.get("architectures") or []
    model_class = getattr(transformers, architectures[0], None) if architectures else None
    tied = getattr(model_class, "_tied_weights_keys", None)
    if not config.get("tie_word_embeddings", True) or not isinstance(tied, dict):
        return
    path = cache / WEIGHTS
    header = read_header(path)
    renames = {target: source for target, source in tied.items() if target in header and source not in header}
    if not renames:
        return
    for target, source in renames.items():
        header[source] = header.pop(target)
    header["__metadata__"] = {"format": "pt"}  # the old one named the removed duplicate
    encoded = json.dumps(header, separators=(",", ":")).encode("utf-8")
    encoded += b" " * (-len(encoded) % 8)  # keep the data 8-byte aligned, as safetensors writes it
    tmp = _temp_beside(path)
    with path.open("rb") as old, tmp.open("wb") as new:
        (size,) = struct.unpack("<Q", old.read(8))
        old.seek(8 + size)
        new.write(struct.pack("<Q", len(encoded)))
        new.write(encoded)
        shutil.copyfileobj(old, new, 16 * 2**20)
    tmp.replace(path)
    log.info("converted cache %s: tied weights now stored under %s", cache.name, ", ".join(renames.values()))


def parameter_count(folder: Path) -> int | None:
    """Parameters in a converted cache, from its safetensors header (tied weights are stored once,
    as the model holds them); None when the folder has no single safetensors file."""
    path = folder / WEIGHTS
    if not is_complete(folder) or not path.is_file():
        return None
    header = read_header(path)
    return sum(math.prod(entry["shape"]) for name, entry in header.items() if name != "__metadata__")


def load_tokenizer(cache: Path) -> object:
    """The cache's tokenizer, read by the Rust library straight from tokenizer.json.

    transformers' model-specific classes (GemmaTokenizer) rebuild the tokenizer from a
    Python parse of the whole file; the generic TokenizersBackend loads the file as it
    is. `added_tokens_decoder={}` keeps transformers from parsing the file in Python for
    its added tokens (the Rust tokenizer already has them, special flags included).
    The declared class's padding side is kept (Gemma pads on the left).
    """
    from transformers import TokenizersBackend

    declared = _read_json(cache / "tokenizer_config.json").get("tokenizer_class")
    kwargs: dict[str, object] = {}
    padding_side = _declared_padding_side(declared)
    if padding_side:
        kwargs["padding_side"] = padding_side
    return TokenizersBackend.from_pretrained(cache, added_tokens_decoder={}, **kwargs)


def _declared_padding_side(name: object) -> str:
    if not isinstance(name, str) or not name:
        return ""
    try:
        from transformers.models.auto.tokenization_auto import tokenizer_class_from_name

        declared = tokenizer_class_from_name(name)
    except (ImportError, AttributeError, ValueError):
        return ""
    return str(getattr(declared, "padding_side", "") or "")


def file_sha256(path: Path, cache_root: Path) -> str:
    """`path`'s sha256 (its converted cache's key), read from `cache_root/hashes.json` while the file's
    size, mtime, ctime and inode are those it was hashed with; hashed (and remembered) otherwise."""
    stat = path.stat()
    key = str(path.resolve())
    seen = _stat_key(stat)
    known = _read_json(cache_root / HASHES).get(key)
    if isinstance(known, dict) and known.get("stat") == seen and isinstance(known.get("sha256"), str):
        return known["sha256"]
    digest = sha256_file(path)
    _remember_hash(cache_root, key, {"stat": seen, "sha256": digest})
    return digest


def _stat_key(stat: os.stat_result) -> list[int]:
    return [stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns, stat.st_ino, stat.st_dev]


def _remember_hash(cache_root: Path, key: str, entry: dict[str, object]) -> None:
    """Add one entry to hashes.json (read, update, atomic replace); a failure only costs a later re-hash."""
    with _HASHES_LOCK:
        try:
            cache_root.mkdir(parents=True, exist_ok=True)
            path = cache_root / HASHES
            table = _read_json(path) | {key: entry}
            tmp = _temp_beside(path)
            tmp.write_text(json.dumps(table, indent=1), encoding="utf-8")
            tmp.replace(path)
        except OSError as exc:
            log.info("could not remember the hash of %s: %s", key, exc)
