"""One search per run: query the chosen provider, optionally fetch page text, and never fail the run.

Whatever goes wrong (no network, DNS, timeout, rate limit, zero results, a broken corpus folder
or index, a bad setting) comes back as a notice, and the run goes on without grounding.

Providers live in a `SearchProviders` registry that outlives runs: the web search's one query per
second only holds if every run goes through the same pacer, and the corpus index lock only
serialises writers that share one `LocalCorpus`.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from playground.grounding.fetch import FetchError, fetch_text
from playground.grounding.providers import (
    LocalCorpus,
    RateLimiter,
    SearchError,
    SearchProvider,
    WebSearch,
)
from playground.record import SearchSnapshot, Source

log = logging.getLogger(__name__)

PROVIDERS = ("none", "local", "web")
SAFESEARCH = ("on", "moderate", "off")
TIMELIMITS = ("", "d", "w", "m", "y")  # "" = any time
_REGION = re.compile(r"[a-z]{2,3}-[a-z]{2,3}")  # ddgs regions: wt-wt, us-en, uk-en, ...
FETCH_TOP = 3
_MAX_CACHED = 32  # providers kept per kind; settings are validated, but a web client may send many regions


@dataclass(frozen=True)
class SearchOptions:
    """What to search and how. Building one never fails; `validate()` (called by every snapshot)
    says what is wrong, so a bad setting from the UI or the environment becomes a notice."""

    provider: str = "none"  # none | local | web
    max_results: int = 5
    fetch_pages: bool = False
    corpus_dir: Path | None = None
    index_path: Path | None = None
    fetch_allow: Sequence[str] = field(default_factory=tuple)
    region: str = "wt-wt"  # web only: ddgs region, e.g. wt-wt (no region) or us-en
    safesearch: str = "moderate"  # web only: on | moderate | off
    timelimit: str = ""  # web only: "" (any time) | d | w | m | y

    def validate(self) -> None:
        """Raise SearchError naming the bad setting and the allowed values; web settings only
        matter (and are only checked) for web search."""
        if self.provider not in PROVIDERS:
            allowed = ", ".join(PROVIDERS)
            raise SearchError(f"unknown search provider {self.provider!r} (use one of {allowed})")
        if self.provider == "web":
            check_web_settings(self.region, self.safesearch, self.timelimit)
        if self.provider == "local" and (self.corpus_dir is None or self.index_path is None):
            raise SearchError("local search needs a corpus folder (--corpus DIR)")


def check_web_settings(region: str, safesearch: str, timelimit: str) -> None:
    """Raise SearchError for a region, safe-search or time limit that ddgs would not understand."""
    if not isinstance(region, str) or not _REGION.fullmatch(region):
        raise SearchError(
            f"search region {region!r} is not valid (use lowercase letters and a dash, "
            "2-3 letters each side, like wt-wt or us-en)"
        )
    if safesearch not in SAFESEARCH:
        raise SearchError(f"safe-search {safesearch!r} is not valid (use one of {', '.join(SAFESEARCH)})")
    if timelimit not in TIMELIMITS:
        raise SearchError(
            f"time limit {timelimit!r} is not valid (use d, w, m or y, or leave it empty for any time)"
        )


class SearchProviders:
    """Search providers kept for the life of the app or CLI process: one WebSearch per
    (region, safesearch, timelimit), one LocalCorpus per (corpus_dir, index_path).

    All WebSearch instances share one RateLimiter, so the one-query-per-second pace holds across
    runs, users and settings (and evicting an old instance loses nothing). Thread-safe: the
    registry lock only guards the dictionaries, never a search.
    """

    def __init__(
        self,
        client_factory: Callable[..., Any] | None = None,
        min_interval_s: float = 1.0,
        timeout_s: float = 10.0,
        max_cached: int = _MAX_CACHED,
    ) -> None:
        self._client_factory = client_factory
        self._timeout_s = timeout_s
        self._max_cached = max(1, max_cached)
        self._rate_limiter = RateLimiter(min_interval_s)
        self._lock = threading.Lock()
        self._web: OrderedDict[tuple[str, str, str], WebSearch] = OrderedDict()
        self._local: OrderedDict[tuple[str, str], LocalCorpus] = OrderedDict()

    def web(self, region: str = "wt-wt", safesearch: str = "moderate", timelimit: str = "") -> WebSearch:
        """The WebSearch for these settings (validated; SearchError if not)."""
        check_web_settings(region, safesearch, timelimit)
        key = (region, safesearch, timelimit)
        with self._lock:
            found = self._web.get(key)
            if found is None:
                found = WebSearch(
                    region=region,
                    safesearch=safesearch,
                    timelimit=timelimit or None,  # ddgs wants None for "any time"
                    timeout_s=self._timeout_s,
                    client_factory=self._client_factory,
                    rate_limiter=self._rate_limiter,
                )
                self._web[key] = found
            _keep(self._web, key, self._max_cached)
            return found

    def local(self, corpus_dir: Path, index_path: Path) -> LocalCorpus:
        """The LocalCorpus for this folder and index (keyed by absolute path, no filesystem access)."""
        key = (os.path.abspath(corpus_dir), os.path.abspath(index_path))
        with self._lock:
            found = self._local.get(key)
            if found is None:
                found = LocalCorpus(Path(corpus_dir), Path(index_path))
                self._local[key] = found
            _keep(self._local, key, self._max_cached)
            return found

    def provider(self, options: SearchOptions) -> SearchProvider:
        """The cached provider for these options; SearchError if the options are bad or search is off."""
        options.validate()
        if options.provider == "web":
            return self.web(options.region, options.safesearch, options.timelimit)
        if options.provider == "local":
            assert options.corpus_dir is not None and options.index_path is not None  # validate() checked
            return self.local(options.corpus_dir, options.index_path)
        raise SearchError("search is off")

    def snapshot(self, query: str, options: SearchOptions) -> tuple[SearchSnapshot | None, str]:
        """(snapshot, notice). No snapshot when search is off or failed; the notice says why."""
        if options.provider == "none":
            return None, ""
        label = {"web": "web search", "local": "local search"}.get(options.provider, "search")
        try:
            results = self.provider(options).search(query, options.max_results)
        except SearchError as exc:
            return None, _failed(label, str(exc))
        except Exception as exc:  # a bug or an unforeseen failure: still a notice, but logged in full
            log.exception("%s failed", label)
            return None, _failed(label, f"unexpected error ({type(exc).__name__}: {exc})")
        notes = []
        sources = [Source(r.title, r.url, r.snippet, r.text) for r in results]
        if not sources:
            notes.append(f"no results for {query[:80]!r}; ran without grounding")
        if options.fetch_pages and options.provider == "web":
            sources, fetch_notes = _fetch_pages(sources, options.fetch_allow)
            notes += fetch_notes
        notice = "; ".join(notes)
        return SearchSnapshot(query, options.provider, time.time(), sources, notice), notice


def _keep(cache: OrderedDict[Any, Any], key: Any, limit: int) -> None:
    """Mark key as just used and drop the least recently used entries beyond limit."""
    cache.move_to_end(key)
    while len(cache) > limit:
        cache.popitem(last=False)


def _failed(label: str, message: str) -> str:
    if not message.startswith(label):
        message = f"{label} unavailable: {message}"
    return f"{message}; ran without grounding"


# A process-wide registry holds providers only (pacing, index locks), nothing of any user, so it is
# allowed despite the rule "no per-user state in module globals"; the lock guards its creation.
_default: SearchProviders | None = None
_default_lock = threading.Lock()


def default_providers() -> SearchProviders:
    """The process-wide registry, for callers that do not keep their own."""
    global _default
    with _default_lock:
        if _default is None:
            _default = SearchProviders()
        return _default


def make_provider(options: SearchOptions, providers: SearchProviders | None = None) -> SearchProvider:
    """Kept for compatibility: the cached provider from `providers` (default: the process-wide one)."""
    return (providers or default_providers()).provider(options)


def take_snapshot(
    query: str, options: SearchOptions, providers: SearchProviders | None = None
) -> tuple[SearchSnapshot | None, str]:
    """`providers.snapshot(query, options)`, with the process-wide registry when none is given."""
    return (providers or default_providers()).snapshot(query, options)


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
