"""What a judge is asked to do: which model, which method, against which rubric (stored with a batch)."""

from __future__ import annotations

from dataclasses import dataclass

METHODS = ("rubric", "pairwise", "best")
DEFAULT_RUBRIC = ("The answer is correct, does what the question asks, stays on topic, and does not just "
                  "repeat the question or itself.")
DEFAULT_MAX_NEW_TOKENS = 48  # a verdict line and one sentence why: a judge that rambles is cut short
SCALE = 5  # rubric grades run 1..SCALE, mapped to [0, 1] as (grade - 1) / (SCALE - 1)
PASS_GRADE = 3  # a rubric grade of at least this counts as a pass (bench/bench_judge.py)
MAX_RUBRIC_CHARS = 2000


class JudgeError(ValueError):
    """A judge that cannot be used or a batch that cannot be judged; the message is fit for the user."""


@dataclass
class JudgeSpec:
    model: str  # any catalog model (local, served or hosted), .gguf path or directory
    method: str = "rubric"
    rubric: str = ""  # "" -> DEFAULT_RUBRIC
    columns: list[int] | None = None  # pairwise: the two columns compared (None: the first two)
    seed: int = 0  # best: the answers are shown shuffled from this seed (plus the prompt's index)
    reference: bool = True  # rubric: show the prompt's expected answer, when it has one, to the judge
    max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS

    @property
    def rubric_text(self) -> str:
        return self.rubric.strip() or DEFAULT_RUBRIC

    def pair(self) -> tuple[int, int]:
        """The two columns a pairwise judge compares."""
        a, b = self.columns if self.columns else (0, 1)
        return a, b

    def problems(self, columns: int) -> list[str]:
        """What is wrong with this judge for a batch of `columns` columns (empty: nothing)."""
        out = []
        if not self.model.strip():
            out.append("judge: no model")
        if self.method not in METHODS:
            out.append(f"judge: unknown method {self.method!r}: use one of {', '.join(METHODS)}")
        if len(self.rubric) > MAX_RUBRIC_CHARS:
            out.append(f"judge: the rubric is longer than {MAX_RUBRIC_CHARS} characters")
        if not 8 <= self.max_new_tokens <= 512:
            out.append(f"judge: max_new_tokens must be between 8 and 512, got {self.max_new_tokens}")
        if self.method in ("pairwise", "best") and columns < 2:
            out.append(f"judge: {self.method} compares answers: give at least two models")
        if self.method == "pairwise" and columns >= 2:
            if self.columns is not None and len(self.columns) != 2:
                out.append("judge: pairwise compares exactly two columns")
            elif len(set(self.pair())) != 2 or not all(0 <= c < columns for c in self.pair()):
                out.append("judge: pairwise columns must be two different columns between 0 and "
                           f"{columns - 1}")
        return out
