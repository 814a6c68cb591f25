"""Word diff: exact reconstruction of both texts, readable ops, escaped HTML."""

from __future__ import annotations

import random

import pytest
from sample_runs import XSS_PROMPT, model_run

from playground.inspect.diff import (
    DiffOp,
    abbreviate,
    baseline_text,
    column_diff,
    diff_html,
    diff_stats,
    other_text,
    tokenize,
    word_diff,
)


def assert_rebuilds(a: str, b: str) -> list[DiffOp]:
    ops = word_diff(a, b)
    assert baseline_text(ops) == a
    assert other_text(ops) == b
    assert all(op.kind in {"equal", "insert", "delete"} and op.text for op in ops)
    return ops


def test_identical_texts_are_one_equal_op() -> None:
    assert assert_rebuilds("Paris is the capital.", "Paris is the capital.") == [
        DiffOp("equal", "Paris is the capital.")
    ]


def test_insert() -> None:
    ops = assert_rebuilds("Paris is the capital.", "Paris is the capital of France.")
    assert ops == [
        DiffOp("equal", "Paris is the capital"),
        DiffOp("insert", " of France"),
        DiffOp("equal", "."),
    ]


def test_delete() -> None:
    ops = assert_rebuilds("The capital of France is Paris.", "The capital is Paris.")
    assert ops == [
        DiffOp("equal", "The capital "),
        DiffOp("delete", "of France "),
        DiffOp("equal", "is Paris."),
    ]


def test_replace_is_delete_then_insert_and_spaces_between_changes_are_folded_in() -> None:
    ops = assert_rebuilds("The quick brown fox jumps.", "A slow red fox jumps!")
    assert ops == [
        DiffOp("delete", "The quick brown"),
        DiffOp("insert", "A slow red"),
        DiffOp("equal", " fox jumps"),
        DiffOp("delete", "."),
        DiffOp("insert", "!"),
    ]


def test_whitespace_changes_show() -> None:
    ops = assert_rebuilds("one two\nthree", "one  two\n\nthree")
    assert DiffOp("insert", " ") in ops
    assert DiffOp("insert", "\n") in ops


FAMILY_GIRL = "👨\u200d👩\u200d👧"
FAMILY_BOY = "👨\u200d👩\u200d👦"


@pytest.mark.parametrize(
    ("a", "b", "deleted", "inserted"),
    [
        ("Un café au lait.", "Un thé au lait.", "café", "thé"),
        # NFD: the combining accent stays on its letter
        ("Un cafe\u0301 noir.", "Un the\u0301 noir.", "cafe\u0301", "the\u0301"),
        ("我喜欢猫。", "我喜欢狗。", "猫", "狗"),  # one token per CJK character
        ("I love 🐱 and 👍🏽!", "I love 🐶 and 👍🏽!", "🐱", "🐶"),
        (f"family: {FAMILY_GIRL} ok", f"family: {FAMILY_BOY} ok", FAMILY_GIRL, FAMILY_BOY),  # ZWJ sequences
        ("flag 🇫🇷 here", "flag 🇩🇪 here", "🇫🇷", "🇩🇪"),
    ],
)
def test_unicode_changes_are_whole_characters(a: str, b: str, deleted: str, inserted: str) -> None:
    ops = assert_rebuilds(a, b)
    assert [op for op in ops if op.kind != "equal"] == [DiffOp("delete", deleted), DiffOp("insert", inserted)]


def test_empty_sides() -> None:
    assert assert_rebuilds("", "") == []
    assert assert_rebuilds("", "Paris.") == [DiffOp("insert", "Paris.")]
    assert assert_rebuilds("Paris.", "") == [DiffOp("delete", "Paris.")]
    assert diff_stats([])["similarity"] == 1.0
    assert diff_stats(word_diff("", "Paris."))["similarity"] == 0.0


def test_tokenize_covers_every_character() -> None:
    text = "a\u0301 b\t\n c<d>é 猫🐱👍🏽\u200d ¿¡ 1️⃣ _x_ \r\n"
    assert "".join(tokenize(text)) == text


VOCAB = ["the", "cat", "sat", "on", "mat", ",", ".", "!", "\n", "  "]
VOCAB += ["café", "猫", "🐱", "<b>", "&", "x_y", "42"]


