"""Grounding end to end on the real bundled models: one snapshot, same numbered sources, fitted per model."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from playground.config import SAMPLE_CORPUS
from playground.engine import ColumnRequest, Engine, RunRequest
from playground.grounding.snapshot import SearchOptions, take_snapshot
from playground.record import GenerationParams, Run, SearchSnapshot, Source
from playground.sessions.rerun import request_from
from playground.ui.sources_view import sources_html

pytestmark = pytest.mark.timeout(600)
REPO = Path(__file__).resolve().parent.parent
QUESTION = "What is the diameter of the Zephyr-9 telescope's primary mirror?"


def _local(tmp_path: Path, folder: Path = SAMPLE_CORPUS) -> SearchOptions:
    return SearchOptions("local", 3, False, folder, tmp_path / "index.sqlite3")


def _prompt_text(model) -> str:  # noqa: ANN001
    return "".join(p.text for p in model.prompt_pieces)


def test_question_answerable_only_from_a_sample_document_gets_it_as_source_1(
    engine: Engine, tmp_path: Path
) -> None:
    snapshot, notice = take_snapshot(QUESTION, _local(tmp_path))
    assert notice == "" and snapshot is not None
    assert snapshot.results[0].title == "Zephyr-9 orbital telescope"
    run = engine.run(RunRequest(QUESTION, [ColumnRequest("smollm2-135m", GenerationParams(max_new_tokens=24)),
                                           ColumnRequest("gemma3-270m", GenerationParams(max_new_tokens=8))],
                                search=snapshot))
    for model in run.models:
        assert not model.error, model.error
        seen = _prompt_text(model)
        assert "[1] Zephyr-9 orbital telescope" in seen and "2.4 metres" in seen
        assert seen.index("[1]") < seen.index("[2]") < seen.index(QUESTION)
        assert model.grounding_notice == ""
    assert run.search == snapshot
    assert Run.from_dict(json.loads(run.to_json())).search == snapshot


def test_sources_are_fitted_to_each_models_window_with_a_notice(engine: Engine, tmp_path: Path) -> None:
    snapshot, _ = take_snapshot("Zephyr-9 telescope ferry Quill", _local(tmp_path))
    assert len(snapshot.results) == 3
    tight = GenerationParams(max_new_tokens=8192 - 230)  # SmolLM2: room for the question and a little more
    run = engine.tokenize(RunRequest("Summarise the sources.", [ColumnRequest("smollm2-135m", tight)],
                                     search=snapshot))
    model = run.models[0]
    assert model.error == "" and model.grounding_notice
    assert "of 3 sources" in model.grounding_notice
    assert len(model.prompt_token_ids) + tight.max_new_tokens <= 8192


def test_search_failure_is_a_notice_and_the_run_goes_on(engine: Engine, tmp_path: Path) -> None:
    snapshot, notice = take_snapshot(QUESTION, _local(tmp_path, tmp_path / "missing"))
    assert snapshot is None
    assert notice.startswith("local search unavailable") and notice.endswith("ran without grounding")
    run = engine.run(RunRequest(QUESTION, [ColumnRequest("smollm2-135m", GenerationParams(max_new_tokens=4))],
                                search=snapshot))
    assert run.models[0].steps and run.search is None


def test_zero_results_is_a_notice(tmp_path: Path) -> None:
    snapshot, notice = take_snapshot("qwxzj vbnmk", _local(tmp_path))
    assert snapshot is not None and snapshot.results == []
    assert "no results" in notice and "without grounding" in notice


def test_run_again_reuses_the_snapshot() -> None:
    snapshot = SearchSnapshot("q", "web", time.time(), [Source("t", "https://example.org", "s")])
    saved = Run(prompt="q", search=snapshot)
    assert request_from(saved).search is snapshot


def test_citations_are_checked_against_the_snapshot(engine: Engine) -> None:
    snapshot = SearchSnapshot("q", "local", time.time(), [Source("A", "file:///a", "alpha"),
                                                           Source("B", "file:///b", "beta")])
    run = engine.run(RunRequest("Reply with exactly: see [1] and [7].",
                                [ColumnRequest("smollm2-135m", GenerationParams(max_new_tokens=16))],
                                search=snapshot))
    model = run.models[0]
    from playground.grounding.citations import check_citations

    report = check_citations(model.text, 2)
    assert (model.cited, model.invalid_citations) == (report.cited, report.invalid)


def test_sources_panel_escapes_results_and_never_links_scripts() -> None:
    evil = Source("<img src=x onerror=alert(1)>", "javascript:alert(1)", "<script>alert(2)</script>")
    good = Source("Docs & more", "https://example.org/?a=1&b=<2>", "plain")
    run = Run(prompt="q", search=SearchSnapshot("<b>q</b>", "web", time.time(), [evil, good]))
    page = sources_html(run)
    assert "<img" not in page and "<script>" not in page and "<b>q" not in page
    assert 'href="javascript:' not in page
    assert 'href="https://example.org/?a=1&amp;b=&lt;2&gt;" target="_blank" rel="noopener noreferrer"' in page


def test_cli_compare_with_local_search(data_dir: Path, tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO), "PLAYGROUND_DATA_DIR": str(data_dir),
           "PLAYGROUND_DB": str(tmp_path / "runs.sqlite3")}
    result = subprocess.run(
        [sys.executable, "-m", "playground", "compare", "--model", "smollm2-135m", "--max-new-tokens", "8",
         "--search", "local", "--no-attention", "--json", QUESTION],
        capture_output=True, text=True, env=env, timeout=600,
    )
    assert result.returncode == 0, result.stderr
    record = json.loads(result.stdout)
    assert record["search"]["provider"] == "local"
    assert record["search"]["results"][0]["title"] == "Zephyr-9 orbital telescope"
