"""Text that arrives from the browser, made safe to store.

A JavaScript string may hold lone surrogates (half of a UTF-16 pair, e.g. from a
cut emoji); Python receives them as code points that UTF-8 cannot encode, so
saving the run would fail. They are replaced with U+FFFD, and the user is told.
"""

from __future__ import annotations

REPLACEMENT = "\ufffd"
REPAIRED_NOTICE = f"your prompt had invalid characters; replaced with {REPLACEMENT}"


def clean_text(text: str) -> tuple[str, bool]:
    """The text with every lone surrogate replaced by U+FFFD; True when something was replaced.

    Going through UTF-16 with surrogatepass joins a surrogate pair that arrived as two code points
    into its character, and `replace` turns each lone half into one U+FFFD.
    """
    if not isinstance(text, str):
        return "", False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        fixed = text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
        return fixed, fixed.count(REPLACEMENT) > text.count(REPLACEMENT)
    return text, False
