"""Judge verdicts in a real SQLite file: the migration on an old database, the round-trip, a batch's
judge spec stored and read back, and the judge's agreement with blind votes cast in the same store."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from sample_runs import make_run

from playground.batch.book import BatchBook
from playground.batch.prompt_set import PromptItem
from playground.batch.spec import BatchSpec, ColumnSpec
from playground.config import Settings
from playground.judge.book import JudgeBook
from playground.judge.spec import JudgeSpec
from playground.judge.verdict import Verdict
from playground.service import RunService
from playground.sessions.store import SessionStore, migrate


def _verdict(run_id: str, outcome: str, winner: int = -1, judge: str = "smollm2-135m") -> Verdict:
    scores = {"win": [1.0 if winner == 0 else 0.0, 1.0 if winner == 1 else 0.0], "tie": [0.5, 0.5]}
    return Verdict("pairwise", judge, run_id, 0, [0, 1], ["smollm2-135m", "gemma3-270m"],
                   scores.get(outcome, [None, None]), ["why", "why"], winner, outcome,
                   consistent=outcome == "win", prompts=["p1", "p2"], outputs=["Winner: A", "Winner: B"])


def test_an_old_database_gains_the_verdicts_table_and_keeps_its_batches(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    db = sqlite3.connect(path, isolation_level=None)
    assert migrate(db, upto=5) == 5  # batches, no judge
    db.close()
    old = SessionStore.__new__(SessionStore)
    old.path = path
    spec = BatchSpec([PromptItem(id="a", prompt="hi")], [ColumnSpec("smollm2-135m")])
    data = spec.to_dict()
    del data["judge"]  # a batch stored before judges existed
    with old._connect() as raw:
        raw.execute("INSERT INTO batches(id, owner, created_at, name, total, spec) VALUES (?,?,?,?,?,?)",
                    (spec.id, "alice", spec.created_at, "", 1, json.dumps(data)))
    store = SessionStore(path)
    assert BatchBook(store).get(spec.id).judge is None
    assert JudgeBook(store).for_batch(spec.id) == []


def test_verdicts_and_the_batch_judge_round_trip(tmp_path: Path) -> None:
    store = SessionStore(tmp_path / "runs.sqlite3")
    columns = [ColumnSpec("smollm2-135m"), ColumnSpec("gemma3-270m")]
    spec = BatchSpec([PromptItem(id="a", prompt="hi")], columns,
                     judge=JudgeSpec("smollm2-135m", "pairwise", "Be strict.", [1, 0]))
    batch_id = BatchBook(store).create(spec, owner="alice")
    assert BatchBook(SessionStore(store.path)).get(batch_id).judge == spec.judge
    book = JudgeBook(store)
    first = _verdict("R" * 23, "tie")
    book.put(first, batch_id)
    book.put(_verdict("R" * 23, "win", 0), batch_id)  # the same judge again: replaces its verdict
    book.put(_verdict("R" * 23, "win", 1, judge="gemma3-270m"), batch_id)  # another judge: kept beside it
    got = JudgeBook(SessionStore(store.path)).for_batch(batch_id)
    assert [(v.judge, v.outcome, v.winner) for v in got] == [("smollm2-135m", "win", 0),
                                                             ("gemma3-270m", "win", 1)]
    assert got[0].prompts == ["p1", "p2"] and got[0].scores == [1.0, 0.0] and got[0].consistent is True
    assert book.for_runs(["R" * 23], "rubric") == [] and len(book.for_runs(["R" * 23])) == 2


def test_judge_agreement_with_votes_from_the_store(tmp_path: Path) -> None:
    store = SessionStore(tmp_path / "runs.sqlite3")
    service = RunService(Settings(data_dir=tmp_path), engine=object(), store=store)  # type: ignore[arg-type]
    runs = [make_run(outputs=("Paris.", "Lyon.")) for _ in range(3)]
    for run in runs:
        store.save(run, owner="alice")
        service.mark_blind(run.id, [1, 0])  # letter A = gemma (column 1), B = smollm2 (column 0)
    service.vote(runs[0].id, "win", 1, voter="alice")  # B: smollm2
    service.vote(runs[1].id, "tie", -1, voter="alice")
    service.vote(runs[2].id, "win", 0, voter="alice")  # A: gemma
    book = JudgeBook(store)
    book.put(_verdict(runs[0].id, "win", 0))  # smollm2: agrees
    book.put(_verdict(runs[1].id, "tie"))  # tie and tie: agrees
    book.put(_verdict(runs[2].id, "win", 0))  # smollm2 against the vote for gemma: disagrees
    got = service.judge_agreement()
    assert (got.compared, got.agreed, got.both_ties, got.decisive, got.decisive_agreed) == (3, 2, 1, 2, 1)
    assert abs(got.rate - 2 / 3) < 1e-9 and got.judged_runs == 3
    assert service.judge_agreement(judge="gemma3-270m").compared == 0


def _judged_batch(store: SessionStore, owner: str = "alice") -> tuple[str, str]:
    """A saved two-column batch of one prompt whose run a judge compared (a tie)."""
    spec = BatchSpec([PromptItem(id="a", prompt="What is the capital of France?", expected="Paris")],
                     [ColumnSpec("smollm2-135m"), ColumnSpec("gemma3-270m")], name="judged")
    book = BatchBook(store)
    batch_id = book.create(spec, owner=owner)
    run = make_run(prompt="What is the capital of France?", outputs=("Paris.", "Lyon."))
    run_id = store.save(run, owner=owner)
    book.done(batch_id, 0, run_id, 0.1)
    JudgeBook(store).put(_verdict(run_id, "tie"), batch_id)
    return batch_id, run_id


def test_a_batch_export_carries_its_verdicts_and_the_import_keeps_them_on_new_runs(tmp_path: Path) -> None:
    from playground.judge.carry import export_batch, import_batch

    source = SessionStore(tmp_path / "a.sqlite3")
    batch_id, run_id = _judged_batch(source)
    text = export_batch(source, batch_id)
    assert json.loads(text)["verdicts"][0]["run_id"] == run_id
    target = SessionStore(tmp_path / "b.sqlite3")
    target.save(source.get(run_id), owner="bob")  # the run's id is taken there: the import gets a fresh one
    imported = import_batch(target, text, owner="carol")
    new_run = BatchBook(target).states(imported.batch_id)[0].run_id
    assert new_run != run_id and imported.run_ids == {run_id: new_run}
    got = JudgeBook(target).for_batch(imported.batch_id)
    assert [(v.run_id, v.outcome, v.judge, v.prompts) for v in got] == [
        (new_run, "tie", "smollm2-135m", ["p1", "p2"])]


def test_a_file_with_a_verdict_that_does_not_fit_its_batch_is_refused_whole(tmp_path: Path) -> None:
    import pytest

    from playground.batch.bundle import import_batch as import_without_verdicts
    from playground.judge.carry import export_batch, import_batch
    from playground.sessions.bundle import BundleError

    source = SessionStore(tmp_path / "a.sqlite3")
    batch_id, run_id = _judged_batch(source)
    doc = json.loads(export_batch(source, batch_id))
    target = SessionStore(tmp_path / "b.sqlite3")
    with pytest.raises(BundleError, match="judge verdicts"):  # never dropped silently
        import_without_verdicts(target, json.dumps(doc))
    for change, message in (({"columns": [0, 5]}, "a column the batch does not have"),
                            ({"scores": [7.0, 0.5]}, "outside 0-1"),
                            ({"run_id": "X" * 23}, "a run the file does not hold"),
                            ({"surprise": 1}, "verdicts\\[0\\]")):
        bad = json.loads(json.dumps(doc))
        bad["verdicts"][0].update(change)
        with pytest.raises(BundleError, match=message):
            import_batch(target, json.dumps(bad), owner="carol")
    assert target.count() == 0 and BatchBook(target).list() == []  # nothing stored from a refused file
