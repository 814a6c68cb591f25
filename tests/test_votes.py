"""Blind votes in SQLite: the migration, persistence, one vote per voter, the service, CSV, the CLI."""

from __future__ import annotations

import csv
import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from sample_runs import make_run

from playground.config import Settings
from playground.inspect.leaderboard import CSV_FIELDS
from playground.service import RunService, VoteError
from playground.sessions.store import MIGRATIONS, SessionError, SessionStore, migrate
from playground.sessions.votes import MAX_CATEGORY, VoteBook, clean_category

REPO = Path(__file__).resolve().parent.parent


def test_an_existing_database_upgrades_without_losing_runs(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    db = sqlite3.connect(path, isolation_level=None)
    assert migrate(db, upto=3) == 3  # a database from before votes existed
    db.close()
    old = SessionStore.__new__(SessionStore)  # save a run with the old schema in place
    old.path = path
    run = make_run()
    old.save(run, owner="alice")

    store = SessionStore(path)  # opening it applies the new migration
    assert store.get(run.id).prompt == run.prompt and store.owner_of(run.id) == "alice"
    with sqlite3.connect(path) as raw:
        versions = [v for (v,) in raw.execute("SELECT version FROM schema_migrations ORDER BY version")]
        tables = {n for (n,) in raw.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert versions == list(range(1, len(MIGRATIONS) + 1))
    assert {"votes", "blind_runs", "runs"} <= tables
    assert store.recent()[0].id == run.id


def test_votes_persist_in_the_file_with_their_models_and_category(tmp_path: Path) -> None:
    path = tmp_path / "runs.sqlite3"
    store = SessionStore(path)
    run = make_run()
    store.save(run)
    book = VoteBook(store)
    book.mark_blind(run.id, [1, 0])
    cast = book.cast(run, [1, 0], "win", 0, voter="alice", category="  coding\n", now=1000.0)
    assert cast.new and cast.vote.winner_model == "gemma3-270m"

    again = VoteBook(SessionStore(path))  # a fresh process would see the same
    assert again.order(run.id, 2) == [1, 0]
    (vote,) = again.votes()
    assert vote.models == ["gemma3-270m", "smollm2-135m"]  # letter order: A first
    assert vote.outcome == "win" and vote.winner == 0 and vote.voter == "alice"
    assert vote.category == "coding" and vote.created_at == 1000.0
    assert again.categories() == ["coding"]
    with sqlite3.connect(path) as raw:
        row = raw.execute("SELECT run_id, winner, voter FROM votes").fetchone()
    assert row == (run.id, "gemma3-270m", "alice")


def test_one_vote_per_run_and_voter(tmp_path: Path) -> None:
    store = SessionStore(tmp_path / "runs.sqlite3")
    run = make_run()
    store.save(run)
    book = VoteBook(store)
    assert book.cast(run, [0, 1], "tie", -1, voter="alice").new
    second = book.cast(run, [0, 1], "win", 1, voter="alice")
    assert not second.new and second.vote.outcome == "tie"  # the first vote stands
    assert book.cast(run, [0, 1], "both_bad", -1, voter="bob").new
    assert [v.outcome for v in book.votes()] == ["tie", "both_bad"]


def test_bad_votes_are_refused(tmp_path: Path) -> None:
    store = SessionStore(tmp_path / "runs.sqlite3")
    run = make_run()
    book = VoteBook(store)
    with pytest.raises(VoteError, match="unknown vote"):
        book.cast(run, [0, 1], "landslide", 0, voter="a")
    with pytest.raises(VoteError, match="names no column"):
        book.cast(run, [0, 1], "win", 2, voter="a")
    with pytest.raises(VoteError, match="blind run"):
        book.cast(run, [0, 0], "tie", -1, voter="a")
    assert book.votes() == []
    assert clean_category("a\x00b\tc\u202e" + "x" * 100) == ("a b c " + "x" * 100)[:MAX_CATEGORY]


def _service(tmp_path: Path, shared: bool = False) -> RunService:
    settings = Settings(data_dir=tmp_path, shared_history=shared)
    return RunService(settings, engine=object(), store=SessionStore(tmp_path / "runs.sqlite3"))  # type: ignore[arg-type]


def test_service_votes_only_on_blind_runs_and_ranks(tmp_path: Path) -> None:
    service = _service(tmp_path)
    run = make_run()
    service.store.save(run)
    with pytest.raises(VoteError, match="not run blind"):
        service.vote(run.id, "win", 0, "alice")
    with pytest.raises(SessionError):
        service.vote("x" * 23, "win", 0, "alice")
    service.votes.mark_blind(run.id, [1, 0])
    service.vote(run.id, "win", 1, "alice", "math")  # B = smollm2
    board = service.leaderboard()
    assert [s.model for s in board] == ["smollm2-135m", "gemma3-270m"]
    assert service.leaderboard("math")[0].votes == 1 and service.leaderboard("other") == []


def test_style_control_through_a_real_store_reads_the_answers(tmp_path: Path) -> None:
    """Votes stored on saved blind runs: the style-controlled fit reads each answer from its record (the
    letter order from the stored blind order). smollm2 writes the longer answer in 16 of 20 runs, and the
    longer answer wins 3 times in 4 whichever model wrote it: smollm2 leads the raw table only by length."""
    service = _service(tmp_path)
    long, short = "word " * 60, "short"
    # (smollm2's answer, gemma's answer, the winner's model index) and how many runs of each
    plan = [((long, short), 0, 12), ((long, short), 1, 4), ((short, long), 1, 3), ((short, long), 0, 1)]
    i = 0
    for texts, winner, count in plan:
        for _ in range(count):
            run = make_run(outputs=texts)
            service.store.save(run)
            service.mark_blind(run.id, [1, 0])  # letter A is column 1 (gemma), B is smollm2
            service.vote(run.id, "win", 1 - winner, f"v{i}", "general")
            i += 1
    raw = {s.model: s for s in service.leaderboard()}
    styled = {s.model: s for s in service.leaderboard(style=True)}
    assert raw["smollm2-135m"].score - raw["gemma3-270m"].score > 80  # 13 wins of 20
    assert abs(styled["smollm2-135m"].score - styled["gemma3-270m"].score) < 15  # the lead was length
    assert service.style_effects()["length"] > 0.5
    assert all(s.settled for s in raw.values())  # 20 comparisons, the only opponent met


def test_one_stored_vote_needs_more_votes(tmp_path: Path) -> None:
    service = _service(tmp_path)
    run = make_run()
    service.store.save(run)
    service.mark_blind(run.id, [0, 1])
    service.vote(run.id, "win", 0, "alice")
    board = service.leaderboard()
    assert [s.progress for s in board] == ["needs more votes (1 of 10 comparisons)"] * 2
    assert not any(s.settled for s in board)


def test_votes_csv_file_hides_other_voters(tmp_path: Path) -> None:
    service = _service(tmp_path)
    runs = [make_run(), make_run()]
    for run, voter in zip(runs, ["alice-browser-id-0000000", "bob-browser-id-00000000"], strict=True):
        service.store.save(run)
        service.votes.mark_blind(run.id, [0, 1])
        service.vote(run.id, "tie", -1, voter, 'say "hi", ok')
    path = service.votes_csv_file("alice-browser-id-0000000")
    try:
        rows = list(csv.DictReader(path.open(encoding="utf-8", newline="")))
        assert tuple(rows[0]) == CSV_FIELDS
        assert rows[0]["voter"] == "alice-browser-id-0000000" and rows[0]["run_id"] == runs[0].id
        assert rows[1]["voter"].startswith("voter-") and "bob" not in rows[1]["voter"]
        assert rows[1]["run_id"] == ""  # a run id opens the run: not handed to others
        assert rows[1]["category"] == 'say "hi", ok'
    finally:
        service.close()
    assert not path.exists()  # the service removes its temporary files
    shared = _service(tmp_path, shared=True)
    rows = list(csv.DictReader(shared.votes_csv_file("carol").open(encoding="utf-8", newline="")))
    assert [r["run_id"] for r in rows] == [runs[0].id, runs[1].id]
    shared.close()


# -- the CLI ----------------------------------------------------------------------------------


def cli(db: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO), "PLAYGROUND_DB": str(db),
           "PLAYGROUND_DATA_DIR": str(db.parent), "PLAYGROUND_DEVICE": "cpu"}
    return subprocess.run([sys.executable, "-m", "playground", "leaderboard", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=120, check=False)


def test_cli_leaderboard(tmp_path: Path) -> None:
    db = tmp_path / "runs.sqlite3"
    empty = cli(db)
    assert empty.returncode == 0 and "no votes yet" in empty.stderr
    store = SessionStore(db)
    book = VoteBook(store)
    for i in range(3):
        run = make_run()
        store.save(run)
        book.cast(run, [0, 1], "win", 0, voter=f"v{i}", category="coding" if i else "")
    human = cli(db)
    assert human.returncode == 0, human.stderr
    lines = human.stdout.splitlines()
    assert "model" in lines[0] and lines[1].split()[:2] == ["1", "smollm2-135m"]
    assert "needs more votes (3 of 10 comparisons)" in lines[1]  # three votes: no interval claimed
    data = json.loads(cli(db, "--json", "--category", "coding").stdout)
    assert [r["model"] for r in data] == ["smollm2-135m", "gemma3-270m"]
    assert data[0]["votes"] == 2 and data[0]["ci95"] is None  # two votes support no interval
    assert data[0]["needs"] == "needs more votes (2 of 10 comparisons)" and not data[0]["settled"]
    out = tmp_path / "votes.csv"
    written = cli(db, "--csv", str(out))
    assert written.returncode == 0 and "wrote 3 votes" in written.stderr
    rows = list(csv.DictReader(out.open(encoding="utf-8", newline="")))
    assert len(rows) == 3 and {r["winner"] for r in rows} == {"smollm2-135m"}
    bad = cli(db, "--csv", str(tmp_path / "missing" / "dir" / "v.csv"))
    assert bad.returncode == 2 and "cannot write" in bad.stderr


def test_votes_cast_from_many_threads_at_once_keep_one_per_voter(tmp_path: Path) -> None:
    """One shared store, many users clicking at once: each voter's first vote is kept, once."""
    from concurrent.futures import ThreadPoolExecutor

    store = SessionStore(tmp_path / "runs.sqlite3")
    run = make_run()
    store.save(run)
    book = VoteBook(store)
    book.mark_blind(run.id, [0, 1])
    voters = [f"voter-{i % 4}" for i in range(24)]  # four voters, six clicks each, all at once
    with ThreadPoolExecutor(max_workers=8) as pool:
        casts = list(pool.map(lambda v: book.cast(run, [0, 1], "win", 0, voter=v), voters))
    assert sum(c.new for c in casts) == 4
    assert sorted(v.voter for v in book.votes()) == [f"voter-{i}" for i in range(4)]
    assert all(c.vote.voter == v for c, v in zip(casts, voters, strict=True))


def test_an_arena_draw_is_kept_with_its_run(tmp_path: Path) -> None:
    """The arena's seed and round are stored with the blind run they drew (table arena_draws, store
    migration 8), in the same file: a second store on it reads them back; a run from no battle has none."""
    service = _service(tmp_path)
    run, other = make_run(), make_run()
    for r in (run, other):
        service.store.save(r)
    service.record_arena_draw(run.id, 123456789, 3, "ext-city")
    service.record_arena_draw(run.id, 1, 1, "later")  # the first record stays
    again = VoteBook(SessionStore(tmp_path / "runs.sqlite3"))
    assert again.draw_of(run.id) == (123456789, 3, "ext-city")
    assert again.draw_of(other.id) is None
    with pytest.raises(SessionError):
        service.record_arena_draw("../x", 1, 0)


def test_a_database_whose_arena_table_was_made_on_first_use_keeps_its_draws(tmp_path: Path) -> None:
    """Before migration 8 the arena made its table when it first drew: such a file migrates with its rows."""
    path = tmp_path / "runs.sqlite3"
    db = sqlite3.connect(path, isolation_level=None)
    assert migrate(db, upto=7) == 7
    db.execute("CREATE TABLE arena_draws (run_id TEXT PRIMARY KEY, seed INTEGER NOT NULL, "
               "round INTEGER NOT NULL, prompt_id TEXT NOT NULL DEFAULT '', created_at REAL NOT NULL)")
    run_id = "R" * 23
    db.execute("INSERT INTO arena_draws VALUES (?, 42, 2, 'capital', 0)", (run_id,))
    db.close()
    assert VoteBook(SessionStore(path)).draw_of(run_id) == (42, 2, "capital")
    assert migrate(sqlite3.connect(path, isolation_level=None)) == len(MIGRATIONS) == 8
