"""Scoring an answer against the expected one: pure functions, each returning a score in [0, 1].

- exact: equal after trimming and collapsing whitespace (case-sensitive)
- contains: the expected text occurs in the answer, ignoring case and runs of whitespace; an answer
  that has it only because it echoes the prompt (a copy of the prompt, or a loop of the prompt's words,
  as Gemma's "Hello Hello Hello..." to a prompt holding "hello") scores 0 with the note ECHO_NOTE
- regex: `expected` is a Python regular expression searched for in the answer, with a time budget
  (playground/patterns.py): a pattern that backtracks too long gives no score and a note, never a hang
- numeric: the last number in the answer ("7 + 5 = 12" gives 12, as GSM8K-style graders read it) equals
  the expected number within an absolute tolerance
- semantic: cosine similarity of sentence embeddings (all-MiniLM-L6-v2, shipped), negatives as 0
- agreement: no expected answer needed: semantic similarity with a reference column's answer

A score is None when the prompt cannot be scored that way (no expected answer, a pattern that does
not compile, an expected value that is not a number); the note says why. A failed column scores 0.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from playground.patterns import PatternError, TimeBudget, UserPattern

METHODS = ("exact", "contains", "regex", "numeric", "semantic", "agreement")
MAX_SCORED_CHARS = 100_000  # of an answer, for regex and numbers
SCORING_BUDGET_S = 5.0  # all regex searches of one scoring of a batch (see summary.build_table)
DEFAULT_TOLERANCE = 1e-6
_NUMBER = re.compile(r"[-+]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:[eE][-+]?\d+)?|[-+]?\.\d+")


@dataclass(frozen=True)
class Scoring:
    method: str = "contains"
    tolerance: float = DEFAULT_TOLERANCE  # numeric: absolute
    reference_column: int = 0  # agreement: the column the others are compared with

    def problems(self, columns: int) -> list[str]:
        out = []
        if self.method not in METHODS:
            out.append(f"unknown scoring {self.method!r}: use one of {', '.join(METHODS)}")
        if not math.isfinite(self.tolerance) or self.tolerance < 0:
            out.append(f"the numeric tolerance must be a finite number >= 0, got {self.tolerance}")
        if self.method == "agreement":
            if columns < 2:
                out.append("agreement scoring compares columns: give at least two models")
            if not 0 <= self.reference_column < columns:
                out.append(f"the reference column must be between 0 and {columns - 1}, "
                           f"got {self.reference_column}")
        return out


# Embeds texts as unit row vectors (playground.backends.embeddings.EmbeddingModel.embed).
Embed = Callable[[list[str]], np.ndarray]


def normalise(text: str) -> str:
    return " ".join(text.split())


def exact(answer: str, expected: str) -> float:
    return 1.0 if normalise(answer) == normalise(expected) else 0.0


def contains(answer: str, expected: str) -> float:
    return 1.0 if normalise(expected).casefold() in normalise(answer).casefold() else 0.0


ECHO_NOTE = "echoes the prompt"
COPY_WORDS = 6  # this many words in a row, as in the prompt, are a copy of it
LOOP_DISTINCT = 0.25  # an answer of 4+ words with at most this share of distinct words is a loop


def _words(text: str) -> list[str]:
    return re.findall(r"\w+", text.casefold())


def _has_run(words: list[str], run: list[str]) -> bool:
    n = len(run)
    return n > 0 and any(words[i:i + n] == run for i in range(len(words) - n + 1))


def echoes_prompt(answer: str, prompt: str, expected: str) -> bool:
    """Whether the answer holds the expected text only by echoing the prompt: the expected text is in the
    prompt, and it is gone once the answer's copies of the prompt (COPY_WORDS words in a row) are taken
    out, or the answer is a loop of a few words. A short answer that is just the expected word is no echo."""
    a, p, e = _words(answer[:MAX_SCORED_CHARS]), _words(prompt), _words(expected)
    if not e or not _has_run(p, e) or not _has_run(a, e):
        return False
    if len(a) >= 4 and len(set(a)) / len(a) <= LOOP_DISTINCT:
        return True
    k = min(COPY_WORDS, len(p))
    if k < 3:
        return False
    grams = {tuple(p[i:i + k]) for i in range(len(p) - k + 1)}
    copied = [False] * len(a)
    for i in range(len(a) - k + 1):
        if tuple(a[i:i + k]) in grams:
            copied[i:i + k] = [True] * k
    return not _has_run([w for w, c in zip(a, copied, strict=True) if not c], e)


def compile_pattern(expected: str) -> UserPattern:
    """The expected pattern compiled; PatternError (a ValueError) naming the scorer when it cannot be."""
    try:
        return UserPattern.compile(expected)
    except PatternError as exc:
        raise PatternError(f"regex scoring: {exc}") from exc


def regex(answer: str, expected: str, budget: TimeBudget | None = None) -> float:
    """1 when the pattern occurs in the answer. PatternTimeout (a ValueError) naming the scorer when
    the search runs out of time (`budget`, or one search's own limit)."""
    pattern = compile_pattern(expected)
    try:
        return 1.0 if pattern.search(answer[:MAX_SCORED_CHARS], budget) else 0.0
    except PatternError as exc:
        raise type(exc)(f"regex scoring: {exc}") from exc


def parse_number(text: str, last: bool = False) -> float | None:
    """The first (or last) number in the text ("1,234.5", "-3", "2e3"), or None."""
    first = _NUMBER.search(text)
    matches = _NUMBER.findall(text[:MAX_SCORED_CHARS]) if last else [first.group()] if first else []
    if not matches:
        return None
    try:
        value = float(matches[-1 if last else 0].replace(",", ""))
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def numeric(answer: str, expected: str, tolerance: float = DEFAULT_TOLERANCE) -> float:
    """1 when the last number of the answer is within `tolerance` of the expected number.

    ValueError when the expected answer holds no number (the prompt cannot be scored this way).
    """
    want = parse_number(expected)
    if want is None:
        raise ValueError(f"the expected answer {expected[:40]!r} holds no number")
    got = parse_number(answer, last=True)
    return 1.0 if got is not None and abs(got - want) <= tolerance else 0.0


def similarities(pairs: Sequence[tuple[str, str]], embed: Embed) -> list[float]:
    """Cosine similarity of each pair, clipped to [0, 1]; every distinct text embedded once.

    Empty texts follow inspect.agreement: two empty texts agree (1), one empty text agrees with nothing (0).
    """
    texts = sorted({t for pair in pairs for t in pair if t.strip()})
    vectors = embed(texts) if texts else np.zeros((0, 1))
    index = {t: i for i, t in enumerate(texts)}
    out = []
    for a, b in pairs:
        if not a.strip() or not b.strip():
            out.append(1.0 if not a.strip() and not b.strip() else 0.0)
            continue
        u = np.asarray(vectors[index[a]], dtype=np.float64)
        v = np.asarray(vectors[index[b]], dtype=np.float64)
        norm = float(np.linalg.norm(u) * np.linalg.norm(v))
        out.append(min(1.0, max(0.0, float(u @ v) / norm)) if norm > 0 else 0.0)
    return out


def score_text(method: str, answer: str, expected: str, tolerance: float = DEFAULT_TOLERANCE,
               budget: TimeBudget | None = None) -> float:
    """exact | contains | regex | numeric (the methods that need no model); ValueError when unscorable.
    `budget`: the time regex searches may take, shared by every answer scored with it."""
    if method == "exact":
        return exact(answer, expected)
    if method == "contains":
        return contains(answer, expected)
    if method == "regex":
        return regex(answer, expected, budget)
    if method == "numeric":
        return numeric(answer, expected, tolerance)
    raise ValueError(f"{method} scoring needs an embedding model")


def score_answer(method: str, answer: str, expected: str, prompt: str = "",
                 tolerance: float = DEFAULT_TOLERANCE, budget: TimeBudget | None = None) -> tuple[float, str]:
    """score_text with a note: `contains` gives 0 and ECHO_NOTE to an answer that only echoes the prompt."""
    value = score_text(method, answer, expected, tolerance, budget)
    if method == "contains" and value > 0 and echoes_prompt(answer, prompt, expected):
        return 0.0, ECHO_NOTE
    return value, ""
