"""Export and import of one run as a JSON file: exact round trips, and no trust in the file."""

from __future__ import annotations

import copy
import json
import time
from typing import Any

import pytest
from sample_runs import XSS_PROMPT, make_run

from playground.record import SCHEMA_VERSION, Run
from playground.sessions.bundle import (
    FORMAT,
    MAX_BUNDLE_BYTES,
    MAX_MODELS,
    MAX_TEXT_CHARS,
    MAX_TOKENS_PER_MODEL,
    BundleError,
    export_bundle,
    import_bundle,
)


def _doc(run: Run | None = None) -> dict[str, Any]:
    return json.loads(export_bundle(run or make_run()))


def _import(doc: dict[str, Any]) -> Run:
    return import_bundle(json.dumps(doc, ensure_ascii=False).encode("utf-8"))


# -- round trip ----------------------------------------------------------------------------


def test_export_then_import_gives_the_identical_record() -> None:
    run = make_run()
    text = export_bundle(run)
    doc = json.loads(text)
    assert doc["format"] == FORMAT
    assert doc["schema_version"] == SCHEMA_VERSION
    assert doc["run"] == run.to_dict()
    assert import_bundle(text) == run  # str
    assert import_bundle(text.encode("utf-8")) == run  # bytes, as read from a file
    assert export_bundle(import_bundle(text)) == text  # and back out byte for byte


def test_markup_survives_import_verbatim_as_plain_data() -> None:
    run = make_run(
        prompt=XSS_PROMPT,
        outputs=("<script>alert(1)</script>", "<img src=x onerror=alert(1)> ☕ 東京"),
        system_prompt="</textarea><svg onload=alert(1)>",
    )
    text = export_bundle(run)
    assert "<script>alert(1)</script>" in text  # JSON does not escape it: it is just text
    back = import_bundle(text.encode("utf-8"))
    assert back == run
    assert back.prompt == XSS_PROMPT
    assert back.models[0].text == "<script>alert(1)</script>"
    assert back.models[1].text == "<img src=x onerror=alert(1)> ☕ 東京"
    assert back.system_prompt == "</textarea><svg onload=alert(1)>"


def test_export_with_a_byte_order_mark_is_read() -> None:
    run = make_run()
    assert import_bundle(b"\xef\xbb\xbf" + export_bundle(run).encode("utf-8")) == run
    assert import_bundle("\ufeff" + export_bundle(run)) == run


def test_an_empty_run_round_trips() -> None:
    run = Run(prompt="only a prompt")
    assert import_bundle(export_bundle(run)) == run


# -- malformed files ---------------------------------------------------------------------------


