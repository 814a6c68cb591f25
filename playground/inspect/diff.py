"""Word-level diff of two outputs: ops that rebuild both texts exactly, escaped HTML, and counts.

Pure (stdlib only) so the diff panel renders from saved records with no model loaded.
"""

from __future__ import annotations

import difflib
import html
import math
import re
from dataclasses import dataclass, field
from typing import Any

from playground.record import ModelRun

EQUAL, INSERT, DELETE = "equal", "insert", "delete"
DIFF_WORDS = 2_000  # words of each side compared one by one after the common start (see _matching_blocks)

# Code points that belong to the character before them: combining marks (NFD accents),
# variation selectors, emoji skin tones, tag characters. Kept with that character so a
# diff never splits "e" from its accent or an emoji from its modifier.
_EXTEND = (
    "[\u0300-\u036f\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff\ufe00-\ufe0f\ufe20-\ufe2f"
    "\U0001f3fb-\U0001f3ff\U000e0020-\U000e007f]"
)
# Scripts written without spaces (kana, CJK ideographs): one token per character, or a
# whole Chinese sentence would be a single "word" and any change would replace all of it.
_CJK = "[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003134f]"
_TOKEN = re.compile(
    rf"\s+"  # a run of whitespace, newlines included
    rf"|{_CJK}{_EXTEND}*"  # one CJK character
    rf"|(?:(?!{_CJK})\w{_EXTEND}*)+"  # a word, with its accents
    rf"|[\U0001f1e6-\U0001f1ff]{{2}}"  # a flag (two regional indicators)
    rf"|[^\w\s]{_EXTEND}*(?:\u200d[^\w\s]{_EXTEND}*)*"  # punctuation or an emoji (ZWJ sequences whole)
)


@dataclass(frozen=True)
class DiffOp:
    """One run of text: "equal" (in both), "delete" (baseline only) or "insert" (other only)."""

    kind: str
    text: str


@dataclass(frozen=True)
class ColumnDiff:
    """The diff of one column against the baseline column, or why there is none."""

    baseline: int  # ModelRun.column (0-based)
    other: int
    ops: list[DiffOp] = field(default_factory=list)
    error: str = ""  # "cannot diff: column 2 failed: ..." when either side has no output to compare

    @property
    def stats(self) -> dict[str, Any]:
        return diff_stats(self.ops)

    def html(self) -> str:
        if self.error:
            return f'<div class="pg-diff pg-diff-error">{html.escape(self.error)}</div>'
        return diff_html(self.ops)


@dataclass(frozen=True)
class _Hunk:
    """A stretch of both texts: unchanged (same) or changed (either side may be empty)."""

    a: str  # baseline side
    b: str  # other side
    same: bool


def tokenize(text: str) -> list[str]:
    """Words, whitespace runs, punctuation and emoji; "".join(tokenize(t)) == t for any text."""
    return _TOKEN.findall(text)


def word_diff(baseline: str, other: str, words: int = DIFF_WORDS) -> list[DiffOp]:
    """Ops turning `baseline` into `other`; a replacement is a delete followed by an insert.

    Words are matched without the whitespace between them (whitespace tokens, one in two,
    would make SequenceMatcher quadratic on long outputs); the gaps are compared afterwards,
    so a changed space or newline still shows and both texts are rebuilt exactly.
    """
    a_words, a_gaps = _split(baseline)
    b_words, b_gaps = _split(other)
    hunks: list[_Hunk] = []
    i0 = j0 = 0  # gap index where the stretch between matched blocks starts
    for i, j, size in _matching_blocks(a_words, b_words, words):
        hunks.append(_hunk(_stretch(a_words, a_gaps, i0, i), _stretch(b_words, b_gaps, j0, j)))
        for k in range(size):
            hunks.append(_Hunk(a_words[i + k], a_words[i + k], True))
            if k < size - 1:
                hunks.append(_hunk(a_gaps[i + k + 1], b_gaps[j + k + 1]))
        i0, j0 = i + size, j + size
    return _to_ops(_trim_whitespace(_bridge_whitespace(_merge(hunks))))


