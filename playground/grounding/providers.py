"""Search providers: the web (ddgs) and a local folder indexed with SQLite FTS5.

Both return the same plain `SearchResult`s, so the prompt builder and the UI do not care where
evidence came from. Failures become `SearchError` with a message fit for the user, because the
app must say why grounding is off and carry on without it.
"""

from __future__ import annotations

import os
import re
import socket
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path
from stat import S_ISREG
from typing import Any, Protocol

from playground.grounding.htmltext import html_to_text

TEXT_CAP = 20_000  # characters of document text handed on per result
_BODY_CAP = 2_000_000  # characters stored per corpus document
_MAX_QUERY_TERMS = 32
_SUFFIXES = {".txt", ".md", ".markdown", ".html", ".htm"}


@dataclass(frozen=True)
class SearchResult:
    title: str
    url: str
    snippet: str
    text: str = ""  # extracted page text, when fetched


class SearchError(RuntimeError):
    """A search failed; the message is fit for the user, e.g.
    'web search unavailable: DNS lookup failed (no network?)'."""


class SearchProvider(Protocol):
    name: str  # "web" | "local"

    def search(self, query: str, max_results: int = 5) -> list[SearchResult]: ...


# --------------------------------------------------------------------------- web


def _default_client_factory(**kwargs: Any) -> Any:
    """Import ddgs lazily so the rest of the app works without it installed."""
    from ddgs import DDGS

    return DDGS(**kwargs)


class RateLimiter:
    """Spaces the starts of calls by min_interval_s, across threads.

    Separate from WebSearch so that several WebSearch instances (one per region / safe-search /
    time limit) can share one pace: the limit is about politeness to the search engine, which does
    not care which region we asked for.
    """

    def __init__(self, min_interval_s: float = 1.0) -> None:
        self.min_interval_s = min_interval_s
        self._lock = threading.Lock()
        self._last_start: float | None = None

    def wait_turn(self) -> None:
        """Wait until min_interval_s after the previous start; sleeping under the lock queues callers."""
        with self._lock:
            now = time.monotonic()
            if self._last_start is not None:
                remaining = self._last_start + self.min_interval_s - now
                if remaining > 0:
                    time.sleep(remaining)
                    now = time.monotonic()
            self._last_start = now


class WebSearch:
    """ddgs text search with a polite rate limit (its own, or one shared through `rate_limiter`)."""

    name = "web"

    def __init__(
        self,
        region: str = "wt-wt",
        safesearch: str = "moderate",
        timelimit: str | None = None,
        timeout_s: float = 10.0,
        min_interval_s: float = 1.0,
        client_factory: Callable[..., Any] | None = None,
        rate_limiter: RateLimiter | None = None,
    ) -> None:
        self.region = region
        self.safesearch = safesearch
        self.timelimit = timelimit
        self.timeout_s = timeout_s
        self._client_factory = client_factory or _default_client_factory
        self._rate_limiter = rate_limiter or RateLimiter(min_interval_s)

    def search(self, query: str, max_results: int = 5) -> list[SearchResult]:
        query = query.strip()
        if not query:
            raise SearchError("web search: the query is empty")
        self._wait_turn()
        try:
            client = self._client_factory(timeout=self.timeout_s)
            raw = client.text(
                query,
                region=self.region,
                safesearch=self.safesearch,
                timelimit=self.timelimit,
                max_results=max(1, max_results),
            )
        except Exception as exc:  # ddgs wraps most failures in DDGSException; see _describe
            if _is_no_results(exc):
                return []
            raise SearchError(f"web search unavailable: {_describe(exc, self.timeout_s)}") from exc
        return [r for r in map(_to_result, raw or []) if r.url][: max(1, max_results)]

    @property
    def min_interval_s(self) -> float:
        return self._rate_limiter.min_interval_s

    def _wait_turn(self) -> None:
        self._rate_limiter.wait_turn()


