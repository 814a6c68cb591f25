"""The HTTP client of a served model: pinned addresses, no redirects, still the SDK's own stack.

The engine checks a web user's URL against the page fetcher's rules (`playground.served`); if the
SDK then resolved the name again, a DNS answer that changed in between (rebinding) would reach an
address nobody checked, and a redirect would reach one nobody even resolved. So every connection
goes to an address resolved once (the checked ones, when the spec carries them), and a 3xx answer is
handed back as it is, never followed (remote.py turns it into a column error naming the redirect).

Built on `httpx2`/`httpcore2`, the packages the `openai` SDK itself uses: only the TCP connect is
ours; TLS (SNI and certificate checks against the real host name), pooling and HTTP stay theirs.
"""

from __future__ import annotations

import socket
import urllib.parse
from collections.abc import Iterable
from typing import Any

import httpcore2
import httpx2
import openai

from playground.catalog import ModelSpec

LIMITS = httpx2.Limits(max_connections=1000, max_keepalive_connections=100)  # the SDK's own defaults
KEEPALIVE_S = 5.0


class PinnedConnectError(httpcore2.ConnectError):
    """A connection this client must not make; the message is fit for the user."""


class PinnedBackend(httpcore2.SyncBackend):
    """Connects only to addresses resolved once: the pinned ones for the spec's host, else one lookup
    per connection whose answer is the one used (the SDK does no lookup of its own)."""

    def __init__(self, host: str, pinned: tuple[str, ...] = ()) -> None:
        self.host = host
        self.pinned = pinned

    def connect_tcp(
        self, host: str, port: int, timeout: float | None = None, local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore2.NetworkStream:
        failure: Exception | None = None
        for address in self._addresses(host, port):
            try:  # an IP literal: create_connection does no DNS lookup for it
                return super().connect_tcp(address, port, timeout, local_address, socket_options)
            except (httpcore2.ConnectError, httpcore2.ConnectTimeout) as exc:
                failure = exc
        assert failure is not None  # _addresses never returns an empty list
        raise failure

    def _addresses(self, host: str, port: int) -> list[str]:
        if self.pinned:
            if _bare(host) != self.host:
                raise PinnedConnectError(f"refused to connect to {host}: this served model may only reach "
                                         f"{self.host}")
            return list(self.pinned)
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except OSError as exc:  # the SDK names it: "DNS lookup failed for ..."
            raise httpcore2.ConnectError(str(exc)) from exc
        addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
        if not addresses:
            raise httpcore2.ConnectError(f"[Errno -2] Name or service not known: {host}")
        return addresses


class PinnedTransport(httpx2.HTTPTransport):
    """httpx2's own transport with our connect step (the pool is httpcore2's, given our backend)."""

    def __init__(self, backend: PinnedBackend) -> None:
        super().__init__(limits=LIMITS)
        self._pool = httpcore2.ConnectionPool(  # replaces the default pool: same settings, our backend
            ssl_context=httpx2.create_ssl_context(),  # SSL_CERT_FILE / SSL_CERT_DIR still apply
            max_connections=LIMITS.max_connections,
            max_keepalive_connections=LIMITS.max_keepalive_connections,
            keepalive_expiry=KEEPALIVE_S,
            network_backend=backend,
        )


def http_client(spec: ModelSpec) -> openai.DefaultHttpxClient:
    """The SDK's default client for this spec's server, pinned, that never follows a redirect."""
    host = _bare(urllib.parse.urlsplit(spec.base_url).hostname or "")
    transport = PinnedTransport(PinnedBackend(host, spec.pinned_addresses))
    return openai.DefaultHttpxClient(transport=transport, follow_redirects=False)


def pinned_refusal(exc: BaseException) -> str:
    """The message of a PinnedConnectError somewhere in an SDK error's chain of causes ('' if none)."""
    seen: set[int] = set()
    cause: BaseException | None = exc
    while cause is not None and id(cause) not in seen:
        if isinstance(cause, PinnedConnectError):
            return str(cause)
        seen.add(id(cause))
        cause = cause.__cause__ or cause.__context__
    return ""


def _bare(host: str) -> str:
    return host.strip("[]").rstrip(".").lower()
