"""Control characters in saved or served text: stripped wherever such text leaves for a terminal or a file.

A saved run (or an imported file, or a served model's answer) can hold escape sequences such as
"\\x1b]0;title\\x07" or "\\x1b[2J" that would retitle, clear or reprogram the terminal of whoever
prints it or reads a Markdown report there. The CLI (`terminal_safe`) and the Markdown report
share this table.
"""

from __future__ import annotations

# C0 and C1 control characters, DEL too, except tab and newline
CONTROLS = dict.fromkeys(c for c in [*range(0x20), *range(0x7F, 0xA0)] if chr(c) not in "\t\n")


def strip_controls(text: str) -> str:
    """The text without control characters but tab and newline; printable text is untouched."""
    return text.translate(CONTROLS)
