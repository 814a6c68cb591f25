"""`python -m playground` as a script would use it: exit status, stdout JSON, stderr messages."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from playground.record import Run

REPO = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.timeout(600)


def playground(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "PLAYGROUND_DATA_DIR": str(data_dir),
        "PLAYGROUND_DEVICE": "cpu",
        "GRADIO_ANALYTICS_ENABLED": "False",
    }
    for name in ("PLAYGROUND_CATALOG", "PLAYGROUND_MODELS"):
        env.pop(name, None)
    return subprocess.run(
        [sys.executable, "-m", "playground", *args],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=540, check=False,
    )


def test_compare_json_prints_a_run_record(data_dir: Path) -> None:
    result = playground(
        data_dir, "compare", "--model", "smollm2-135m", "--max-new-tokens", "16", "--json",
        "What is the capital of France?",
    )
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    run = Run.from_dict(data)
    assert run.to_dict() == data  # nothing lost or added on the way back
    assert run.prompt == "What is the capital of France?"
    (model,) = run.models
    assert model.identity.catalog_id == "smollm2-135m"
    assert model.error == ""
    assert model.finish_reason in ("eos", "length")
    assert "Paris" in model.text
    assert 0 < len(model.steps) <= 16


def test_catalog_json_lists_the_bundled_models(data_dir: Path) -> None:
    result = playground(data_dir, "catalog", "--json")
    assert result.returncode == 0, result.stderr
    specs = json.loads(result.stdout)
    ids = [spec["id"] for spec in specs]
    assert ids[:2] == ["smollm2-135m", "gemma3-270m"]
    assert all(spec["bundled"] for spec in specs[:2])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--model", "no-such-model", "hello"], "unknown model 'no-such-model'"),
        (["--model", "smollm2-135m", "--max-new-tokens", "0", "hello"], "max new tokens must be between 1"),
        (["--model", "smollm2-135m", "--temperature", "-1", "hello"], "temperature must be 0 (greedy)"),
        (["--model", "smollm2-135m", ""], "the prompt is empty"),
        (["hello"], "give at least one --model"),
    ],
    ids=["unknown-model", "max-new-tokens-0", "negative-temperature", "empty-prompt", "no-model"],
)
def test_bad_input_exits_2_with_a_message(data_dir: Path, args: list[str], message: str) -> None:
    result = playground(data_dir, "compare", *args)
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert f"playground: error: {message}" in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""
