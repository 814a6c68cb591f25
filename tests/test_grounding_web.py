"""The ddgs adapter, against a fake with the real DDGS surface and the real ddgs exception classes."""

from __future__ import annotations

import inspect
import socket
import threading
import time
from typing import Any

import pytest
from ddgs.ddgs import DDGS  # the real class; `ddgs.DDGS` is a lazy-loading proxy
from ddgs.exceptions import DDGSException, RatelimitException, TimeoutException

from playground.grounding.providers import RateLimiter, SearchError, SearchResult, WebSearch
from playground.grounding.snapshot import SearchOptions, SearchProviders

# Shaped exactly like ddgs 9 text results (ddgs.results.TextResult -> dict).
RESULTS = [
    {
        "title": "Python (programming language) - Wikipedia",
        "href": "https://en.wikipedia.org/wiki/Python_(programming_language)",
        "body": "Python is a high-level, general-purpose programming language.",
    },
    {
        "title": "Welcome to Python.org",
        "href": "https://www.python.org/",
        "body": "The official home of the Python Programming Language.",
    },
    {
        "title": "Python Tutorial - W3Schools",
        "href": "https://www.w3schools.com/python/",
        "body": "Python is a popular programming language. Python can be used on a server.",
    },
]

# The message ddgs 9.16 raises here when DNS fails (copied from a real offline run).
DNS_ERROR = (
    "DNSError: DNSError('error sending request for url (https://search.yahoo.com/search?p=python) > "
    'error resolving DNS > DNS error: no records found for Query { name: Name("search.yahoo.com.") }\')'
)


class FakeDDGS:
    """Mirrors ddgs.DDGS: the same constructor and text() keywords, the same empty-query and
    no-results behaviour (it raises DDGSException rather than returning [])."""

    def __init__(
        self, proxy: str | None = None, timeout: int | None = 5, *, verify: bool | str = True
    ) -> None:
        self.timeout = timeout
        self.results: list[dict[str, Any]] = []
        self.error: Exception | None = None
        self.calls: list[dict[str, Any]] = []

    def text(
        self,
        query: str,
        keywords: str | None = None,
        *,
        region: str = "us-en",
        safesearch: str = "moderate",
        timelimit: str | None = None,
        max_results: int | None = 10,
        page: int = 1,
        backend: str = "auto",
        **kwargs: str,
    ) -> list[dict[str, Any]]:
        self.calls.append(
            {"query": query, "region": region, "safesearch": safesearch, "timelimit": timelimit,
             "max_results": max_results, "at": time.monotonic()}
        )  # fmt: skip
        query = keywords or query
        if not query:
            raise DDGSException("query is mandatory.")
        if self.error is not None:
            raise self.error
        if not self.results:
            raise DDGSException("No results found.")
        return [dict(r) for r in self.results[:max_results]]


class Factory:
    """client_factory that hands out FakeDDGS clients sharing one call log."""

    def __init__(self, results: list[dict[str, Any]] | None = None, error: Exception | None = None) -> None:
        self.results = results if results is not None else RESULTS
        self.error = error
        self.calls: list[dict[str, Any]] = []
        self.timeouts: list[Any] = []

    def __call__(self, **kwargs: Any) -> FakeDDGS:
        client = FakeDDGS(**kwargs)
        client.results, client.error, client.calls = self.results, self.error, self.calls
        self.timeouts.append(client.timeout)
        return client


def test_fake_matches_real_ddgs_surface() -> None:
    real_init = list(inspect.signature(DDGS.__init__).parameters)
    assert list(inspect.signature(FakeDDGS.__init__).parameters) == real_init
    real_search = [p for p in inspect.signature(DDGS._search_sync).parameters if p != "category"]
    assert list(inspect.signature(FakeDDGS.text).parameters) == real_search


