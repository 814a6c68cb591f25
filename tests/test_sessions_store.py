"""The SQLite session store: round trips, ids, WAL, migrations, search, concurrency, crashes.

Real SQLite files in tmp_path and hand-built run records; no model is loaded.
"""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
from sample_runs import XSS_PROMPT, make_run

import playground.sessions.store as store_module
from playground.record import Run
from playground.sessions.store import MIGRATIONS, SessionError, SessionStore, migrate
from playground.wording import plural

REPO = Path(__file__).resolve().parent.parent
TESTS = Path(__file__).resolve().parent


@pytest.fixture
def store(tmp_path: Path) -> SessionStore:
    return SessionStore(tmp_path / "runs.sqlite3")


def _child_env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(TESTS)])}


def _schema(db: sqlite3.Connection) -> list[tuple]:
    return db.execute("SELECT type, name, sql FROM sqlite_master ORDER BY name").fetchall()


# -- round trip --------------------------------------------------------------------------


def test_saved_run_comes_back_equal(store: SessionStore) -> None:
    run = make_run()
    assert store.save(run) == run.id
    back = store.get(run.id)
    assert back == run
    assert back.models[0].steps[0].top[1].text == "?"
    assert back.models[1].identity.catalog_id == "gemma3-270m"
    assert store.count() == 1


def test_unicode_and_markup_are_stored_verbatim(store: SessionStore) -> None:
    prompt = XSS_PROMPT + " — café ☕ 東京 مرحبا e\u0301 \U0001f600 tab\there\nnew line"
    run = make_run(
        prompt=prompt,
        outputs=("<b>bold</b> </textarea><script>alert(2)</script>", "日本語の答え 🎉"),
        system_prompt="<img src=x onerror=alert(1)>",
    )
    store.save(run)
    back = store.get(run.id)
    assert back == run
    assert back.prompt == prompt
    assert "<script>alert(1)</script>" in back.prompt
    assert "<img src=x onerror=alert(1)>" in back.prompt
    assert back.system_prompt == "<img src=x onerror=alert(1)>"
    assert back.models[0].text == "<b>bold</b> </textarea><script>alert(2)</script>"
    (summary,) = store.recent()
    assert summary.prompt == prompt  # the history list gets the raw text too; escaping is the UI's job


def test_saving_under_a_taken_id_keeps_the_saved_run_and_stores_a_new_one(store: SessionStore) -> None:
    """An import of a file whose id exists must never silently replace the run already saved."""
    first = make_run(outputs=("first answer",))
    assert store.save(first, owner="alice") == first.id
    original_id = first.id
    second = Run.from_dict(first.to_dict())
    second.models[0].text = "second answer"
    new_id = store.save(second, owner="bob")
    assert new_id != original_id
    assert second.id == new_id  # the caller's run now carries the id it was stored under
    assert re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_-]{22}", new_id)
    assert store.count() == 2
    kept = store.get(original_id)
    assert kept.models[0].text == "first answer"  # untouched
    assert store.owner_of(original_id) == "alice"
    stored = store.get(new_id)
    assert stored.id == new_id  # the record inside says the new id too
    assert stored.models[0].text == "second answer"
    assert store.owner_of(new_id) == "bob"
    assert [r.id for r in store.recent(query="first")] == [original_id]
    assert [r.id for r in store.recent(query="second")] == [new_id]


# -- ids -----------------------------------------------------------------------------------


def test_run_ids_are_23_url_safe_characters_and_distinct() -> None:
    ids = [Run(prompt="x").id for _ in range(2000)]
    assert len(set(ids)) == len(ids)
    for run_id in ids:
        assert re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_-]{22}", run_id), run_id  # never an option-like "-"
    # 23 base64url characters from token_urlsafe(17) carry 136 random bits:
    # across 2000 ids every position, and both cases of letters, show up.
    alphabet = set("".join(ids))
    assert len(alphabet) >= 60


@pytest.mark.parametrize(
    "bad",
    ["", "abc", "../etc/passwd", "x" * 10 + "/" + "x" * 11, "x" * 24, "x" * 21, "x" * 22 + "=",
     "x" * 22 + " "],
    ids=["empty", "short", "path", "slash", "24-chars", "21-chars", "padding", "space"],
)
def test_malformed_ids_are_refused(store: SessionStore, bad: str) -> None:
    with pytest.raises(SessionError, match="is not a session id"):
        store.get(bad)
    with pytest.raises(SessionError, match="is not a session id"):
        store.delete(bad)