def _matching_blocks(a: list[str], b: list[str], words: int) -> list[tuple[int, int, int]]:
    """Stretches of equal words, as SequenceMatcher gives them (ending with (len(a), len(b), 0)).

    The common start and end are matched directly; SequenceMatcher (quadratic on repetitive text)
    compares at most `words` words of each side between them, and what follows is one change:
    a replay of the longest outputs the limits allow stays quick, and both texts are still exact.
    """
    head = 0
    while head < min(len(a), len(b)) and a[head] == b[head]:
        head += 1
    tail = 0
    while tail < min(len(a), len(b)) - head and a[-1 - tail] == b[-1 - tail]:
        tail += 1
    blocks = [(0, 0, head)] if head else []
    middle_a, middle_b = a[head: len(a) - tail][:words], b[head: len(b) - tail][:words]
    matcher = difflib.SequenceMatcher(None, middle_a, middle_b, autojunk=False)
    blocks += [(head + i, head + j, size) for i, j, size in matcher.get_matching_blocks() if size]
    if tail:
        blocks.append((len(a) - tail, len(b) - tail, tail))
    return [*blocks, (len(a), len(b), 0)]


def _hunk(a: str, b: str) -> _Hunk:
    return _Hunk(a, b, a == b)


def _split(text: str) -> tuple[list[str], list[str]]:
    """Non-whitespace tokens, and the whitespace around them: len(gaps) == len(words) + 1."""
    words: list[str] = []
    gaps = [""]
    for token in tokenize(text):
        if token.isspace():
            gaps[-1] += token
        else:
            words.append(token)
            gaps.append("")
    return words, gaps


def _stretch(words: list[str], gaps: list[str], start: int, end: int) -> str:
    """gap[start] word[start] gap[start+1] ... word[end-1] gap[end]: the text between matches."""
    return gaps[start] + "".join(words[k] + gaps[k + 1] for k in range(start, end))


def _merge(hunks: list[_Hunk]) -> list[_Hunk]:
    out: list[_Hunk] = []
    for h in hunks:
        if not h.a and not h.b:
            continue
        if out and out[-1].same == h.same:
            last = out.pop()
            h = _Hunk(last.a + h.a, last.b + h.b, h.same)
        out.append(h)
    return out


def _bridge_whitespace(hunks: list[_Hunk]) -> list[_Hunk]:
    """Fold a whitespace-only match between two changes into them.

    "-the +a ␣ -quick +slow" reads worse than "-the quick +a slow"; both texts stay exact
    because the space goes into the deleted and the inserted side alike.
    """
    out: list[_Hunk] = []
    i = 0
    while i < len(hunks):
        h = hunks[i]
        nxt = hunks[i + 1] if i + 1 < len(hunks) else None
        if h.same and not h.a.strip() and out and not out[-1].same and nxt is not None and not nxt.same:
            last = out.pop()
            out.append(_Hunk(last.a + h.a + nxt.a, last.b + h.b + nxt.b, False))
            i += 2
        else:
            out.append(h)
            i += 1
    return out


def _trim_whitespace(hunks: list[_Hunk]) -> list[_Hunk]:
    """Whitespace both sides of a change start (or end) with is shown as unchanged."""
    out: list[_Hunk] = []
    for h in hunks:
        if h.same:
            out.append(h)
            continue
        head = _common_space(h.a, h.b)
        tail = _common_space(h.a[len(head):][::-1], h.b[len(head):][::-1])[::-1]
        a, b = h.a[len(head): len(h.a) - len(tail)], h.b[len(head): len(h.b) - len(tail)]
        out.extend([_Hunk(head, head, True), _Hunk(a, b, False), _Hunk(tail, tail, True)])
    return _merge(out)


def _common_space(a: str, b: str) -> str:
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n] and a[n].isspace():
        n += 1
    return a[:n]


def _to_ops(hunks: list[_Hunk]) -> list[DiffOp]:
    ops: list[DiffOp] = []
    for h in hunks:
        if h.same:
            ops.append(DiffOp(EQUAL, h.a))
            continue
        if h.a:
            ops.append(DiffOp(DELETE, h.a))
        if h.b:
            ops.append(DiffOp(INSERT, h.b))
    return ops


