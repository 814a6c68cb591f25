"""Rules for served models that a web user names by URL."""

from __future__ import annotations

import socket
import urllib.parse

from playground.catalog import CatalogError
from playground.grounding.fetch import address_allowed


def check_served_url(url: str, allow: tuple[str, ...]) -> tuple[str, ...]:
    """A served-model URL typed by a web user obeys the page fetcher's rules: no private, loopback or
    link-local address unless PLAYGROUND_FETCH_ALLOW lists it (the server must not become a proxy).

    Returns the checked addresses, in the resolver's order: the caller pins the connection to them
    (ModelSpec.pinned_addresses), so a second DNS answer (rebinding) is never used."""
    parts = urllib.parse.urlsplit(url)
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
        infos = socket.getaddrinfo(parts.hostname or "", port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError, ValueError) as exc:
        raise CatalogError(f"served model URL {url!r}: cannot resolve its host ({exc})") from exc
    addresses = tuple(dict.fromkeys(str(info[4][0]) for info in infos))
    refused = [a for a in addresses if not address_allowed(a, allow, port)]
    if refused or not addresses:
        shown = refused[0] if refused else "no address"
        raise CatalogError(f"served model URL {url!r} points at a private or local address ({shown}); "
                           "the operator can allow it with PLAYGROUND_FETCH_ALLOW")
    return addresses
