"""Settings from environment variables, overridden by CLI flags.

Environment variables (all optional):
  PLAYGROUND_DATA_DIR     saved data and model caches (default: per-user data dir)
  PLAYGROUND_CATALOG      path of a TOML model catalog
  PLAYGROUND_MODELS       comma-separated extra models (ids, .gguf paths, dirs, hub ids)
  PLAYGROUND_HOST / PLAYGROUND_PORT   where `serve` listens (127.0.0.1:7860)
  PLAYGROUND_DEVICE       force "cpu" or "cuda" (default: cuda when present)
  PLAYGROUND_MAX_COLUMNS  columns the page offers (default 8)
  PLAYGROUND_DEFAULT_MODELS  comma-separated ids picked on first open
  PLAYGROUND_PRELOAD      1/0: `serve` loads the default models in the background as it starts (default 1)
  PLAYGROUND_DB           SQLite file of saved runs (default: DATA_DIR/runs.sqlite3)
  PLAYGROUND_AUTH         user:password; puts the page behind a login
  PLAYGROUND_ATTN_TOKENS  attention kept per column: at most this many trailing positions (256)
  PLAYGROUND_ATTN_BYTES   attention kept per column: at most this many bytes of float16 (8 MiB)
  PLAYGROUND_CORPUS       folder of .txt/.md/.html documents for local search (default: assets/corpus)
  PLAYGROUND_FETCH_ALLOW  comma-separated ip:port / CIDR entries the page fetcher may reach despite its
                          private-address guard (default: none)
  PLAYGROUND_SHARED_HISTORY  1: every user sees (and may delete) every saved run (default: each browser
                          or login sees its own; share links open for anyone)
  PLAYGROUND_ALLOW_ANY_MODEL  1/0: may web users type paths and hub ids into a column? (default: yes on a
                          loopback host, no otherwise: then only catalog models and those named at launch)
  PLAYGROUND_LOAD_TIMEOUT seconds a model load may take before its column gives up (default 900)
  PLAYGROUND_MEMORY_BUDGET  bytes of weights the pool keeps loaded before evicting idle models,
                          least recently used first (default: 0 = 60% of the device's memory)
  PLAYGROUND_SEARCH_REGION / PLAYGROUND_SEARCH_SAFESEARCH / PLAYGROUND_SEARCH_TIMELIMIT
                          web search region (wt-wt), safe-search (on|moderate|off), time limit (d|w|m|y)
"""

from __future__ import annotations

import hashlib
import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import platformdirs

SAMPLE_CORPUS = Path(__file__).resolve().parent.parent / "assets" / "corpus"


def _env_list(name: str) -> list[str]:
    return [part.strip() for part in os.environ.get(name, "").split(",") if part.strip()]


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise ValueError(f"{name} must be an integer, got {raw!r}") from exc


def _env_bool(name: str, default: bool | None) -> bool | None:
    raw = os.environ.get(name, "").strip().lower()
    if not raw:
        return default
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"{name} must be 1 or 0 (true/false), got {raw!r}")


def _env_float(name: str, default: float) -> float:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError as exc:
        raise ValueError(f"{name} must be a number, got {raw!r}") from exc
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a positive number, got {raw!r}")
    return value


LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")

# The command-line flags that override a setting: (argparse dest, Settings field, type). One table for every
# command, so that no command reads a flag differently; each command has only some of them.
CLI_FLAGS: tuple[tuple[str, str, Callable[[Any], Any]], ...] = (
    ("data_dir", "data_dir", Path), ("catalog", "catalog_file", Path), ("host", "host", str),
    ("port", "port", int), ("device", "device", str), ("db", "db_path", Path), ("corpus", "corpus_dir", Path),
)


class SettingsError(ValueError):
    """A malformed environment variable or flag: the CLI prints it as bad input (exit status 2)."""


def parse_auth(value: str, where: str = "--auth") -> tuple[str, str]:
    user, sep, password = value.partition(":")
    if not sep or not user or not password:
        raise ValueError(f"{where} must look like user:password")
    return user, password


