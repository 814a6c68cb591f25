"""Fetch one web page as plain text, safely.

Model output and search results decide which URLs get fetched, so the fetcher must not become a
way into the local network (SSRF): every hop is resolved, every resolved address is checked, the
connection goes to the checked address (no second DNS lookup to rebind), redirects are followed by
hand, and size and time are bounded.
"""

from __future__ import annotations

import http.client
import ipaddress
import socket
import ssl
import time
from collections.abc import Callable, Sequence
from urllib.parse import urljoin, urlsplit

from playground.grounding.htmltext import html_to_text

MAX_REDIRECTS = 5
TRUNCATION_MARK = "\n[… truncated]"
_REDIRECTS = {301, 302, 303, 307, 308}
_HTML_TYPES = {"text/html", "application/xhtml+xml"}
_CHUNK = 64 * 1024

Resolver = Callable[[str, int], list[str]]
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class FetchError(RuntimeError):
    """The page could not or must not be fetched; the message is fit for the user."""


# --------------------------------------------------------------------------- the guard


def _parse_ip(text: str) -> IPAddress | None:
    text = text.strip().strip("[]").split("%", 1)[0]  # drop IPv6 brackets and zone id
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped  # ::ffff:127.0.0.1 is 127.0.0.1
    return ip


def _is_public(ip: IPAddress) -> bool:
    return ip.is_global and not (
        ip.is_private
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_multicast
        or ip.is_reserved
        or ip.is_unspecified
    )


def _split_entry(entry: str) -> tuple[str, int | None]:
    """'127.0.0.1:8123' -> ('127.0.0.1', 8123); '[::1]:80' -> ('::1', 80); IPs and CIDRs keep port None."""
    entry = entry.strip()
    if entry.startswith("["):
        host, _, rest = entry[1:].partition("]")
        return host, int(rest[1:]) if rest.startswith(":") and rest[1:].isdigit() else None
    host, sep, port = entry.rpartition(":")
    if sep and port.isdigit() and ":" not in host:  # a bare IPv6 address has colons of its own
        return host, int(port)
    return entry, None


def _entry_matches(entry: str, ip: IPAddress, port: int | None) -> bool:
    host, entry_port = _split_entry(entry)
    if entry_port is not None and entry_port != port:
        return False
    try:
        network = ipaddress.ip_network(host, strict=False)
    except ValueError:
        return False
    return ip in network


def address_allowed(host_ip: str, allow: Sequence[str] = (), port: int | None = None) -> bool:
    """True for public addresses; private, loopback, link-local, multicast, reserved and unspecified
    ones only when an `allow` entry names them (an IP, a CIDR, or 'ip:port' matching `port`)."""
    ip = _parse_ip(host_ip)
    if ip is None:
        return False
    if any(_entry_matches(entry, ip, port) for entry in allow):
        return True
    return _is_public(ip)


def _default_resolver(host: str, port: int) -> list[str]:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


# --------------------------------------------------------------------------- connections


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    """TLS to a checked IP while verifying the certificate (and sending SNI) for the real host name."""

    def __init__(self, ip: str, port: int, server_hostname: str, timeout: float) -> None:
        super().__init__(ip, port, timeout=timeout, context=ssl.create_default_context())
        self._server_hostname = server_hostname

    def connect(self) -> None:
        http.client.HTTPConnection.connect(self)
        self.sock = self._context.wrap_socket(self.sock, server_hostname=self._server_hostname)


def _host_header(host: str, port: int, scheme: str) -> str:
    shown = f"[{host}]" if ":" in host else host
    default = 443 if scheme == "https" else 80
    return shown if port == default else f"{shown}:{port}"


