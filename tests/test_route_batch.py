"""From a batch to a routing decision, end to end: a real three-prompt batch on the bundled models
(CPU, 8 new tokens, the session's shared engine), then `python -m playground route --batch ID` in a
subprocess reading the same database; and the committed rules file assets/rules/sample.yaml (the one
the README walks through) routing one prompt of each category of the sample set."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from sample_runs import BUNDLED_MODELS, THREE_PROMPTS

from playground.batch.book import BatchBook
from playground.batch.prompt_set import parse
from playground.batch.runner import run_batch
from playground.batch.score import Scoring
from playground.batch.spec import BatchSpec, ColumnSpec
from playground.config import Settings
from playground.engine import Engine
from playground.record import GenerationParams
from playground.routing.rules import load_rules
from playground.service import RunService
from playground.sessions.store import SessionStore

REPO = Path(__file__).resolve().parent.parent
SAMPLE_RULES = REPO / "assets" / "rules" / "sample.yaml"
pytestmark = pytest.mark.timeout(180)

THREE, MODELS = THREE_PROMPTS, BUNDLED_MODELS

# Rules for the three prompts: one rule by category, one by regex, the default for the rest.
RULES = """\
default: gemma3-270m
rules:
  - when: {category: [extraction]}
    model: smollm2-135m
  - when: {matches: "(?i)python"}
    model: smollm2-135m
"""


def playground(data_dir: Path, db: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO), "PLAYGROUND_DATA_DIR": str(data_dir),
           "PLAYGROUND_DEVICE": "cpu", "GRADIO_ANALYTICS_ENABLED": "False", "PLAYGROUND_DB": str(db)}
    for name in ("PLAYGROUND_CATALOG", "PLAYGROUND_MODELS"):
        env.pop(name, None)
    return subprocess.run([sys.executable, "-m", "playground", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=120, check=False)


def test_route_evaluates_a_saved_batch(engine: Engine, data_dir: Path, tmp_path: Path) -> None:
    db = tmp_path / "runs.sqlite3"
    store = SessionStore(db)
    service = RunService(Settings(data_dir=tmp_path), engine=engine, store=store)
    columns = [ColumnSpec(m, GenerationParams(max_new_tokens=8)) for m in MODELS]
    spec = BatchSpec(parse(THREE, "jsonl"), columns, Scoring("contains"))
    batch_id = BatchBook(store).create(spec)
    assert run_batch(service, batch_id).state == "complete"
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES, encoding="utf-8")

    done = playground(data_dir, db, "route", "--rules", str(rules), "--batch", batch_id, "--json",
                      "--sweep", "prompt_tokens", "--strong", "gemma3-270m", "--weak", "smollm2-135m")
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    picked = {a["prompt_id"]: (a["model"], a["rule"]) for a in out["preview"]["assignments"]}
    assert picked == {"add": ("gemma3-270m", None), "city": ("smollm2-135m", 0), "def": ("smollm2-135m", 1)}
    reasons = {a["prompt_id"]: a["reason"] for a in out["preview"]["assignments"]}
    assert reasons["city"] == "rule 0: category in [extraction]"
    assert reasons["def"].startswith("rule 1: prompt matches") and "default" in reasons["add"]
    for a in out["preview"]["assignments"]:  # each pick carries that model's scored, timed answer
        assert a["result"]["score"] in (0.0, 1.0) and a["result"]["total_s"] > 0
    routed, baselines = out["preview"]["routed"], out["preview"]["baselines"]
    assert routed["prompts"] == 3 and routed["shares"] == pytest.approx({"gemma3-270m": 1 / 3,
                                                                          "smollm2-135m": 2 / 3})
    assert set(baselines) == set(MODELS) and all(b["shares"] == {m: 1.0} for m, b in baselines.items())
    assert 0 <= routed["mean_score"] <= 1 and routed["p95_total_s"] > 0
    swept = out["sweep"]
    assert swept["router"] == "prompt_tokens" and swept["points"][0]["strong_share"] == 0
    assert swept["points"][-1]["strong_share"] == 1

    text = playground(data_dir, db, "route", "--rules", str(rules), "--batch", batch_id)
    assert text.returncode == 0, text.stderr
    lines = text.stdout.splitlines()
    assert any(line.startswith("city") and "smollm2-135m" in line and "rule 0" in line for line in lines)
    assert any(line.startswith("rules ") for line in lines)
    assert any(line.startswith("all to gemma3-270m") for line in lines)


# One prompt of each category of assets/prompt_sets/sample.jsonl, and the model the committed
# rules file sends it to (see the README, "From a prompt set to a routing rule").
SAMPLE_CASES = [
    ("extraction", "Extract the city: \"Ana flew to Porto.\" City:", "smollm2-135m", None),
    ("summarisation", "In one word, what was the night like? \"Snow fell until dawn.\"", "gemma3-270m", 0),
    ("arithmetic", "What is 9 + 3? Answer with a number only.", "smollm2-135m", None),
    ("code", "Which Python keyword starts a loop over items?", "smollm2-135m", None),
    ("", "Summarise briefly: \"The shop closes early on Sundays.\"", "gemma3-270m", 1),  # no category
]


def test_sample_rules_file_parses() -> None:
    rules = load_rules(SAMPLE_RULES)
    assert set(rules.models()) == set(MODELS)


@pytest.mark.parametrize(("category", "prompt", "model", "rule"), SAMPLE_CASES)
def test_sample_rules_route_each_category(data_dir: Path, tmp_path: Path, category: str, prompt: str,
                                          model: str, rule: int | None) -> None:
    done = playground(data_dir, tmp_path / "unused.sqlite3", "route", "--rules", str(SAMPLE_RULES),
                      "--category", category, "--json", prompt)
    assert done.returncode == 0, done.stderr
    decision = json.loads(done.stdout)
    assert (decision["model"], decision["rule"], decision["category"]) == (model, rule, category)
