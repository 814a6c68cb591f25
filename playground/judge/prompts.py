"""The judge's prompts: short, one verdict line asked for first (a small judge keeps to a format it
has just been shown). Answers are cut to MAX_ANSWER_CHARS so a rambling column cannot fill the
judge's context. Parsing the reply: parse.py."""

from __future__ import annotations

from playground.judge.spec import SCALE

MAX_ANSWER_CHARS = 1500
MAX_QUESTION_CHARS = 2000
LETTERS = "ABCDEFGHIJKLMNOP"  # best: one letter per column (batch/spec.py MAX_COLUMNS is 16)


def _cut(text: str, limit: int) -> str:
    text = text.strip()
    return text if len(text) <= limit else text[:limit] + " [...cut]"


def rubric_prompt(question: str, answer: str, rubric: str, expected: str = "") -> str:
    reference = f"\nReference answer: {_cut(expected, MAX_ANSWER_CHARS)}\n" if expected.strip() else ""
    return (f"Grade the answer to the question.\nRubric: {rubric}\n\n"
            f"Question: {_cut(question, MAX_QUESTION_CHARS)}\n{reference}\n"
            f"Answer: {_cut(answer, MAX_ANSWER_CHARS) or '(empty)'}\n\n"
            f"Give a grade from 1 (bad) to {SCALE} (excellent). Reply with \"Score: N\" on the first "
            "line, then one sentence saying why.")


def pairwise_prompt(question: str, first: str, second: str, rubric: str) -> str:
    return (f"Two answers to the same question. Which one is better?\nRubric: {rubric}\n\n"
            f"Question: {_cut(question, MAX_QUESTION_CHARS)}\n\n"
            f"Answer A: {_cut(first, MAX_ANSWER_CHARS) or '(empty)'}\n\n"
            f"Answer B: {_cut(second, MAX_ANSWER_CHARS) or '(empty)'}\n\n"
            "Reply with \"Winner: A\", \"Winner: B\" or \"Winner: tie\" on the first line, then one "
            "sentence saying why.")


def best_prompt(question: str, answers: list[str], rubric: str) -> str:
    letters = LETTERS[:len(answers)]
    shown = "\n\n".join(f"Answer {letter}: {_cut(a, MAX_ANSWER_CHARS) or '(empty)'}"
                        for letter, a in zip(letters, answers, strict=True))
    return (f"Several answers to the same question. Which one is best?\nRubric: {rubric}\n\n"
            f"Question: {_cut(question, MAX_QUESTION_CHARS)}\n\n{shown}\n\n"
            f"Reply with \"Best: X\" (X one of {', '.join(letters)}) on the first line, then one "
            "sentence saying why.")
