"""Export and import of one run as a JSON file: exact round trips, and no trust in the file."""

from __future__ import annotations

import base64
import copy
import json
import re
import time
from typing import Any

import pytest
from sample_runs import XSS_PROMPT, make_run, model_run

from playground.limits import MAX_COLUMNS, MAX_OUTPUT_STEPS, MAX_PROMPT_TOKENS
from playground.record import SCHEMA_VERSION, GenerationParams, Run
from playground.sessions.bundle import (
    FORMAT,
    MAX_BUNDLE_BYTES,
    MAX_TEXT_CHARS,
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
    doc["run"]["models"] = [{**copy.deepcopy(column), "column": i} for i in range(MAX_COLUMNS + 1)]
    with pytest.raises(BundleError, match=f"{MAX_COLUMNS + 1} model columns; at most {MAX_COLUMNS}"):
        _import(doc)
    doc["run"]["models"] = doc["run"]["models"][:MAX_COLUMNS]
    assert len(_import(doc).models) == MAX_COLUMNS


@pytest.mark.parametrize("where", ["prompt", "system_prompt", "error"])
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
    limit = MAX_PROMPT_TOKENS if where == "prompt_token_ids" else MAX_OUTPUT_STEPS
    if where == "prompt_token_ids":
        model[where] = [1] * (limit + 1)
    else:
        model[where] = [{"token_id": 1, "text": "", "logprob": 0.0, "top": []}] * (limit + 1)
    message = rf"^models\[0\]\.{where} has {limit + 1:,} entries; at most {limit:,}"
    with pytest.raises(BundleError, match=message):
        _import(doc)


def _set(doc: dict[str, Any], path: tuple, value: object) -> dict[str, Any]:
    target = doc["run"]
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return doc


def _with_search(doc: dict[str, Any], results: int = 2) -> dict[str, Any]:
    doc["run"]["search"] = {
        "query": "capital of France", "provider": "local", "created_at": 1_700_000_000.0, "notice": "",
        "results": [{"title": f"t{i}", "url": f"https://example.org/{i}", "snippet": "s", "text": ""}
                    for i in range(results)],
    }
    return doc


def test_a_search_snapshot_round_trips() -> None:
    doc = _with_search(_doc())
    run = _import(doc)
    assert run.search is not None
    assert [s.title for s in run.search.results] == ["t0", "t1"]


@pytest.mark.parametrize("version", [-7, 0], ids=["negative", "zero"])
def test_a_schema_version_this_playground_never_wrote_is_refused(version: int) -> None:
    doc = _doc()
    doc["schema_version"] = version
    with pytest.raises(BundleError, match=rf"schema version {version}\b.*1\.\.{SCHEMA_VERSION}"):
        _import(doc)


@pytest.mark.parametrize(
    ("path", "value", "field"),
    [
        (("created_at",), -1.0, r"run\.created_at"),
        (("created_at",), 253402300800.0, r"run\.created_at"),  # year 10000
        (("created_at",), 1e300, r"run\.created_at"),
        (("search", "created_at"), -0.5, r"run\.search\.created_at"),
        (("search", "created_at"), 1e20, r"run\.search\.created_at"),
    ],
)
def test_times_outside_the_calendar_are_refused(path: tuple, value: float, field: str) -> None:
    doc = _set(_with_search(_doc()), path, value)
    with pytest.raises(BundleError, match=field) as info:
        _import(doc)
    assert "between" in str(info.value)


def test_times_at_the_edges_are_accepted() -> None:
    doc = _set(_with_search(_doc()), ("created_at",), 0.0)
    doc["run"]["search"]["created_at"] = 253402300799.0
    run = _import(doc)
    assert (run.created_at, run.search.created_at) == (0.0, 253402300799.0)


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
def test_non_finite_numbers_are_refused(literal: str) -> None:
    text = json.dumps(_doc()).replace('"logprob": -0.01', f'"logprob": {literal}', 1)
    assert literal in text
    with pytest.raises(BundleError, match=r"logprob: expected a finite number"):
        import_bundle(text)


@pytest.mark.parametrize(
    ("path", "value", "field"),
    [
        (("models", 0, "steps", 1, "logprob"), 1000.0, r"run\.models\[0\]\.steps\[1\]\.logprob"),
        (("models", 1, "steps", 0, "logprob"), 0.01, r"run\.models\[1\]\.steps\[0\]\.logprob"),
        (("models", 0, "steps", 2, "top", 1, "logprob"), 5,
         r"run\.models\[0\]\.steps\[2\]\.top\[1\]\.logprob"),
    ],
)
def test_a_positive_log_probability_is_refused(path: tuple, value: float, field: str) -> None:
    doc = _set(_doc(), path, value)
    with pytest.raises(BundleError, match=field) as info:
        _import(doc)
    assert "log-probability" in str(info.value)


def test_a_log_probability_of_zero_give_or_take_rounding_is_accepted() -> None:
    doc = _set(_doc(), ("models", 0, "steps", 0, "logprob"), 0.0)
    doc["run"]["models"][0]["steps"][1]["logprob"] = 0.0009  # float rounding of log(1)
    doc["run"]["models"][0]["steps"][1]["top"][0]["logprob"] = -1e6
    assert _import(doc).models[0].steps[1].logprob == 0.0009


@pytest.mark.parametrize("name", ["load_s", "ttft_s", "decode_tok_s", "total_s", "prompt_tokens",
                                  "output_tokens", "peak_memory_bytes", "weights_bytes", "kv_cache_bytes"])
def test_negative_metrics_are_refused(name: str) -> None:
    doc = _set(_doc(), ("models", 1, "metrics", name), -1)
    with pytest.raises(BundleError, match=rf"run\.models\[1\]\.metrics\.{name}.*negative"):
        _import(doc)


@pytest.mark.parametrize(
    ("name", "value", "problem"),
    [
        ("temperature", -1.0, "temperature"),
        ("temperature", 1e9, "temperature"),
        ("top_p", 0.0, "top-p"),
        ("top_k", -3, "top-k"),
        ("repetition_penalty", 0.0, "repetition penalty"),
        ("max_new_tokens", 0, "max new tokens"),
        ("seed", -1, "seed"),
        ("timeout_s", 0.0, "timeout"),
        ("stop", [""], "stop strings must not be empty"),
        ("stop", ["x" * 201], "stop strings are at most"),
    ],
)
def test_parameters_out_of_range_are_refused_naming_the_column(
    name: str, value: object, problem: str
) -> None:
    doc = _set(_doc(), ("models", 1, "params", name), value)
    with pytest.raises(BundleError, match=rf"^models\[1\]\.params \(column 1\): .*{problem}"):
        _import(doc)


def test_a_column_the_engine_refused_for_its_parameters_still_round_trips() -> None:
    """The engine records such a column as failed and the run is saved: its export must import."""
    from playground.params import validate_params

    run = make_run()
    params = GenerationParams(max_new_tokens=32, temperature=-1.0, top_p=0.0)
    problems = validate_params(params)
    assert len(problems) == 2
    run.models[1] = model_run(1, [], "gemma3-270m", params=params, error="; ".join(problems))
    assert import_bundle(export_bundle(run)) == run

    doc = _doc(run)  # the same parameters on a column that generated are refused
    doc["run"]["models"][1]["error"] = ""
    with pytest.raises(BundleError, match=r"^models\[1\]\.params \(column 1\): temperature"):
        _import(doc)
    doc = _doc(run)  # and so are parameters the error does not mention
    doc["run"]["models"][1]["params"]["seed"] = -5
    with pytest.raises(BundleError, match=r"^models\[1\]\.params \(column 1\): .*seed"):
        _import(doc)


def _many(key: str, n: int) -> tuple[tuple, object]:
    piece = {"token_id": 1, "text": "a", "raw": "a", "special": False}
    anomaly = {"kind": "blowup", "message": "m", "severity": "warning", "position": 0}
    alt = {"token_id": 1, "text": "a", "logprob": -1.0}
    return {
        "prompt_pieces": (("models", 0, "prompt_pieces"), [piece] * n),
        "top": (("models", 0, "steps", 0, "top"), [alt] * n),
        "anomalies": (("models", 0, "anomalies"), [anomaly] * n),
        "stop": (("models", 0, "params", "stop"), ["x"] * n),
        "cited": (("models", 0, "cited"), [1] * n),
        "invalid_citations": (("models", 0, "invalid_citations"), [7] * n),
        "libraries": (("models", 0, "identity", "libraries"), {f"lib{i}": "1.0" for i in range(n)}),
    }[key]


@pytest.mark.parametrize(
    ("key", "limit", "field"),
    [
        ("prompt_pieces", 200_000, r"models\[0\]\.prompt_pieces"),
        ("top", 20, r"models\[0\]\.steps\[0\]\.top"),
        ("anomalies", 10_000, r"models\[0\]\.anomalies"),
        ("stop", 16, r"models\[0\]\.params\.stop"),
        ("cited", 1000, r"models\[0\]\.cited"),
        ("invalid_citations", 1000, r"models\[0\]\.invalid_citations"),
        ("libraries", 32, r"models\[0\]\.identity\.libraries"),
    ],
)
def test_list_limits_are_enforced_and_named(key: str, limit: int, field: str) -> None:
    path, value = _many(key, limit + 1)
    with pytest.raises(BundleError, match=rf"^{field} has {limit + 1:,} entries; at most {limit:,}"):
        _import(_set(_doc(), path, value))
    if key != "stop":  # 16 stop strings are fine; the limit itself is accepted everywhere
        path, value = _many(key, limit)
        _import(_set(_doc(), path, value))


def test_too_many_search_results_are_refused() -> None:
    with pytest.raises(BundleError, match=r"^search\.results has 101 entries; at most 100"):
        _import(_with_search(_doc(), 101))
    assert len(_import(_with_search(_doc(), 100)).search.results) == 100


def test_a_million_prompt_pieces_are_refused_before_any_record_is_built(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    doc = _set(_doc(), ("models", 0, "prompt_pieces"),
               [{"token_id": 1, "text": "a", "raw": "a", "special": False}] * 1_000_000)
    data = json.dumps(doc).encode("utf-8")
    assert len(data) < MAX_BUNDLE_BYTES

    def never(*_args: object, **_kwargs: object) -> Run:
        raise AssertionError("the record was built before the limits were checked")

    monkeypatch.setattr(Run, "from_dict", never)
    with pytest.raises(BundleError, match=r"models\[0\]\.prompt_pieces has 1,000,000 entries"):
        import_bundle(data)


@pytest.mark.parametrize(
    ("path", "field"),
    [
        (("models", 0, "identity", "name"), r"models\[0\]\.identity\.name"),
        (("models", 1, "identity", "location"), r"models\[1\]\.identity\.location"),
        (("models", 0, "identity", "libraries", "torch"), r"models\[0\]\.identity\.libraries\.torch"),
        (("models", 0, "grounding_notice"), r"models\[0\]\.grounding_notice"),
        (("models", 0, "attention_note"), r"models\[0\]\.attention_note"),
        (("models", 0, "params", "stop", 0), r"models\[0\]\.params\.stop\[0\]"),
        (("search", "results", 1, "text"), r"search\.results\[1\]\.text"),
        (("search", "query"), r"search\.query"),
    ],
)
def test_every_string_is_bounded(path: tuple, field: str) -> None:
    doc = _set(_with_search(_doc()), path, "a" * (MAX_TEXT_CHARS + 1))
    with pytest.raises(BundleError, match=rf"^{field} is 2,000,001 characters; the limit is 2,000,000"):
        _import(doc)


@pytest.mark.parametrize(
    ("where", "field"),
    [("text", r"models\[0\]\.steps\[2\]\.text"), ("key", r"models\[0\]\.identity\.libraries")],
)
def test_a_lone_surrogate_is_refused_where_it_is(where: str, field: str) -> None:
    doc = _doc()
    if where == "text":
        doc["run"]["models"][0]["steps"][2]["text"] = "\ud800"
    else:
        doc["run"]["models"][0]["identity"]["libraries"] = {"torch\udfff": "2.5"}
    with pytest.raises(BundleError, match=rf"^{field} has text that is not valid Unicode"):
        import_bundle(json.dumps(doc))  # ensure_ascii: the file spells it as an escape


def test_a_long_dictionary_key_is_refused() -> None:
    doc = _set(_doc(), ("models", 0, "identity", "libraries"), {"k" * (MAX_TEXT_CHARS + 1): "1"})
    message = r"^models\[0\]\.identity\.libraries has a key of 2,000,001 characters"
    with pytest.raises(BundleError, match=message):
        _import(doc)


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("models", 0, "identity", "context_window"), 2**64),
        (("models", 0, "identity", "context_window"), -(2**63) - 1),
        (("models", 0, "identity", "context_window"), 10**300),
        (("models", 0, "params", "seed"), 2**64),
        (("models", 1, "prompt_token_ids", 2), 10**30),
    ],
    ids=["2^64", "below-int64", "huge", "seed", "token-id"],
)
def test_integers_beyond_64_bits_are_refused(path: tuple, value: int) -> None:
    doc = _set(_doc(), path, value)
    field = "".join(f"[{k}]" if isinstance(k, int) else f".{k}" for k in path).removeprefix(".")
    with pytest.raises(BundleError, match=rf"^{re.escape(field)} is .*64-bit integer range"):
        _import(doc)