def test_maps_results_and_passes_settings() -> None:
    factory = Factory()
    web = WebSearch(region="uk-en", safesearch="off", timelimit="w", timeout_s=7.0, client_factory=factory)
    results = web.search("  python  ", max_results=2)
    assert results == [
        SearchResult(title=RESULTS[0]["title"], url=RESULTS[0]["href"], snippet=RESULTS[0]["body"]),
        SearchResult(title=RESULTS[1]["title"], url=RESULTS[1]["href"], snippet=RESULTS[1]["body"]),
    ]
    assert all(r.text == "" for r in results)
    call = factory.calls[0]
    assert (call["query"], call["region"], call["safesearch"], call["timelimit"], call["max_results"]) == (
        "python", "uk-en", "off", "w", 2,
    )  # fmt: skip
    assert factory.timeouts == [7.0]
    assert web.name == "web"


def test_no_results_is_an_empty_list() -> None:
    assert WebSearch(client_factory=Factory(results=[])).search("zzqx nothing matches") == []


def test_empty_query_is_refused_without_a_request() -> None:
    factory = Factory()
    with pytest.raises(SearchError, match="empty"):
        WebSearch(client_factory=factory).search("   ")
    assert factory.calls == []


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (RatelimitException("https://duckduckgo.com 202 Ratelimit"), "rate limited"),
        (DDGSException("https://html.duckduckgo.com/html 202 Ratelimit"), "rate limited"),
        (TimeoutException("https://lite.duckduckgo.com/lite/ timed out"), "timed out after 10 s"),
        (DDGSException(DDGSException(DNS_ERROR)), "DNS lookup failed (no network?)"),
        (socket.gaierror(-3, "Temporary failure in name resolution"), "DNS lookup failed"),
        (ConnectionRefusedError(111, "Connection refused"), "network error"),
        (DDGSException("ValueError: something odd"), "search failed"),
    ],
)
def test_errors_become_search_errors(error: Exception, expected: str) -> None:
    with pytest.raises(SearchError) as info:
        WebSearch(client_factory=Factory(error=error)).search("python")
    message = str(info.value)
    assert message.startswith("web search unavailable: ")
    assert expected in message


def test_httpx_errors_are_network_errors() -> None:
    httpx = pytest.importorskip("httpx")
    error = httpx.ConnectError("[Errno 111] Connection refused")
    with pytest.raises(SearchError, match="network error"):
        WebSearch(client_factory=Factory(error=error)).search("python")


def test_queries_are_spaced_by_min_interval() -> None:
    factory = Factory()
    web = WebSearch(min_interval_s=0.3, client_factory=factory)
    for _ in range(3):
        web.search("python")
    starts = [c["at"] for c in factory.calls]
    assert all(b - a >= 0.29 for a, b in zip(starts, starts[1:], strict=False))


