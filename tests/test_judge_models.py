"""The judge on real bundled models (CPU, greedy): smollm2-135m grades a two-prompt batch of both bundled
models by rubric, pairwise (both orders, seen in what the engine was asked) and best; verdicts are stored
with the batch and read back into its cells; the batch CLI judges a new batch and refuses an unknown judge."""

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
from playground.batch.runner import batch_result, run_batch
from playground.batch.spec import BatchSpec, ColumnSpec
from playground.config import Settings
from playground.engine import Engine
from playground.judge.prompts import LETTERS
from playground.judge.spec import JudgeSpec
from playground.record import GenerationParams, new_run_id
from playground.service import RunService
from playground.sessions.store import SessionStore

REPO = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.timeout(600)
JUDGE = "smollm2-135m"


class Recording(RunService):
    """The real service, keeping every prompt the judge model was asked (through the engine)."""

    asked: list[str]

    def start(self, request, key, owner, search_notice=""):  # noqa: ANN001, ANN201
        if key.startswith("judge:"):
            self.asked.append(request.prompt)
        return super().start(request, key, owner, search_notice)


@pytest.fixture(scope="module")
def judged(engine: Engine, tmp_path_factory: pytest.TempPathFactory) -> tuple[Recording, str]:
    tmp = tmp_path_factory.mktemp("judge")
    service = Recording(Settings(data_dir=tmp), engine=engine, store=SessionStore(tmp / "runs.sqlite3"))
    service.asked = []
    items = parse(THREE_PROMPTS, "jsonl")[:2]
    spec = BatchSpec(items, [ColumnSpec(m, GenerationParams(max_new_tokens=8)) for m in BUNDLED_MODELS],
                     judge=JudgeSpec(JUDGE, "rubric", max_new_tokens=24))
    batch_id = BatchBook(service.store).create(spec, owner="alice")
    assert run_batch(service, batch_id).state == "complete"  # the rubric judge runs after the prompts
    return service, batch_id


def _in_range(score: float | None, note: str) -> bool:
    return (score is None and note.startswith("no verdict")) or (score is not None and 0 <= score <= 1)


def test_rubric_grades_every_answer_after_the_batch(judged: tuple[Recording, str]) -> None:
    service, batch_id = judged
    verdicts = service.batch_verdicts(batch_id)
    assert len(verdicts) == 4 and {v.method for v in verdicts} == {"rubric"}
    assert sorted((v.prompt_index, v.columns[0]) for v in verdicts) == [(0, 0), (0, 1), (1, 0), (1, 1)]
    for v in verdicts:
        assert v.judge == JUDGE and len(v.prompts) == len(v.outputs) == 1 and v.prompts[0] in service.asked
        assert _in_range(v.scores[0], v.rationale[0]) and v.outcome in ("graded", "none")
        assert "Reference answer:" in v.prompts[0]  # the sample prompts have expected answers
    cells = batch_result(service, batch_id).cells  # the verdicts read back from the store into the cells
    assert all(c.judge_method == "rubric" and _in_range(c.judge_score, c.judge_rationale) for c in cells)


def test_pairwise_asks_both_orders_and_maps_them_back(judged: tuple[Recording, str]) -> None:
    service, batch_id = judged
    service.asked.clear()
    report = service.judge_batch(batch_id, JudgeSpec(JUDGE, "pairwise", max_new_tokens=24), owner="alice")
    assert report.prompts == 2 and len(report.verdicts) == 2 and not report.error
    for v in report.verdicts:
        run = service.get(v.run_id)
        first, second = (m.text.strip() for m in run.models)
        assert service.asked.count(v.prompts[0]) == 1 and service.asked.count(v.prompts[1]) == 1
        # order one shows column 0 as A; order two shows it as B
        assert v.prompts[0].index(f"Answer A: {first}") < v.prompts[0].index(f"Answer B: {second}")
        assert v.prompts[1].index(f"Answer A: {second}") < v.prompts[1].index(f"Answer B: {first}")
        assert v.columns == [0, 1] and v.models == list(BUNDLED_MODELS) and len(v.outputs) == 2
        if v.outcome == "none":
            assert v.scores == [None, None] and "no verdict" in v.rationale[0]
        else:
            assert v.consistent is not None and all(0 <= s <= 1 for s in v.scores)
            assert v.outcome == ("win" if v.consistent and v.winner >= 0 else "tie")
            assert sum(v.scores) == 1.0
            if not v.consistent:
                assert "the orders disagreed" in v.rationale[0] and v.scores == [0.5, 0.5]
    cells = batch_result(service, batch_id).cells  # the latest judging is shown
    assert {c.judge_method for c in cells} == {"pairwise"}


