"""Tokenization anomaly checks: pure functions over token pieces and counts.

They run before generation, so a prompt that will confuse a model is flagged
before anyone has to guess why its answer went wrong. Thresholds are module
constants, listed in the README.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from playground.record import Anomaly, TokenPiece
from playground.wording import plural

# Token-count blow-up: English averages ~4 characters per token. Fewer than this
# many characters per token, on a text of at least BLOWUP_MIN_TOKENS tokens, is flagged.
BLOWUP_MAX_CHARS_PER_TOKEN = 1.5
BLOWUP_MIN_TOKENS = 64
# A run of one token id repeated at least this many times in a row.
REPEAT_RUN_MIN = 32
# Unknown / byte-fallback tokens: flagged above this share of the prompt (and at least the count).
BYTE_FALLBACK_MAX_SHARE = 0.05
BYTE_FALLBACK_MIN_COUNT = 8

BYTE_TOKEN = re.compile(r"^<0x[0-9A-Fa-f]{2}>$")


@dataclass(frozen=True)
class SpecialLiteral:
    """A special-token string typed into user text, and the control token id it became."""

    literal: str
    token_id: int
    position: int  # index in the prompt tokens


def check_special_literals(found: list[SpecialLiteral], specials_as_text: bool) -> list[Anomaly]:
    if specials_as_text or not found:
        return []
    names = sorted({f.literal for f in found})
    shown = ", ".join(names[:5]) + (" …" if len(names) > 5 else "")
    return [
        Anomaly(
            kind="special_literal",
            message=(
                f"the typed text contains {plural(len(found), 'special-token string')} ({shown}) that this "
                "tokenizer turns into control tokens; if they were meant as text, turn on the plain-text "
                "option (UI checkbox, CLI --specials-as-text)"
            ),
            position=min(f.position for f in found),
        )
    ]


def check_blowup(chars: int, tokens: int, position: int = 0) -> list[Anomaly]:
    if tokens < BLOWUP_MIN_TOKENS or chars / tokens >= BLOWUP_MAX_CHARS_PER_TOKEN:
        return []
    return [
        Anomaly(
            kind="blowup",
            message=(
                f"token blow-up: {tokens:,} tokens for {chars:,} characters ({chars / tokens:.2f} "
                f"characters per token; typical text has ~4, flagged below {BLOWUP_MAX_CHARS_PER_TOKEN})"
            ),
            position=position,
        )
    ]


def longest_repeat(token_ids: list[int]) -> tuple[int, int, int]:
    """(token id, run length, start index) of the longest run of one repeated id."""
    best = (-1, 0, -1)
    start = 0
    for i in range(1, len(token_ids) + 1):
        if i == len(token_ids) or token_ids[i] != token_ids[start]:
            if i - start > best[1]:
                best = (token_ids[start], i - start, start)
            start = i
    return best


def check_repeat_run(pieces: list[TokenPiece]) -> list[Anomaly]:
    token_id, length, start = longest_repeat([p.token_id for p in pieces])
    if length < REPEAT_RUN_MIN:
        return []
    raw = pieces[start].raw
    return [
        Anomaly(
            kind="repeat_run",
            message=f"one token repeated {length:,} times in a row: {raw!r} (id {token_id})",
            position=start,
        )
    ]


def check_byte_fallback(pieces: list[TokenPiece], unk_id: int | None) -> list[Anomaly]:
    hits = [
        i for i, p in enumerate(pieces)
        if BYTE_TOKEN.match(p.raw) or (unk_id is not None and p.token_id == unk_id)
    ]
    if len(hits) < BYTE_FALLBACK_MIN_COUNT or len(hits) / max(1, len(pieces)) <= BYTE_FALLBACK_MAX_SHARE:
        return []
    return [
        Anomaly(
            kind="byte_fallback",
            message=(
                f"{len(hits):,} unknown or byte-fallback tokens ({len(hits) / len(pieces):.0%} of the "
                f"prompt; flagged above {BYTE_FALLBACK_MAX_SHARE:.0%}): text this vocabulary does not cover"
            ),
            position=hits[0],
        )
    ]


def check_context(prompt_tokens: int, max_new_tokens: int, window: int) -> list[Anomaly]:
    needed = prompt_tokens + max_new_tokens
    if not window or needed <= window:
        return []
    return [
        Anomaly(
            kind="context_overflow",
            severity="error",
            message=(
                f"the prompt is {prompt_tokens:,} tokens for this model; with max new tokens "
                f"{max_new_tokens:,} that needs {needed:,} positions, beyond its context window of "
                f"{window:,}. Shorten the prompt or lower max new tokens (nothing was truncated)."
            ),
            position=min(window, prompt_tokens) - 1,
        )
    ]


def find_anomalies(
    pieces: list[TokenPiece],
    user_chars: int,
    user_tokens: int,
    specials: list[SpecialLiteral],
    specials_as_text: bool,
    unk_id: int | None,
    window: int,
    max_new_tokens: int,
) -> list[Anomaly]:
    """Every check, in the order a user should read them (errors first)."""
    return [
        *check_context(len(pieces), max_new_tokens, window),
        *check_special_literals(specials, specials_as_text),
        *check_blowup(user_chars, user_tokens),
        *check_repeat_run(pieces),
        *check_byte_fallback(pieces, unk_id),
    ]
