"""The run record survives JSON exactly, and refuses what it cannot read."""

from __future__ import annotations

import copy
import json

import pytest

from playground.record import (
    SCHEMA_VERSION,
    GenerationParams,
    Metrics,
    ModelIdentity,
    ModelRun,
    RecordError,
    Run,
    TokenAlt,
    TokenStep,
)


def _sample_run() -> Run:
    identity = ModelIdentity(
        catalog_id="smollm2-135m",
        name="SmolLM2 135M Instruct (Q4_1)",
        source="gguf",
        location="/models/SmolLM2-135M-Instruct.Q4_1.gguf",
        sha256="b179c952" * 8,
        dtype="float32",
        device="cpu",
        context_window=8192,
        prompt_format="chat template",
        libraries={"torch": "2.13.0", "transformers": "5.23.0"},
        decode_path="fast path: CUDA graph, 2 columns batched",
    )
    steps = [
        TokenStep(
            token_id=504,
            text="The",
            logprob=-0.0123456789,
            top=[TokenAlt(504, "The", -0.0123456789), TokenAlt(1426, "Paris", -4.5)],
        ),
        TokenStep(
            token_id=6511, text=" café ☕", logprob=-1.25e-7, top=[TokenAlt(6511, " café ☕", -1.25e-7)]
        ),
        TokenStep(token_id=2, text="<|im_end|>", logprob=-0.5, top=[]),
    ]
    first = ModelRun(
        column=0,
        identity=identity,
        params=GenerationParams(
            max_new_tokens=16, temperature=0.7, top_p=0.9, top_k=40, seed=7, stop=["\n\n"]
        ),
        prompt_token_ids=[1, 9690, 198, 2683],
        steps=steps,
        text="The café ☕",
        finish_reason="eos",
        metrics=Metrics(
            load_s=1.5, loaded_from_cache=True, prompt_tokens=4, output_tokens=3, ttft_s=0.25,
            decode_tok_s=21.5, total_s=0.4, peak_memory_bytes=123_456_789, memory_kind="process RSS growth",
            graph_capture_s=0.42,
        ),
    )
    second = ModelRun(
        column=1,
        identity=ModelIdentity(catalog_id="nope", name="nope", source="", location=""),
        params=GenerationParams(),
        finish_reason="error",
        error="unknown model 'nope'",
    )
    return Run(prompt="What is the capital of France?", system_prompt="Be brief.", models=[first, second])


def test_run_round_trips_through_json_unchanged() -> None:
    run = _sample_run()
    back = Run.from_dict(json.loads(run.to_json()))
    assert back == run
    # nested records come back as dataclasses, not dicts
    assert isinstance(back.models[0].identity, ModelIdentity)
    assert isinstance(back.models[0].params, GenerationParams)
    assert isinstance(back.models[0].metrics, Metrics)
    assert isinstance(back.models[0].steps[0], TokenStep)
    assert isinstance(back.models[0].steps[0].top[1], TokenAlt)
    assert back.models[0].output_token_ids == [504, 6511, 2]
    assert back.models[0].params.stop == ["\n\n"]
    assert back.to_json() == run.to_json()


def test_pretty_json_round_trips_and_keeps_non_ascii_text() -> None:
    run = _sample_run()
    text = run.to_json(indent=2)
    assert "café ☕" in text  # not \u escapes: the JSON stays readable
    assert Run.from_dict(json.loads(text)) == run


def test_empty_run_round_trips() -> None:
    run = Run(prompt="hi")
    assert run.schema_version == SCHEMA_VERSION
    assert Run.from_dict(json.loads(run.to_json())) == run


def test_future_schema_version_is_refused() -> None:
    data = _sample_run().to_dict()
    data["schema_version"] = SCHEMA_VERSION + 1
    with pytest.raises(ValueError, match="unsupported run record schema version") as info:
        Run.from_dict(data)
    assert str(SCHEMA_VERSION + 1) in str(info.value)


@pytest.mark.parametrize("version", [0, None, "1", 1.0])
def test_missing_or_malformed_schema_version_is_refused(version: object) -> None:
    data = _sample_run().to_dict()
    if version is None:
        del data["schema_version"]
    else:
        data["schema_version"] = version
    with pytest.raises(ValueError, match="schema version"):
        Run.from_dict(data)


def test_unknown_top_level_field_is_refused() -> None:
    data = _sample_run().to_dict()
    data["colour"] = "blue"
    with pytest.raises(RecordError, match=r"^run: unknown fields \['colour'\]"):
        Run.from_dict(data)


@pytest.mark.parametrize(
    ("path", "owner"),
    [
        (("models", 0), r"run\.models\[0\]"),
        (("models", 0, "identity"), r"run\.models\[0\]\.identity"),
        (("models", 0, "params"), r"run\.models\[0\]\.params"),
        (("models", 0, "metrics"), r"run\.models\[0\]\.metrics"),
        (("models", 0, "steps", 0), r"run\.models\[0\]\.steps\[0\]"),
        (("models", 0, "steps", 0, "top", 1), r"run\.models\[0\]\.steps\[0\]\.top\[1\]"),
    ],
)
def test_unknown_nested_field_is_refused(path: tuple, owner: str) -> None:
    data = copy.deepcopy(_sample_run().to_dict())
    target = data
    for key in path:
        target = target[key]
    target["surprise"] = 1
    with pytest.raises(RecordError, match=rf"^{owner}: unknown fields \['surprise'\]"):
        Run.from_dict(data)


def test_nested_record_of_the_wrong_shape_is_refused() -> None:
    data = _sample_run().to_dict()
    data["models"][0]["steps"] = {"token_id": 1}
    with pytest.raises(ValueError, match="expected a list"):
        Run.from_dict(data)
    data = _sample_run().to_dict()
    data["models"][0]["metrics"] = [1, 2]
    with pytest.raises(RecordError, match=r"run\.models\[0\]\.metrics: expected an object"):
        Run.from_dict(data)


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (("prompt",), 42, r"run\.prompt: expected str, got int"),
        (("models", 0, "params", "max_new_tokens"), "12", r"max_new_tokens: expected int, got str"),
        (("models", 0, "params", "max_new_tokens"), True, r"max_new_tokens: expected int, got bool"),
        (("models", 0, "params", "stop"), [1], r"stop\[0\]: expected str, got int"),
        (("models", 0, "prompt_token_ids"), [1, "2"], r"prompt_token_ids\[1\]: expected int"),
        (("models", 0, "metrics", "ttft_s"), None, r"ttft_s: expected float, got null"),
        (("models", 0, "identity", "libraries"), {"torch": 2}, r"libraries\.torch: expected str"),
    ],
)
def test_wrong_types_are_refused_with_the_field_named(path: tuple, value: object, message: str) -> None:
    data = copy.deepcopy(_sample_run().to_dict())
    target = data
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    with pytest.raises(RecordError, match=message):
        Run.from_dict(data)


def test_ints_are_accepted_where_floats_are_expected() -> None:
    data = _sample_run().to_dict()
    data["models"][0]["metrics"]["ttft_s"] = 1
    assert Run.from_dict(data).models[0].metrics.ttft_s == 1.0
