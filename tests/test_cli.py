"""`python -m playground` as a script would use it: exit status, stdout JSON, stderr messages."""

from __future__ import annotations

import json
import os
import re
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from sample_runs import make_run

from playground.record import SCHEMA_VERSION, Run
from playground.sessions.bundle import export_bundle

REPO = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.timeout(600)


def playground(data_dir: Path, *args: str, db: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run the CLI; saved runs go to `db` (PLAYGROUND_DB), or to data_dir's default history when None."""
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "PLAYGROUND_DATA_DIR": str(data_dir),
        "PLAYGROUND_DEVICE": "cpu",
        "GRADIO_ANALYTICS_ENABLED": "False",
    }
    for name in ("PLAYGROUND_CATALOG", "PLAYGROUND_MODELS", "PLAYGROUND_DB"):
        env.pop(name, None)
    if db is not None:
        env["PLAYGROUND_DB"] = str(db)
    return subprocess.run(
        [sys.executable, "-m", "playground", *args],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=540, check=False,
    )


def test_compare_json_prints_a_run_record(data_dir: Path, tmp_path: Path) -> None:
    result = playground(
        data_dir, "compare", "--model", "smollm2-135m", "--max-new-tokens", "16", "--json",
        "What is the capital of France?", db=tmp_path / "runs.sqlite3",
    )
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    data.pop("saved_id")  # where the run was saved: not part of the record
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


# -- saved runs: compare saves, `sessions` reads them back ---------------------------------------

PROMPT = "What is the capital of France?"


@pytest.fixture(scope="module")
def compared(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """One small `compare --json` saved with --db into a fresh database: (database, parsed stdout)."""
    db = tmp_path_factory.mktemp("compared") / "runs.sqlite3"
    result = playground(
        data_dir, "compare", "--model", "smollm2-135m", "--max-new-tokens", "8", "--json",
        "--db", str(db), PROMPT,
    )
    assert result.returncode == 0, result.stderr
    return db, json.loads(result.stdout)


@pytest.fixture
def history(compared: tuple[Path, dict], tmp_path: Path) -> Path:
    """A private copy of the database holding the compared run, so tests can change it freely."""
    copy = tmp_path / "history.sqlite3"
    with sqlite3.connect(compared[0]) as source, sqlite3.connect(copy) as target:
        source.backup(target)
    return copy


def test_compare_json_reports_where_it_saved_the_run(data_dir: Path, compared: tuple[Path, dict]) -> None:
    db, output = compared
    saved_id = output["saved_id"]
    assert re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_-]{22}", saved_id)
    assert saved_id == output["id"]
    record = {k: v for k, v in output.items() if k != "saved_id"}
    assert Run.from_dict(record).prompt == PROMPT

    shown = playground(data_dir, "sessions", "--db", str(db), "show", saved_id, "--json")
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout) == record  # the same content, field for field


def test_sessions_show_prints_the_answer(data_dir: Path, compared: tuple[Path, dict], history: Path) -> None:
    output = compared[1]
    shown = playground(data_dir, "sessions", "show", output["saved_id"], db=history)
    assert shown.returncode == 0, shown.stderr
    assert "=== [0] smollm2-135m ===" in shown.stdout
    assert output["models"][0]["text"] in shown.stdout
    assert "output tokens" in shown.stderr


def test_compare_no_save_stores_nothing(data_dir: Path, tmp_path: Path) -> None:
    db = tmp_path / "runs.sqlite3"
    result = playground(
        data_dir, "compare", "--model", "smollm2-135m", "--max-new-tokens", "8", "--json", "--no-save",
        PROMPT, db=db,
    )
    assert result.returncode == 0, result.stderr
    output = json.loads(result.stdout)
    assert output["saved_id"] is None
    assert not db.exists()  # not even an empty database
    listed = playground(data_dir, "sessions", "list", "--json", db=db)
    assert listed.returncode == 0, listed.stderr
    assert json.loads(listed.stdout) == []
    missing = playground(data_dir, "sessions", "show", output["id"], db=db)
    assert missing.returncode == 2
    assert "no saved run" in missing.stderr


