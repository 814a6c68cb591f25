"""Find the [n] citations in an answer and check they point at sources that were sent."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

_MAX_RANGE = 100  # [1-100000] is not a real citation range
_ITEM = r"\d+(?:\s*[-–]\s*\d+)?"
# [1], [2, 3], [1-3]; not [a], not markdown links [1](url), not footnote refs [^1]
_CITATION = re.compile(rf"\[\s*({_ITEM}(?:\s*,\s*{_ITEM})*)\s*\](?!\()")


@dataclass(frozen=True)
class CitationReport:
    cited: list[int]  # sorted unique [n] numbers found in the answer that exist (1..n_sources)
    invalid: list[int]  # cited numbers that do not exist (0, > n_sources)


def _spans(answer: str) -> Iterator[tuple[int, int]]:
    """Every cited (low, high) span: [3] is (3, 3), [1-3] is (1, 3)."""
    for match in _CITATION.finditer(answer):
        for item in match.group(1).split(","):
            ends = [int(x) for x in re.split(r"[-–]", item)]
            yield min(ends), max(ends)


def _outside(low: int, high: int, n_sources: int) -> set[int]:
    """Numbers of a span that name no source; a silly span like [1-100000] reports only its ends."""
    if high - low > _MAX_RANGE:
        return {x for x in (low, high) if not 1 <= x <= n_sources}
    return {x for x in range(low, high + 1) if not 1 <= x <= n_sources}


def check_citations(answer: str, n_sources: int) -> CitationReport:
    cited: set[int] = set()
    invalid: set[int] = set()
    for low, high in _spans(answer):
        cited.update(range(max(low, 1), min(high, n_sources) + 1))
        invalid |= _outside(low, high, n_sources)
    return CitationReport(cited=sorted(cited), invalid=sorted(invalid))
