"""Snapshots never fail a run: bad settings and broken corpora (real temp folders) become notices."""

from __future__ import annotations

import logging
import os
import sqlite3
from pathlib import Path

import pytest
from test_grounding_web import Factory

from playground.config import SAMPLE_CORPUS
from playground.grounding.providers import SearchError
from playground.grounding.snapshot import (
    SearchOptions,
    SearchProviders,
    check_web_settings,
    default_providers,
    take_snapshot,
)

QUESTION = "What is the diameter of the Zephyr-9 telescope's primary mirror?"


@pytest.fixture
def docs(tmp_path: Path) -> Path:
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "solar.md").write_text("# Solar panels\n\nSolar panels turn sunlight into electricity.\n")
    return folder


def _local(folder: Path, index: Path) -> SearchOptions:
    return SearchOptions("local", 3, False, folder, index)


def _assert_notice(snapshot: object, notice: str, *parts: str) -> None:
    assert snapshot is None
    assert notice.startswith("local search unavailable: ") and notice.endswith("; ran without grounding")
    for part in parts:
        assert part in notice, notice


# --------------------------------------------------------------------------- settings


@pytest.mark.parametrize("region", ["wt-wt", "us-en", "uk-en", "xa-ar", "abc-def"])
def test_good_regions(region: str) -> None:
    check_web_settings(region, "moderate", "")


@pytest.mark.parametrize(
    ("region", "safesearch", "timelimit", "named", "allowed"),
    [
        ("XX_bad", "moderate", "", "search region 'XX_bad'", "like wt-wt or us-en"),
        ("US-EN", "moderate", "", "search region", "lowercase letters and a dash"),
        ("us", "moderate", "", "search region", "2-3 letters each side"),
        ("us-en-gb", "moderate", "", "search region", "2-3 letters each side"),
        ("", "moderate", "", "search region ''", "like wt-wt"),
        ("us-en\n", "moderate", "", "search region", "like wt-wt"),
        ("wt-wt", "strict", "", "safe-search 'strict'", "on, moderate, off"),
        ("wt-wt", "moderate", "h", "time limit 'h'", "d, w, m or y"),
        ("wt-wt", "moderate", "week", "time limit 'week'", "d, w, m or y"),
    ],
)  # fmt: skip
def test_bad_web_settings_name_the_setting_and_the_allowed_values(
    region: str, safesearch: str, timelimit: str, named: str, allowed: str
) -> None:
    options = SearchOptions("web", region=region, safesearch=safesearch, timelimit=timelimit)
    with pytest.raises(SearchError) as info:
        options.validate()
    assert named in str(info.value) and allowed in str(info.value)


def test_bad_web_setting_is_a_notice_and_no_request() -> None:
    factory = Factory()
    registry = SearchProviders(client_factory=factory)
    snapshot, notice = registry.snapshot("python", SearchOptions("web", region="XX_bad"))
    assert snapshot is None
    assert notice.startswith("web search unavailable: search region 'XX_bad' is not valid")
    assert notice.endswith("ran without grounding")
    assert factory.calls == []


def test_web_settings_do_not_matter_for_local_search(tmp_path: Path) -> None:
    options = SearchOptions("local", 3, False, SAMPLE_CORPUS, tmp_path / "i.sqlite3", region="XX_bad")
    snapshot, notice = SearchProviders().snapshot(QUESTION, options)
    assert notice == "" and snapshot is not None
    assert snapshot.results[0].title == "Zephyr-9 orbital telescope"


def test_unknown_provider_and_missing_corpus_setting_are_notices() -> None:
    registry = SearchProviders()
    snapshot, notice = registry.snapshot("q", SearchOptions("bing"))
    assert snapshot is None and notice.startswith("search unavailable: unknown search provider 'bing'")
    snapshot, notice = registry.snapshot("q", SearchOptions("local"))
    assert snapshot is None and "needs a corpus folder" in notice


def test_search_off_is_no_snapshot_and_no_notice() -> None:
    assert take_snapshot("q", SearchOptions()) == (None, "")


# --------------------------------------------------------------------------- broken corpora


def test_missing_folder(tmp_path: Path) -> None:
    missing = tmp_path / "missing"
    _assert_notice(*SearchProviders().snapshot("solar", _local(missing, tmp_path / "i.sqlite3")),
                   f"corpus folder {missing} does not exist")