def test_truncated_file_is_not_valid_json() -> None:
    text = export_bundle(make_run())
    with pytest.raises(BundleError, match="not valid JSON") as info:
        import_bundle(text[: len(text) // 2].encode("utf-8"))
    assert "truncated" in str(info.value)


@pytest.mark.parametrize("data", [b"", b"   ", b"{", b"not json at all", b"{'format': 'playground-run'}"])
def test_other_non_json_is_refused(data: bytes) -> None:
    with pytest.raises(BundleError, match="not valid JSON"):
        import_bundle(data)


@pytest.mark.parametrize("as_str", [False, True], ids=["bytes", "str"])
def test_a_100_mb_file_is_refused_by_size_before_parsing(as_str: bool) -> None:
    big = b" " * (100 * 1024 * 1024)
    data = big.decode("ascii") if as_str else big
    start = time.perf_counter()
    with pytest.raises(BundleError, match=r"100\.0 MiB; run files are at most 64 MiB"):
        import_bundle(data)
    assert time.perf_counter() - start < 2.0  # the size check comes first: nothing is parsed


def test_a_file_just_over_the_limit_is_refused_and_one_under_it_parsed() -> None:
    with pytest.raises(BundleError, match="MiB; run files are at most"):
        import_bundle(b" " * (MAX_BUNDLE_BYTES + 1))
    with pytest.raises(BundleError, match="not valid JSON"):  # parsed, so the size was accepted
        import_bundle(b" " * MAX_BUNDLE_BYTES)


def test_size_counts_utf8_bytes_of_a_str() -> None:
    text = "é" * (MAX_BUNDLE_BYTES // 2 + 1)  # fewer characters than the limit, more bytes
    with pytest.raises(BundleError, match="MiB; run files are at most"):
        import_bundle(text)


@pytest.mark.parametrize(
    "data",
    [b"\xff\xfe{\x00}\x00", b'{"format": "playground-run", "x": "\xe9"}', b"\x80abc"],
    ids=["utf-16", "latin-1", "stray-continuation-byte"],
)
def test_non_utf8_bytes_are_refused(data: bytes) -> None:
    with pytest.raises(BundleError, match="not UTF-8 text"):
        import_bundle(data)


def test_deeply_nested_json_is_refused_cleanly() -> None:
    with pytest.raises(BundleError, match="not a run export"):
        import_bundle(b"[" * 100_000)


def test_a_number_too_long_to_convert_is_refused_cleanly() -> None:
    doc = export_bundle(make_run()).replace('"max_new_tokens": 32', '"max_new_tokens": ' + "9" * 5000)
    assert "9" * 5000 in doc
    with pytest.raises(BundleError, match="not a run export"):
        import_bundle(doc.encode("utf-8"))


def test_a_lone_surrogate_escape_is_refused() -> None:
    doc = export_bundle(make_run(prompt="PLACEHOLDER")).replace("PLACEHOLDER", "broken \\ud800 text")
    with pytest.raises(BundleError, match="not valid Unicode"):
        import_bundle(doc.encode("utf-8"))
    # a proper surrogate pair, as ensure_ascii writers produce, is fine
    ascii_doc = json.dumps(_doc(make_run(prompt="smile 😀")), ensure_ascii=True)
    assert "\\ud83d\\ude00" in ascii_doc
    assert import_bundle(ascii_doc).prompt == "smile 😀"


def test_a_str_with_a_raw_lone_surrogate_is_refused() -> None:
    with pytest.raises(BundleError):
        import_bundle("\ud800")


# -- format and version ------------------------------------------------------------------------


def test_future_schema_version_asks_for_an_upgrade() -> None:
    doc = _doc()
    doc["schema_version"] = SCHEMA_VERSION + 1
    doc["run"]["schema_version"] = SCHEMA_VERSION + 1
    with pytest.raises(BundleError, match="newer") as info:
        _import(doc)
    assert "upgrade" in str(info.value)
    assert str(SCHEMA_VERSION + 1) in str(info.value)


@pytest.mark.parametrize("version", [None, "1", 1.0, True], ids=["missing", "str", "float", "bool"])
def test_non_integer_schema_version_is_refused(version: object) -> None:
    doc = _doc()
    if version is None:
        del doc["schema_version"]
    else:
        doc["schema_version"] = version
    with pytest.raises(BundleError, match="integer schema_version"):
        _import(doc)


@pytest.mark.parametrize(
    ("tag", "doc"),
    [
        ("playground-session", None),
        ("PLAYGROUND-RUN", None),
        (None, None),
        ("(missing)", None),
        (None, [1, 2, 3]),
        (None, "playground-run"),
        (None, 42),
    ],
    ids=["other-tag", "upper-case", "null-tag", "no-tag", "list", "string", "number"],
)
def test_wrong_format_tag_is_refused(tag: object, doc: object) -> None:
    if doc is None:  # a real export with its tag changed
        doc = _doc()
        if tag == "(missing)":
            del doc["format"]
        else:
            doc["format"] = tag
    with pytest.raises(BundleError, match="not a playground run export"):
        import_bundle(json.dumps(doc))


def test_a_bare_run_record_is_not_a_bundle() -> None:
    """`compare --json` output is a run, not an export: say so rather than guess."""
    with pytest.raises(BundleError, match="not a playground run export"):
        import_bundle(make_run().to_json())


# -- the run inside -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "value", "field"),
    [
        (("models", 0, "params", "max_new_tokens"), "12", r"run\.models\[0\]\.params\.max_new_tokens"),
        (("models", 0, "steps"), {"token_id": 1}, r"run\.models\[0\]\.steps: expected a list"),
        (("models", 0, "steps"), "abc", r"run\.models\[0\]\.steps: expected a list"),
        (("prompt",), 42, r"run\.prompt: expected str, got int"),
        (("prompt",), None, r"run\.prompt: expected str, got null"),
        (("models",), {}, r"run\.models: expected a list"),
        (("models", 1, "steps", 0, "logprob"), "-0.5", r"run\.models\[1\]\.steps\[0\]\.logprob"),
        (("models", 0, "steps", 1, "top", 0, "token_id"), 1.5, r"top\[0\]\.token_id: expected int"),
        (("models", 0, "identity", "libraries"), ["torch"], r"identity\.libraries: expected an object"),
        (("models", 0, "metrics", "loaded_from_cache"), 1, r"loaded_from_cache: expected bool, got int"),
        (("created_at",), "yesterday", r"run\.created_at: expected float"),
        (("id",), 12345, r"run\.id: expected str"),
    ],
)
def test_wrong_types_inside_the_run_name_the_field(path: tuple, value: object, field: str) -> None:
    doc = copy.deepcopy(_doc())
    target = doc["run"]
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    with pytest.raises(BundleError, match=field) as info:
        _import(doc)
    assert str(info.value).startswith("the export is malformed: ")


@pytest.mark.parametrize("run", [None, [], "run", 7], ids=["missing", "list", "string", "number"])
def test_run_that_is_not_an_object_is_refused(run: object) -> None:
    doc = _doc()
    if run is None:
        del doc["run"]
    else:
        doc["run"] = run
    with pytest.raises(BundleError, match="run: expected an object"):
        _import(doc)


def test_unknown_fields_inside_the_run_are_refused() -> None:
    doc = _doc()
    doc["run"]["models"][0]["identity"]["onclick"] = "alert(1)"
    with pytest.raises(BundleError, match=r"run\.models\[0\]\.identity: unknown fields \['onclick'\]"):
        _import(doc)


@pytest.mark.parametrize(
    "bad_id",
    ["../../etc/passwd", "", "short", "x" * 21 + "/", "x" * 200, "<script>alert(1)</script>xx"],
    ids=["path", "empty", "short", "slash", "long", "markup"],
)
def test_a_run_id_that_is_not_a_session_id_is_refused(bad_id: str) -> None:
    doc = _doc()
    doc["run"]["id"] = bad_id
    with pytest.raises(BundleError, match=r"run\.id: .*is not a session id"):
        _import(doc)


# -- limits -------------------------------------------------------------------------------------


def test_too_many_model_columns_are_refused() -> None:
    doc = _doc()
    column = doc["run"]["models"][0]
    doc["run"]["models"] = [{**copy.deepcopy(column), "column": i} for i in range(MAX_MODELS + 1)]
    with pytest.raises(BundleError, match=f"{MAX_MODELS + 1} model columns; at most {MAX_MODELS}"):
        _import(doc)
    doc["run"]["models"] = doc["run"]["models"][:MAX_MODELS]
    assert len(_import(doc).models) == MAX_MODELS


@pytest.mark.parametrize("where", ["prompt", "system_prompt", "text", "error"])
def test_too_long_text_is_refused_and_named(where: str) -> None:
    doc = _doc()
    long = "a" * (MAX_TEXT_CHARS + 1)
    if where in ("prompt", "system_prompt"):
        doc["run"][where] = long
        name = where
    else:
        doc["run"]["models"][1][where] = long
        name = rf"models\[1\]\.{where}"
    with pytest.raises(BundleError, match=rf"^{name} is 2,000,001 characters; the limit is 2,000,000"):
        _import(doc)


def test_text_at_the_limit_is_accepted() -> None:
    doc = _doc()
    doc["run"]["prompt"] = "a" * MAX_TEXT_CHARS
    assert len(_import(doc).prompt) == MAX_TEXT_CHARS


@pytest.mark.parametrize("where", ["prompt_token_ids", "steps"])
def test_too_many_tokens_are_refused(where: str) -> None:
    doc = _doc()
    model = doc["run"]["models"][0]
    if where == "prompt_token_ids":
        model[where] = [1] * (MAX_TOKENS_PER_MODEL + 1)
    else:
        model[where] = [{"token_id": 1, "text": "", "logprob": 0.0, "top": []}] * (MAX_TOKENS_PER_MODEL + 1)
    with pytest.raises(BundleError, match=f"model column 0 has more than {MAX_TOKENS_PER_MODEL:,} tokens"):
        _import(doc)
