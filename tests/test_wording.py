"""The counted-noun helper every user-facing message uses ("1 column", "2 columns", never "column(s)")."""

from __future__ import annotations

import pytest

from playground.batch.prompt_set import PromptSetError, parse
from playground.wording import noun, plural


@pytest.mark.parametrize(("n", "word", "expected"), [
    (0, "column", "0 columns"), (1, "column", "1 column"), (2, "column", "2 columns"),
    (1, "anomaly", "1 anomaly"), (3, "anomaly", "3 anomalies"), (-1, "turn", "-1 turn"),
    (2, "batch", "2 batches"), (1, "special-token string", "1 special-token string"),
])
def test_plural_counts_the_noun(n: int, word: str, expected: str) -> None:
    assert plural(n, word) == expected


def test_an_irregular_plural_can_be_given_and_the_noun_alone() -> None:
    assert plural(2, "child", "children") == "2 children"
    assert plural(1, "child", "children") == "1 child"
    assert noun(1, "column") == "column" and noun(2, "field") == "fields"


def test_a_prompt_set_error_counts_in_words() -> None:
    with pytest.raises(PromptSetError) as one:
        parse("prompt,expected\nx,y\nz\n", "csv")
    assert "line 3: 1 value for 2 columns" in str(one.value) and "(s)" not in str(one.value)
    with pytest.raises(PromptSetError) as two:
        parse("prompt,a,b\nx,y,z\n", "csv")
    assert "unknown columns 'a', 'b'" in str(two.value)
