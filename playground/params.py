"""Building, checking and parsing generation parameters: shared by the engine, UI, CLI, batch and import.

`build_params` is the one place GenerationParams are made from what a caller was
given (command-line flags, the page's widgets, the API's JSON, a batch's options,
a route's tokenizer run), so that a default or a cast is the same everywhere.
Kept free of torch so that the session store and the bundle importer can use it.
A parameter that is not finite (NaN, inf) or out of range is a user-facing
sentence here, never a traceback inside generation.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Iterable, Mapping
from typing import Any

from playground.record import GenerationParams

MAX_NEW_TOKENS_LIMIT = 32768
MAX_SEED = 2**63 - 1  # torch.Generator.manual_seed takes a signed 64-bit value
MAX_TEMPERATURE = 100.0  # above this the distribution is uniform noise: a typo, not a setting
MAX_TIMEOUT_S = 24 * 3600.0
MAX_STOP_STRINGS = 16
MAX_STOP_CHARS = 200
_SURROGATE = re.compile("[\ud800-\udfff]")
_ESCAPES = {"n": "\n", "t": "\t", "\\": "\\"}
PARAM_FIELDS = tuple(f.name for f in dataclasses.fields(GenerationParams))
_CASTS = {"max_new_tokens": int, "top_k": int, "seed": int, "temperature": float, "top_p": float,
          "repetition_penalty": float, "timeout_s": float}
# Command-line flag (argparse dest) -> parameter: compare has them all, tokenize and batch a few.
CLI_FLAGS = {"max_new_tokens": "max_new_tokens", "temperature": "temperature", "top_p": "top_p",
             "top_k": "top_k", "repetition_penalty": "repetition_penalty", "seed": "seed", "stop": "stop",
             "timeout": "timeout_s"}


class ParamsError(ValueError):
    """Parameters a run cannot take: every problem as a sentence, joined by '; ' (bad input)."""


def build_params(values: Mapping[str, Any] | None = None, check: bool = False) -> GenerationParams:
    """GenerationParams from the values a caller was given, the one place they are built.

    A field that is missing, None or "" (an empty widget) takes its default; numbers are cast to the
    field's type (the page's number boxes send floats); stop strings are a list, already parsed. With
    `check`, everything validate_params finds wrong is raised as one ParamsError; without, the run
    refuses it later, per column. An unknown field is a ValueError naming the known ones."""
    given = {k: v for k, v in (values or {}).items() if v is not None and v != ""}
    unknown = sorted(set(given) - set(PARAM_FIELDS))
    if unknown:
        raise ValueError(f"unknown parameters {unknown} (known: {', '.join(PARAM_FIELDS)})")
    fields = {k: _CASTS[k](v) if k in _CASTS else list(v) for k, v in given.items()}
    params = GenerationParams(**fields)
    problems = validate_params(params) if check else []
    if problems:
        raise ParamsError("; ".join(problems))
    return params


def params_from_flags(args: object, check: bool = True, **given: Any) -> GenerationParams:
    """A command's parameters from its flags (those it has; the rest take their defaults), with `given`
    on top (compare's stop strings, once their text is repaired)."""
    values = {field: getattr(args, flag, None) for flag, field in CLI_FLAGS.items()}
    return build_params(values | given, check=check)


def stop_strings(text: str) -> list[str]:
    """Stop strings typed one per line (the page's box): each line parsed, empty lines left out."""
    return [parse_stop_string(line) for line in text.split("\n") if line]


def _finite(value: object) -> bool:
    try:
        return math.isfinite(float(value))  # type: ignore[arg-type]
    except (TypeError, ValueError, OverflowError):
        return False


def validate_params(params: GenerationParams) -> list[str]:
    """Everything wrong with one column's parameters, as user-facing sentences."""
    problems = []
    if not 1 <= params.max_new_tokens <= MAX_NEW_TOKENS_LIMIT:
        problems.append(
            f"max new tokens must be between 1 and {MAX_NEW_TOKENS_LIMIT}, got {params.max_new_tokens}"
        )
    if not _finite(params.temperature) or not 0 <= params.temperature <= MAX_TEMPERATURE:
        problems.append(
            f"temperature must be 0 (greedy) or a positive number up to {MAX_TEMPERATURE:g}, "
            f"got {params.temperature}"
        )
    if not _finite(params.top_p) or not 0 < params.top_p <= 1:
        problems.append(f"top-p must be in (0, 1], got {params.top_p}")
    if params.top_k < 0:
        problems.append(f"top-k must be 0 (off) or positive, got {params.top_k}")
    if not _finite(params.repetition_penalty) or params.repetition_penalty <= 0:
        problems.append(f"repetition penalty must be a positive number, got {params.repetition_penalty}")
    if not 0 <= params.seed <= MAX_SEED:
        problems.append(f"seed must be between 0 and 2^63-1 ({MAX_SEED}), got {str(params.seed)[:40]}")
    if not _finite(params.timeout_s) or not 0 < params.timeout_s <= MAX_TIMEOUT_S:
        problems.append(
            f"request timeout must be a positive number of seconds up to {MAX_TIMEOUT_S:g}, "
            f"got {params.timeout_s}"
        )
    if any(not s for s in params.stop):
        problems.append("stop strings must not be empty")
    if len(params.stop) > MAX_STOP_STRINGS:
        problems.append(f"at most {MAX_STOP_STRINGS} stop strings, got {len(params.stop)}")
    if any(len(s) > MAX_STOP_CHARS for s in params.stop):
        problems.append(f"stop strings are at most {MAX_STOP_CHARS} characters")
    return problems


def replace_invalid(text: str) -> tuple[str, bool]:
    """Text that can be stored and shown: lone surrogates (invalid UTF-8 bytes decoded with
    surrogateescape, or half a pair sent by a browser) become U+FFFD. True when any was replaced."""
    if not _SURROGATE.search(text):
        return text, False
    try:  # raw bytes kept by surrogateescape: decode them as UTF-8 would, one U+FFFD per bad sequence
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace"), True
    except UnicodeEncodeError:  # other lone surrogates (half a pair)
        return _SURROGATE.sub("\ufffd", text), True


def parse_stop_string(text: str) -> str:
    r"""Turn the escapes `\n`, `\t` and `\\` into their characters; every other character stays as typed.

    Deliberately not `unicode_escape`: that raises on `\x` and mangles non-ASCII text.
    """
    out = []
    i = 0
    while i < len(text):
        char = text[i]
        if char == "\\" and i + 1 < len(text) and text[i + 1] in _ESCAPES:
            out.append(_ESCAPES[text[i + 1]])
            i += 2
            continue
        out.append(char)
        i += 1
    return "".join(out)


# The page's shared parameters row: these fields are set once for every column; a column's own value
# replaces the shared one only for a field the user changed in that column (its overrides).
SHARED_FIELDS = ("max_new_tokens", "temperature", "top_p", "top_k", "repetition_penalty", "seed", "stop")
CPU_MAX_NEW_TOKENS = 64  # a CPU under load decodes 1-3 tokens a second: a short answer comes back soon
CUDA_MAX_NEW_TOKENS = 256


def default_max_new_tokens(device: str) -> int:
    """The page's default max new tokens for the engine's device: short on CPU, longer on a GPU."""
    return CUDA_MAX_NEW_TOKENS if (device or "").startswith("cuda") else CPU_MAX_NEW_TOKENS


def merge_params(shared: Mapping[str, Any], own: Mapping[str, Any], overridden: Iterable[str]
                 ) -> dict[str, Any]:
    """One column's parameter values: the shared row's, with the column's own where it overrides them.

    A field in `overridden` takes the column's value unless that is empty (None or ""), in which case the
    shared value stands; fields not in SHARED_FIELDS (timeout_s) are the column's own."""
    marked = set(overridden)
    merged = {k: v for k, v in own.items() if k not in SHARED_FIELDS}
    for name in SHARED_FIELDS:
        mine = own.get(name)
        use_own = name in marked and mine is not None and mine != ""
        merged[name] = mine if use_own else shared.get(name)
    return merged


def overrides_of(params: GenerationParams, shared: GenerationParams) -> list[str]:
    """The shared fields where a column's parameters differ from the shared ones (a replay's marks)."""
    return [name for name in SHARED_FIELDS if getattr(params, name) != getattr(shared, name)]