def test_non_string_id_is_refused(store: SessionStore) -> None:
    with pytest.raises(SessionError, match="is not a session id"):
        store.get(None)  # type: ignore[arg-type]


def test_unknown_well_formed_id_is_reported(store: SessionStore) -> None:
    store.save(make_run())
    unknown = Run(prompt="never saved").id
    with pytest.raises(SessionError, match="no saved run"):
        store.get(unknown)
    assert store.delete(unknown) is False


# -- WAL and migrations ----------------------------------------------------------------------


def test_database_is_in_wal_mode_with_every_migration_recorded(tmp_path: Path) -> None:
    path = tmp_path / "runs.sqlite3"
    SessionStore(path)
    db = sqlite3.connect(path)
    try:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        versions = [v for (v,) in db.execute("SELECT version FROM schema_migrations ORDER BY version")]
        assert versions == list(range(1, len(MIGRATIONS) + 1))
    finally:
        db.close()


def test_store_creates_missing_parent_directories(tmp_path: Path) -> None:
    store = SessionStore(tmp_path / "a" / "b" / "runs.sqlite3")
    store.save(make_run())
    assert store.count() == 1


def test_migrations_apply_to_an_empty_database_and_are_idempotent() -> None:
    db = sqlite3.connect(":memory:")
    assert migrate(db) == len(MIGRATIONS)
    tables = {name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"runs", "runs_fts", "schema_migrations"} <= tables
    schema = _schema(db)
    applied = db.execute("SELECT version, applied_at FROM schema_migrations ORDER BY version").fetchall()
    assert [v for v, _ in applied] == list(range(1, len(MIGRATIONS) + 1))

    assert migrate(db) == len(MIGRATIONS)  # second run: nothing to do
    assert _schema(db) == schema
    again = db.execute("SELECT version, applied_at FROM schema_migrations ORDER BY version").fetchall()
    assert again == applied