def random_text(rng: random.Random) -> str:
    seps = [" ", " ", " ", "", "\n", "  "]
    return "".join(rng.choice(VOCAB) + rng.choice(seps) for _ in range(rng.randint(0, 25)))


def test_random_texts_rebuild_exactly() -> None:
    rng = random.Random(0)
    for _ in range(60):
        a = random_text(rng)
        b = random_text(rng) if rng.random() < 0.5 else _mutate(a, rng)
        ops = assert_rebuilds(a, b)
        for first, second in zip(ops, ops[1:], strict=False):
            assert first.kind != second.kind, ops  # adjacent ops of one kind are merged
        stats = diff_stats(ops)
        assert 0.0 <= stats["similarity"] <= 1.0
        assert stats["words_equal"] + stats["words_deleted"] == word_count(a)
        assert stats["words_equal"] + stats["words_inserted"] == word_count(b)


def word_count(text: str) -> int:
    return sum(1 for t in tokenize(text) if not t.isspace())


def _mutate(text: str, rng: random.Random) -> str:
    words = text.split(" ")
    for _ in range(rng.randint(1, 3)):
        i = rng.randrange(len(words) + 1)
        action = rng.choice(["insert", "delete", "replace"])
        if action == "insert" or i == len(words):
            words.insert(i, rng.choice(VOCAB))
        elif action == "delete":
            del words[i]
        else:
            words[i] = rng.choice(VOCAB)
    return " ".join(words)


def test_stats_count_words() -> None:
    stats = diff_stats(word_diff("The quick brown fox.", "The slow brown fox jumps."))
    assert stats == {
        "words_equal": 4,  # The, brown, fox, "."
        "words_inserted": 2,  # slow, jumps
        "words_deleted": 1,  # quick
        "baseline_words": 5,
        "other_words": 6,
        "similarity": pytest.approx(8 / 11),
    }


def test_html_escapes_markup_and_marks_changes() -> None:
    page = diff_html(word_diff(XSS_PROMPT, XSS_PROMPT.replace("alert(1)", "alert(2)") + "\n<b>bold</b>"))
    assert "<script" not in page and "<img" not in page and "<b>" not in page
    assert "&lt;script&gt;" in page and "&lt;img src=x onerror=alert(" in page
    assert "&quot;quotes&quot;" in page and "&#x27;too&#x27;" in page
    assert '<ins class="pg-ins"' in page and '<del class="pg-del"' in page
    assert ">+</span>" in page and ">\u2212</span>" in page
    assert "#0072B2" in page and "#D55E00" in page and "line-through" in page
    assert "<br>" in page


def test_html_of_equal_text_is_plain() -> None:
    assert diff_html(word_diff("a & b\nc", "a & b\nc")) == '<div class="pg-diff">a &amp; b<br>c</div>'


def test_column_diff_of_two_outputs() -> None:
    result = column_diff(model_run(0, ["Paris", " is", " nice."]), model_run(1, ["Paris", " is", " big."]))
    assert result.error == ""
    assert (result.baseline, result.other) == (0, 1)
    changes = [op for op in result.ops if op.kind != "equal"]
    assert changes == [DiffOp("delete", "nice"), DiffOp("insert", "big")]
    assert result.stats["words_equal"] == 3


@pytest.mark.parametrize("failed", [0, 1])
def test_column_diff_refuses_a_failed_column(failed: int) -> None:
    columns = [model_run(0, ["Paris."]), model_run(1, ["Lyon."])]
    columns[failed] = model_run(failed, [], error="out of memory <loading>")
    result = column_diff(columns[0], columns[1])
    assert result.ops == []
    assert result.error == f"cannot diff: column {failed + 1} failed: out of memory <loading>"
    assert "&lt;loading&gt;" in result.html()


def test_abbreviate_keeps_the_change_and_its_context() -> None:
    before = " ".join(f"w{i}" for i in range(40))
    after = before.replace("w20", "CHANGED")
    short = abbreviate(word_diff(before, after), context=3)
    text = "".join(op.text for op in short)
    assert text.startswith("…") and text.endswith("…")
    assert [op.text for op in short if op.kind != "equal"] == ["w20", "CHANGED"]
    assert "w19 " in text and " w21" in text and "w10" not in text
