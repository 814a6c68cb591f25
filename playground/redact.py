"""Remove server file-system paths from messages shown to web users (and saved in shared records).

A message like "no such .gguf file (/srv/models/x.gguf)" tells a stranger how the
server is laid out. Absolute paths become their last component ("…/x.gguf");
URLs and hub ids (owner/name, never starting with "/") are left alone.
"""

from __future__ import annotations

import re

# An absolute POSIX path or a home-relative one, not part of a URL (no ":" or "/" before it).
_PATH = re.compile(r"(?<![\w:/.~-])(?:~|/)(?:[^\s'\"`,;:()\[\]{}<>]*/)*([^\s'\"`,;:()\[\]{}<>/]*)")


def redact_paths(text: str) -> str:
    """Every absolute path in `text` shortened to "…/<last part>"."""
    def shorten(match: re.Match[str]) -> str:
        whole, last = match.group(0), match.group(1)
        return whole if whole in ("/", "~") else f"…/{last}"
    return _PATH.sub(shorten, text)
