"""Counted nouns in user-facing text: "1 column", "2 columns", never "column(s)".

One place for the page, the reports and the command line, so every message counts the same way.
No imports from the rest of the project: anything may use it.
"""

from __future__ import annotations

# Nouns whose plural is not the noun + "s" (the ones our messages count).
IRREGULAR = {"anomaly": "anomalies", "entry": "entries", "query": "queries", "category": "categories",
             "reply": "replies", "match": "matches", "batch": "batches", "search": "searches"}


def plural(n: int, word: str, many: str | None = None) -> str:
    """`n` and the noun, singular for exactly 1 (and -1): plural(1, "column") -> "1 column",
    plural(2, "anomaly") -> "2 anomalies". `many` gives an irregular plural the table lacks."""
    if abs(n) == 1:
        return f"{n} {word}"
    return f"{n} {many or IRREGULAR.get(word) or word + 's'}"


def noun(n: int, word: str, many: str | None = None) -> str:
    """The noun alone, in the form `n` takes: "unknown column 'x'", "unknown columns 'x', 'y'"."""
    return plural(n, word, many).split(" ", 1)[1]
