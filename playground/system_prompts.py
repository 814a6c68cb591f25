"""What system prompt each column really ran with, told from its run record.

An empty system prompt box does not mean the model saw none: some chat templates (SmolLM2's,
Qwen's, Llama 3's) write a default system turn of their own. That turn is in the column's prompt
tokens, which the record keeps, so it is read from there rather than from a list of models; the
page, `sessions show` and the reports all describe a column's system prompt with `describe`.
"""

from __future__ import annotations

from dataclasses import dataclass

from playground.record import ModelRun, Run, TokenPiece

SYSTEM_ROLE = "system"


@dataclass(frozen=True)
class ColumnSystem:
    """A column's system prompt and where it came from."""

    source: str  # "own" (the column's own box) | "shared" (the run's) | "template" (the chat template's) | ""
    text: str

    def label(self, limit: int = 60) -> str:
        """One line for a header or a report ("" when the model saw no system prompt)."""
        if not self.source:
            return ""
        kind = {"own": "this column's own system prompt", "shared": "system prompt",
                "template": "template default"}[self.source]
        return f"{kind}: “{short(self.text, limit)}”"

    def source_words(self) -> str:
        """Where the text came from, for a line that prints it whole."""
        return {"own": "own system prompt", "shared": "system prompt",
                "template": "system prompt (chat template default; none was typed)"}.get(self.source, "")


def template_system(pieces: list[TokenPiece]) -> str:
    """The text of a system turn in a templated prompt ('' when there is none).

    The prompt is cut at its control tokens; a system turn is a piece of text that starts with the role
    `system` and a newline (ChatML: `<|im_start|>system\\n…<|im_end|>`), or the role alone between two
    control tokens with the turn's text after them (Llama 3's header tokens)."""
    segments, current = [], []
    for piece in pieces:
        if piece.special:
            segments.append("".join(current))
            current = []
        else:
            current.append(piece.text)
    segments.append("".join(current))
    for i, segment in enumerate(segments[:-1]):  # the last one follows no control token
        if i == 0:
            continue  # text before the first control token is not a turn
        text = segment.lstrip(" ")
        if text.strip() == SYSTEM_ROLE and i + 1 < len(segments):
            return segments[i + 1].strip()
        if text.startswith(SYSTEM_ROLE + "\n"):
            return text[len(SYSTEM_ROLE) + 1:].strip()
    return ""


def describe(run: Run, model: ModelRun) -> ColumnSystem:
    """The system prompt a column ran with: its own, the run's, or its chat template's default."""
    if model.system_prompt is not None and model.system_prompt.strip():
        return ColumnSystem("own", model.system_prompt)
    if model.system_prompt is None and run.system_prompt.strip():
        return ColumnSystem("shared", run.system_prompt)
    found = template_system(model.prompt_pieces)
    return ColumnSystem("template", found) if found else ColumnSystem("", "")


def short(text: str, limit: int = 60) -> str:
    """Whitespace folded to single spaces, cut at `limit` characters with an ellipsis."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"
