"""Checking generation parameters and parsing stop strings: shared by the engine, UI, CLI and import.

Kept free of torch so that the session store and the bundle importer can use it.
A parameter that is not finite (NaN, inf) or out of range is a user-facing
sentence here, never a traceback inside generation.
"""

from __future__ import annotations

import math
import re

from playground.record import GenerationParams

MAX_NEW_TOKENS_LIMIT = 32768
MAX_SEED = 2**63 - 1  # torch.Generator.manual_seed takes a signed 64-bit value
MAX_TEMPERATURE = 100.0  # above this the distribution is uniform noise: a typo, not a setting
MAX_TIMEOUT_S = 24 * 3600.0
MAX_STOP_STRINGS = 16
MAX_STOP_CHARS = 200
_SURROGATE = re.compile("[\ud800-\udfff]")
_ESCAPES = {"n": "\n", "t": "\t", "\\": "\\"}


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
