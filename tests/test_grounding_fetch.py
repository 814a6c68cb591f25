"""The page fetcher's SSRF guard. Decisions about public addresses are checked without connecting;
the only connections made go to HTTP servers started here on 127.0.0.1."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from playground.grounding.fetch import TRUNCATION_MARK, FetchError, address_allowed, fetch_text

PAGE = (
    "<html><head><title>Local page</title><script>stealCookies()</script><style>p{}</style></head>"
    "<body><h1>Hello</h1><p>Visible &amp; plain.</p></body></html>"
)

Route = tuple[int, dict[str, str], bytes]


class Server:
    """A real HTTP server on an ephemeral loopback port; routes map a path to (status, headers, body)."""

    def __init__(self) -> None:
        self.routes: dict[str, Route | Callable[[], Route]] = {}
        self.hosts: list[str] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                server.hosts.append(self.headers.get("Host", ""))
                route = server.routes.get(self.path, (404, {"Content-Type": "text/plain"}, b"not found"))
                status, headers, body = route() if callable(route) else route
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def servers() -> Iterator[tuple[Server, Server]]:
    first, second = Server(), Server()
    yield first, second
    first.stop()
    second.stop()


def _html(body: str) -> Route:
    return 200, {"Content-Type": "text/html; charset=utf-8"}, body.encode()


def _redirect(location: str) -> Route:
    return 302, {"Location": location}, b""


# --------------------------------------------------------------------------- the guard's decisions


@pytest.mark.parametrize(
    "ip",
    ["127.0.0.1", "127.8.9.10", "::1", "10.0.0.1", "172.16.0.1", "172.31.255.254", "192.168.1.1",
     "169.254.169.254", "fc00::1", "fd12:3456::1", "fe80::1", "fe80::1%eth0", "0.0.0.0", "::",
     "224.0.0.1", "ff02::1", "240.0.0.1", "100.64.0.1", "::ffff:127.0.0.1", "::ffff:10.0.0.1",
     "not-an-ip", ""],
)  # fmt: skip
def test_guard_refuses_non_public_addresses(ip: str) -> None:
    assert not address_allowed(ip)


@pytest.mark.parametrize("ip", ["8.8.8.8", "93.184.216.34", "1.1.1.1", "2606:4700:4700::1111"])
def test_guard_allows_public_addresses(ip: str) -> None:
    assert address_allowed(ip)  # a decision only: nothing is connected to


def test_allow_list_entries() -> None:
    assert address_allowed("127.0.0.1", ["127.0.0.1"], port=9)
    assert address_allowed("127.0.0.1", ["127.0.0.1:8123"], port=8123)
    assert not address_allowed("127.0.0.1", ["127.0.0.1:8123"], port=8124)
    assert not address_allowed("127.0.0.1", ["127.0.0.1:8123"])
    assert address_allowed("10.1.2.3", ["10.0.0.0/8"])
    assert not address_allowed("192.168.0.1", ["10.0.0.0/8"])
    assert address_allowed("::1", ["[::1]:8080"], port=8080)
    assert address_allowed("::1", ["::1"])
    assert not address_allowed("10.0.0.1", ["garbage", "host.example:80"], port=80)


def _resolver(table: dict[str, list[str]]) -> Callable[[str, int], list[str]]:
    return lambda host, port: table[host]


@pytest.mark.parametrize(
    "table",
    [
        {"internal.example": ["10.0.0.5"]},
        {"internal.example": ["93.184.216.34", "10.0.0.5"]},  # any bad address refuses
        {"internal.example": ["169.254.169.254"]},
    ],
)
def test_hostnames_resolving_inside_are_refused(table: dict[str, list[str]]) -> None:
    with pytest.raises(FetchError, match="private or local"):
        fetch_text("http://internal.example/latest/meta-data", resolver=_resolver(table))


@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://example.com/x", "gopher://x/", "javascript:1"])
def test_only_http_and_https(url: str) -> None:
    with pytest.raises(FetchError, match="only http and https"):
        fetch_text(url, resolver=_resolver({}))


def test_localhost_by_name_is_refused() -> None:
    with pytest.raises(FetchError, match="private or local"):
        fetch_text("http://localhost:9/")


# --------------------------------------------------------------------------- end to end, on loopback


def test_loopback_server_refused_without_allow_list(servers: tuple[Server, Server]) -> None:
    first, _ = servers
    first.routes["/page"] = _html(PAGE)
    with pytest.raises(FetchError, match="private or local"):
        fetch_text(first.url("/page"))
    assert first.hosts == []  # refused before connecting


def test_allow_listed_server_is_fetched_as_text(servers: tuple[Server, Server]) -> None:
    first, _ = servers
    first.routes["/page"] = _html(PAGE)
    text = fetch_text(first.url("/page"), allow=[f"127.0.0.1:{first.port}"])
    assert text.splitlines() == ["Local page", "Hello", "Visible & plain."]
    assert "stealCookies" not in text


def test_plain_text_as_is(servers: tuple[Server, Server]) -> None:
    first, _ = servers
    first.routes["/t"] = (200, {"Content-Type": "text/plain"}, b"<b>not html</b>\nline two")
    assert fetch_text(first.url("/t"), allow=[f"127.0.0.1:{first.port}"]) == "<b>not html</b>\nline two"


def test_connects_to_the_checked_address_with_the_real_host_header(servers: tuple[Server, Server]) -> None:
    first, _ = servers
    first.routes["/page"] = _html(PAGE)
    lookups: list[str] = []

    def resolver(host: str, port: int) -> list[str]:
        lookups.append(host)
        return ["127.0.0.1"]

    url = f"http://intranet.test:{first.port}/page"
    assert "Hello" in fetch_text(url, allow=[f"127.0.0.1:{first.port}"], resolver=resolver)
    assert lookups == ["intranet.test"]  # one lookup, no second resolution by the HTTP client
    assert first.hosts == [f"intranet.test:{first.port}"]


def test_redirect_to_another_loopback_port_is_refused(servers: tuple[Server, Server]) -> None:
    first, second = servers
    second.routes["/secret"] = _html("<p>secret</p>")
    first.routes["/go"] = _redirect(second.url("/secret"))
    with pytest.raises(FetchError, match="private or local"):
        fetch_text(first.url("/go"), allow=[f"127.0.0.1:{first.port}"])
    assert second.hosts == []


def test_redirects_within_the_allow_list_are_followed(servers: tuple[Server, Server]) -> None:
    first, _ = servers
    first.routes["/page"] = _html(PAGE)
    first.routes["/old"] = _redirect("/page")
    assert "Hello" in fetch_text(first.url("/old"), allow=[f"127.0.0.1:{first.port}"])


def test_redirect_to_a_non_http_scheme_is_refused(servers: tuple[Server, Server]) -> None:
    first, _ = servers
    first.routes["/go"] = _redirect("file:///etc/passwd")
    with pytest.raises(FetchError, match="only http and https"):
        fetch_text(first.url("/go"), allow=[f"127.0.0.1:{first.port}"])


def test_redirect_loop_is_stopped(servers: tuple[Server, Server]) -> None:
    first, _ = servers
    first.routes["/loop"] = _redirect("/loop")
    with pytest.raises(FetchError, match="too many redirects"):
        fetch_text(first.url("/loop"), allow=[f"127.0.0.1:{first.port}"])
    assert len(first.hosts) == 6  # the first request and five redirects


def test_size_limit_truncates(servers: tuple[Server, Server]) -> None:
    first, _ = servers
    first.routes["/big"] = (200, {"Content-Type": "text/plain"}, b"x" * 50_000)
    text = fetch_text(first.url("/big"), max_bytes=1000, allow=[f"127.0.0.1:{first.port}"])
    assert text == "x" * 1000 + TRUNCATION_MARK
    small = fetch_text(first.url("/big"), max_bytes=50_000, allow=[f"127.0.0.1:{first.port}"])
    assert small == "x" * 50_000


def test_time_limit(servers: tuple[Server, Server]) -> None:
    first, _ = servers

    def slow() -> Route:
        time.sleep(2)
        return _html("<p>late</p>")

    first.routes["/slow"] = slow
    began = time.monotonic()
    with pytest.raises(FetchError, match="too long"):
        fetch_text(first.url("/slow"), timeout_s=0.3, allow=[f"127.0.0.1:{first.port}"])
    assert time.monotonic() - began < 1.5


@pytest.mark.parametrize(
    ("route", "match"),
    [
        ((200, {"Content-Type": "image/png"}, b"\x89PNG"), "not an HTML or text page"),
        ((200, {}, b"??"), "not an HTML or text page"),
        ((500, {"Content-Type": "text/plain"}, b"boom"), "HTTP 500"),
        ((302, {}, b""), "redirect without a Location"),
    ],
)
def test_unusable_answers(servers: tuple[Server, Server], route: Route, match: str) -> None:
    first, _ = servers
    first.routes["/x"] = route
    with pytest.raises(FetchError, match=match):
        fetch_text(first.url("/x"), allow=[f"127.0.0.1:{first.port}"])


def test_connection_refused_is_a_fetch_error(servers: tuple[Server, Server]) -> None:
    first, _ = servers
    port = first.port
    first.stop()
    with pytest.raises(FetchError, match="could not fetch"):
        fetch_text(f"http://127.0.0.1:{port}/", allow=[f"127.0.0.1:{port}"])
