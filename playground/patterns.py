"""A user's regular expression, matched with a time budget.

Routing rules (`matches:`) and batch scoring (`--score regex`) run patterns that people write. A
pattern such as `(a|aa)+$` on forty a's and a b backtracks for hours; Python's `re` cannot stop it
and holds the GIL meanwhile, so one bad rule froze the whole page server. The `regex` module takes
`timeout=` and releases the GIL while it matches: a search that runs out of time raises
PatternTimeout, and other threads (other users' requests) keep running.

The syntax accepted is Python's `re` syntax (what these patterns always were): a pattern is parsed
by `re`'s own parser first, which also bounds what `regex` would expand at compile time (it unrolls
counted repeats: `((a{1000}){1000}){1000}` alone would take gigabytes).
"""

from __future__ import annotations

import functools
import re
import re._parser as re_parser  # re's own parser: the tree of a pattern, without compiling it
import reprlib
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import regex

MAX_PATTERN_CHARS = 1000
MAX_NESTING = 100  # groups inside groups: counted here, not left to the interpreter's recursion limit
MAX_EXPANDED = 100_000  # sum over the pattern of nested counted-repeat bounds (~40 MB when compiled)
MATCH_TIMEOUT_S = 1.0  # one search, at most (a TimeBudget may leave less)
QUOTE_CHARS = 60  # how much of a user's value an error message quotes
# A budget with less than this left counts as spent: a search stopped by its timeout returns a few
# milliseconds before the budget's deadline (regex counts its own time), which is no time to try in.
MIN_TRY_S = 0.02

_REPEATS = {re_parser.MAX_REPEAT, re_parser.MIN_REPEAT, re_parser.POSSESSIVE_REPEAT}


class PatternError(ValueError):
    """A pattern that cannot be used (too long, too large, does not compile); quotes a short prefix."""


class PatternTimeout(PatternError):
    """A search that ran out of its time: the caller names the rule or scorer it belongs to."""


class _Short(reprlib.Repr):
    """reprlib's bounded repr, cutting strings to a prefix (reprlib keeps both ends)."""

    def repr_str(self, x: str, level: int) -> str:
        return repr(x[:self.maxstring]) + ("…" if len(x) > self.maxstring else "")


_SHORT = _Short()
_SHORT.maxstring = _SHORT.maxother = QUOTE_CHARS
_SHORT.maxlist = _SHORT.maxtuple = _SHORT.maxdict = _SHORT.maxset = 4
_SHORT.maxlevel = 3


def quote(value: object) -> str:
    """A user's value for an error message: its repr, strings cut to a short prefix, containers to
    a few items, so a huge or deeply nested value never ends up whole in a message."""
    return _SHORT.repr(value)


@dataclass
class TimeBudget:
    """Seconds shared by many searches (a preview over every prompt, one scoring of a batch): a bad
    pattern costs at most this much in all, not this much per prompt."""

    seconds: float
    deadline: float = field(init=False)

    def __post_init__(self) -> None:
        self.deadline = time.monotonic() + self.seconds

    def remaining(self) -> float:
        return max(0.0, self.deadline - time.monotonic())


@dataclass(frozen=True)
class UserPattern:
    """A compiled user pattern; `search` never runs longer than MATCH_TIMEOUT_S (or the budget)."""

    source: str
    compiled: Any = field(repr=False, compare=False)  # a regex.Pattern

    @classmethod
    def compile(cls, source: str) -> UserPattern:
        """PatternError (quoting a prefix of the pattern) when it is too long, too large or invalid."""
        return _compiled(source)

    def search(self, text: str, budget: TimeBudget | None = None) -> bool:
        """Whether the pattern occurs in `text`; PatternTimeout when it takes too long."""
        limit = MATCH_TIMEOUT_S if budget is None else min(MATCH_TIMEOUT_S, budget.remaining())
        if limit < MIN_TRY_S:
            raise PatternTimeout(f"the pattern {quote(self.source)} was not tried: the "
                                 f"{budget.seconds:g} s time budget for patterns is spent")  # type: ignore[union-attr]
        try:
            return self.compiled.search(text, timeout=limit) is not None
        except TimeoutError as exc:
            raise PatternTimeout(f"the pattern {quote(self.source)} took longer than {limit:.2g} s on "
                                 f"{len(text):,} characters and was stopped (it backtracks too much: "
                                 "simplify nested repeats such as (a|aa)+ or (a+)+)") from exc


@functools.lru_cache(maxsize=256)
def _compiled(source: str) -> UserPattern:
    """Compiled once per distinct pattern (a batch scores one pattern against many answers)."""
    if len(source) > MAX_PATTERN_CHARS:
        raise PatternError(f"the pattern {quote(source)} is {len(source):,} characters; "
                           f"the limit is {MAX_PATTERN_CHARS:,}")
    depth = _nesting(source)
    if depth > MAX_NESTING:  # torch.compile raises the recursion limit: the parser's own check moves
        raise PatternError(f"bad regular expression {quote(source)}: nested too deeply "
                           f"({depth} levels of groups; the limit is {MAX_NESTING})")
    try:
        tree = re_parser.parse(source)
        size = _expanded(tree)
    except re.error as exc:
        raise PatternError(f"bad regular expression {quote(source)}: {exc}") from exc
    except RecursionError as exc:
        raise PatternError(f"bad regular expression {quote(source)}: nested too deeply") from exc
    if size > MAX_EXPANDED:
        raise PatternError(f"the pattern {quote(source)} is too large once its counted repeats are "
                           f"multiplied out ({size:,}; the limit is {MAX_EXPANDED:,}): use smaller {{n}}")
    try:
        return UserPattern(source, regex.compile(source))
    except regex.error as exc:
        raise PatternError(f"bad regular expression {quote(source)}: {exc}") from exc
    except RecursionError as exc:
        raise PatternError(f"bad regular expression {quote(source)}: nested too deeply") from exc


def _nesting(source: str) -> int:
    """The deepest nesting of groups, read from the text (escapes and character classes skipped)."""
    depth = deepest = 0
    escaped = in_class = False
    for i, char in enumerate(source):
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif in_class:
            # a "]" right after "[" or "[^" is a literal one
            in_class = char != "]" or source[i - 1] == "[" or source[i - 2 : i] == "[^"
        elif char == "[":
            in_class = True
        elif char == "(":
            depth += 1
            deepest = max(deepest, depth)
        elif char == ")":
            depth = max(depth - 1, 0)
    return deepest


def _expanded(tree: Any) -> int:
    """What compiling may unroll: each item counts 1, a counted repeat multiplies its body."""
    total = 0
    for op, av in tree:
        if op in _REPEATS:
            low, high, body = av
            times = high if high != re_parser.MAXREPEAT else max(low, 1)
            total += max(times, 1) * _expanded(body)
        else:
            total += 1 + sum(_expanded(child) for child in _children(av))
    return total


def _children(av: Any) -> Iterator[Any]:
    """The sub-patterns inside one node's argument (groups, branches, look-arounds, conditionals)."""
    if isinstance(av, re_parser.SubPattern):
        yield av
    elif isinstance(av, (tuple, list)):
        for item in av:
            yield from _children(item)
