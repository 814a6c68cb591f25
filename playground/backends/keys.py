"""API keys never leave a served model's column in what the server sent back.

A server may echo the key it was given (in an error, in its answer, in a model name): everything
remote.py takes from a server passes through a KeyBlanker first, so the record, exports, reports,
logs and the page are clean without each of them knowing about keys. A streamed answer can split a
key over several tokens, so steps are held back while their text could still be the start of a key.
"""

from __future__ import annotations

import os
from collections.abc import Generator, Iterable, Iterator
from contextlib import closing, contextmanager, nullcontext
from dataclasses import dataclass, field, replace

from playground.backends.base import BackendError
from playground.catalog import PRESETS, ModelSpec
from playground.record import TokenAlt, TokenStep

BLANK = "***"
MIN_KEY = 4  # shorter values would blank ordinary words
MIN_TAIL = 8  # an unfinished key at the end of a stream is blanked from this many characters on


def known_keys(spec: ModelSpec) -> tuple[str, ...]:
    """The values of this spec's key variable and of every preset's: any of them may be echoed."""
    names = dict.fromkeys([spec.api_key_env, *(p.api_key_env for p in PRESETS)])
    values = {os.environ.get(name, "") for name in names if name}
    return tuple(sorted((v for v in values if len(v) >= MIN_KEY), key=len, reverse=True))


@dataclass
class KeyBlanker:
    """Replaces every known key with *** in text, errors and streamed steps."""

    keys: tuple[str, ...]

    @classmethod
    def for_spec(cls, spec: ModelSpec) -> KeyBlanker:
        return cls(known_keys(spec))

    def text(self, value: str) -> str:
        for key in self.keys:
            value = value.replace(key, BLANK)
        return value

    def holds_key(self, exc: BaseException) -> bool:
        """True when the error's message, or any error it came from, contains a key."""
        seen: set[int] = set()
        cause: BaseException | None = exc
        while cause is not None and id(cause) not in seen:
            if self.text(str(cause)) != str(cause):
                return True
            seen.add(id(cause))
            cause = cause.__cause__ or cause.__context__
        return False

    def error(self, exc: BackendError) -> BackendError:
        """The same error if clean; else a new one with the key blanked and no chain to print it from."""
        if not self.holds_key(exc):
            return exc
        return BackendError(self.text(str(exc)))

    @contextmanager
    def errors(self) -> Iterator[None]:
        """Re-raises a BackendError raised inside with its keys blanked (from None: no chain holds them)."""
        try:
            yield
        except BackendError as exc:
            clean = self.error(exc)
            if clean is exc:
                raise
            raise clean from None

    def steps(self, source: Iterable[TokenStep]) -> Iterator[TokenStep]:
        """The steps with every key blanked, even one split over several steps (a step waits while its
        text may begin a key; a failure still yields what was held, then raises)."""
        if not self.keys:  # nothing to look for (no key variable set): pass the steps through
            yield from source
            return
        window = _Window(self.keys)
        with closing(source) if isinstance(source, Generator) else nullcontext():
            try:
                for step in source:
                    yield from window.push(step)
            except Exception:
                yield from window.flush()
                raise
        yield from window.flush()


@dataclass
class _Window:
    """Steps not yet released: their joined text may still grow into a key."""

    keys: tuple[str, ...]
    held: list[TokenStep] = field(default_factory=list)

    def push(self, step: TokenStep) -> list[TokenStep]:
        step = replace(step, top=[self._alt(alt) for alt in step.top])
        self.held.append(step)
        self._blank_whole_keys()
        joined = "".join(s.text for s in self.held)
        safe = len(joined) - self._key_prefix_tail(joined)
        ends, count = 0, 0
        for held in self.held:
            ends += len(held.text)
            if ends > safe:
                break
            count += 1
        return self._release(count)

    def flush(self) -> list[TokenStep]:
        joined = "".join(s.text for s in self.held)
        tail = self._key_prefix_tail(joined)
        if tail >= MIN_TAIL:  # the stream ended inside a key: do not leave its first characters
            self._blank(len(joined) - tail, len(joined))
        return self._release(len(self.held))

    def _release(self, count: int) -> list[TokenStep]:
        released, self.held = self.held[:count], self.held[count:]
        return released

    def _alt(self, alt: TokenAlt) -> TokenAlt:
        text = alt.text
        for key in self.keys:
            text = text.replace(key, BLANK)
        return alt if text == alt.text else replace(alt, text=text)

    def _key_prefix_tail(self, joined: str) -> int:
        """Length of the longest end of `joined` that is the beginning of a key (0: none)."""
        best = 0
        for key in self.keys:
            for size in range(min(len(key) - 1, len(joined)), best, -1):
                if joined.endswith(key[:size]):
                    best = size
                    break
        return best

    def _blank_whole_keys(self) -> None:
        start = 0
        while True:
            joined = "".join(s.text for s in self.held)
            found = [(joined.find(key, start), key) for key in self.keys]
            found = [(at, key) for at, key in found if at >= 0]
            if not found:
                return
            at, key = min(found)
            self._blank(at, at + len(key))
            start = at + len(BLANK)

    def _blank(self, begin: int, end: int) -> None:
        """Blank characters [begin, end) of the held text: the first step they touch gets ***, and
        every step they touch loses its alternatives' text (the chosen piece is among them)."""
        offset, marked = 0, False
        for index, step in enumerate(self.held):
            lo, hi = offset, offset + len(step.text)
            offset = hi
            if hi <= begin or lo >= end or lo == hi:
                continue
            cut_from, cut_to = max(begin, lo) - lo, min(end, hi) - lo
            mark = BLANK if not marked else ""
            marked = True
            text = step.text[:cut_from] + mark + step.text[cut_to:]
            top = [replace(alt, text=BLANK) for alt in step.top]
            self.held[index] = replace(step, text=text, top=top)
