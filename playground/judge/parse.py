"""Reading a judge's verdict out of what it wrote. A small judge rambles, repeats the instructions or
answers the question itself: a verdict is taken only from a clear pattern ("Score: 4", "4/5",
"Winner: B", a reply that is just "B"), and anything else gives no verdict and a note saying so,
never a guessed score."""

from __future__ import annotations

import re
from dataclasses import dataclass

from playground.judge.spec import SCALE

MAX_RATIONALE_CHARS = 400

_NUM = r"(\d+(?:\.\d+)?)"
_GRADE = re.compile(r"(?i:\b(?:score|grade|rating)\b)\s*(?:(?i:is|of)\s*)?[:=\-]?\s*\**\s*" + _NUM
                    + r"\s*(?:/\s*(\d+)|(?i:out of)\s*(\d+))?")
_FRACTION = re.compile(_NUM + r"\s*(?:/|(?i:out of))\s*(\d+)")
_LEADING = re.compile(r"^\W*" + _NUM + r"\W*$")
_SCALE_ECHO = re.compile(r"\s*(?:\([^)]{0,20}\))?\s*(?:to|-|–)\s*\d")  # "1 (bad) to 5": the instructions
_TIE = r"(?:[Tt]ie|TIE|[Ee]qual|[Bb]oth|[Nn]either)"


@dataclass(frozen=True)
class Parsed:
    value: float | None  # rubric: the grade mapped to [0, 1]; letters: None
    letter: str = ""  # pairwise / best: the letter chosen, "tie", or "" for none
    rationale: str = ""  # the judge's own words (the verdict line left out)
    note: str = ""  # why there is no verdict

    @property
    def ok(self) -> bool:
        return self.value is not None or bool(self.letter)


def rationale_of(text: str, verdict: re.Match[str] | None = None) -> str:
    """The judge's words without its verdict line, one line, at most MAX_RATIONALE_CHARS."""
    if verdict is not None:
        text = text[:verdict.start()] + " " + text[verdict.end():]
    words = " ".join(text.replace("*", " ").split()).strip(" .:-")
    return words[:MAX_RATIONALE_CHARS]


def parse_grade(text: str, scale: int = SCALE) -> Parsed:
    """A 1..scale grade ("Score: 4", "4/5", "8 out of 10", or a reply that is just "4"), mapped to [0, 1]."""
    found = None
    for m in _GRADE.finditer(text):
        if not _SCALE_ECHO.match(text, m.end()):
            found = m
            break
    if found is None:
        fraction = _FRACTION.search(text)
        if fraction and int(fraction.group(2)) in (scale, 10) and not _SCALE_ECHO.match(text, fraction.end()):
            found = fraction
    if found is None:
        first = text.strip().splitlines()[0] if text.strip() else ""
        lead = _LEADING.match(first)
        if lead is None:
            return Parsed(None, note=f"no verdict: the judge gave no grade ({_gist(text)})")
        value, out_of = float(lead.group(1)), scale
        text = text.strip()[len(first):]  # the rationale: what follows the grade's line
    else:
        value = float(found.group(1))
        out_of = int(next((g for g in found.groups()[1:] if g), scale))
    if out_of not in (scale, 10, 100):
        return Parsed(None, note=f"no verdict: a grade out of {out_of} is not on the 1-{scale} scale")
    if not 1 <= value <= out_of:
        return Parsed(None, note=f"no verdict: grade {value:g} is outside 1-{out_of}")
    return Parsed((value - 1) / (out_of - 1), rationale=rationale_of(text, found))


def parse_letter(text: str, letters: str = "AB", tie: bool = True) -> Parsed:
    """The answer the judge chose ("Winner: B", "Best: [[C]]", "Answer A is better", a reply that is just
    "A"), or "tie" when allowed. Letters are read upper-case only: "a tie" is not answer A."""
    choice = f"[{letters}]" + (f"|{_TIE}" if tie else "")
    patterns = [
        r"(?i:\b(?:winner|verdict|best|better|choice)\b)\s*(?:(?i:is)\s*)?[:=\-]?\s*\**\s*\[*\s*"
        r"(?:(?i:answer)\s+|an?\s+)?(" + choice + r")\b\s*\]*",
        r"\[\[\s*(" + choice + r")\s*\]\]",
        r"(?i:answer)\s+([" + letters + r"])\s+(?i:is\s+(?:the\s+)?(?:better|best|winner|preferred))",
        r"^\W*(?:(?i:answer)\s+)?(" + choice + r")\W*$",
    ]
    first_line = text.strip().splitlines()[0] if text.strip() else ""
    named = {m.group(1) if m.group(1) in letters else "tie" for m in re.finditer(patterns[0], text)}
    if len(named) > 1:  # "Winner: A", "Winner: B" or ...: the instructions repeated, or a change of mind
        return Parsed(None, note=f"no verdict: the judge named several answers ({', '.join(sorted(named))})")
    for i, pattern in enumerate(patterns):
        m = re.search(pattern, first_line if i == 3 else text, flags=re.MULTILINE)
        if m:
            word = m.group(1)
            letter = word if word in letters else "tie"
            words = rationale_of(text, m) if i < 2 else rationale_of(text[len(first_line):]) if i == 3 else \
                rationale_of(text)
            return Parsed(None, letter, words)
    return Parsed(None, note=f"no verdict: the judge named no answer ({_gist(text)})")


def _gist(text: str) -> str:
    """The start of what the judge wrote, for the note."""
    words = " ".join(text.split())
    return f"it wrote {words[:80]!r}" if words else "it wrote nothing"