def test_migrate_upto_stops_at_that_version() -> None:
    db = sqlite3.connect(":memory:")
    assert migrate(db, upto=1) == 1
    tables = {name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert "runs" in tables
    assert "runs_fts" not in tables
    assert migrate(db) == len(MIGRATIONS)


def test_a_failing_migration_leaves_nothing_behind(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(db: sqlite3.Connection) -> None:
        db.execute("CREATE TABLE half_done (x)")
        raise RuntimeError("migration bug")

    monkeypatch.setattr(store_module, "MIGRATIONS", [*MIGRATIONS, broken])
    db = sqlite3.connect(":memory:", isolation_level=None)  # autocommit, as SessionStore connects
    with pytest.raises(RuntimeError, match="migration bug"):
        migrate(db)
    tables = {name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert "half_done" not in tables  # rolled back with its failed migration
    versions = [v for (v,) in db.execute("SELECT version FROM schema_migrations ORDER BY version")]
    assert versions == list(range(1, len(MIGRATIONS) + 1))  # the good ones stay applied


def test_two_connections_migrating_a_new_database_at_once_apply_each_step_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "new.sqlite3"
    in_first_step = threading.Event()

    def slow_first_step(db: sqlite3.Connection) -> None:
        MIGRATIONS[0](db)
        in_first_step.set()
        time.sleep(0.5)  # the other connection tries to migrate meanwhile

    monkeypatch.setattr(store_module, "MIGRATIONS", [slow_first_step, *MIGRATIONS[1:]])
    errors: list[BaseException] = []

    def open_and_migrate() -> None:
        db = sqlite3.connect(path, timeout=10, isolation_level=None)
        try:
            migrate(db)
        except BaseException as exc:  # reported by the assertion below
            errors.append(exc)
        finally:
            db.close()

    first = threading.Thread(target=open_and_migrate)
    first.start()
    assert in_first_step.wait(10)
    second = threading.Thread(target=open_and_migrate)
    second.start()
    first.join(30)
    second.join(30)
    assert errors == []
    db = sqlite3.connect(path)
    try:
        versions = [v for (v,) in db.execute("SELECT version FROM schema_migrations ORDER BY version")]
        assert versions == list(range(1, len(MIGRATIONS) + 1))
    finally:
        db.close()


def test_opening_a_new_database_waits_while_another_connection_writes_it(tmp_path: Path) -> None:
    """The switch to WAL needs the file to itself; it must wait for another writer, not fail at once.

    This is what happens when two processes open a new database together: one is writing the
    file's first pages (before WAL) while the other asks for WAL.
    """
    path = tmp_path / "runs.sqlite3"
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    try:
        other.execute("CREATE TABLE unrelated (x)")  # the file exists, still in rollback-journal mode
        other.execute("BEGIN IMMEDIATE")
        other.execute("INSERT INTO unrelated VALUES (1)")  # a write lock, held for a moment
        release = threading.Timer(0.5, lambda: other.execute("COMMIT"))
        release.start()
        start = time.monotonic()
        store = SessionStore(path)
        release.join()
        assert time.monotonic() - start >= 0.4  # it waited for the reader
    finally:
        other.close()
    store.save(run := make_run())
    assert store.get(run.id) == run
    db = sqlite3.connect(path)
    try:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        db.close()


def test_database_of_the_previous_schema_is_migrated_and_searchable(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    old = make_run(prompt="Name a large river", outputs=("The Danube flows east.", "Amazon"))
    db = sqlite3.connect(path)
    try:
        assert migrate(db, upto=1) == 1
        with db:
            db.execute(
                "INSERT INTO runs(id, created_at, prompt, models, record) VALUES (?, ?, ?, ?, ?)",
                (
                    old.id,
                    old.created_at,
                    old.prompt,
                    json.dumps([m.identity.catalog_id for m in old.models]),
                    json.dumps(old.to_dict(), ensure_ascii=False),
                ),
            )
    finally:
        db.close()

    store = SessionStore(path)  # runs migration 2, which backfills the search index
    db = sqlite3.connect(path)
    try:
        versions = [v for (v,) in db.execute("SELECT version FROM schema_migrations ORDER BY version")]
        assert versions == list(range(1, len(MIGRATIONS) + 1))
    finally:
        db.close()
    assert store.get(old.id) == old
    assert [r.id for r in store.recent(query="river")] == [old.id]  # prompt
    assert [r.id for r in store.recent(query="Danube")] == [old.id]  # output only
    (summary,) = store.recent()
    assert summary.models == ["smollm2-135m", "gemma3-270m"]

    SessionStore(path)  # opening again migrates nothing and loses nothing
    assert [r.id for r in store.recent(query="danube")] == [old.id]
    assert store.count() == 1


# -- history and search ------------------------------------------------------------------------


def test_recent_is_newest_first_and_honours_the_limit(store: SessionStore) -> None:
    runs = [make_run(prompt=f"prompt number {i}", created_at=1_700_000_000 + i) for i in range(7)]
    for run in (runs[3], runs[0], runs[6], runs[1], runs[5], runs[2], runs[4]):  # saved out of order
        store.save(run)
    assert [r.id for r in store.recent()] == [r.id for r in reversed(runs)]
    assert [r.id for r in store.recent(limit=3)] == [runs[6].id, runs[5].id, runs[4].id]
    assert [r.id for r in store.recent(limit=3, query="prompt")] == [runs[6].id, runs[5].id, runs[4].id]
    first = store.recent(limit=1)[0]
    assert (first.prompt, first.created_at, first.models) == (
        "prompt number 6", 1_700_000_006, ["smollm2-135m", "gemma3-270m"]
    )


def test_search_finds_prompts_outputs_and_prefixes(store: SessionStore) -> None:
    france = make_run(prompt="What is the capital of France?", outputs=("Paris is the capital.",))
    rivers = make_run(prompt="Name a river", outputs=("The Danube.", "The Rhône flows through Lyon."))
    store.save(france)
    store.save(rivers)

    def found(query: str) -> set[str]:
        return {r.id for r in store.recent(query=query)}

    assert found("capital") == {france.id}
    assert found("Paris") == {france.id}  # only in an output
    assert found("Par") == {france.id}  # prefix
    assert found("par") == {france.id}  # case-insensitive
    assert found("Lyon") == {rivers.id}  # second column's output
    assert found("rhone") == {rivers.id}  # diacritics folded
    assert found("the") == {france.id, rivers.id}
    assert found("capital Paris") == {france.id}  # all words must match
    assert found("capital Danube") == set()
    assert found("nothing-like-this") == set()


@pytest.mark.parametrize(
    "query",
    ['"', '""', "*", "Paris*", "AND (", "NEAR(", "NEAR(a b", "OR", "NOT Paris", "prompt:Paris", "^Paris",
     "-Paris", "a + b", "(", ")", "'; DROP TABLE runs; --", "{prompt}: x", "\\", "%", "_"],
)
def test_fts_syntax_in_a_query_does_not_raise(store: SessionStore, query: str) -> None:
    run = make_run(outputs=("Paris is the capital.",))
    store.save(run)
    result = store.recent(query=query)
    assert all(r.id == run.id for r in result)
    if re.findall(r"\w+", query) == ["Paris"]:  # the operators are not words: plain Paris is searched
        assert [r.id for r in result] == [run.id]
    assert store.count() == 1


def test_delete_removes_the_run_and_its_search_entry(store: SessionStore, tmp_path: Path) -> None:
    keep = make_run(prompt="keep me", outputs=("Oslo",))
    gone = make_run(prompt="delete me", outputs=("Oslo",))
    store.save(keep)
    store.save(gone)
    assert store.delete(gone.id) is True
    assert store.delete(gone.id) is False  # already gone
    with pytest.raises(SessionError, match="no saved run"):
        store.get(gone.id)
    assert [r.id for r in store.recent()] == [keep.id]
    assert [r.id for r in store.recent(query="Oslo")] == [keep.id]
    assert store.recent(query="delete") == []
    db = sqlite3.connect(tmp_path / "runs.sqlite3")
    try:
        assert db.execute("SELECT COUNT(*) FROM runs_fts WHERE id = ?", (gone.id,)).fetchone()[0] == 0
        assert db.execute("SELECT COUNT(*) FROM runs").fetchone()[0] == 1
    finally:
        db.close()


# -- several processes, and a crash ---------------------------------------------------------------

_SAVER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from sample_runs import make_run
    from playground.sessions.store import SessionStore

    db, tag, go = Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3])
    while not go.exists():  # start both processes' work at the same moment
        time.sleep(0.001)
    store = SessionStore(db)
    for i in range(50):
        run = make_run(prompt=f"process {tag} run {i}", outputs=(f"answer {tag}{i}",))
        store.save(run)
        print(run.id, flush=True)
    """
)


def test_two_processes_saving_at_once_lose_nothing(tmp_path: Path) -> None:
    db = tmp_path / "shared.sqlite3"  # not created yet: both processes also race to migrate it
    go = tmp_path / "go"
    children = [
        subprocess.Popen(
            [sys.executable, "-c", _SAVER, str(db), tag, str(go)],
            env=_child_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        for tag in ("a", "b")
    ]
    time.sleep(1.5)  # both interpreters up and waiting
    go.touch()
    outputs = [child.communicate(timeout=120) for child in children]
    for child, (_, err) in zip(children, outputs, strict=True):
        assert child.returncode == 0, err
    ids = [line for out, _ in outputs for line in out.split()]
    assert len(ids) == len(set(ids)) == 100

    store = SessionStore(db)
    assert store.count() == 100
    for run_id in ids:
        assert store.get(run_id).id == run_id
    assert len(store.recent(limit=1000, query="process")) == 100
    assert len(store.recent(limit=1000, query="a49")) == 1


_BIG_SAVER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from sample_runs import make_run
    from playground.sessions.store import SessionStore

    store = SessionStore(Path(sys.argv[1]))
    for i in range(200):
        text = "lorem ipsum dolor sit amet " * 70_000  # ~1.9 MB: under the 2M characters a text may hold
        prompt = f"big run {i} " + text
        run = make_run(prompt=prompt, outputs=(f"answer number {i}",), system_prompt=text)  # ~5.7 MB saved
        store.save(run)
        print(run.id, flush=True)
    """
)


@pytest.mark.parametrize("delay", [0.03, 0.1, 0.2], ids=["early", "middle", "late"])
def test_sigkill_during_a_save_keeps_the_database_intact(tmp_path: Path, delay: float) -> None:
    path = tmp_path / "runs.sqlite3"
    store = SessionStore(path)
    earlier = [make_run(prompt=f"earlier run {i}", outputs=(f"answer {i}",)) for i in range(5)]
    for run in earlier:
        store.save(run)

    child = subprocess.Popen(
        [sys.executable, "-c", _BIG_SAVER, str(path)],
        env=_child_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        first = child.stdout.readline().strip()
        assert first, child.stderr.read()
        # one save of ~5 MB (JSON, row, search index) takes 0.15-0.3 s here: kill at points inside it
        time.sleep(delay)
        assert child.poll() is None, "the child finished before it could be killed"
        os.kill(child.pid, signal.SIGKILL)
        rest, _ = child.communicate(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert child.returncode == -signal.SIGKILL
    committed = [first, *rest.split()]
    assert len(committed) < 200  # it died mid-loop

    db = sqlite3.connect(path)
    try:
        assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        assert db.execute("INSERT INTO runs_fts(runs_fts) VALUES ('integrity-check')") is not None
    finally:
        db.close()

    store = SessionStore(path)  # opens (and migrates) fine after the crash
    for run in earlier:
        assert store.get(run.id) == run
    for run_id in committed:
        big = store.get(run_id)
        assert big.prompt.startswith("big run ")
        assert len(big.prompt) + len(big.system_prompt) > 3_700_000
        assert big.models[0].text.startswith("answer number ")
    # at most the one save in flight is lost; nothing half-written is visible
    assert store.count() in (5 + len(committed), 5 + len(committed) + 1)
    assert len(store.recent(limit=1000, query="earlier")) == 5

    again = make_run(prompt="after the crash")
    store.save(again)
    assert store.get(again.id) == again
    assert [r.id for r in store.recent(query="crash")] == [again.id]


# -- rows that cannot be read ------------------------------------------------------------------


def _raw_insert(path: Path, run_id: str, created_at: object, prompt: object = "a prompt",
                models: object = '["smollm2-135m"]', record: object = "{}", owner: str = "") -> None:
    """A row as an older version, a bug or a hand edit may have left it, bypassing SessionStore.save."""
    db = sqlite3.connect(path)
    try:
        with db:
            db.execute("INSERT INTO runs(id, created_at, prompt, models, record, owner) VALUES (?,?,?,?,?,?)",
                       (run_id, created_at, prompt, models, record, owner))
            db.execute("INSERT INTO runs_fts(id, prompt, outputs) VALUES (?, ?, '')", (run_id, str(prompt)))
    finally:
        db.close()


def _bad_rows(path: Path) -> int:
    """Write one row of each kind that cannot be listed; return how many."""
    bad = [
        {"created_at": 1e300},
        {"created_at": float("inf")},
        {"created_at": float("-inf")},
        {"created_at": -1.0},
        {"created_at": 253402300800.0},  # 10000-01-01: past what a date can show
        {"created_at": "yesterday"},
        {"models": "[broken"},
        {"models": '{"a": 1}'},
        {"models": "[1, 2]"},
        {"prompt": b"\xff\xfe"},  # a BLOB: TEXT affinity would turn a number into text
    ]
    for fields in bad:
        _raw_insert(path, Run(prompt="x").id, **{"created_at": 1_700_000_050.0, **fields})
    _raw_insert(path, "not a valid id", 1_700_000_060.0)  # could never be shown or deleted
    return len(bad) + 1


def test_unreadable_rows_are_skipped_and_counted(tmp_path: Path) -> None:
    path = tmp_path / "runs.sqlite3"
    store = SessionStore(path)
    good = [make_run(prompt=f"good run {i}", created_at=1_700_000_000 + i) for i in range(3)]
    for run in good:
        store.save(run)
    skipped = _bad_rows(path)

    listing = store.list_runs()
    assert [r.id for r in listing.rows] == [r.id for r in reversed(good)]
    assert listing.skipped == skipped
    assert store.recent() == listing.rows
    for row in listing.rows:
        assert isinstance(row.created_at, float)
        assert row.models == ["smollm2-135m", "gemma3-270m"]
    # bad rows sort first (1e300, inf, text): the limit still counts readable rows
    assert [r.id for r in store.list_runs(limit=2).rows] == [good[2].id, good[1].id]
    assert [r.id for r in store.recent(limit=1)] == [good[2].id]
    assert store.list_runs(query="prompt").rows == []  # the bad rows match, and are skipped
    assert store.list_runs(query="prompt").skipped >= 1
    assert store.list_runs(query="good").skipped == 0


def test_many_unreadable_rows_before_the_readable_ones_are_paged_through(tmp_path: Path) -> None:
    path = tmp_path / "runs.sqlite3"
    store = SessionStore(path)
    good = [make_run(prompt=f"good run {i}", created_at=1_700_000_000 + i) for i in range(3)]
    for run in good:
        store.save(run)
    db = sqlite3.connect(path)
    try:
        with db:  # newer than every good run, as a broken clock would leave them
            db.executemany(
                "INSERT INTO runs(id, created_at, prompt, models, record) VALUES (?, ?, 'p', ?, '{}')",
                [(Run(prompt="x").id, 1_800_000_000.0 + i, "[broken") for i in range(150)],
            )
    finally:
        db.close()
    listing = store.list_runs(limit=2)
    assert [r.id for r in listing.rows] == [good[2].id, good[1].id]
    assert listing.skipped == 150
    listing = store.list_runs(limit=10)
    assert [r.id for r in listing.rows] == [r.id for r in reversed(good)]
    assert listing.skipped == 150
    assert store.list_runs(limit=0).rows == []


def test_time_at_the_edges_of_the_range_is_listed(tmp_path: Path) -> None:
    path = tmp_path / "runs.sqlite3"
    store = SessionStore(path)
    first, last = Run(prompt="epoch").id, Run(prompt="end of year 9999").id
    _raw_insert(path, first, 0.0)
    _raw_insert(path, last, 253402300799)  # an integer: SQLite keeps it as REAL
    listing = store.list_runs()
    assert [r.id for r in listing.rows] == [last, first]
    assert listing.skipped == 0


@pytest.mark.parametrize(
    ("record", "message"),
    [
        ("{not json", "cannot be read"),
        ('{"prompt": "x"', "cannot be read"),
        ("9" * 5000, "cannot be read"),  # too many digits for int()
        ("[" * 100_000, "cannot be read"),  # nested too deep
        ("CREATED_AT_1e300", r"created_at"),
        ("CREATED_AT_Infinity", r"created_at"),
        ("CREATED_AT_-5", r"created_at"),
        ("OTHER_ID", "says it is run"),
    ],
    ids=["broken", "truncated", "long-number", "deep", "time-1e300", "time-infinity", "time-negative",
         "other-id"],
)
def test_getting_an_unreadable_row_says_so(tmp_path: Path, record: str, message: str) -> None:
    path = tmp_path / "runs.sqlite3"
    store = SessionStore(path)
    run = make_run()
    run_id = run.id
    if record.startswith("CREATED_AT_"):
        text = run.to_json().replace(f'"created_at": {run.created_at!r}',
                                     f'"created_at": {record.removeprefix("CREATED_AT_")}')
        assert text != run.to_json()
        record = text
    elif record == "OTHER_ID":
        record = run.to_json()
        run_id = Run(prompt="x").id
    _raw_insert(path, run_id, 1_700_000_000.0, record=record)
    with pytest.raises(SessionError, match=message) as info:
        store.get(run_id)
    assert f"saved run {run_id}" in str(info.value)
    assert [r.id for r in store.recent()] == [run_id]  # its summary row is fine: it stays listed


# -- the `sessions` command ------------------------------------------------------------------------

ESCAPES = "\x1b]0;pwned\x07\x1b[2J\x9b31m\x1b[H\r\x7f\x00"


def _cli(capsys: pytest.CaptureFixture[str], db: Path, *args: str) -> tuple[int, str, str]:
    from playground.__main__ import main

    status = main(["sessions", "--db", str(db), *args])
    out, err = capsys.readouterr()
    return status, out, err


def _no_controls(text: str) -> bool:
    return not any((ord(c) < 32 and c not in "\n\t") or 0x7F <= ord(c) < 0xA0 for c in text)


def test_terminal_safe_strips_control_characters_but_keeps_lines_and_tabs() -> None:
    from playground.__main__ import terminal_safe

    assert terminal_safe("a\x1b[2Jb\tc\nd\x07e\x9b\x7f\r\x00\x85f") == "a[2Jb\tc\nde" + "f"
    assert terminal_safe("café ☕ 東京 \u200b") == "café ☕ 東京 \u200b"  # printable text is untouched
    assert terminal_safe("") == ""


def test_sessions_show_and_list_print_no_terminal_escapes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "runs.sqlite3"
    store = SessionStore(db)
    run = make_run(prompt=f"What{ESCAPES} is\tthis?", outputs=(f"An answer{ESCAPES}\nline two",))
    run.system_prompt = f"system{ESCAPES}"
    run.models[0].identity.catalog_id = f"evil{ESCAPES}model"
    run.models[0].error = f"it broke{ESCAPES}"
    run.models[0].finish_reason = f"error{ESCAPES}"
    store.save(run)

    status, out, err = _cli(capsys, db, "show", run.id)
    assert status == 0, err
    assert _no_controls(out), repr(out)
    assert _no_controls(err), repr(err)
    assert "An answer]0;pwned[2J31m[H\nline two" in out  # the text is there, minus the controls
    assert "evil]0;pwned[2J31m[Hmodel" in out
    assert "What]0;pwned[2J31m[H is\tthis?" in out  # the prompt is shown too
    assert "it broke]0;pwned" in err

    status, out, err = _cli(capsys, db, "list")
    assert status == 0, err
    assert _no_controls(out), repr(out)
    assert run.id in out
    assert "evil]0;pwned" in out

    status, out, _ = _cli(capsys, db, "show", run.id, "--json")  # JSON escapes them: exact text
    assert status == 0
    assert "\x1b" not in out
    assert json.loads(out)["prompt"] == run.prompt


def test_an_import_error_naming_saved_text_prints_no_escapes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from playground.sessions.bundle import export_bundle

    doc = json.loads(export_bundle(make_run()))
    doc["run"]["models"][0]["identity"]["libraries"] = {"\x1b[2Jtorch": 5}
    path = tmp_path / "evil.json"
    path.write_text(json.dumps(doc), encoding="utf-8")
    status, out, err = _cli(capsys, tmp_path / "runs.sqlite3", "import", str(path))
    assert status == 2
    assert "[2Jtorch" in err
    assert _no_controls(err), repr(err)
    assert out == ""


def test_sessions_list_reports_skipped_rows_on_stderr(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "runs.sqlite3"
    store = SessionStore(db)
    good = make_run(prompt="a good run")
    store.save(good)
    skipped = _bad_rows(db)

    status, out, err = _cli(capsys, db, "list")
    assert status == 0, err
    assert good.id in out
    assert f"skipped {plural(skipped, 'unreadable saved run')}" in err

    status, out, err = _cli(capsys, db, "list", "--json")
    assert status == 0, err
    listed = json.loads(out)
    assert isinstance(listed, list)  # still a plain list of summaries
    assert [entry["id"] for entry in listed] == [good.id]
    assert f"skipped {plural(skipped, 'unreadable saved run')}" in err

    SessionStore(tmp_path / "clean.sqlite3").save(make_run())
    status, _, err = _cli(capsys, tmp_path / "clean.sqlite3", "list")
    assert status == 0
    assert "skipped" not in err


def test_sessions_import_of_a_taken_id_stores_a_new_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from playground.sessions.bundle import export_bundle

    db = tmp_path / "runs.sqlite3"
    store = SessionStore(db)
    saved = make_run(prompt="the saved one", outputs=("kept",))
    store.save(saved)
    other = make_run(prompt="the imported one", outputs=("imported",))
    other.id = saved.id  # a file whose id is already taken
    path = tmp_path / "run.json"
    path.write_text(export_bundle(other), encoding="utf-8")

    status, out, err = _cli(capsys, db, "import", str(path))
    assert status == 0, err
    new_id = out.strip()
    assert new_id != saved.id
    assert f"stored as {new_id} (a saved run already has the id {saved.id}; it was left untouched)" in err
    assert store.get(saved.id) == saved
    assert store.get(new_id).prompt == "the imported one"

    status, out, err = _cli(capsys, db, "import", str(path), "--json")
    assert status == 0, err
    result = json.loads(out)
    assert result["renamed_from"] == saved.id
    assert result["saved_id"] not in (saved.id, new_id)
    assert store.count() == 3

    status, out, err = _cli(capsys, tmp_path / "fresh.sqlite3", "import", str(path), "--json")
    assert status == 0, err
    assert json.loads(out) == {"saved_id": saved.id, "renamed_from": None}
    assert "stored as" not in err
