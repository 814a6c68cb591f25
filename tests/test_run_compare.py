"""Run against run: setup differences listed field by field, then the output diff."""

from __future__ import annotations

import dataclasses

import pytest
from sample_runs import make_run, model_run

from playground.inspect.diff import DiffOp
from playground.inspect.run_compare import FieldChange, compare_runs
from playground.record import GenerationParams, Run


def saved_pair() -> tuple[Run, Run]:
    """Two runs of the same prompt and models, as a round trip through JSON leaves them."""
    a = make_run(outputs=("The capital of France is Paris.", "Paris, of course."))
    b = Run.from_dict(a.to_dict())
    b.id = "second-run"
    return a, b


def test_identical_setup_lists_nothing() -> None:
    a, b = saved_pair()
    diff = compare_runs(a, b, 0, 0)
    assert diff.same_setup
    assert diff.summary() == []
    assert diff.output.ops == [DiffOp("equal", "The capital of France is Paris.")]
    assert (diff.run_a, diff.run_b) == (a.id, "second-run")


def test_changed_parameters_are_listed_with_old_and_new_values() -> None:
    a, b = saved_pair()
    a.models[0].params = GenerationParams(temperature=0.0, seed=1, max_new_tokens=32)
    b.models[0].params = GenerationParams(temperature=0.7, seed=2, max_new_tokens=64)
    diff = compare_runs(a, b, 0, 0)
    assert diff.params == [
        FieldChange("max_new_tokens", 32, 64),
        FieldChange("temperature", 0.0, 0.7),
        FieldChange("seed", 1, 2),
    ]
    assert not diff.same_setup
    assert "parameter temperature: 0 → 0.7" in diff.summary()
    assert "parameter seed: 1 → 2" in diff.summary()


def test_changed_stop_list_is_a_parameter_change() -> None:
    a, b = saved_pair()
    b.models[0].params.stop = ["\n\n", "###"]
    assert compare_runs(a, b, 0, 0).params == [FieldChange("stop", ["\n\n"], ["\n\n", "###"])]


def test_changed_prompt_and_system_prompt() -> None:
    a, b = saved_pair()
    b.prompt = "What is the capital of Italy?"
    b.system_prompt = ""
    diff = compare_runs(a, b, 0, 0)
    assert [op for op in diff.prompt.ops if op.kind != "equal"] == [
        DiffOp("delete", "France"),
        DiffOp("insert", "Italy"),
    ]
    assert diff.system_prompt.ops == [DiffOp("delete", "Be brief.")]
    assert diff.summary()[:2] == [
        "prompt changed: What is the capital of [\u2212France][+Italy]?",
        "system prompt changed: [\u2212Be brief.]",
    ]


def test_long_prompt_change_is_shortened_in_the_summary() -> None:
    a, b = saved_pair()
    a.prompt = " ".join(f"word{i}" for i in range(60))
    b.prompt = a.prompt.replace("word30", "CHANGED")
    line = compare_runs(a, b, 0, 0).summary()[0]
    assert "[\u2212word30][+CHANGED]" in line
    assert "word5 " not in line and len(line) < 150


def test_changed_model_identity() -> None:
    a, b = saved_pair()
    b.models[0].identity = dataclasses.replace(
        a.models[0].identity,
        sha256="f" * 64,
        dtype="bfloat16",
        device="cuda:0",
        location="/other/smollm2-135m.gguf",
        libraries={"torch": "2.13.0", "transformers": "4.57.0", "accelerate": "1.15.0"},
    )
    diff = compare_runs(a, b, 0, 0)
    assert diff.identity == [
        FieldChange("location", "/models/smollm2-135m.gguf", "/other/smollm2-135m.gguf"),
        FieldChange("sha256", "0123456789abcdef" * 4, "f" * 64),
        FieldChange("dtype", "float32", "bfloat16"),
        FieldChange("device", "cpu", "cuda:0"),
        FieldChange("libraries.accelerate", "", "1.15.0"),
        FieldChange("libraries.gguf", "0.17.1", ""),
        FieldChange("libraries.torch", "2.5.1", "2.13.0"),
    ]
    assert "model libraries.gguf: 0.17.1 → (none)" in diff.summary()


def test_different_columns_compare_different_models() -> None:
    a, b = saved_pair()
    diff = compare_runs(a, b, 0, 1)
    names = [c.name for c in diff.identity]
    assert names[:3] == ["catalog_id", "name", "location"]
    assert (diff.column_a, diff.column_b) == (0, 1)


def test_specials_as_text_and_outcome() -> None:
    a, b = saved_pair()
    b.specials_as_text = True
    b.models[0] = model_run(0, ["The", " capital", " is"])
    b.models[0].finish_reason = "length"
    diff = compare_runs(a, b, 0, 0)
    assert diff.specials_as_text == FieldChange("specials_as_text", False, True)
    assert diff.outcome == [FieldChange("finish_reason", "eos", "length"), FieldChange("output tokens", 6, 3)]


def test_output_diff_of_the_two_columns() -> None:
    a, b = saved_pair()
    b.models[0] = model_run(0, ["The", " capital", " of", " France", " is", " Lyon", "."])
    diff = compare_runs(a, b, 0, 0)
    assert diff.output.ops == [
        DiffOp("equal", "The capital of France is "),
        DiffOp("delete", "Paris"),
        DiffOp("insert", "Lyon"),
        DiffOp("equal", "."),
    ]
    assert diff.output.error == ""
    assert diff.same_setup  # same prompt, model, parameters: the output changed on its own


def test_failed_column_gives_a_message_instead_of_a_diff() -> None:
    a, b = saved_pair()
    b.models[1] = model_run(1, [], catalog_id="gemma3-270m", error="CUDA out of memory")
    diff = compare_runs(a, b, 1, 1)
    assert diff.output.ops == []
    assert diff.output.error == "cannot diff: run b column 2 failed: CUDA out of memory"
    assert FieldChange("finish_reason", "eos", "error") in diff.outcome


def test_missing_column_is_an_error() -> None:
    a, b = saved_pair()
    with pytest.raises(ValueError, match=r"run b \(second-run\) has no column 5; it has columns \[0, 1\]"):
        compare_runs(a, b, 0, 5)