# -- attention ------------------------------------------------------------------------------------


def _attention(run: Run | None = None, layers: tuple[int, ...] = (0, 2), heads: int = 2, tokens: int = 4,
               num_layers: int = 3) -> dict[str, Any]:
    """A bundle whose column 0 has a well-formed capture of the last `tokens` positions."""
    doc = _doc(run)
    model = doc["run"]["models"][0]
    total = len(model["prompt_token_ids"]) + len(model["steps"])
    weights = b"\x00\x34" * (len(layers) * heads * tokens * tokens)  # float16 0.25
    model["attention"] = {
        "layers": list(layers), "heads": heads, "start": total - tokens, "tokens": tokens,
        "data": base64.b64encode(weights).decode("ascii"), "num_layers": num_layers,
        "sink_first": [0.5] * num_layers, "sink_special": [0.125] * num_layers, "notice": "",
    }
    return doc


def test_a_well_formed_attention_capture_round_trips() -> None:
    doc = _attention()
    run = _import(doc)
    capture = run.models[0].attention
    assert capture is not None
    assert len(base64.b64decode(capture.data)) == 2 * 2 * 4 * 4 * 2
    assert export_bundle(run) == export_bundle(_import(json.loads(export_bundle(run))))
    doc["run"]["models"][0]["attention"]["sink_special"] = []  # no control tokens: empty is fine
    assert _import(doc).models[0].attention.sink_special == []


