"""One search per run: query the chosen provider, optionally fetch page text, and never fail the run.

Whatever goes wrong (no network, DNS, timeout, rate limit, zero results) comes
back as a notice, and the run goes on without grounding.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from playground.grounding.fetch import FetchError, fetch_text
from playground.grounding.providers import LocalCorpus, SearchError, SearchProvider, WebSearch
from playground.record import SearchSnapshot, Source

PROVIDERS = ("none", "local", "web")
FETCH_TOP = 3


@dataclass(frozen=True)
class SearchOptions:
    provider: str = "none"  # none | local | web
    max_results: int = 5
    fetch_pages: bool = False
    corpus_dir: Path | None = None
    index_path: Path | None = None
    fetch_allow: Sequence[str] = field(default_factory=tuple)


def make_provider(options: SearchOptions) -> SearchProvider:
    if options.provider == "web":
        return WebSearch()
    if options.provider == "local":
        if options.corpus_dir is None or options.index_path is None:
            raise SearchError("local search needs a corpus folder (--corpus DIR)")
        return LocalCorpus(options.corpus_dir, options.index_path)
    raise SearchError(f"unknown search provider {options.provider!r} (use one of {', '.join(PROVIDERS)})")


def take_snapshot(query: str, options: SearchOptions) -> tuple[SearchSnapshot | None, str]:
    """(snapshot, notice). No snapshot when search is off or failed; the notice says why."""
    if options.provider == "none":
        return None, ""
    try:
        provider = make_provider(options)
        results = provider.search(query, options.max_results)
    except SearchError as exc:
        message = str(exc)
        label = "web search" if options.provider == "web" else "local search"
        if not message.startswith(label):
            message = f"{label} unavailable: {message}"
        return None, f"{message}; ran without grounding"
    notes = []
    sources = [Source(r.title, r.url, r.snippet, r.text) for r in results]
    if not sources:
        notes.append(f"no results for {query[:80]!r}; ran without grounding")
    if options.fetch_pages and options.provider == "web":
        sources, fetch_notes = _fetch_pages(sources, options.fetch_allow)
        notes += fetch_notes
    return SearchSnapshot(query, options.provider, time.time(), sources, "; ".join(notes)), "; ".join(notes)


def _fetch_pages(sources: list[Source], allow: Sequence[str]) -> tuple[list[Source], list[str]]:
    """Full text for the top results; a page that cannot be fetched keeps its snippet."""
    notes = []
    fetched = []
    for number, source in enumerate(sources, 1):
        if number > FETCH_TOP or source.text:
            fetched.append(source)
            continue
        try:
            text = fetch_text(source.url, allow=allow)
            fetched.append(Source(source.title, source.url, source.snippet, text))
        except FetchError as exc:
            notes.append(f"page text not fetched for [{number}]: {exc}")
            fetched.append(source)
    return fetched, notes