def test_sessions_list_shows_the_saved_run(
    data_dir: Path, compared: tuple[Path, dict], history: Path
) -> None:
    output = compared[1]
    listed = playground(data_dir, "sessions", "list", "--json", db=history)
    assert listed.returncode == 0, listed.stderr
    (entry,) = json.loads(listed.stdout)
    assert entry["id"] == output["saved_id"]
    assert entry["prompt"] == PROMPT
    assert entry["models"] == ["smollm2-135m"]
    assert entry["created_at"] == output["created_at"]

    human = playground(data_dir, "sessions", "list", db=history)
    assert human.returncode == 0, human.stderr
    assert output["saved_id"] in human.stdout
    assert "smollm2-135m" in human.stdout


@pytest.mark.parametrize(
    ("query", "found"),
    [("capital", True), ("CAPITAL", True), ("Fra", True), ("Paris", True), ("Madrid", False),
     ('"AND (', False)],
    ids=["prompt-word", "case", "prefix", "output-word", "absent", "fts-syntax"],
)
def test_sessions_list_search(
    data_dir: Path, compared: tuple[Path, dict], history: Path, query: str, found: bool
) -> None:
    output = compared[1]
    if query == "Paris":
        assert "Paris" in output["models"][0]["text"]  # SmolLM2 greedy answers Paris
        assert "Paris" not in PROMPT
    listed = playground(data_dir, "sessions", "list", "--search", query, "--json", db=history)
    assert listed.returncode == 0, listed.stderr
    ids = [entry["id"] for entry in json.loads(listed.stdout)]
    assert ids == ([output["saved_id"]] if found else [])


def test_sessions_export_then_import_round_trips(
    data_dir: Path, compared: tuple[Path, dict], history: Path, tmp_path: Path
) -> None:
    output = compared[1]
    record = {k: v for k, v in output.items() if k != "saved_id"}
    exported = tmp_path / "run.json"
    result = playground(data_dir, "sessions", "export", output["saved_id"], str(exported), db=history)
    assert result.returncode == 0, result.stderr
    assert json.loads(exported.read_text(encoding="utf-8"))["run"] == record

    fresh = tmp_path / "elsewhere.sqlite3"  # as on another machine
    imported = playground(data_dir, "sessions", "import", str(exported), "--json", db=fresh)
    assert imported.returncode == 0, imported.stderr
    assert json.loads(imported.stdout) == {"saved_id": output["saved_id"], "renamed_from": None}
    shown = playground(data_dir, "sessions", "show", output["saved_id"], "--json", db=fresh)
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout) == record

    again = playground(data_dir, "sessions", "import", str(exported), db=history)  # same id: a new run
    assert again.returncode == 0, again.stderr
    new_id = again.stdout.strip()
    assert new_id != output["saved_id"]
    assert f"stored as {new_id} (a saved run already has the id {output['saved_id']}" in again.stderr
    listed = playground(data_dir, "sessions", "list", "--json", db=history)
    assert sorted(entry["id"] for entry in json.loads(listed.stdout)) == sorted([output["saved_id"], new_id])
    shown = playground(data_dir, "sessions", "show", new_id, "--json", db=history)
    assert json.loads(shown.stdout) == {**record, "id": new_id}  # the same run under its new id


def test_sessions_delete(data_dir: Path, compared: tuple[Path, dict], history: Path) -> None:
    saved_id = compared[1]["saved_id"]
    deleted = playground(data_dir, "sessions", "delete", saved_id, db=history)
    assert deleted.returncode == 0, deleted.stderr
    assert json.loads(playground(data_dir, "sessions", "list", "--json", db=history).stdout) == []
    again = playground(data_dir, "sessions", "delete", saved_id, db=history)
    assert again.returncode == 2
    assert "no saved run" in again.stderr