def _checked_target(url: str, allow: Sequence[str], resolver: Resolver) -> tuple[str, str, int, str]:
    """Validate one hop: returns (scheme, host, port, ip) or raises FetchError."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in {"http", "https"}:
        raise FetchError(f"only http and https pages can be fetched, not {scheme or 'this address'}: {url}")
    host = parts.hostname
    if not host:
        raise FetchError(f"no host in {url}")
    try:
        port = parts.port or (443 if scheme == "https" else 80)
    except ValueError as exc:
        raise FetchError(f"bad port in {url}") from exc
    try:
        addresses = resolver(host, port)
    except OSError as exc:
        raise FetchError(f"could not resolve {host} (no network?)") from exc
    if not addresses:
        raise FetchError(f"could not resolve {host}")
    for address in addresses:
        if not address_allowed(address, allow, port):
            raise FetchError(f"refused to fetch {host}: it resolves to {address}, a private or local address")
    return scheme, host, port, addresses[0]


# --------------------------------------------------------------------------- fetching


def fetch_text(
    url: str,
    max_bytes: int = 500_000,
    timeout_s: float = 5.0,
    allow: Sequence[str] = (),
    resolver: Resolver | None = None,
) -> str:
    """Plain text of an HTML or text page; refuses local-network targets on every redirect hop."""
    resolve = resolver or _default_resolver
    deadline = time.monotonic() + timeout_s
    for _hop in range(MAX_REDIRECTS + 1):
        target = _checked_target(url, allow, resolve)
        location = _get(url, target, max_bytes, deadline)
        if isinstance(location, _Page):
            return location.text
        url = urljoin(url, location)
    raise FetchError(f"too many redirects (more than {MAX_REDIRECTS})")


class _Page:
    def __init__(self, text: str) -> None:
        self.text = text


def _remaining(deadline: float) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise FetchError("the page took too long to load")
    return left


def _get(url: str, target: tuple[str, str, int, str], max_bytes: int, deadline: float) -> _Page | str:
    """One request to the checked IP: a _Page, or the Location of a redirect."""
    scheme, host, port, ip = target
    timeout = _remaining(deadline)
    if scheme == "https":
        conn: http.client.HTTPConnection = _PinnedHTTPSConnection(ip, port, host, timeout)
    else:
        conn = http.client.HTTPConnection(ip, port, timeout=timeout)
    parts = urlsplit(url)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    headers = {
        "Host": _host_header(host, port, scheme),
        "User-Agent": "playground-grounding/0.1",
        "Accept": "text/html, text/plain;q=0.9",
        "Accept-Encoding": "identity",
    }
    try:
        conn.request("GET", path, headers=headers)
        resp = conn.getresponse()
        if resp.status in _REDIRECTS:
            location = resp.getheader("Location")
            if not location:
                raise FetchError(f"redirect without a Location from {url}")
            return location
        if not 200 <= resp.status < 300:
            raise FetchError(f"{url} answered HTTP {resp.status} {resp.reason}")
        return _Page(_read_text(resp, url, max_bytes, deadline))
    except TimeoutError as exc:
        raise FetchError(f"the page took too long to load: {url}") from exc
    except (OSError, http.client.HTTPException) as exc:
        raise FetchError(f"could not fetch {url}: {exc}") from exc
    finally:
        conn.close()


def _read_text(resp: http.client.HTTPResponse, url: str, max_bytes: int, deadline: float) -> str:
    mime, charset = _content_type(resp.getheader("Content-Type", ""))
    if mime not in _HTML_TYPES and mime != "text/plain":
        raise FetchError(f"{url} is {mime or 'of unknown type'}, not an HTML or text page")
    if resp.getheader("Content-Encoding", "identity").lower() not in {"", "identity"}:
        raise FetchError(f"{url} sent compressed content, which is not supported")
    body, truncated = _read_capped(resp, max_bytes, deadline)
    text = body.decode(charset or "utf-8", errors="replace")
    if mime in _HTML_TYPES:
        title, text = html_to_text(text)
        text = f"{title}\n{text}" if title else text
    return text + TRUNCATION_MARK if truncated else text


def _content_type(header: str) -> tuple[str, str | None]:
    mime, *params = (part.strip() for part in header.split(";"))
    charset = None
    for param in params:
        key, _, value = param.partition("=")
        if key.strip().lower() == "charset":
            charset = value.strip().strip('"') or None
    if charset:
        try:
            "".encode(charset)
        except LookupError:
            charset = None
    return mime.lower(), charset


def _read_capped(resp: http.client.HTTPResponse, max_bytes: int, deadline: float) -> tuple[bytes, bool]:
    """Read at most max_bytes within the deadline; True when the body was longer."""
    chunks: list[bytes] = []
    total = 0
    while total <= max_bytes:
        _remaining(deadline)
        chunk = resp.read(min(_CHUNK, max_bytes + 1 - total))
        if not chunk:
            break
        chunks.append(chunk)
        total += len(chunk)
    body = b"".join(chunks)
    return body[:max_bytes], len(body) > max_bytes