def test_a_file_instead_of_a_folder(tmp_path: Path) -> None:
    file = tmp_path / "corpus.txt"
    file.write_text("solar")
    _assert_notice(*SearchProviders().snapshot("solar", _local(file, tmp_path / "i.sqlite3")),
                   f"corpus folder {file} is not a folder")


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads folders whatever their mode")
def test_unreadable_folder(docs: Path, tmp_path: Path) -> None:
    docs.chmod(0)
    try:
        _assert_notice(*SearchProviders().snapshot("solar", _local(docs, tmp_path / "i.sqlite3")),
                       "cannot be read")
    finally:
        docs.chmod(0o755)


def test_garbage_index_file_then_rebuilt_once_deleted(docs: Path, tmp_path: Path) -> None:
    index = tmp_path / "i.sqlite3"
    index.write_bytes(b"this is not a database, just garbage " * 200)
    registry = SearchProviders()
    _assert_notice(*registry.snapshot("solar", _local(docs, index)),
                   f"the search index {index} is not usable", "not a database", "delete it to rebuild")
    index.unlink()
    snapshot, notice = registry.snapshot("solar", _local(docs, index))  # the cached provider recovers
    assert notice == "" and snapshot is not None and snapshot.results[0].title == "Solar panels"


def test_index_of_another_schema(docs: Path, tmp_path: Path) -> None:
    index = tmp_path / "i.sqlite3"
    with sqlite3.connect(index) as db:
        db.execute("CREATE TABLE files(name TEXT)")  # same table name, other columns
    db.close()
    _assert_notice(*SearchProviders().snapshot("solar", _local(docs, index)),
                   f"the search index {index} is not usable")


def test_index_path_is_a_folder(docs: Path, tmp_path: Path) -> None:
    index = tmp_path / "index-dir"
    index.mkdir()
    _assert_notice(*SearchProviders().snapshot("solar", _local(docs, index)),
                   f"the search index {index} is not usable", "unable to open")


def test_index_folder_is_a_file(docs: Path, tmp_path: Path) -> None:
    blocker = tmp_path / "blocker"
    blocker.write_text("")
    _assert_notice(*SearchProviders().snapshot("solar", _local(docs, blocker / "i.sqlite3")),
                   f"cannot use {blocker}")


def test_unexpected_provider_failure_is_a_notice_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    """If ddgs ever changes its result shape, the run still goes on (the traceback goes to the log)."""
    class ChangedDDGS:  # results as lists instead of dicts
        def __init__(self, **kwargs: object) -> None: ...

        def text(self, query: str, **kwargs: object) -> list[list[str]]:
            return [["Python", "https://www.python.org/", "The official home"]]

    registry = SearchProviders(client_factory=ChangedDDGS)
    with caplog.at_level(logging.ERROR, logger="playground.grounding.snapshot"):
        snapshot, notice = registry.snapshot("python", SearchOptions("web"))
    assert snapshot is None
    assert notice.startswith("web search unavailable: unexpected error (AttributeError")
    assert notice.endswith("ran without grounding")
    assert "web search failed" in caplog.text


# --------------------------------------------------------------------------- the registry


def test_one_local_corpus_per_folder_and_index(
    docs: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    registry = SearchProviders()
    corpus = registry.local(docs, tmp_path / "i.sqlite3")
    monkeypatch.chdir(tmp_path)
    assert registry.local(Path("docs"), Path("i.sqlite3")) is corpus  # same files, other spelling
    assert registry.provider(_local(docs, tmp_path / "i.sqlite3")) is corpus
    assert registry.local(docs, tmp_path / "other.sqlite3") is not corpus


def test_take_snapshot_uses_the_process_wide_registry(tmp_path: Path) -> None:
    assert default_providers() is default_providers()
    options = SearchOptions("local", 3, False, SAMPLE_CORPUS, tmp_path / "i.sqlite3")
    snapshot, notice = take_snapshot(QUESTION, options)
    assert notice == "" and snapshot is not None
    shared = default_providers()
    assert shared.provider(options) is shared.local(SAMPLE_CORPUS, tmp_path / "i.sqlite3")
    mine = SearchProviders()
    again, _ = take_snapshot(QUESTION, options, providers=mine)
    assert again is not None and [r.url for r in again.results] == [r.url for r in snapshot.results]
