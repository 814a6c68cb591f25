"""A replay of the largest runs the limits allow renders in seconds, from the functions the page calls.

The page's replay draws every panel from the record (ui/whole_page.py Page.show): the column outputs, the
tokens, probabilities, compare (word diffs, agreement) and sources panels. Each is called here on a
run that the store would accept (limits.py), with a repetitive vocabulary, the worst case for diffs.
"""

from __future__ import annotations

import dataclasses
import json
import random
import time
from typing import Any

import pytest

from playground.inspect.diff import EQUAL, baseline_text, diff_words, other_text, word_diff
from playground.limits import (
    MAX_COLUMNS,
    MAX_OUTPUT_CHARS,
    MAX_OUTPUT_STEPS,
    check_record,
    check_record_bytes,
)
from playground.record import GenerationParams, ModelIdentity, ModelRun, Run, TokenAlt, TokenStep
from playground.ui import html as H
from playground.ui.attention_view import AttentionPanel
from playground.ui.diff_view import ComparePanel
from playground.ui.prob_view import ProbsPanel, column_html
from playground.ui.sources_view import SourcesPanel
from playground.ui.token_view import TokensPanel

pytestmark = pytest.mark.timeout(300)
WORDS = [" alpha", " beta", " gamma", " delta", " eps", " zeta", " eta", " theta"]
BUDGET_S = 20.0  # measured ~3 s on 2 shared cores; before the limits the compare panel alone never ended


def _panel(cls: type) -> Any:
    """A panel whose components are plain names: its render() returns the updates keyed by them."""
    return cls(*[f"{cls.__name__}.{f.name}" for f in dataclasses.fields(cls)])


def _column(index: int, steps: int, seed: int) -> ModelRun:
    rnd = random.Random(seed)
    alternatives = [TokenAlt(k, word, -1.0 - k) for k, word in enumerate(WORDS[:5])]
    made = [TokenStep(k, rnd.choice(WORDS), -0.5, alternatives) for k in range(steps)]
    identity = ModelIdentity(f"served-{index}", f"served-{index}", "openai", "http://127.0.0.1:1/v1")
    return ModelRun(index, identity, GenerationParams(max_new_tokens=MAX_OUTPUT_STEPS), steps=made,
                    text="".join(s.text for s in made), finish_reason="length")


def _savable(run: Run) -> Run:
    """The run, after checking that the store would keep it: within every limit, export size included."""
    data = run.to_dict()
    check_record(data)
    check_record_bytes(len(json.dumps(data, ensure_ascii=False).encode("utf-8")))
    return run


def _replay(run: Run) -> float:
    """Seconds to draw everything a replay of the run shows."""
    started = time.perf_counter()
    for cls in (TokensPanel, ProbsPanel, ComparePanel, SourcesPanel, AttentionPanel):
        assert _panel(cls).render(run)
    for model in run.models:
        H.conversation_markdown(run, model.column)
        H.column_header(model, "")
    return time.perf_counter() - started


@pytest.mark.parametrize(("columns", "steps"), [(5, MAX_OUTPUT_STEPS), (MAX_COLUMNS, 3_000)],
                         ids=["longest-columns", "most-columns"])
def test_a_replay_of_the_largest_run_renders_in_seconds(columns: int, steps: int) -> None:
    run = _savable(Run(prompt="Write a lot.", models=[_column(i, steps, i) for i in range(columns)]))
    assert _replay(run) < BUDGET_S


def test_one_chunk_at_the_limit_is_drawn_once_not_again_in_every_tooltip() -> None:
    big = _column(0, 1, 0)
    big.steps[0].text = big.text = "a" * MAX_OUTPUT_CHARS
    other = _column(1, 2_000, 1)
    run = _savable(Run(prompt="Write a lot.", models=[big, other]))
    assert _replay(run) < BUDGET_S
    assert len(column_html(big)) < 1.5 * MAX_OUTPUT_CHARS
    chips = _panel(TokensPanel).render(run)["TokensPanel.chips"]
    assert len(chips) < 2.5 * MAX_OUTPUT_CHARS  # the text and its data attribute; tooltips quote 80


def test_a_diff_past_the_word_budget_still_rebuilds_both_texts() -> None:
    a, b = _column(0, 20_000, 0).text, _column(1, 20_000, 1).text
    b = a[:1000] + b + a[-1000:]  # a common start and end around a long change
    ops = word_diff(a, b, diff_words(MAX_COLUMNS - 1))
    assert (baseline_text(ops), other_text(ops)) == (a, b)
    assert ops[0].kind == EQUAL and ops[-1].kind == EQUAL