def _to_result(item: dict[str, Any]) -> SearchResult:
    return SearchResult(
        title=str(item.get("title") or ""),
        url=str(item.get("href") or ""),
        snippet=str(item.get("body") or ""),
    )


def _is_no_results(exc: BaseException) -> bool:
    """ddgs raises DDGSException('No results found.') instead of returning [] when nothing matched."""
    return type(exc).__name__ == "DDGSException" and "no results found" in str(exc).lower()


def _ddgs_exceptions() -> tuple[type[BaseException], type[BaseException]]:
    try:
        from ddgs.exceptions import RatelimitException, TimeoutException
    except ImportError:  # pragma: no cover - ddgs is a dependency
        return (type(None), type(None))  # type: ignore[return-value]
    return RatelimitException, TimeoutException


def _describe(exc: BaseException, timeout_s: float) -> str:
    """Tell rate limiting, timeouts and network (DNS) failures apart; ddgs often only says so in text."""
    ratelimit_cls, timeout_cls = _ddgs_exceptions()
    text = f"{type(exc).__name__}: {exc}"
    lower = text.lower()
    if isinstance(exc, ratelimit_cls) or "ratelimit" in lower or "rate limit" in lower or " 429" in lower:
        return "rate limited by the search engine (try again in a minute)"
    if isinstance(exc, timeout_cls | TimeoutError) or "timed out" in lower or "timeout" in lower:
        return f"the search timed out after {timeout_s:g} s"
    if isinstance(exc, socket.gaierror) or "dns" in lower or "name or service not known" in lower:
        return "DNS lookup failed (no network?)"
    if isinstance(exc, OSError) or _is_httpx_error(exc) or "connect" in lower:
        return f"network error ({_short(text)})"
    return f"search failed ({_short(text)})"


def _is_httpx_error(exc: BaseException) -> bool:
    try:
        import httpx
    except ImportError:  # pragma: no cover
        return False
    return isinstance(exc, httpx.HTTPError)


def _short(text: str, limit: int = 160) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


# --------------------------------------------------------------------------- local corpus

_SCHEMA = """
CREATE VIRTUAL TABLE IF NOT EXISTS docs USING fts5(path UNINDEXED, title, body, tokenize='porter unicode61');
CREATE TABLE IF NOT EXISTS files(path TEXT PRIMARY KEY, mtime_ns INTEGER NOT NULL, size INTEGER NOT NULL);
"""

_SEARCH_SQL = """
SELECT path, title, snippet(docs, 2, '', '', ' … ', 24), body
FROM docs WHERE docs MATCH ? ORDER BY bm25(docs, 0.0, 3.0, 1.0) LIMIT ?
"""