def _bad_file(kind: str, tmp_path: Path) -> str:
    """An import file that must be refused (built without a model)."""
    path = tmp_path / f"{kind}.json"
    text = export_bundle(make_run())
    if kind == "truncated":
        path.write_text(text[: len(text) // 2], encoding="utf-8")
    elif kind == "future":
        doc = json.loads(text)
        doc["schema_version"] = doc["run"]["schema_version"] = SCHEMA_VERSION + 1
        path.write_text(json.dumps(doc), encoding="utf-8")
    elif kind == "bad-id":
        doc = json.loads(text)
        doc["run"]["id"] = "../../etc/passwd"
        path.write_text(json.dumps(doc), encoding="utf-8")
    elif kind == "out":
        path = tmp_path / "out.json"
    elif kind == "nested":
        path.write_bytes(b"[" * 100_000)
    return str(path)  # "missing" and "out": not written


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["show", "not-an-id"], "'not-an-id' is not a session id"),
        (["show", "../../etc/passwd"], "is not a session id"),
        (["show", "AAAAAAAAAAAAAAAAAAAAAA"], "no saved run has the id 'AAAAAAAAAAAAAAAAAAAAAA'"),
        (["export", "AAAAAAAAAAAAAAAAAAAAAA", "@out"], "no saved run has the id"),
        (["delete", "not-an-id"], "is not a session id"),
        (["import", "@truncated"], "the file is not valid JSON"),
        (["import", "@missing"], "cannot read"),
        (["import", "@future"], "newer than this playground reads"),
        (["import", "@bad-id"], "is not a session id"),
        (["import", "@nested"], "not a run export"),
    ],
    ids=["malformed-id", "path-id", "unknown-id", "export-unknown", "delete-malformed", "import-truncated",
         "import-missing", "import-future-schema", "import-bad-run-id", "import-deeply-nested"],
)
def test_sessions_bad_input_exits_2_with_a_message(
    data_dir: Path, tmp_path: Path, args: list[str], message: str
) -> None:
    db = tmp_path / "runs.sqlite3"
    args = [_bad_file(a[1:], tmp_path) if a.startswith("@") else a for a in args]
    result = playground(data_dir, "sessions", *args, db=db)
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert result.stderr.startswith("playground: error: ")
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""
    listed = playground(data_dir, "sessions", "list", "--json", db=db)
    assert json.loads(listed.stdout) == []  # nothing was stored
    assert not (tmp_path / "out.json").exists()



def _saved_runs(db: Path, count: int, prompt_chars: int = 40) -> None:
    from playground.sessions.store import SessionStore

    store = SessionStore(db)
    for i in range(count):
        store.save(make_run(prompt=f"run {i} " + "p" * prompt_chars, created_at=1.7e9 + i))


def _env(data_dir: Path, db: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO), "PLAYGROUND_DATA_DIR": str(data_dir),
            "PLAYGROUND_DB": str(db), "GRADIO_ANALYTICS_ENABLED": "False"}


def test_sessions_list_into_a_closed_pipe_exits_quietly(data_dir: Path, tmp_path: Path) -> None:
    """The reader is gone before the first line (`| head -1` after its line): status 0, no traceback."""
    db = tmp_path / "runs.sqlite3"
    _saved_runs(db, 3)
    child = subprocess.Popen([sys.executable, "-m", "playground", "sessions", "list"], cwd=REPO, text=True,
                             env=_env(data_dir, db), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    child.stdout.close()  # long before the interpreter has started: its first write meets a closed pipe
    _, err = child.communicate(timeout=120)
    assert child.returncode == 0, err
    assert err == ""


def test_sessions_list_piped_to_head_exits_quietly(data_dir: Path, tmp_path: Path) -> None:
    db = tmp_path / "runs.sqlite3"
    _saved_runs(db, 60, prompt_chars=4_000)  # 240 KB of --json: more than a pipe holds
    script = (f"{sys.executable} -m playground sessions list --json --limit 60 | head -1; "
              f"{sys.executable} -m playground sessions list | head -1")
    done = subprocess.run(["bash", "-o", "pipefail", "-ec", script], cwd=REPO, env=_env(data_dir, db),
                          capture_output=True, text=True, timeout=240, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    assert done.stdout.splitlines()[0] == "["


def test_the_quick_exit_still_does_what_an_exit_must(tmp_path: Path) -> None:
    """`python -m playground` ends without the interpreter's teardown (exit_now), but not without its
    duties: another non-daemon thread finishes, atexit handlers run (a temporary folder is removed),
    buffered output is written, and the status is the command's."""
    script = (
        "import atexit, tempfile, threading, time\n"
        "from playground.cli import exit_now\n"
        f"folder = tempfile.TemporaryDirectory(dir={str(tmp_path)!r})\n"
        "threading.Thread(target=lambda: (time.sleep(0.5), print('thread done'))).start()\n"
        "atexit.register(print, 'atexit ran')\n"
        "print('buffered', end='')\n"
        "exit_now(3)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-c", script], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.returncode == 3, done.stderr
    assert done.stdout == "bufferedthread done\natexit ran\n"
    assert list(tmp_path.iterdir()) == []
