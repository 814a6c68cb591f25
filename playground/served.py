"""Rules for served models that a web user names by URL."""

from __future__ import annotations

import socket
import urllib.parse

from playground.catalog import CatalogError
from playground.grounding.fetch import address_allowed


def check_served_url(url: str, allow: tuple[str, ...]) -> None:
    """A served-model URL typed by a web user obeys the page fetcher's rules: no private, loopback or
    link-local address unless PLAYGROUND_FETCH_ALLOW lists it (the server must not become a proxy)."""
    parts = urllib.parse.urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        addresses = {info[4][0] for info in socket.getaddrinfo(parts.hostname or "", port)}
    except (OSError, UnicodeError) as exc:
        raise CatalogError(f"served model URL {url!r}: cannot resolve its host ({exc})") from exc
    refused = sorted(a for a in addresses if not address_allowed(a, allow, port))
    if refused:
        raise CatalogError(f"served model URL {url!r} points at a private or local address ({refused[0]}); "
                           "the operator can allow it with PLAYGROUND_FETCH_ALLOW")
