"""What the page and the API read from their users, without a browser: parameters, stop strings,
broken text, the model allow-list."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from playground.config import Settings
from playground.record import GenerationParams
from playground.ui.api import compare_request, params_from
from playground.ui.columns import Slot
from playground.ui.text import REPAIRED_NOTICE, clean_text


def _slot() -> Slot:
    return Slot(*(object() for _ in range(13)))  # widgets stand-ins: params() only reads a dict by them


def test_slot_params_defaults_for_empty_fields() -> None:
    slot = _slot()
    params = slot.params({slot.max_new_tokens: 12, slot.temperature: None, slot.seed: "", slot.stop: ""})
    assert params == GenerationParams(max_new_tokens=12)


@pytest.mark.parametrize(
    ("typed", "stops"),
    [
        ("\\n\\n", ["\n\n"]),
        ("a\\tb", ["a\tb"]),
        ("back\\\\slash", ["back\\slash"]),
        ("\\x41 stays", ["\\x41 stays"]),  # unicode_escape would have made this "A stays"
        ("café\\n", ["café\n"]),  # unicode_escape would have mangled the é
        ("Über\n\nEnde", ["Über", "Ende"]),  # one per line, empty lines skipped
        ("\\u00e9", ["\\u00e9"]),
    ],
)
def test_slot_stop_strings_use_only_three_escapes(typed: str, stops: list[str]) -> None:
    slot = _slot()
    assert slot.params({slot.stop: typed}).stop == stops


def test_clean_text_replaces_lone_surrogates() -> None:
    assert clean_text("fine 😀") == ("fine 😀", False)
    assert clean_text("a\ud800b") == ("a\ufffdb", True)
    assert clean_text("\udc00\ud83d") == ("\ufffd\ufffd", True)
    assert clean_text("x\ud83d\ude00") == ("x😀", False)  # a pair given as two halves is one character
    fixed, repaired = clean_text("cut emoji \ud83d")
    assert repaired and fixed.encode("utf-8") == "cut emoji \ufffd".encode()
    assert REPAIRED_NOTICE == "your prompt had invalid characters; replaced with \ufffd"


def test_params_from_one_object_or_one_per_model() -> None:
    assert params_from(None, 2) == [GenerationParams(), GenerationParams()]
    both = params_from({"max_new_tokens": 8, "stop": "END"}, 2)
    assert both == [GenerationParams(max_new_tokens=8, stop=["END"])] * 2
    each = params_from([{"seed": 1}, {"temperature": 0.7, "top_k": 40.0}], 2)
    assert each == [GenerationParams(seed=1), GenerationParams(temperature=0.7, top_k=40)]


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ({"temperature": -1}, "params for model 1: temperature must be 0"),
        ({"max_new_tokens": 0}, "max new tokens must be between 1 and 32768"),
        ({"seed": True}, "seed must be a number"),
        ({"top_p": "high"}, "top_p must be a number"),
        ({"stop": [1]}, "stop must be a string or a list of strings"),
        ({"temp": 1}, "unknown fields ['temp']"),
        ([{"seed": 1}], "a list of 2 (one per model), got a list of 1"),
        ([{}, 3], "params for model 2: expected an object"),
        ("greedy", "params must be an object or a list"),
    ],
)
def test_params_from_refuses_with_a_sentence(value: object, message: str) -> None:
    with pytest.raises(ValueError) as caught:
        params_from(value, 2)  # type: ignore[arg-type]
    assert message in str(caught.value)


def test_compare_request_checks_models_and_repairs_text() -> None:
    request, repaired = compare_request("Hi \ud800", "", ["smollm2-135m"], {"max_new_tokens": 3}, 8)
    assert repaired and request.prompt == "Hi \ufffd"
    assert request.columns[0].model == "smollm2-135m" and request.columns[0].params.max_new_tokens == 3
    for models, message in (([], "non-empty list"), ("smollm2-135m", "non-empty list"),
                            (["a"] * 9, "at most 8 models")):
        with pytest.raises(ValueError, match=message):
            compare_request("Hi", "", models, None, 8)


def _model_box(demo, index: int, name: str = "model"):  # noqa: ANN001, ANN202
    return next(b for b in demo.blocks.values() if getattr(b, "elem_id", None) == f"{name}-{index}")


@pytest.mark.parametrize(("host", "allowed"), [("0.0.0.0", False), ("127.0.0.1", True)])
def test_model_boxes_follow_the_allow_list(tmp_path: Path, host: str, allowed: bool) -> None:
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
    from playground.ui.app import build_app

    settings = Settings(data_dir=tmp_path, host=host, max_columns=2)
    demo = build_app(settings)  # no engine given: the web engine for these settings
    box = _model_box(demo, 0)
    assert box.allow_custom_value is allowed
    assert ("catalog models only" in _model_box(demo, 0, "model-info").value) is not allowed  # in Parameters
    assert demo.fns  # built


def test_model_boxes_say_which_key_a_hosted_preset_needs(monkeypatch) -> None:  # noqa: ANN001
    from playground.catalog import Catalog
    from playground.ui.columns import model_choices

    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.setenv("GEMINI_API_KEY", "x")
    choices = dict((value, label) for label, value in model_choices(Catalog.build()))
    assert choices["smollm2-135m"] == "smollm2-135m"
    assert choices["gpt-5"] == "gpt-5 (set OPENAI_API_KEY to use it)"
    assert choices["gemini-2.5-pro"] == "gemini-2.5-pro"
