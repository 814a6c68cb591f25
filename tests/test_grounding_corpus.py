"""The local corpus: a real SQLite FTS5 index over files in a temporary folder."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from playground.grounding.providers import TEXT_CAP, LocalCorpus, SearchError, fts_query

SOLAR_MD = "# Solar panels\n\nSolar panels turn sunlight into electricity. Solar power is solar energy.\n"
WIND_TXT = "Wind turbines turn moving air into electricity.\nOn calm days, solar helps.\n"
HYDRO_HTML = """<!doctype html><html><head><title>Hydro &amp; Dams</title>
<style>.solar { color: red }</style><script>var solar = "solar solar";</script></head>
<body><h1>Dams</h1><p>Water held behind dams drives turbines.</p></body></html>"""


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    docs = tmp_path / "docs"
    (docs / "sub").mkdir(parents=True)
    (docs / "solar.md").write_text(SOLAR_MD)
    (docs / "wind.txt").write_text(WIND_TXT)
    (docs / "sub" / "hydro.html").write_text(HYDRO_HTML)
    (docs / "ignored.pdf").write_bytes(b"%PDF solar")
    return docs


@pytest.fixture
def corpus(folder: Path, tmp_path: Path) -> LocalCorpus:
    return LocalCorpus(folder, tmp_path / "index" / "corpus.sqlite")


def _touch_later(path: Path, text: str) -> None:
    """Rewrite a file and move its mtime on, so the change shows even on coarse-mtime filesystems."""
    old = path.stat().st_mtime_ns
    path.write_text(text)
    os.utime(path, ns=(old + 2_000_000_000, old + 2_000_000_000))


def test_indexes_supported_files_once(corpus: LocalCorpus) -> None:
    assert corpus.reindex() == 3
    assert corpus.reindex() == 0
    assert corpus.name == "local"


def test_bm25_ranks_the_denser_match_first(corpus: LocalCorpus, folder: Path) -> None:
    results = corpus.search("solar")
    assert [r.title for r in results] == ["Solar panels", "wind.txt"]  # the html only says it in <script>
    top = results[0]
    assert top.url == (folder / "solar.md").resolve().as_uri()
    assert top.url.startswith("file://")
    assert top.text == SOLAR_MD
    assert "Solar" in top.snippet
    assert "<b>" not in top.snippet and "[" not in top.snippet


def test_titles_from_html_and_markdown(corpus: LocalCorpus) -> None:
    (hydro,) = corpus.search("dams water")[:1]
    assert hydro.title == "Hydro & Dams"
    assert "var solar" not in hydro.text and ".solar" not in hydro.text
    assert "Water held behind dams drives turbines." in hydro.text
    assert corpus.search("panels")[0].title == "Solar panels"
    assert corpus.search("calm")[0].title == "wind.txt"


def test_partial_matches_still_rank(corpus: LocalCorpus) -> None:
    titles = [r.title for r in corpus.search("solar dams unicorns")]
    assert set(titles) == {"Solar panels", "wind.txt", "Hydro & Dams"}


def test_max_results(corpus: LocalCorpus) -> None:
    assert len(corpus.search("electricity", max_results=1)) == 1


def test_reindexes_changed_added_and_deleted_files(corpus: LocalCorpus, folder: Path) -> None:
    corpus.reindex()
    _touch_later(folder / "wind.txt", "Wind turbines and tidal barrages.\n")
    assert corpus.reindex() == 1
    assert corpus.search("barrages")[0].title == "wind.txt"
    assert [r.title for r in corpus.search("calm")] == []

    (folder / "geo.md").write_text("# Geothermal\n\nHeat from deep rock.\n")
    assert [r.title for r in corpus.search("geothermal rock")] == ["Geothermal"]  # search re-indexes itself

    (folder / "solar.md").unlink()
    assert [r.title for r in corpus.search("solar")] == []
    assert corpus.reindex() == 0


def test_index_persists_between_instances(corpus: LocalCorpus, folder: Path, tmp_path: Path) -> None:
    corpus.reindex()
    again = LocalCorpus(folder, tmp_path / "index" / "corpus.sqlite")
    assert again.reindex() == 0
    assert again.search("solar")[0].title == "Solar panels"


@pytest.mark.parametrize(
    "query",
    ['solar"', '"solar', "solar AND", "OR", "NOT solar", "solar*", "(solar", "NEAR(solar wind)",
     "title:solar", "-solar", "^solar", "so'lar", "{title body}: x", "solar + wind", "🙂 solar"],
)  # fmt: skip
def test_fts_syntax_in_queries_is_harmless(corpus: LocalCorpus, query: str) -> None:
    corpus.search(query)  # no sqlite3.OperationalError


def test_fts_query_quotes_each_word() -> None:
    assert fts_query('solar "wind" AND NEAR(x)') == '"solar" OR "wind" OR "AND" OR "NEAR" OR "x"'
    assert fts_query("?!*") == ""


def test_query_of_only_punctuation_finds_nothing(corpus: LocalCorpus) -> None:
    assert corpus.search("?!*") == []


def test_empty_query_is_an_error(corpus: LocalCorpus) -> None:
    with pytest.raises(SearchError, match="empty"):
        corpus.search("  ")


def test_missing_folder(tmp_path: Path) -> None:
    corpus = LocalCorpus(tmp_path / "nope", tmp_path / "i.sqlite")
    with pytest.raises(SearchError, match="corpus folder .*nope does not exist"):
        corpus.search("solar")
    with pytest.raises(SearchError, match="does not exist"):
        corpus.reindex()


def test_text_is_capped(folder: Path, tmp_path: Path) -> None:
    (folder / "long.txt").write_text("needle " + "word " * 10_000)
    (result,) = LocalCorpus(folder, tmp_path / "i.sqlite").search("needle")
    assert len(result.text) == TEXT_CAP
