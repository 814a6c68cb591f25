"""Re-running a saved run: the request it makes, and how the new run is compared with the old."""

from __future__ import annotations

import copy

from sample_runs import make_run, model_run

from playground.engine import RunRequest
from playground.record import GenerationParams, Run
from playground.sessions.rerun import SNIPPET, compare_runs, request_from

WORDS = ["The", " capital", " of", " France", " is", " Paris", ".", " It", " is", " big", "."]


def _run(*columns: list[str], errors: tuple[str, ...] = (), params: GenerationParams | None = None) -> Run:
    models = [
        model_run(i, pieces, ("smollm2-135m", "gemma3-270m")[i % 2], params=copy.deepcopy(params))
        for i, pieces in enumerate(columns)
    ]
    for i, error in enumerate(errors):
        if error:
            models[i] = model_run(i, [], models[i].identity.catalog_id, error=error)
    return Run(prompt="What is the capital of France?", models=models)


def test_identical_runs_match_column_by_column() -> None:
    saved = _run(WORDS, WORDS[:5])
    new = copy.deepcopy(saved)
    new.id = Run(prompt="x").id  # a re-run is a new run with its own id and time
    new.created_at += 60
    matches = compare_runs(saved, new)
    assert [m.column for m in matches] == [0, 1]
    assert [m.model for m in matches] == ["smollm2-135m", "gemma3-270m"]
    for match, n in zip(matches, (len(WORDS), 5), strict=True):
        assert match.identical
        assert match.first_difference is None
        assert (match.saved_tokens, match.new_tokens) == (n, n)
        assert (match.saved_snippet, match.new_snippet) == ("", "")
        assert match.note == ""  # greedy: nothing to warn about


def test_difference_at_token_k_is_reported_with_snippets() -> None:
    k = 5
    changed = WORDS[:k] + [" Lyon", ".", " It", " is", " small", "."]
    saved, new = _run(WORDS), _run(changed)
    (match,) = compare_runs(saved, new)
    assert not match.identical
    assert match.first_difference == k
    assert (match.saved_tokens, match.new_tokens) == (len(WORDS), len(changed))
    # the snippets show the tokens around the split: three before it and a few after
    assert match.saved_snippet == "".join(WORDS[k - 3 : k + 6])[:SNIPPET]
    assert match.new_snippet == "".join(changed[k - 3 : k + 6])[:SNIPPET]
    assert " Paris" in match.saved_snippet
    assert " Lyon" in match.new_snippet
    assert match.saved_snippet.startswith(" of France is")


def test_difference_at_the_first_token() -> None:
    saved, new = _run(WORDS), _run(["Paris", "."])
    (match,) = compare_runs(saved, new)
    assert match.first_difference == 0
    assert match.saved_snippet.startswith("The capital")
    assert match.new_snippet == "Paris."


def test_a_shorter_output_differs_where_it_ends() -> None:
    saved, new = _run(WORDS), _run(WORDS[:7])
    (match,) = compare_runs(saved, new)
    assert not match.identical
    assert match.first_difference == 7
    assert (match.saved_tokens, match.new_tokens) == (len(WORDS), 7)
    assert match.saved_snippet == "".join(WORDS[4:13])
    assert match.new_snippet == "".join(WORDS[4:7])


def test_only_the_differing_column_is_reported_as_different() -> None:
    saved = _run(WORDS, WORDS)
    new = _run(WORDS, WORDS[:3] + [" Spain"])
    first, second = compare_runs(saved, new)
    assert first.identical
    assert not second.identical
    assert second.first_difference == 3


def test_a_column_that_fails_on_the_rerun() -> None:
    saved = _run(WORDS)
    new = _run(WORDS, errors=("model file missing: /models/smollm2-135m.gguf",))
    (match,) = compare_runs(saved, new)
    assert not match.identical
    assert match.first_difference == 0
    assert (match.saved_tokens, match.new_tokens) == (len(WORDS), 0)
    assert match.saved_snippet.startswith("The capital")
    assert match.new_snippet == "model file missing: /models/smollm2-135m.gguf"[:SNIPPET]
    assert match.note == "failed on re-run"


