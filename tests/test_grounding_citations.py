"""Citation checking, and that search data stays plain text all the way into the prompt."""

from __future__ import annotations

from pathlib import Path

import pytest

from playground.grounding.citations import CitationReport, check_citations
from playground.grounding.prompt import build_grounded_prompt
from playground.grounding.providers import LocalCorpus, SearchResult, WebSearch


@pytest.mark.parametrize(
    ("answer", "cited", "invalid"),
    [
        ("Paris is the capital [1].", [1], []),
        ("Both agree [2, 3].", [2, 3], []),
        ("Adjacent [1][2] and [2].", [1, 2], []),
        ("A range [1-3].", [1, 2, 3], []),
        ("En dash [2–4].", [2, 3, 4], []),
        ("Mixed [1, 3-4] and [ 5 ].", [1, 3, 4, 5], []),
        ("Out of range [0] and [7] but [5].", [5], [0, 7]),
        ("Partly [4-6].", [4, 5], [6]),
        ("No citations here.", [], []),
        ("Letters [a] and [b, c] are not citations.", [], []),
        ("A link [docs](https://e.org) and [1](https://e.org/x) are links.", [], []),
        ("Footnote [^1] and a list [1, a].", [], []),
        ("Silly [1-100000].", [1, 2, 3, 4, 5], [100000]),
    ],
)
def test_check_citations(answer: str, cited: list[int], invalid: list[int]) -> None:
    assert check_citations(answer, 5) == CitationReport(cited=cited, invalid=invalid)


def test_no_sources_makes_every_citation_invalid() -> None:
    assert check_citations("See [1] and [2].", 0) == CitationReport(cited=[], invalid=[1, 2])


HOSTILE = '<script>alert("x")</script><img src=x onerror=alert(1)> & &amp;'


def test_prompt_passes_html_through_unchanged() -> None:
    result = SearchResult(title=HOSTILE, url="https://e.org/?a=<b>", snippet=HOSTILE, text=HOSTILE)
    prompt = build_grounded_prompt(f"why {HOSTILE}?", [result], len, 10_000)
    assert f"[1] {HOSTILE}\nURL: https://e.org/?a=<b>\n{HOSTILE}" in prompt.text
    assert f"why {HOSTILE}?" in prompt.text


def test_web_results_pass_html_through_unchanged() -> None:
    class Client:
        def __init__(self, **kwargs: object) -> None:
            pass

        def text(self, query: str, **kwargs: object) -> list[dict[str, str]]:
            return [{"title": HOSTILE, "href": "https://e.org/", "body": HOSTILE}]

    (result,) = WebSearch(client_factory=Client).search("x")
    assert (result.title, result.snippet) == (HOSTILE, HOSTILE)


def test_corpus_text_files_pass_html_through_unchanged(tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "note.txt").write_text(f"alert {HOSTILE}")
    (result,) = LocalCorpus(tmp_path / "docs", tmp_path / "i.sqlite").search("alert")
    assert result.text == f"alert {HOSTILE}"