class LocalCorpus:
    """Full-text search over .txt/.md/.html files in a folder, kept in sync on every search.

    Every failure (missing or unreadable folder, an index file that is not SQLite, a disk error)
    is a SearchError, so a run reports it and goes on without grounding.
    """

    name = "local"

    def __init__(self, folder: Path, index_path: Path) -> None:
        self.folder = Path(folder)
        self.index_path = Path(index_path)
        self._lock = threading.Lock()

    def search(self, query: str, max_results: int = 5) -> list[SearchResult]:
        if not query.strip():
            raise SearchError("local search: the query is empty")
        match = fts_query(query)
        with self._lock, self._as_search_errors():
            self._reindex_locked()
            if not match:
                return []
            with self._connect() as db:
                rows = db.execute(_SEARCH_SQL, (match, max(1, max_results))).fetchall()
            return [_row_to_result(*row) for row in rows]

    def reindex(self) -> int:
        """Bring the index in line with the folder; returns how many documents were (re)indexed."""
        with self._lock, self._as_search_errors():
            return self._reindex_locked()

    @contextmanager
    def _as_search_errors(self) -> Iterator[None]:
        """Say which part broke, in words for the user, instead of letting a traceback escape."""
        try:
            yield
        except sqlite3.Error as exc:
            detail = _short(str(exc) or type(exc).__name__)
            broken = "not a database" in detail or "malformed" in detail
            hint = "; delete it to rebuild" if broken else ""  # it only caches the folder
            raise SearchError(f"the search index {self.index_path} is not usable ({detail}){hint}") from exc
        except OSError as exc:
            where = exc.filename or self.folder
            raise SearchError(f"cannot use {where} ({exc.strerror or type(exc).__name__})") from exc
        except UnicodeError as exc:
            detail = _short(str(exc))
            raise SearchError(f"a document under {self.folder} could not be decoded ({detail})") from exc

    def _reindex_locked(self) -> int:
        if not self.folder.exists():
            raise SearchError(f"corpus folder {self.folder} does not exist")
        if not self.folder.is_dir():
            raise SearchError(f"corpus folder {self.folder} is not a folder")
        if not os.access(self.folder, os.R_OK | os.X_OK):
            raise SearchError(f"corpus folder {self.folder} cannot be read (permission denied)")
        on_disk = _scan(self.folder)
        with self._connect() as db:
            known = {p: (m, s) for p, m, s in db.execute("SELECT path, mtime_ns, size FROM files")}
            for path in known.keys() - on_disk.keys():
                _forget(db, path)
            changed = [p for p, stat in on_disk.items() if known.get(p) != stat]
            for path in changed:
                _forget(db, path)
                _index(db, Path(path), *on_disk[path])
        return len(changed)

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        self.index_path.parent.mkdir(parents=True, exist_ok=True)
        with closing(sqlite3.connect(self.index_path, timeout=10)) as db:
            db.executescript(_SCHEMA)
            with db:  # one transaction: commit on success, roll back on error
                yield db


def fts_query(query: str) -> str:
    """Quote every word and OR them, so user text never hits FTS5 syntax and partial matches rank."""
    words = re.findall(r"\w+", query)[:_MAX_QUERY_TERMS]
    return " OR ".join(f'"{w}"' for w in words)


def _scan(folder: Path) -> dict[str, tuple[int, int]]:
    found: dict[str, tuple[int, int]] = {}
    for path in folder.rglob("*"):
        if path.suffix.lower() not in _SUFFIXES:
            continue
        try:
            stat = path.stat()
        except OSError:  # removed while scanning
            continue
        if S_ISREG(stat.st_mode):
            found[str(path.resolve())] = (stat.st_mtime_ns, stat.st_size)
    return found


def _forget(db: sqlite3.Connection, path: str) -> None:
    db.execute("DELETE FROM docs WHERE path = ?", (path,))
    db.execute("DELETE FROM files WHERE path = ?", (path,))


def _index(db: sqlite3.Connection, path: Path, mtime_ns: int, size: int) -> None:
    try:
        title, body = read_document(path)
    except OSError:  # vanished or unreadable: leave it out of `files` so the next scan tries again
        return
    db.execute("INSERT INTO docs(path, title, body) VALUES (?, ?, ?)", (str(path), title, body[:_BODY_CAP]))
    db.execute("INSERT INTO files(path, mtime_ns, size) VALUES (?, ?, ?)", (str(path), mtime_ns, size))


def read_document(path: Path) -> tuple[str, str]:
    """(title, body) of a corpus file: <title> for HTML, the first heading for Markdown, else the name."""
    raw = path.read_bytes().decode("utf-8", errors="replace")
    suffix = path.suffix.lower()
    if suffix in {".html", ".htm"}:
        title, body = html_to_text(raw)
        return title or path.name, body
    if suffix in {".md", ".markdown"}:
        heading = re.search(r"^\s{0,3}#{1,6}\s+(.+?)\s*#*\s*$", raw, flags=re.MULTILINE)
        return (heading.group(1) if heading else path.name), raw
    return path.name, raw


def _row_to_result(path: str, title: str, snippet: str, body: str) -> SearchResult:
    return SearchResult(title=title, url=Path(path).as_uri(), snippet=snippet.strip(), text=body[:TEXT_CAP])