def _attention_with(**changes: object) -> dict[str, Any]:
    doc = _attention()
    doc["run"]["models"][0]["attention"].update(changes)
    return doc


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"data": "not base64!!"}, "not base64"),
        ({"data": base64.b64encode(b"\x00" * 63).decode()}, "63 bytes"),
        ({"data": base64.b64encode(b"\x00" * 128).decode() + "\n"}, "not base64"),
        ({"heads": 0}, "heads"),
        ({"heads": -2}, "heads"),
        ({"tokens": 0}, "tokens"),
        ({"start": -1}, "start"),
        ({"start": 8}, "past the"),  # 8 + 4 > 5 prompt + 6 output tokens
        ({"layers": [2, 0]}, "layers"),
        ({"layers": [0, 0]}, "layers"),
        ({"layers": [0, 3]}, "layers"),
        ({"layers": [-1, 0]}, "layers"),
        ({"layers": []}, "layers"),
        ({"num_layers": 2, "sink_first": [0.5] * 2, "sink_special": [0.1] * 2}, "layers"),
        ({"sink_first": [0.5] * 2}, "sink_first"),
        ({"sink_special": [0.5] * 4}, "sink_special"),
        ({"heads": 10**6, "tokens": 10**6}, "MiB"),
    ],
    ids=["not-base64", "wrong-length", "newline", "no-heads", "negative-heads", "no-tokens",
         "negative-start", "past-the-end", "unsorted", "duplicate", "out-of-range", "negative-layer",
         "no-layers", "fewer-layers", "sink-first-length", "sink-special-length", "huge"],
)
def test_a_malformed_attention_capture_is_refused(changes: dict[str, object], message: str) -> None:
    with pytest.raises(BundleError, match=r"models\[0\]\.attention") as info:
        _import(_attention_with(**changes))
    assert message in str(info.value)