def test_spacing_holds_across_threads() -> None:
    factory = Factory()
    web = WebSearch(min_interval_s=0.25, client_factory=factory)
    threads = [threading.Thread(target=web.search, args=("python",)) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    starts = sorted(c["at"] for c in factory.calls)
    assert len(starts) == 3
    assert all(b - a >= 0.24 for a, b in zip(starts, starts[1:], strict=False))


def test_first_query_does_not_wait() -> None:
    web = WebSearch(min_interval_s=5.0, client_factory=Factory())
    began = time.monotonic()
    web.search("python")
    assert time.monotonic() - began < 1.0


def _starts_spaced(factory: Factory, interval: float) -> bool:
    """Every recorded query started at least interval after the one before (10 ms clock slack)."""
    starts = sorted(c["at"] for c in factory.calls)
    return all(b - a >= interval - 0.01 for a, b in zip(starts, starts[1:], strict=False))


def test_websearch_instances_sharing_a_rate_limiter_are_spaced() -> None:
    factory, pace = Factory(), RateLimiter(0.3)
    WebSearch(region="us-en", client_factory=factory, rate_limiter=pace).search("python")
    WebSearch(region="uk-en", client_factory=factory, rate_limiter=pace).search("python")
    assert len(factory.calls) == 2 and _starts_spaced(factory, 0.3)


def test_registry_keeps_one_websearch_per_settings() -> None:
    registry = SearchProviders(client_factory=Factory())
    first = registry.web("us-en", "moderate", "")
    assert registry.web("us-en", "moderate", "") is first
    assert registry.provider(SearchOptions("web", region="us-en")) is first
    others = [registry.web("uk-en", "moderate", ""), registry.web("us-en", "off", ""),
              registry.web("us-en", "moderate", "w")]
    assert len({id(first), *map(id, others)}) == 4


def test_snapshots_pass_the_settings_to_ddgs() -> None:
    factory = Factory()
    registry = SearchProviders(client_factory=factory, min_interval_s=0.0, timeout_s=4.0)
    snapshot, notice = registry.snapshot("python", SearchOptions("web", 2, region="de-de", safesearch="on",
                                                                 timelimit="m"))
    assert notice == "" and snapshot is not None and len(snapshot.results) == 2
    registry.snapshot("python", SearchOptions("web", 2))
    assert [(c["region"], c["safesearch"], c["timelimit"]) for c in factory.calls] == [
        ("de-de", "on", "m"), ("wt-wt", "moderate", None),  # "" (any time) is None for ddgs
    ]
    assert factory.timeouts == [4.0, 4.0]


def test_rate_limit_spans_snapshots_through_one_registry() -> None:
    """The bug: every run built a new WebSearch, so the pace was reset per run. Now it holds
    across runs, and across regions too (one search engine, one pace)."""
    factory = Factory()
    registry = SearchProviders(client_factory=factory, min_interval_s=0.3)
    for region in ("wt-wt", "wt-wt", "us-en"):
        snapshot, notice = registry.snapshot("python", SearchOptions("web", 3, region=region))
        assert notice == "" and snapshot is not None
    assert len(factory.calls) == 3 and _starts_spaced(factory, 0.3)


def test_registry_pace_holds_across_threads() -> None:
    factory = Factory()
    registry = SearchProviders(client_factory=factory, min_interval_s=0.2)
    options = [SearchOptions("web", region=r) for r in ("wt-wt", "us-en", "uk-en", "wt-wt")]
    threads = [threading.Thread(target=registry.snapshot, args=("python", o)) for o in options]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(factory.calls) == 4 and _starts_spaced(factory, 0.2)


def test_registry_hands_out_one_instance_under_contention() -> None:
    registry = SearchProviders(client_factory=Factory())
    got: list[WebSearch] = []
    barrier = threading.Barrier(8)

    def grab() -> None:
        barrier.wait()
        got.append(registry.web("fr-fr", "off", "d"))

    threads = [threading.Thread(target=grab) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(got) == 8 and all(w is got[0] for w in got)


def test_registry_cache_is_bounded_and_eviction_keeps_the_pace() -> None:
    factory = Factory()
    registry = SearchProviders(client_factory=factory, min_interval_s=0.25, max_cached=2)
    first = registry.web("us-en")
    registry.web("uk-en")
    registry.web("de-de")  # evicts us-en, the least recently used
    assert registry.web("uk-en") is not None and registry.web("us-en") is not first
    for region in ("us-en", "fr-fr"):  # a fresh instance still shares the registry's pace
        registry.snapshot("python", SearchOptions("web", region=region))
    assert _starts_spaced(factory, 0.25)


def _online(timeout_s: float = 3.0) -> bool:
    """DNS for duckduckgo.com answers within timeout_s (getaddrinfo has no timeout of its own)."""
    answer: list[bool] = []

    def resolve() -> None:
        try:
            socket.getaddrinfo("duckduckgo.com", 443)
            answer.append(True)
        except OSError:
            answer.append(False)

    thread = threading.Thread(target=resolve, daemon=True)
    thread.start()
    thread.join(timeout_s)
    return bool(answer and answer[0])


ONLINE = _online()


@pytest.mark.skipif(not ONLINE, reason="offline: duckduckgo.com does not resolve, so no live web search")
def test_live_ddgs_returns_results() -> None:
    results = WebSearch(timeout_s=15.0).search("python programming language", max_results=3)
    assert 1 <= len(results) <= 3
    assert all(r.url.startswith("http") and r.title for r in results)


@pytest.mark.skipif(ONLINE, reason="online: the offline failure message cannot be observed")
def test_live_ddgs_offline_says_dns() -> None:
    began = time.monotonic()
    with pytest.raises(SearchError, match="DNS lookup failed"):
        WebSearch().search("python")
    assert time.monotonic() - began < 10
