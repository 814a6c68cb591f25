"""Fitting numbered sources into a token budget with two different token counters."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from playground.grounding.prompt import (
    GROUNDING_TEMPLATE,
    TRIM_MARK,
    build_grounded_prompt,
    render,
    source_block,
)
from playground.grounding.providers import SearchResult


def words(s: str) -> int:
    return len(s.split())


def quarter_chars(s: str) -> int:
    return (len(s) + 3) // 4


COUNTERS: list[Callable[[str], int]] = [words, quarter_chars]
QUESTION = "What powers the grid?"


def _results(n: int = 5, size: int = 60) -> list[SearchResult]:
    return [
        SearchResult(
            title=f"Title {i}",
            url=f"https://example.org/{i}",
            snippet=f"snippet {i}",
            text=" ".join(f"s{i}w{j}" for j in range(size)),
        )
        for i in range(1, n + 1)
    ]


def test_template_is_documented() -> None:
    assert "{sources}" in GROUNDING_TEMPLATE and "{question}" in GROUNDING_TEMPLATE
    assert "[n]" in GROUNDING_TEMPLATE
    assert GROUNDING_TEMPLATE.index("{sources}") < GROUNDING_TEMPLATE.index("{question}")


def test_everything_fits_numbered_in_order() -> None:
    results = _results(3)
    prompt = build_grounded_prompt(QUESTION, results, words, 10_000)
    assert (prompt.sources_used, prompt.cut, prompt.notice) == (3, False, "")
    for n, result in enumerate(results, start=1):
        assert f"[{n}] {result.title}\nURL: {result.url}\n{result.text}" in prompt.text
    positions = [prompt.text.index(f"[{n}] Title {n}") for n in (1, 2, 3)]
    assert positions == sorted(positions)
    assert prompt.text.rstrip().endswith(f"Question: {QUESTION}")


def test_snippet_stands_in_for_missing_text() -> None:
    result = SearchResult(title="T", url="https://e.org", snippet="only a snippet")
    prompt = build_grounded_prompt(QUESTION, [result], words, 10_000)
    assert "[1] T\nURL: https://e.org\nonly a snippet" in prompt.text


@pytest.mark.parametrize("count", COUNTERS)
def test_never_exceeds_the_budget(count: Callable[[str], int]) -> None:
    results = _results()
    for budget in range(count(QUESTION), count(render(QUESTION, [])) + 500, 7):
        prompt = build_grounded_prompt(QUESTION, results, count, budget)
        assert count(prompt.text) <= budget
        assert QUESTION in prompt.text


def test_same_numbering_and_order_for_different_tokenizers() -> None:
    results = _results()
    by_words = build_grounded_prompt(QUESTION, results, words, 260)
    by_chars = build_grounded_prompt(QUESTION, results, quarter_chars, 600)
    assert by_words.sources_used != by_chars.sources_used  # they differ in how much fits...
    for prompt in (by_words, by_chars):  # ...but never in which number a source has
        headers = [
            f"[{n}] Title {n}\nURL: https://example.org/{n}" for n in range(1, prompt.sources_used + 1)
        ]
        positions = [prompt.text.index(h) for h in headers]
        assert positions == sorted(positions)
        assert f"Title {prompt.sources_used + 1}" not in prompt.text


def test_next_source_is_trimmed_when_a_useful_part_fits() -> None:
    results = _results()
    two = render(QUESTION, [source_block(1, results[0]), source_block(2, results[1])])
    budget = words(two) + 30
    prompt = build_grounded_prompt(QUESTION, results, words, budget)
    assert (prompt.sources_used, prompt.cut) == (3, True)
    assert prompt.notice == "3 of 5 sources fit in this model's context window (source 3 trimmed)"
    assert results[1].text in prompt.text and results[2].text not in prompt.text
    assert f"s3w0 s3w1{TRIM_MARK}" not in prompt.text and TRIM_MARK in prompt.text
    assert words(prompt.text) <= budget
    assert words(prompt.text) >= budget - 2  # the binary search used the room it had


def test_no_trim_when_too_little_would_fit() -> None:
    results = _results()
    two = render(QUESTION, [source_block(1, results[0]), source_block(2, results[1])])
    prompt = build_grounded_prompt(QUESTION, results, words, words(two) + 3)
    assert (prompt.sources_used, prompt.cut) == (2, True)
    assert prompt.notice == "2 of 5 sources fit in this model's context window"
    assert "Title 3" not in prompt.text


def test_first_source_trimmed_with_a_tiny_budget() -> None:
    results = _results(size=400)
    prompt = build_grounded_prompt(QUESTION, results, quarter_chars, 200)
    assert (prompt.sources_used, prompt.cut) == (1, True)
    assert prompt.notice == "1 of 5 sources fit in this model's context window (source 1 trimmed)"
    assert quarter_chars(prompt.text) <= 200


def test_question_alone_when_no_source_fits() -> None:
    prompt = build_grounded_prompt(QUESTION, _results(), words, words(QUESTION) + 2)
    assert prompt == type(prompt)(
        QUESTION, 0, True, "none of the 5 sources fit in this model's context window"
    )


def test_question_over_budget() -> None:
    prompt = build_grounded_prompt(QUESTION, _results(), words, 2)
    assert (prompt.text, prompt.sources_used, prompt.cut) == (QUESTION, 0, True)
    assert "question alone exceeds" in prompt.notice


def test_no_results_leaves_the_question_alone() -> None:
    prompt = build_grounded_prompt(QUESTION, [], words, 5)
    assert (prompt.text, prompt.sources_used, prompt.cut, prompt.notice) == (QUESTION, 0, False, "")
