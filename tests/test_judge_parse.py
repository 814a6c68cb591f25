"""The judge's verdict parsing, the prompt-echo check of `contains`, the agreement arithmetic (no model)."""

from __future__ import annotations

import pytest

from playground.batch.score import ECHO_NOTE, echoes_prompt, score_answer
from playground.inspect.leaderboard import Vote
from playground.judge.agreement import judge_agreement
from playground.judge.parse import parse_grade, parse_letter
from playground.judge.spec import JudgeSpec
from playground.judge.verdict import Verdict


@pytest.mark.parametrize(("text", "value"), [
    ("Score: 4\nIt names the city.", 0.75), ("**Score:** 5", 1.0), ("4/5 because it is right", 0.75),
    ("3\nfine", 0.5), ("Rating: 1 - off topic", 0.0), ("8 out of 10", 7 / 9),
    ("I would give it 1 (bad) to 5 (excellent). Score: 2", 0.25),
])
def test_grades_are_read_and_mapped_to_unit_range(text: str, value: float) -> None:
    parsed = parse_grade(text)
    assert parsed.value == pytest.approx(value) and parsed.note == ""


@pytest.mark.parametrize(("text", "why"), [
    ("The city is Lisbon. Lisbon is the capital of Portugal.", "gave no grade"),
    ("Score: 1 (bad) to 5 (excellent)", "gave no grade"),  # the instructions repeated, no grade
    ("Score: 9", "outside 1-5"), ("", "wrote nothing"), ("Score: 3/7", "not on the 1-5 scale"),
])
def test_unreadable_grades_give_no_score_and_a_note(text: str, why: str) -> None:
    parsed = parse_grade(text)
    assert parsed.value is None and not parsed.ok
    assert parsed.note.startswith("no verdict") and why in parsed.note


@pytest.mark.parametrize(("text", "letter"), [
    ("Winner: B\nB names the city.", "B"), ("Winner is a tie", "tie"), ("A", "A"), ("[[A]]", "A"),
    ("Answer B is better than A.", "B"), ("Verdict: Answer A", "A"), ("Winner: tie", "tie"),
])
def test_pairwise_letters_are_read(text: str, letter: str) -> None:
    assert parse_letter(text, "AB").letter == letter


@pytest.mark.parametrize("text", [
    'Reply with "Winner: A", "Winner: B" or "Winner: tie"',  # the instructions echoed: several answers
    "Answer A: Lisbon. Answer B: Paris.",  # the answers echoed: no choice
    "a good answer", "Best: C",  # "a" is no letter; C is not one of A, B
])
def test_rambling_gives_no_letter(text: str) -> None:
    parsed = parse_letter(text, "AB")
    assert parsed.letter == "" and parsed.note.startswith("no verdict")


def test_best_reads_any_shown_letter_but_not_a_tie() -> None:
    assert parse_letter("Best: C. It is short.", "ABC", tie=False).letter == "C"
    assert parse_letter("Best: tie", "ABC", tie=False).letter == ""


CODE = "Complete the Python line that prints hello: print("
CITY = 'Extract the city from this sentence: "Maria moved from her village to Lisbon last spring." City:'


def test_contains_gives_zero_to_a_gemma_style_loop_of_the_prompts_word() -> None:
    assert score_answer("contains", "Hello Hello Hello Hello Hello Hello", "hello", CODE) == (0.0, ECHO_NOTE)
    assert score_answer("contains", '"hello")', "hello", CODE) == (1.0, "")  # the real answer still passes


def test_contains_gives_zero_to_a_copy_of_the_input() -> None:
    copy = "Extract the city from this sentence: Maria moved from her village to Lisbon last spring."
    assert score_answer("contains", copy, "Lisbon", CITY) == (0.0, ECHO_NOTE)
    # a copy followed by the answer, a bare answer, an answer not in the prompt: no echo
    assert score_answer("contains", copy + " The city is Lisbon.", "Lisbon", CITY) == (1.0, "")
    assert score_answer("contains", "Lisbon", "Lisbon", CITY) == (1.0, "")
    assert not echoes_prompt("12 12 12 12 12", "What is 7 + 5?", "12")
    assert score_answer("exact", "Lisbon", "Lisbon", CITY) == (1.0, "")


def _pair(run_id: str, outcome: str, winner: int = -1) -> Verdict:
    return Verdict("pairwise", "smollm2-135m", run_id, 0, [0, 1], ["smollm2-135m", "gemma3-270m"],
                   [None, None] if outcome == "none" else [0.5, 0.5], outcome=outcome, winner=winner)


def _vote(run_id: str, outcome: str, winner: int = -1) -> Vote:
    return Vote(run_id, ["gemma3-270m", "smollm2-135m"], outcome, winner, "voter")


def test_agreement_counts_ties_explicitly() -> None:
    verdicts = [_pair("r1", "win", 0), _pair("r2", "win", 1), _pair("r3", "tie"), _pair("r4", "tie"),
                _pair("r5", "none")]
    votes = [
        _vote("r1", "win", 1),  # letters are gemma, smollm: B = smollm2 = column 0 -> agrees
        _vote("r2", "win", 1),  # smollm2 won, the judge chose gemma -> disagrees
        _vote("r3", "tie"),  # tie and tie -> agrees
        _vote("r4", "win", 0),  # a winner against the judge's tie -> disagrees
        _vote("r5", "win", 0),  # no readable verdict: counted apart
        _vote("r9", "win", 0),  # a run the judge never saw
    ]
    got = judge_agreement(votes, verdicts)
    assert (got.compared, got.agreed, got.human_ties, got.judge_ties, got.both_ties) == (4, 2, 1, 2, 1)
    assert (got.decisive, got.decisive_agreed, got.no_verdict, got.judged_runs) == (2, 1, 1, 4)
    assert got.rate == 0.5 and got.decisive_rate == 0.5
    assert judge_agreement(votes, verdicts, judge="another-judge").rate is None


def test_judge_spec_problems_name_the_field() -> None:
    assert JudgeSpec("smollm2-135m").problems(1) == []
    assert any("unknown method" in p for p in JudgeSpec("m", "vibes").problems(2))
    assert any("at least two models" in p for p in JudgeSpec("m", "pairwise").problems(1))
    assert any("two different columns" in p for p in JudgeSpec("m", "pairwise", columns=[1, 1]).problems(2))
    assert JudgeSpec(" ").problems(1) == ["judge: no model"]
