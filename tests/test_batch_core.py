"""Prompt sets, scoring, summaries and batch bundles: pure functions, no models."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from sample_runs import make_run

from playground.batch.book import BatchBook
from playground.batch.bundle import export_batch, import_batch, read_batch
from playground.batch.prompt_set import MAX_SET_BYTES, SAMPLE, PromptItem, PromptSetError, load_file, parse
from playground.batch.score import Scoring, contains, exact, numeric, parse_number, regex, similarities
from playground.batch.spec import BatchSpec, ColumnSpec, SpecError
from playground.batch.summary import build_table, percentile, prompt_anomalies, summarise
from playground.record import Anomaly, GenerationParams
from playground.sessions.bundle import BundleError
from playground.sessions.store import SessionStore

# -- prompt sets --------------------------------------------------------------------------------


def test_lines_skip_blanks_and_number_ids() -> None:
    items = parse("first prompt\n\n  second prompt  \n", "lines")
    assert [(i.id, i.prompt) for i in items] == [("p1", "first prompt"), ("p2", "second prompt")]


def test_csv_with_every_column() -> None:
    text = 'prompt,expected,category,system,id\n"Hi, there",hello,greet,Be brief.,g1\nAdd 2+2,4,math,,\n'
    items = parse(text.encode(), "csv")
    assert items[0] == PromptItem("Hi, there", "hello", "greet", "Be brief.", "g1")
    assert items[1] == PromptItem("Add 2+2", "4", "math", "", "p2")


def test_jsonl_numbers_as_expected_and_bom() -> None:
    data = '\ufeff{"prompt": "2+2?", "expected": 4}\n\n{"prompt": "half of 5?", "expected": 2.5, "id": "h"}\n'
    items = parse(data.encode("utf-8"), "jsonl")
    assert [(i.expected, i.id) for i in items] == [("4", "p1"), ("2.5", "h")]


@pytest.mark.parametrize(("fmt", "data", "message"), [
    ("jsonl", '{"prompt": "a"}\n{"prompt": "b"\n', "line 2: not valid JSON"),
    ("jsonl", '{"prompt": "a"}\n\n["b"]\n', "line 3: expected a JSON object"),
    ("jsonl", '{"prompt": "a", "expect": "x"}\n', "line 1: unknown field 'expect'"),
    ("jsonl", '{"prompt": 5}\n', 'line 1: "prompt" must be a string'),
    ("jsonl", '{"expected": "x"}\n', "line 1: the prompt is empty"),
    ("jsonl", '{"prompt": "a", "id": "x"}\n{"prompt": "b", "id": "x"}\n',
     "line 2: id 'x' was already used on line 1"),
    ("jsonl", '{"prompt": "a", "id": "has space"}\n', "line 1: id 'has space' may hold only"),
    ("csv", "question,expected\nx,y\n", "line 1: unknown column 'question'"),
    ("csv", "expected\nx\n", "no `prompt` column"),
    ("csv", "prompt,expected\nx,y\nz\n", "line 3: 1 value for 2 columns"),
    ("csv", "", "the CSV file is empty"),
    ("lines", "\n \n", "no prompts"),
    ("yaml", "x", "unknown prompt set format"),
])
def test_bad_sets_say_where(fmt: str, data: str, message: str) -> None:
    with pytest.raises(PromptSetError) as err:
        parse(data, fmt)
    assert message in str(err.value)


def test_limits_and_bad_utf8(tmp_path: Path) -> None:
    with pytest.raises(PromptSetError, match="line 2: not UTF-8"):
        parse(b"ok\n\xff\xfe\n", "lines")
    big = tmp_path / "big.txt"
    big.write_bytes(b"x" * (MAX_SET_BYTES + 1))
    with pytest.raises(PromptSetError, match="at most 8 MiB"):
        load_file(big)
    with pytest.raises(PromptSetError, match="at most 2,000"):
        parse("\n".join(f"p{i}" for i in range(2001)), "lines")
    with pytest.raises(PromptSetError, match="cannot read"):
        load_file(tmp_path / "missing.jsonl")


def test_sample_set_is_complete() -> None:
    items = load_file(SAMPLE)
    assert 20 <= len(items) <= 30
    assert all(i.expected and len(i.expected) <= 30 for i in items)
    assert {i.category for i in items} == {"extraction", "summarisation", "arithmetic", "code"}


# -- scoring ------------------------------------------------------------------------------------


def test_text_scores() -> None:
    assert exact("  Paris ", "Paris") == 1.0 and exact("paris", "Paris") == 0.0
    assert contains("The capital is  PARIS.", "paris") == 1.0 and contains("Lyon", "Paris") == 0.0
    assert regex("Answer: 42", r"\b42\b") == 1.0 and regex("420", r"\b42\b") == 0.0
    with pytest.raises(ValueError, match="regex scoring: bad regular expression"):
        regex("x", "(")


def test_numbers() -> None:
    assert parse_number("It costs 1,234.5 dollars, not 3") == 1234.5
    assert parse_number("-3 degrees") == -3.0 and parse_number("2e3") == 2000.0
    assert parse_number("none") is None
    assert numeric("The answer is 12.", "12") == 1.0 and numeric("7 + 5 = 12", "12") == 1.0
    assert numeric("12 apples minus 2 is 10", "12") == 0.0 and parse_number("1 then 2", last=True) == 2.0
    assert numeric("12.004", "12", tolerance=0.01) == 1.0 and numeric("12.1", "12", tolerance=0.01) == 0.0
    assert numeric("no number", "12") == 0.0
    with pytest.raises(ValueError, match="holds no number"):
        numeric("12", "twelve")


def fake_embed(texts: list[str]) -> np.ndarray:
    """Bag of letters, unit length: equal texts 1, disjoint letters 0."""
    out = np.zeros((len(texts), 26))
    for i, t in enumerate(texts):
        for ch in t.lower():
            if "a" <= ch <= "z":
                out[i, ord(ch) - 97] += 1
    return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-9)


def test_similarities_and_empty_rule() -> None:
    got = similarities([("abc", "abc"), ("abc", "xyz"), ("", ""), ("", "abc")], fake_embed)
    assert got == pytest.approx([1.0, 0.0, 1.0, 0.0])


def test_scoring_problems() -> None:
    assert Scoring("agreement", reference_column=2).problems(2)
    assert Scoring("agreement").problems(1)
    assert Scoring("bogus").problems(2) and Scoring("numeric", tolerance=-1).problems(2)
    assert Scoring("numeric", tolerance=0.5).problems(2) == []


# -- table and summary --------------------------------------------------------------------------


def runs_for_table():  # noqa: ANN201
    items = [PromptItem("2+2?", "4", "math", id="a"), PromptItem("Capital?", "Paris", "geo", id="b"),
             PromptItem("Say hi", "", "chat", id="c")]
    runs = {0: make_run("2+2?", ("4", "It is 5")), 1: make_run("Capital?", ("Paris.", "Lyon")),
            2: make_run("Say hi", ("hi", "hi"))}
    for i, run in runs.items():
        for col, model in enumerate(run.models):
            model.metrics.total_s = [1.0, 2.0][col] * (i + 1)
            model.metrics.ttft_s = 0.1 * (col + 1)
            model.metrics.output_tokens = 3
            model.metrics.decode_tok_s = 10.0
            model.metrics.cost_usd = 0.001 * col
    runs[1].models[1].anomalies = [Anomaly("special_literal", "x"), Anomaly("blowup", "y")]
    runs[2].models[1].error, runs[2].models[1].text = "failed to load", ""
    return items, runs


def test_table_scores_and_summary() -> None:
    items, runs = runs_for_table()
    cells = build_table(items, 2, runs, Scoring("contains"))
    assert [c.score for c in cells] == [1.0, 0.0, 1.0, 0.0, None, 0.0]
    assert cells[4].score_note == "no expected answer" and cells[5].status == "error"
    first, second = summarise(cells, 2)
    assert first.model == "1 · smollm2-135m" and first.mean_score == 1.0 and first.scored == 2
    assert second.mean_score == 0.0 and second.errors == 1 and second.answered == 2
    assert first.latency_p50_s == 2.0 and first.latency_max_s == 3.0
    assert first.latency_p95_s == pytest.approx(2.9)
    assert second.cost_usd == pytest.approx(0.003) and first.cost_usd == 0.0
    assert second.anomalies == {"blowup": 1, "special_literal": 1}
    assert prompt_anomalies(cells) == {"a": 0, "b": 1, "c": 0}


def test_agreement_and_pending_cells() -> None:
    items, runs = runs_for_table()
    del runs[2]
    cells = build_table(items, 2, runs, Scoring("agreement", reference_column=0), fake_embed, {})
    assert cells[0].score_note == "reference column" and cells[0].score is None
    assert cells[1].score is not None and 0 <= cells[1].score < 1
    assert cells[4].status == "pending" and cells[4].score_note == "not run"
    no_model = build_table(items, 2, runs, Scoring("semantic"))
    assert "needs the embedding model" in no_model[0].score_note


def test_percentile_matches_numpy() -> None:
    values = [0.3, 1.2, 0.7, 5.0, 2.2, 0.9]
    for q in (0, 50, 95, 100):
        assert percentile(values, q) == pytest.approx(float(np.percentile(values, q)))
    assert percentile([], 50) == 0.0


# -- bundles ------------------------------------------------------------------------------------


def saved_batch(store: SessionStore) -> str:
    items, runs = runs_for_table()
    spec = BatchSpec(items, [ColumnSpec("smollm2-135m", GenerationParams(max_new_tokens=8)),
                             ColumnSpec("gemma3-270m", GenerationParams(max_new_tokens=8))], name="t")
    book = BatchBook(store)
    batch_id = book.create(spec, owner="me")
    for i, run in runs.items():
        book.done(batch_id, i, store.save(run, owner="me"), 1.0)
    return batch_id


def test_bundle_round_trip(tmp_path: Path) -> None:
    store = SessionStore(tmp_path / "a.sqlite3")
    batch_id = saved_batch(store)
    text = export_batch(store, batch_id)
    other = SessionStore(tmp_path / "b.sqlite3")
    imported = import_batch(other, text, owner="you")
    assert imported.batch_id == batch_id and imported.runs == 3 and not imported.renamed_from
    book = BatchBook(other)
    assert book.get(batch_id).to_dict() == BatchBook(store).get(batch_id).to_dict()
    assert {s.run_id for s in book.states(batch_id).values()} == {
        s.run_id for s in BatchBook(store).states(batch_id).values()}
    again = import_batch(other, text)  # ids taken: fresh ones, nothing overwritten
    assert again.renamed_from == batch_id and again.batch_id != batch_id
    assert other.count() == 6
    assert [b.id for b in book.list()] == [again.batch_id, batch_id] or len(book.list()) == 2


@pytest.mark.parametrize(("change", "message"), [
    (lambda d: d.update(format="playground-run"), "not a playground batch export"),
    (lambda d: d.update(version=2), "version 2"),
    (lambda d: d["batch"].update(extra=1), "unknown fields"),
    (lambda d: d["batch"]["items"][0].update(prompt=5), "expected str"),
    (lambda d: d["batch"]["columns"][0]["params"].update(max_new_tokens=0), "max new tokens"),
    (lambda d: d["results"][0].update(index=7), "not a prompt of the set"),
    (lambda d: d["results"][1].update(index=0), "two results"),
    (lambda d: d["results"][0]["run"].update(models="x"), "results[0].run"),
    (lambda d: d["results"][0]["run"]["models"][0]["steps"][0].update(token_id="x"), "expected int"),
    (lambda d: d["batch"].update(id="../etc"), "is not a session id"),
])
def test_malformed_bundles_are_refused(tmp_path: Path, change, message: str) -> None:  # noqa: ANN001
    store = SessionStore(tmp_path / "a.sqlite3")
    doc = json.loads(export_batch(store, saved_batch(store)))
    change(doc)
    other = SessionStore(tmp_path / "b.sqlite3")
    with pytest.raises(BundleError) as err:
        import_batch(other, json.dumps(doc))
    assert message in str(err.value)
    assert other.count() == 0 and BatchBook(other).list() == []  # nothing stored


def test_truncated_and_huge_bundles(tmp_path: Path) -> None:
    store = SessionStore(tmp_path / "a.sqlite3")
    text = export_batch(store, saved_batch(store))
    with pytest.raises(BundleError, match="not valid JSON"):
        read_batch(text[: len(text) // 2])
    with pytest.raises(BundleError, match="at most 64 MiB"):
        read_batch(b" " * (64 * 2**20 + 1))


def test_spec_rejects_bad_values() -> None:
    with pytest.raises(SpecError, match="no model columns"):
        BatchSpec.from_dict({"items": [{"prompt": "x", "expected": "", "category": "", "system": "",
                                        "id": "a"}], "columns": []})
