"""Streaming text: incremental detokenization and stop strings, on the real tokenizers.

Before: every token re-decoded the whole output (O(n^2) per column), and a stop
string spanning tokens made the engine re-emit the whole text ("The capital of
FranceThe capital of ").
"""

from __future__ import annotations

import pytest

from playground.backends.local import LocalBackend
from playground.engine import ColumnRequest, Engine, RunRequest
from playground.record import GenerationParams
from playground.streaming import MAX_PENDING_TOKENS, IncrementalDecoder, StopScanner

TEXTS = [
    "The capital of France is Paris. It has 2,100,000 people.",
    "Emoji split over byte tokens: 🦜🧪 and accents: déjà vu, naïve, Zürich; CJK: 東京は日本の首都です。",
    "  leading spaces,\ttabs\nand\n\nnew lines   ",
    "def f(x):\n    return x ** 2  # code\n",
]


def _stream(decoder: IncrementalDecoder, ids: list[int]) -> str:
    return "".join(decoder.push(i) for i in ids)


@pytest.mark.parametrize("which", ["smollm2", "gemma"])
@pytest.mark.parametrize("text", TEXTS, ids=range(len(TEXTS)))
def test_incremental_text_equals_the_whole_decode(request, which: str, text: str) -> None:
    backend: LocalBackend = request.getfixturevalue(which)
    ids = backend.tokenizer(text, add_special_tokens=False)["input_ids"]
    assert _stream(IncrementalDecoder(backend.decode), ids) == backend.decode(ids)


def test_each_token_decodes_a_short_window_not_the_whole_output(smollm2: LocalBackend) -> None:
    ids = smollm2.tokenizer(" ".join(TEXTS) * 20, add_special_tokens=False)["input_ids"]
    assert len(ids) > 1000
    windows: list[int] = []

    def decode(window: list[int]) -> str:
        windows.append(len(window))
        return smollm2.decode(window)

    assert _stream(IncrementalDecoder(decode), ids) == smollm2.decode(ids)
    assert max(windows) <= MAX_PENDING_TOKENS + 1  # O(1) per token, whatever the output length


def test_special_tokens_add_no_text(smollm2: LocalBackend) -> None:
    ids = smollm2.tokenizer("Hello<|im_end|> there", add_special_tokens=False)["input_ids"]
    assert _stream(IncrementalDecoder(smollm2.decode), ids) == "Hello there"


@pytest.mark.parametrize(
    ("chunks", "stops", "shown", "stopped"),
    [
        (["The capital of Fr", "ance is", " Paris"], ["France"], "The capital of ", True),
        (["ab", "c", "d"], ["cd", "bcx"], "ab", True),
        (["one\n", "\ntwo"], ["\n\n"], "one", True),
        (["no stop here", " at all"], ["STOP"], "no stop here at all", False),
        (["xSTO", "P"], ["STOP", "P"], "x", True),  # the earliest stop wins
        (["plain"], [], "plain", False),
    ],
)
def test_stop_scanner_never_reemits(chunks: list[str], stops: list[str], shown: str, stopped: bool) -> None:
    scanner = StopScanner(stops)
    out = "".join(scanner.push(c) for c in chunks)
    if not scanner.stopped:
        out += scanner.flush()
    assert (out, scanner.stopped) == (shown, stopped)


def test_stop_scanner_holds_back_only_the_longest_stop_minus_one() -> None:
    scanner = StopScanner(["abcd", "x"])
    assert scanner.push("hello world") == "hello wo"  # "rld" could still start "abcd"
    assert scanner.flush() == "rld"


def test_stop_string_spanning_tokens_streams_each_character_once(engine: Engine) -> None:
    stop = "capital of France"
    params = GenerationParams(max_new_tokens=40, stop=[stop])
    run, events = engine.stream(RunRequest("Repeat exactly: The capital of France is Paris.",
                                           [ColumnRequest("smollm2-135m", params)]))
    deltas = [e.delta for e in events if e.kind == "token"]
    (model,) = run.models
    assert model.finish_reason == "stop", model.text
    assert len(model.steps) > 1
    assert "".join(deltas) == model.text
    assert stop not in model.text and "France" not in model.text


def test_the_whole_text_is_out_before_the_attention_pass(engine: Engine) -> None:
    params = GenerationParams(max_new_tokens=12, stop=["zebra-never-said"])  # holds back 15 characters
    run, events = engine.stream(RunRequest("Name three colours.", [ColumnRequest("smollm2-135m", params)]))
    seen: list[tuple[str, str, bool]] = []
    text = ""
    for event in events:
        if event.column == 0:
            text += event.delta
            seen.append((event.kind, text, run.models[0].attention is not None))
    kinds = [kind for kind, _text, _attention in seen]
    generated = kinds.index("generated")
    assert kinds[generated + 1:] == ["finished"]
    _kind, text_then, attention_then = seen[generated]
    assert text_then == run.models[0].text  # every character was sent before the attention pass
    assert not attention_then and run.models[0].attention is not None
