"""Running the judge: each verdict is one run of the judge model through the run service, like any
column (greedy, JudgeSpec.max_new_tokens), never saved as a run of its own: the verdict keeps the
judge's prompt and reply instead (verdict.py)."""

from __future__ import annotations

import random
import threading
from collections.abc import Callable
from typing import Protocol

from playground.judge.parse import Parsed, parse_grade, parse_letter
from playground.judge.prompts import LETTERS, best_prompt, pairwise_prompt, rubric_prompt
from playground.judge.spec import JudgeError, JudgeSpec
from playground.judge.verdict import Verdict
from playground.live import LiveRun, Outcome
from playground.record import GenerationParams, Run
from playground.requests import ColumnRequest, RunRequest
from playground.sessions.store import SessionStore


class JudgeService(Protocol):
    """What the judge needs of the run service (playground/service.py RunService): named here, as a
    protocol, so that this package does not import the service above it."""

    @property
    def store(self) -> SessionStore: ...

    def start(self, request: RunRequest, key: str, owner: str, search_notice: str = "") -> LiveRun: ...

    def finish(self, live: LiveRun, save: bool = True) -> Outcome: ...


Ask = Callable[[str], str]  # a judge prompt in, the judge's reply out


def asker(service: JudgeService, spec: JudgeSpec, owner: str = "judge",
          cancel: threading.Event | None = None) -> Ask:
    """Ask the judge model one prompt (greedy, short), through the same engine path as any column.
    JudgeError when the judge model fails (its error is the message); RequestError when it cannot start."""
    params = GenerationParams(max_new_tokens=spec.max_new_tokens, temperature=0.0)

    def ask(prompt: str) -> str:
        request = RunRequest(prompt=prompt, columns=[ColumnRequest(spec.model, params)],
                             capture_attention=False)
        live = service.start(request, key=f"judge:{owner}", owner=owner)
        try:
            for _event in live.events:
                if cancel is not None and cancel.is_set():
                    live.cancel.set()
        finally:
            service.finish(live, save=False)
        model = live.record.models[0]
        if model.error:
            raise JudgeError(f"the judge {spec.model} failed: {model.error}")
        return model.text

    return ask


def _answered(run: Run, column: int) -> bool:
    return column < len(run.models) and not run.models[column].error


def _base(spec: JudgeSpec, run: Run, index: int, columns: list[int]) -> Verdict:
    return Verdict(spec.method, spec.model, run.id, index, columns,
                   [run.models[c].identity.catalog_id for c in columns])


def rubric(ask: Ask, spec: JudgeSpec, run: Run, index: int, column: int, expected: str = "") -> Verdict:
    """A grade for one column's answer against the rubric (and the expected answer, if shown)."""
    v = _base(spec, run, index, [column])
    prompt = rubric_prompt(run.prompt, run.models[column].text, spec.rubric_text,
                           expected if spec.reference else "")
    reply = ask(prompt)
    parsed = parse_grade(reply)
    v.prompts, v.outputs = [prompt], [reply]
    v.scores, v.rationale = [parsed.value], [parsed.rationale if parsed.ok else parsed.note]
    v.outcome = "graded" if parsed.ok else "none"
    return v


def pairwise(ask: Ask, spec: JudgeSpec, run: Run, index: int, a: int, b: int) -> Verdict:
    """Column a against column b, asked in both orders (a shown first, then b shown first) to cancel the
    judge's position bias: the same winner both times wins; two different verdicts are a tie."""
    v = _base(spec, run, index, [a, b])
    answer_a, answer_b = run.models[a].text, run.models[b].text
    v.prompts = [pairwise_prompt(run.prompt, answer_a, answer_b, spec.rubric_text),
                 pairwise_prompt(run.prompt, answer_b, answer_a, spec.rubric_text)]
    v.outputs = [ask(p) for p in v.prompts]
    first, second = (parse_letter(o, "AB") for o in v.outputs)
    picks = [_column(first, a, b), _column(second, b, a)]  # each order's winner as a column, -1 tie
    if not (first.ok and second.ok):
        orders = (("first order", first), ("second order", second))
        note = "; ".join(f"{label}: {p.note}" for label, p in orders if not p.ok)
        v.scores, v.rationale, v.outcome = [None, None], [note, note], "none"
        return v
    v.consistent = picks[0] == picks[1]
    if v.consistent and picks[0] >= 0:
        v.winner, v.outcome = picks[0], "win"
        v.scores = [1.0 if c == picks[0] else 0.0 for c in (a, b)]
        why = f"both orders chose column {picks[0] + 1}: {first.rationale or second.rationale}"
    else:
        v.outcome, v.scores = "tie", [0.5, 0.5]
        why = ("a tie in both orders" if v.consistent else
               f"the orders disagreed (column {a + 1} shown first: {_said(picks[0])}; column {b + 1} shown "
               f"first: {_said(picks[1])}), so a tie")
        why += f": {first.rationale or second.rationale}" if first.rationale or second.rationale else ""
    v.rationale = [why[:600], why[:600]]
    return v


def _column(parsed: Parsed, shown_a: int, shown_b: int) -> int:
    return shown_a if parsed.letter == "A" else shown_b if parsed.letter == "B" else -1


def _said(column: int) -> str:
    return f"column {column + 1}" if column >= 0 else "a tie"


def best(ask: Ask, spec: JudgeSpec, run: Run, index: int, columns: list[int]) -> Verdict:
    """The best of the answered columns, shown in a shuffled order (seed spec.seed + index, recorded),
    the judge's letter mapped back to its column: 1 for the best, 0 for the others."""
    v = _base(spec, run, index, columns)
    v.seed = spec.seed + index
    shown = list(columns)
    random.Random(v.seed).shuffle(shown)
    v.shown = shown
    prompt = best_prompt(run.prompt, [run.models[c].text for c in shown], spec.rubric_text)
    reply = ask(prompt)
    parsed = parse_letter(reply, LETTERS[:len(shown)], tie=False)
    v.prompts, v.outputs = [prompt], [reply]
    order = ", ".join(f"{LETTERS[i]} = column {c + 1}" for i, c in enumerate(shown))
    if not parsed.ok:
        v.scores, v.rationale, v.outcome = [None] * len(columns), [parsed.note] * len(columns), "none"
        return v
    v.winner, v.outcome = shown[LETTERS.index(parsed.letter)], "win"
    v.scores = [1.0 if c == v.winner else 0.0 for c in columns]
    why = f"shown as {order}; chose {parsed.letter} (column {v.winner + 1}): {parsed.rationale}"
    v.rationale = [why[:600]] * len(columns)
    return v


def judge_run(ask: Ask, spec: JudgeSpec, run: Run, index: int = 0, expected: str = "") -> list[Verdict]:
    """Every verdict the spec asks for on one saved run (a failed column is left unjudged)."""
    if spec.method == "rubric":
        return [rubric(ask, spec, run, index, c, expected)
                for c in range(len(run.models)) if _answered(run, c)]
    if spec.method == "pairwise":
        a, b = spec.pair()
        if not (_answered(run, a) and _answered(run, b)):
            return []
        return [pairwise(ask, spec, run, index, a, b)]
    answered = [c for c in range(len(run.models)) if _answered(run, c)]
    return [best(ask, spec, run, index, answered)] if len(answered) >= 2 else []
