"""Fit numbered sources plus the question into one model's context window.

Every model sees the same sources in the same order with the same numbers, so their [n]
citations can be compared; only how many sources fit differs, and that is reported.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from playground.grounding.providers import SearchResult

GROUNDING_TEMPLATE = (
    "Answer the question using the numbered sources below. Cite the sources you rely on as [n], "
    "for example [1] or [2][3]. If the sources do not contain the answer, say so.\n\n"
    "Sources:\n\n{sources}\n\n"
    "Question: {question}"
)
"""The sources block ("[n] title / URL: url / text", blank line between) and then the question."""

MIN_TRIM_CHARS = 80  # a trimmed source shorter than this is not worth its header
TRIM_MARK = " …"

CountTokens = Callable[[str], int]


@dataclass(frozen=True)
class GroundedPrompt:
    text: str
    sources_used: int  # how many sources made it in (from the top)
    cut: bool  # True when some sources or parts of them were dropped/trimmed to fit
    notice: str  # e.g. "3 of 5 sources fit in this model's context window (source 3 trimmed)"


def source_block(n: int, result: SearchResult, body: str | None = None) -> str:
    text = (result.text or result.snippet) if body is None else body
    return f"[{n}] {result.title}\nURL: {result.url}\n{text}"


def render(question: str, blocks: list[str]) -> str:
    return GROUNDING_TEMPLATE.format(sources="\n\n".join(blocks), question=question)


def build_grounded_prompt(
    question: str, results: list[SearchResult], count_tokens: CountTokens, budget_tokens: int
) -> GroundedPrompt:
    """Whole sources in order while they fit, then the next one trimmed if a useful part fits."""
    if not results:
        return GroundedPrompt(question, 0, False, "")
    n = len(results)
    if count_tokens(question) > budget_tokens:
        notice = f"the question alone exceeds this model's context window ({budget_tokens} tokens)"
        return GroundedPrompt(question, 0, True, notice)

    def fits(blocks: list[str]) -> bool:
        return count_tokens(render(question, blocks)) <= budget_tokens

    blocks: list[str] = []
    for i, result in enumerate(results, start=1):
        block = source_block(i, result)
        if not fits([*blocks, block]):
            break
        blocks.append(block)
    if len(blocks) == n:
        return GroundedPrompt(render(question, blocks), n, False, "")

    trimmed = _trim_to_fit(len(blocks) + 1, results[len(blocks)], blocks, fits)
    if trimmed is not None:
        blocks.append(trimmed)
    if not blocks:
        notice = f"none of the {n} sources fit in this model's context window"
        return GroundedPrompt(question, 0, True, notice)
    k = len(blocks)
    notice = f"{k} of {n} sources fit in this model's context window"
    if trimmed is not None:
        notice += f" (source {k} trimmed)"
    return GroundedPrompt(render(question, blocks), k, True, notice)


def _trim_to_fit(
    n: int, result: SearchResult, blocks: list[str], fits: Callable[[list[str]], bool]
) -> str | None:
    """Binary search for the longest prefix of the source text that still fits; None if too little does."""
    body = result.text or result.snippet

    def candidate(chars: int) -> str:
        return source_block(n, result, _cut(body, chars))

    lo, hi = MIN_TRIM_CHARS, len(body) - 1
    if hi < lo or not fits([*blocks, candidate(lo)]):
        return None
    while lo < hi:  # invariant: candidate(lo) fits
        mid = (lo + hi + 1) // 2
        if fits([*blocks, candidate(mid)]):
            lo = mid
        else:
            hi = mid - 1
    return candidate(lo)


def _cut(body: str, chars: int) -> str:
    """Cut at a word boundary when one is near, so the model does not see half a word."""
    head = body[:chars]
    space = head.rfind(" ")
    if space > chars // 2:
        head = head[:space]
    return head.rstrip() + TRIM_MARK