@dataclass
class Settings:
    data_dir: Path = field(default_factory=lambda: Path(platformdirs.user_data_dir("playground")))
    catalog_file: Path | None = None
    models: list[str] = field(default_factory=list)
    host: str = "127.0.0.1"
    port: int = 7860
    device: str = ""  # "" = auto
    max_columns: int = 8
    default_models: list[str] = field(default_factory=lambda: ["smollm2-135m", "gemma3-270m"])
    preload: bool = True  # serve: load the default models in the background from the start
    db_path: Path | None = None
    auth: tuple[str, str] | None = None
    attention_tokens: int = 256
    attention_bytes: int = 8 * 1024 * 1024
    corpus_dir: Path = field(default_factory=lambda: SAMPLE_CORPUS)
    fetch_allow: list[str] = field(default_factory=list)
    shared_history: bool = False
    allow_any_model: bool | None = None  # None: yes on a loopback host, no otherwise (see allows_any_model)
    load_timeout_s: float = 900.0
    memory_budget_bytes: int = 0  # 0: 60% of the device's memory
    search_region: str = "wt-wt"
    search_safesearch: str = "moderate"
    search_timelimit: str = ""  # "" | d | w | m | y

    @classmethod
    def from_env(cls) -> Settings:
        settings = cls()
        if os.environ.get("PLAYGROUND_DATA_DIR"):
            settings.data_dir = Path(os.environ["PLAYGROUND_DATA_DIR"]).expanduser()
        if os.environ.get("PLAYGROUND_CATALOG"):
            settings.catalog_file = Path(os.environ["PLAYGROUND_CATALOG"]).expanduser()
        settings.models = _env_list("PLAYGROUND_MODELS")
        settings.host = os.environ.get("PLAYGROUND_HOST", settings.host)
        settings.port = _env_int("PLAYGROUND_PORT", settings.port)
        settings.device = os.environ.get("PLAYGROUND_DEVICE", "").strip().lower()
        settings.max_columns = _env_int("PLAYGROUND_MAX_COLUMNS", settings.max_columns)
        settings.default_models = _env_list("PLAYGROUND_DEFAULT_MODELS") or settings.default_models
        settings.preload = bool(_env_bool("PLAYGROUND_PRELOAD", True))
        if os.environ.get("PLAYGROUND_DB"):
            settings.db_path = Path(os.environ["PLAYGROUND_DB"]).expanduser()
        settings.attention_tokens = _env_int("PLAYGROUND_ATTN_TOKENS", settings.attention_tokens)
        settings.attention_bytes = _env_int("PLAYGROUND_ATTN_BYTES", settings.attention_bytes)
        if os.environ.get("PLAYGROUND_CORPUS"):
            settings.corpus_dir = Path(os.environ["PLAYGROUND_CORPUS"]).expanduser()
        settings.fetch_allow = _env_list("PLAYGROUND_FETCH_ALLOW")
        settings.shared_history = bool(_env_bool("PLAYGROUND_SHARED_HISTORY", False))
        settings.allow_any_model = _env_bool("PLAYGROUND_ALLOW_ANY_MODEL", None)
        settings.load_timeout_s = _env_float("PLAYGROUND_LOAD_TIMEOUT", settings.load_timeout_s)
        settings.memory_budget_bytes = _env_int("PLAYGROUND_MEMORY_BUDGET", settings.memory_budget_bytes)
        settings.search_region = os.environ.get("PLAYGROUND_SEARCH_REGION", settings.search_region).strip()
        settings.search_safesearch = os.environ.get(
            "PLAYGROUND_SEARCH_SAFESEARCH", settings.search_safesearch).strip().lower()
        settings.search_timelimit = os.environ.get("PLAYGROUND_SEARCH_TIMELIMIT", "").strip().lower()
        if os.environ.get("PLAYGROUND_AUTH"):
            settings.auth = parse_auth(os.environ["PLAYGROUND_AUTH"], "PLAYGROUND_AUTH")
        return settings

    @property
    def allows_any_model(self) -> bool:
        """Web users may load arbitrary paths / hub ids only where it was allowed, or on loopback."""
        if self.allow_any_model is not None:
            return self.allow_any_model
        return self.host in LOOPBACK_HOSTS

    @property
    def corpus_index(self) -> Path:
        """The FTS5 index of the corpus folder, one per folder."""
        digest = hashlib.sha256(str(self.corpus_dir.resolve()).encode()).hexdigest()[:16]
        return self.data_dir / "corpus" / f"{digest}.sqlite3"

    @property
    def database(self) -> Path:
        """Saved runs (SQLite)."""
        return self.db_path or self.data_dir / "runs.sqlite3"

    @property
    def cache_dir(self) -> Path:
        """Converted GGUF models, keyed by the file's sha256."""
        return self.data_dir / "cache"


def settings_from_args(args: object) -> Settings:
    """The settings of one CLI command: the environment, with the command's flags on top.

    The one place every command (serve, compare, batch, route ...) builds its Settings, so that a flag
    means the same everywhere. A flag counts where the command has it and it was given (a port of 0
    too); --auth is checked like PLAYGROUND_AUTH. Raises SettingsError with a sentence."""
    try:
        settings = Settings.from_env()
        for flag, name, cast in CLI_FLAGS:
            value = getattr(args, flag, None)
            if value is not None and value != "":
                setattr(settings, name, cast(value))
        if getattr(args, "auth", None):
            settings.auth = parse_auth(args.auth)
    except ValueError as exc:
        raise SettingsError(str(exc)) from exc
    return settings