def test_best_shuffles_with_a_recorded_seed(judged: tuple[Recording, str]) -> None:
    service, batch_id = judged
    report = service.judge_batch(batch_id, JudgeSpec(JUDGE, "best", seed=7, max_new_tokens=24), owner="alice")
    assert len(report.verdicts) == 2
    for v in report.verdicts:
        assert v.seed == 7 + v.prompt_index and sorted(v.shown) == [0, 1]
        run = service.get(v.run_id)
        for letter, column in zip(LETTERS, v.shown, strict=False):
            assert f"Answer {letter}: {run.models[column].text.strip()}" in v.prompts[0]
        assert all(_in_range(s, r) for s, r in zip(v.scores, v.rationale, strict=True))
        if v.outcome == "win":
            assert v.scores[v.columns.index(v.winner)] == 1.0 and sum(v.scores) == 1.0


def test_someone_elses_batch_cannot_be_judged(judged: tuple[Recording, str]) -> None:
    service, batch_id = judged
    with pytest.raises(LookupError, match="owner"):
        service.judge_batch(batch_id, JudgeSpec(JUDGE), owner="mallory")


def test_batch_cli_with_a_judge_and_an_unknown_judge(tmp_path: Path, data_dir: Path) -> None:
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "PLAYGROUND_DATA_DIR": str(data_dir),
           "PYTHONPATH": str(REPO)}
    prompts = tmp_path / "set.jsonl"
    prompts.write_text("\n".join(THREE_PROMPTS.splitlines()[:1]) + "\n")
    db = str(tmp_path / "runs.sqlite3")
    base = [sys.executable, "-m", "playground", "batch", "--prompts", str(prompts), "--db", db,
            "--model", "smollm2-135m", "--max-new-tokens", "6", "--device", "cpu"]
    bad = subprocess.run([*base, "--judge", "no-such-judge"], capture_output=True, text=True, env=env,
                         cwd=REPO)
    assert bad.returncode == 2 and "--judge: unknown model 'no-such-judge'" in bad.stderr
    assert "Traceback" not in bad.stderr
    good = subprocess.run([*base, "--judge", JUDGE, "--json"], capture_output=True, text=True, env=env,
                          cwd=REPO, timeout=500)
    assert good.returncode == 0, good.stderr
    cells = json.loads(good.stdout)["cells"]
    assert len(cells) == 1 and cells[0]["judge_method"] == "rubric"
    assert _in_range(cells[0]["judge_score"], cells[0]["judge_rationale"])
    judge = [sys.executable, "-m", "playground", "judge", "X" * 23, "--judge", "nope", "--db", db]
    again = subprocess.run(judge, capture_output=True, text=True, env=env, cwd=REPO)
    assert again.returncode == 2 and "--judge: unknown model 'nope'" in again.stderr


def test_voted_blind_runs_are_judged_and_compared_with_the_votes(judged: tuple[Recording, str]) -> None:
    service, batch_id = judged
    run = service.get(BatchBook(service.store).states(batch_id)[0].run_id)
    run.id = new_run_id()  # a copy outside the batch: not judged by the other tests
    run_id = service.store.save(run, owner="alice")
    service.mark_blind(run_id, [1, 0])
    service.vote(run_id, "win", 1, voter="alice")  # letter B: column 0, smollm2-135m
    spec = JudgeSpec(JUDGE, "pairwise", max_new_tokens=24)
    report = service.judge_voted_runs(spec)
    assert report.prompts == 1 and len(report.verdicts) == 1 and report.verdicts[0].run_id == run_id
    assert service.judge_voted_runs(spec).prompts == 0  # judged once: not again
    got = service.judge_agreement(JUDGE)
    if report.verdicts[0].outcome == "none":
        assert got.compared == 0 and got.no_verdict == 1 and got.rate is None
    else:
        want = report.verdicts[0].outcome == "win" and report.verdicts[0].winner == 0
        assert got.compared == 1 and got.agreed == int(want) and got.rate == float(want)
