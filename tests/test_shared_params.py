"""The page's shared parameters row and its per-column overrides, and telling a chat template's own
system prompt from the run record (real SmolLM2 and Gemma tokenizers)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from playground.engine import ColumnRequest, Engine, RunRequest
from playground.params import (
    CPU_MAX_NEW_TOKENS,
    CUDA_MAX_NEW_TOKENS,
    build_params,
    default_max_new_tokens,
    merge_params,
    overrides_of,
)
from playground.record import GenerationParams, Run
from playground.system_prompts import describe, template_system

pytestmark = pytest.mark.timeout(600)
REPO = Path(__file__).resolve().parent.parent
SHARED = {"max_new_tokens": 64, "temperature": 0.7, "top_p": 0.9, "top_k": 40, "repetition_penalty": 1.1,
          "seed": 5, "stop": ["END"]}


def test_a_column_takes_the_shared_row_where_it_overrides_nothing() -> None:
    own = {**{k: 999 for k in SHARED}, "stop": ["x"], "timeout_s": 30.0}
    merged = merge_params(SHARED, own, [])
    assert {k: merged[k] for k in SHARED} == SHARED
    assert merged["timeout_s"] == 30.0  # not shared: always the column's own


def test_a_columns_own_value_wins_only_for_the_fields_it_overrides() -> None:
    own = {"max_new_tokens": 8, "temperature": 0.0, "top_p": 0.5, "top_k": 1, "repetition_penalty": 2.0,
           "seed": 1, "stop": []}
    params = build_params(merge_params(SHARED, own, ["max_new_tokens", "temperature"]))
    assert params.max_new_tokens == 8 and params.temperature == 0.0
    assert (params.top_p, params.top_k, params.seed, params.stop) == (0.9, 40, 5, ["END"])


def test_an_emptied_override_falls_back_to_the_shared_value() -> None:
    own = {"max_new_tokens": None, "seed": ""}
    params = build_params(merge_params(SHARED, own, ["max_new_tokens", "seed"]))
    assert (params.max_new_tokens, params.seed) == (64, 5)


def test_a_replay_marks_as_overrides_the_fields_that_differ_from_the_shared_row() -> None:
    shared = GenerationParams(max_new_tokens=64, seed=3)
    assert overrides_of(GenerationParams(max_new_tokens=64, seed=3), shared) == []
    assert overrides_of(GenerationParams(max_new_tokens=10, seed=3, stop=["a"]), shared) == [
        "max_new_tokens", "stop"]


def test_the_default_max_new_tokens_follows_the_device() -> None:
    assert default_max_new_tokens("cpu") == CPU_MAX_NEW_TOKENS < CUDA_MAX_NEW_TOKENS
    assert default_max_new_tokens("cuda") == default_max_new_tokens("cuda:1") == CUDA_MAX_NEW_TOKENS
    assert default_max_new_tokens("") == CPU_MAX_NEW_TOKENS


def _tokenize(engine: Engine, system: str = "", own: str | None = None) -> Run:
    columns = [ColumnRequest("smollm2-135m", GenerationParams(), own),
               ColumnRequest("gemma3-270m", GenerationParams())]
    return engine.tokenize(RunRequest(prompt="What is 2+2?", system_prompt=system, columns=columns))


def test_smollm2s_template_default_system_prompt_is_read_from_its_prompt_tokens(engine: Engine) -> None:
    run = _tokenize(engine)
    smol, gemma = run.models
    found = describe(run, smol)
    assert found.source == "template"
    assert found.text.startswith("You are a helpful AI assistant named SmolLM")
    assert found.text in "".join(p.text for p in smol.prompt_pieces)  # exactly what the model saw
    assert found.label().startswith("template default: “You are a helpful AI assistant named SmolLM")
    # Gemma's question/answer frame has no system turn: nothing to report
    assert describe(run, gemma).source == "" and describe(run, gemma).label() == ""


def test_a_typed_system_prompt_is_the_runs_or_the_columns_own_never_the_template_default(
        engine: Engine) -> None:
    run = _tokenize(engine, system="Be terse.")
    assert describe(run, run.models[0]).label() == "system prompt: “Be terse.”"
    assert template_system(run.models[0].prompt_pieces) == "Be terse."  # the template used the typed one
    own = _tokenize(engine, own="Answer in French.\n  Always.")
    label = describe(own, own.models[0]).label()
    assert label == "this column's own system prompt: “Answer in French. Always.”"  # folded to one line
    assert describe(own, own.models[1]).source == ""


def test_sessions_show_and_the_reports_name_each_columns_system_prompt(engine: Engine,
                                                                       tmp_path: Path) -> None:
    from playground.report import render_report
    from playground.sessions.store import SessionStore

    columns = [ColumnRequest("smollm2-135m", GenerationParams()),
               ColumnRequest("gemma3-270m", GenerationParams(), "Réponds en <b>français</b>.")]
    run = engine.tokenize(RunRequest(prompt="Hi", columns=columns))
    db = tmp_path / "runs.sqlite3"
    SessionStore(db).save(run)
    env = {**os.environ, "PYTHONPATH": str(REPO), "PLAYGROUND_DB": str(db), "PLAYGROUND_DEVICE": "cpu"}
    shown = subprocess.run([sys.executable, "-m", "playground", "sessions", "show", run.id], cwd=REPO,
                           env=env, capture_output=True, text=True, timeout=300, check=False)
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    template = "column 1 (smollm2-135m) system prompt (chat template default; none was typed): "
    assert any(line.startswith(template + "You are a helpful AI assistant named SmolLM") for line in lines), \
        shown.stdout
    assert "column 2 (gemma3-270m) own system prompt: Réponds en <b>français</b>." in lines, shown.stdout

    page = render_report(run, "html")
    assert "its chat template's default</h3>" in page
    assert "You are a helpful AI assistant named SmolLM" in page
    assert "Réponds en &lt;b&gt;français&lt;/b&gt;." in page and "<b>français</b>" not in page
    markdown = render_report(run, "markdown")
    assert "its chat template's default**" in markdown


def test_a_page_column_reads_the_shared_row_and_its_own_overrides_only() -> None:
    from playground.params import SHARED_FIELDS
    from playground.ui.columns import Slot
    from playground.ui.shared_params import SharedParams, params_label

    shared = SharedParams({name: object() for name in SHARED_FIELDS}, overrides=object())
    slots = [Slot(*(object() for _ in range(13))) for _ in range(2)]
    shared.slots = slots
    for slot in slots:
        slot.shared = shared
    data = {shared.widgets["max_new_tokens"]: 5, shared.widgets["seed"]: 9, shared.widgets["stop"]: "END\\n",
            shared.overrides: [[], ["max_new_tokens"]]}
    for slot in slots:  # both columns' boxes hold stale values: only the override is read
        data |= {slot.max_new_tokens: 3, slot.seed: 1, slot.stop: "x"}
    first, second = (slot.params(data) for slot in slots)
    assert (first.max_new_tokens, first.seed, first.stop) == (5, 9, ["END\n"])
    assert (second.max_new_tokens, second.seed, second.stop) == (3, 9, ["END\n"])
    assert params_label([]) == "Parameters (shared)"
    label = params_label(["max_new_tokens"], {"max_new_tokens": 3.0})
    assert label == "Parameters · override: max new tokens 3"


def test_a_columns_own_system_prompt_is_folded_and_escaped_on_its_header(engine: Engine) -> None:
    from dataclasses import replace

    from playground.ui.columns import system_html

    run = _tokenize(engine, own="<script>alert(1)</script>\nsecond line")
    own = system_html(run, run.models[0])
    assert own.startswith('<details class="pg-col-system" data-source="own"><summary>')
    assert "<script>" not in own and "&lt;script&gt;alert(1)&lt;/script&gt;" in own
    assert system_html(run, run.models[1]) == ""  # Gemma's frame: no system turn, nothing typed
    plain = _tokenize(engine)
    assert 'data-source="template"' in system_html(plain, plain.models[0])
    # A blind run's masked identity has no source: the template's text would name the model
    masked = replace(plain.models[0], identity=replace(plain.models[0].identity, source=""))
    assert system_html(plain, masked) == ""