def baseline_text(ops: list[DiffOp]) -> str:
    return "".join(op.text for op in ops if op.kind != INSERT)


def other_text(ops: list[DiffOp]) -> str:
    return "".join(op.text for op in ops if op.kind != DELETE)


_STYLE = {
    INSERT: "background:rgba(0,114,178,0.18);color:inherit;text-decoration:underline;"
    "text-decoration-color:#0072B2;border-radius:2px",
    DELETE: "background:rgba(213,94,0,0.18);color:inherit;text-decoration:line-through;"
    "text-decoration-color:#D55E00;border-radius:2px",
}
_MARK_STYLE = "font-weight:bold;text-decoration:none;display:inline-block;margin-right:0.15em"


def diff_html(ops: list[DiffOp]) -> str:
    """Escaped HTML: insertions blue with "+", deletions vermillion, struck through, with "−".

    Colour is never the only cue (Okabe-Ito blue/vermillion, plus marks and strike-through),
    so the diff reads for colour-blind users and in print.
    """
    parts = [_op_html(op) for op in ops]
    return f'<div class="pg-diff">{"".join(parts)}</div>'


def _op_html(op: DiffOp) -> str:
    text = _escape(op.text)
    if op.kind == EQUAL:
        return text
    tag, cls, mark, title = (
        ("ins", "pg-ins", "+", "inserted") if op.kind == INSERT else ("del", "pg-del", "\u2212", "deleted")
    )
    mark_html = f'<span class="pg-mark" style="{_MARK_STYLE}">{mark}</span>'
    return f'<{tag} class="{cls}" title="{title}" style="{_STYLE[op.kind]}">{mark_html}{text}</{tag}>'


def _escape(text: str) -> str:
    return html.escape(text, quote=True).replace("\r\n", "\n").replace("\n", "<br>")


def diff_stats(ops: list[DiffOp]) -> dict[str, Any]:
    """Token counts by kind (whitespace not counted) and similarity 2·equal / (baseline + other).

    Two empty texts are identical (similarity 1.0); an empty one against a non-empty one is 0.0.
    """
    counts = {EQUAL: 0, INSERT: 0, DELETE: 0}
    for op in ops:
        counts[op.kind] += sum(1 for t in tokenize(op.text) if not t.isspace())
    base, other = counts[EQUAL] + counts[DELETE], counts[EQUAL] + counts[INSERT]
    similarity = 1.0 if base + other == 0 else 2 * counts[EQUAL] / (base + other)
    return {
        "words_equal": counts[EQUAL],
        "words_inserted": counts[INSERT],
        "words_deleted": counts[DELETE],
        "baseline_words": base,
        "other_words": other,
        "similarity": similarity,
    }


def diff_words(diffs: int) -> int:
    """Words compared per diff when a panel draws `diffs` of them: the cost is quadratic in the words,
    so the whole panel costs about what 7 diffs of DIFF_WORDS do, whatever the number of columns."""
    return DIFF_WORDS if diffs <= 7 else max(200, int(DIFF_WORDS * math.sqrt(7 / diffs)))


def column_diff(baseline: ModelRun, other: ModelRun, words: int = DIFF_WORDS) -> ColumnDiff:
    """Diff two columns' outputs; a failed column gives a message, never a diff against "" ."""
    for run in (baseline, other):
        if run.error:
            message = f"cannot diff: column {run.column + 1} failed: {run.error}"
            return ColumnDiff(baseline.column, other.column, error=message)
    return ColumnDiff(baseline.column, other.column, word_diff(baseline.text, other.text, words))


def abbreviate(ops: list[DiffOp], context: int = 6) -> list[DiffOp]:
    """For display only: equal stretches longer than 2·context tokens keep their ends around "…".

    The result no longer rebuilds the texts; it shows where a long prompt changed.
    """
    out = []
    for index, op in enumerate(ops):
        tokens = tokenize(op.text)
        if op.kind != EQUAL or len(tokens) <= 2 * context:
            out.append(op)
            continue
        head = "" if index == 0 else "".join(tokens[:context])
        tail = "" if index == len(ops) - 1 else "".join(tokens[-context:])
        out.append(DiffOp(EQUAL, f"{head}…{tail}"))
    return out