def test_a_column_that_had_failed_when_saved() -> None:
    saved = _run(WORDS, errors=("out of memory",))
    (match,) = compare_runs(saved, _run(WORDS))
    assert not match.identical
    assert match.saved_snippet == "out of memory"
    assert match.note == "failed when saved"


def test_a_column_that_fails_the_same_way_both_times_is_identical() -> None:
    saved = _run(WORDS, errors=("unknown model 'nope'",))
    new = _run(WORDS, errors=("unknown model 'nope'",))
    (match,) = compare_runs(saved, new)
    assert match.identical
    assert match.note == "failed both times"


def test_same_tokens_but_different_error_are_not_identical() -> None:
    saved = _run(WORDS, errors=("timeout after 5 s",))
    new = _run(WORDS, errors=("timeout after 6 s",))
    (match,) = compare_runs(saved, new)
    assert not match.identical
    assert match.note == "failed both times"


def test_sampled_columns_carry_a_note_with_temperature_and_seed() -> None:
    params = GenerationParams(max_new_tokens=32, temperature=0.7, top_p=0.9, seed=1234)
    saved = _run(WORDS, params=params)
    (same,) = compare_runs(saved, _run(WORDS, params=params))
    assert same.identical
    assert same.note == "sampled (temperature 0.7, seed 1234)"
    (differs,) = compare_runs(saved, _run(WORDS[:2] + [" city"], params=params))
    assert not differs.identical
    assert differs.first_difference == 2
    assert "seed 1234" in differs.note


def test_request_from_reproduces_prompt_system_models_and_params() -> None:
    saved = make_run(prompt="Name three <b>rivers</b> ☕", system_prompt="Answer in French.")
    saved.models[0].params = GenerationParams(
        max_new_tokens=48, temperature=0.8, top_p=0.95, top_k=40, repetition_penalty=1.1,
        seed=98765, stop=["\n\n", "END"], timeout_s=42.0,
    )
    saved.models[1].params = GenerationParams(max_new_tokens=8, seed=3)
    request = request_from(saved)
    assert isinstance(request, RunRequest)
    assert request.prompt == "Name three <b>rivers</b> ☕"
    assert request.system_prompt == "Answer in French."
    assert [c.model for c in request.columns] == ["smollm2-135m", "gemma3-270m"]
    assert [c.params for c in request.columns] == [m.params for m in saved.models]
    assert request.columns[0].params.seed == 98765
    assert request.columns[0].params.stop == ["\n\n", "END"]
    assert request.columns[1].params.seed == 3


def test_request_from_falls_back_to_the_model_location() -> None:
    saved = make_run()
    saved.models[1].identity.catalog_id = ""
    saved.models[1].identity.location = "/home/me/models/tiny.gguf"
    request = request_from(saved)
    assert [c.model for c in request.columns] == ["smollm2-135m", "/home/me/models/tiny.gguf"]


def test_request_from_a_run_without_models_has_no_columns() -> None:
    request = request_from(Run(prompt="hello"))
    assert (request.prompt, request.system_prompt, request.columns) == ("hello", "", [])


def test_request_from_uses_the_reference_the_user_picked() -> None:
    """A model picked by path gets the file stem as catalog id: Run again must load the path again."""
    saved = make_run()
    saved.models[0].identity.catalog_id = "SmolLM2-135M-Instruct.Q4_1"
    saved.models[0].identity.reference = "/some/path/x.gguf"
    saved.models[0].identity.location = "/some/path/x.gguf"
    saved.models[1].identity.catalog_id = "Qwen2.5-0.5B-Instruct"
    saved.models[1].identity.reference = "Qwen/Qwen2.5-0.5B-Instruct"  # a hub id
    saved.models[1].identity.location = "/cache/hub/models--Qwen--Qwen2.5-0.5B-Instruct/snapshots/abc"
    request = request_from(saved)
    assert [c.model for c in request.columns] == ["/some/path/x.gguf", "Qwen/Qwen2.5-0.5B-Instruct"]


def test_request_from_an_older_record_without_a_reference_uses_the_catalog_id() -> None:
    saved = make_run()
    assert saved.models[0].identity.reference == ""
    assert [c.model for c in request_from(saved).columns] == ["smollm2-135m", "gemma3-270m"]
