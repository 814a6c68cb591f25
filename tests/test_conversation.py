"""Conversations and per-column system prompts, on the real bundled models (CPU, short generations).

A follow-up continues every column's own conversation: each model sees its own earlier answers,
templated with its own chat template (or the question/answer frame), and each turn keeps its own
tokens, probabilities and attention in the record.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from playground.backends.local import LocalBackend
from playground.engine import ColumnRequest, Engine, RequestError, RunRequest
from playground.inspect.run_compare import compare_runs
from playground.record import GenerationParams, Run
from playground.sessions.bundle import export_bundle, import_bundle
from playground.sessions.rerun import follow_up_from, request_from
from playground.sessions.store import SessionStore

pytestmark = pytest.mark.timeout(900)
REPO = Path(__file__).resolve().parent.parent
FIRST = "My name is Ada and I keep bees. Say hello to me."
SECOND = "What is my name?"


def greedy(n: int = 16) -> GenerationParams:
    return GenerationParams(max_new_tokens=n)


def pieces_text(run: Run, column: int) -> str:
    return "".join(p.text for p in run.models[column].prompt_pieces)


@pytest.fixture(scope="module")
def two_turns(engine: Engine) -> tuple[Run, Run]:
    first = engine.run(RunRequest(prompt=FIRST, system_prompt="Be brief.",
                                  columns=[ColumnRequest("smollm2-135m", greedy()),
                                           ColumnRequest("gemma3-270m", greedy())]))
    second = engine.run(follow_up_from(first, SECOND))
    return first, second


def test_each_column_sees_its_own_earlier_answer(two_turns: tuple[Run, Run]) -> None:
    first, second = two_turns
    assert second.parent_id == first.id and len(second.history) == 1
    assert second.history[0].prompt == FIRST
    for column in (0, 1):
        own, other = first.models[column].text, first.models[1 - column].text
        assert own.strip() and own.strip() != other.strip(), "the two answers should differ"
        seen = pieces_text(second, column)
        assert FIRST in seen and SECOND in seen and own in seen
        assert other not in seen, f"column {column} saw the other model's answer"
        assert second.models[column].error == "" and second.models[column].steps


def test_the_whole_conversation_is_templated_exactly(two_turns: tuple[Run, Run], smollm2: LocalBackend,
                                                     gemma: LocalBackend) -> None:
    first, second = two_turns
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": FIRST},
                {"role": "assistant", "content": first.models[0].text}, {"role": "user", "content": SECOND}]
    expected = smollm2.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True,
                                                     return_dict=True)["input_ids"]
    assert second.models[0].prompt_token_ids == list(expected)
    framed = (f"<bos>Be brief.\n\nQuestion: {FIRST}\nAnswer:{first.models[1].text}\n"
              f"Question: {SECOND}\nAnswer:")
    assert pieces_text(second, 1) == framed
    assert second.models[1].identity.prompt_format == "question/answer frame"


def test_each_turn_keeps_its_own_evidence(two_turns: tuple[Run, Run]) -> None:
    first, second = two_turns
    for column in (0, 1):
        earlier = second.history[0].models[column]
        assert earlier.steps == first.models[column].steps  # tokens and probabilities of turn 1
        assert earlier.attention is not None and second.models[column].attention is not None
        later = second.models[column]
        before = first.models[column].metrics.prompt_tokens
        assert later.metrics.prompt_tokens > before + len(earlier.steps) - 2  # the whole conversation


def test_a_conversation_saves_replays_exports_and_imports(two_turns: tuple[Run, Run], tmp_path: Path) -> None:
    first, second = two_turns
    store = SessionStore(tmp_path / "runs.sqlite3")
    store.save(first)
    store.save(second)
    back = store.get(second.id)
    assert back == second and back.history[0].models[0].text == first.models[0].text
    imported = import_bundle(export_bundle(second))
    assert imported == second
    doc = json.loads(export_bundle(second))
    doc["run"]["history"][0]["models"].pop()  # a turn that lost a column is not one conversation
    with pytest.raises(ValueError, match=r"run.history\[0\] has 1 column and the run 2"):
        import_bundle(json.dumps(doc))


def test_older_records_load_as_one_turn_conversations() -> None:
    old = {"schema_version": 7, "prompt": "hi", "models": [], "id": "A" * 23, "created_at": 1.7e9}
    run = Run.from_dict(old)
    assert run.history == [] and run.parent_id == ""


def test_run_again_repeats_the_turn_with_the_same_earlier_answers(engine: Engine, two_turns) -> None:
    _first, second = two_turns
    request = request_from(second)
    assert request.history == second.history and request.parent_id == second.parent_id
    again = engine.run(request)
    assert [m.output_token_ids for m in again.models] == [m.output_token_ids for m in second.models]


def test_the_context_pre_flight_counts_every_turn(engine: Engine) -> None:
    long = "bees " * 7000  # ~7,000 tokens: the follow-up alone is short, the conversation is not
    first = engine.run(RunRequest(prompt=long, columns=[ColumnRequest("smollm2-135m", greedy(4))],
                                  capture_attention=False))
    request = follow_up_from(first, "And then?")
    request.columns[0].params = GenerationParams(max_new_tokens=2000)
    second = engine.tokenize(request)
    kinds = [a.kind for a in second.models[0].anomalies]
    assert "context_overflow" in kinds, kinds
    assert second.models[0].metrics.prompt_tokens > 7000


def test_a_follow_up_must_keep_the_conversations_columns(engine: Engine, two_turns) -> None:
    _first, second = two_turns
    request = follow_up_from(second, "More?")
    request.columns.pop()
    with pytest.raises(RequestError, match="turn 1 of the conversation has 2 column"):
        engine.run(request)


def test_a_column_can_have_its_own_system_prompt(engine: Engine, smollm2: LocalBackend) -> None:
    run = engine.tokenize(RunRequest(prompt="Hello", system_prompt="Be brief.", columns=[
        ColumnRequest("smollm2-135m", greedy(), system_prompt="You are a pirate."),
        ColumnRequest("smollm2-135m", greedy())]))
    pirate, plain = run.models
    assert "You are a pirate." in pieces_text(run, 0) and "Be brief." not in pieces_text(run, 0)
    assert "Be brief." in pieces_text(run, 1)
    assert (pirate.system_prompt, plain.system_prompt) == ("You are a pirate.", None)
    assert run.column_system_prompt(pirate) == "You are a pirate."
    assert run.column_system_prompt(plain) == "Be brief."
    diff = compare_runs(run, run, 0, 1)
    assert any(line.startswith("system prompt changed") for line in diff.summary())
    assert not diff.same_setup
    assert Run.from_dict(json.loads(run.to_json())).models[0].system_prompt == "You are a pirate."


def test_diff_of_two_turns_names_the_different_conversation(two_turns: tuple[Run, Run]) -> None:
    first, second = two_turns
    diff = compare_runs(first, second, 0, 0)
    assert "earlier turns: 0 turns → 1 turn" in diff.summary()


def _cli(*args: str, db: Path, data_dir: Path) -> subprocess.CompletedProcess:
    env = {"PLAYGROUND_DATA_DIR": str(data_dir), "PLAYGROUND_DB": str(db), "PATH": "/usr/bin:/bin",
           "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "playground", *args], capture_output=True, text=True,
                          env=env, timeout=600, cwd=REPO)


def test_cli_continue_saves_a_linked_follow_up(tmp_path: Path, data_dir: Path) -> None:
    db = tmp_path / "runs.sqlite3"
    first = _cli("compare", "--model", "smollm2-135m", "--max-new-tokens", "8", "--no-attention", "--json",
                 FIRST, db=db, data_dir=data_dir)
    assert first.returncode == 0, first.stderr
    first_id = json.loads(first.stdout)["saved_id"]
    second = _cli("compare", "--continue", first_id, "--max-new-tokens", "8", "--no-attention", "--json",
                  SECOND, db=db, data_dir=data_dir)
    assert second.returncode == 0, second.stderr
    doc = json.loads(second.stdout)
    assert doc["parent_id"] == first_id and doc["saved_id"] != first_id
    assert [t["prompt"] for t in doc["history"]] == [FIRST]
    assert SECOND in "".join(p["text"] for p in doc["models"][0]["prompt_pieces"])
    both = _cli("compare", "--continue", first_id, "--model", "gemma3-270m", "x", db=db, data_dir=data_dir)
    assert both.returncode == 2 and "leave out --model and --system" in both.stderr
    missing = _cli("compare", "--continue", "A" * 23, "x", db=db, data_dir=data_dir)
    assert missing.returncode == 2 and "cannot continue" in missing.stderr
    assert "Traceback" not in missing.stderr
