"""A local model's prompt: the exact ids it will see, as a chat template, a question/answer frame or
raw text, with each token's piece of text and the special-token strings the user typed.

Separate from the loaded model (local.py) because it needs only the tokenizer: the Tokens panel and
token counts use it without any forward pass.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Sequence
from dataclasses import replace

from playground.backends.base import Exchange, PromptEncoding, chat_messages
from playground.inspect.tokens import SpecialLiteral
from playground.record import TokenPiece

# A model without a chat template would continue the user's text (a base model parrots a question
# back); framed as a question and an answer it answers, and a new "Question:" ends the answer.
# The Tokens panel shows the frame; a catalog entry with `frame = "raw"` feeds the text as is.
QA_FRAME = ("Question: ", "\nAnswer:")
QA_STOP = "\nQuestion:"
FORMATS = {"chat": "chat template", "qa": "question/answer frame", "raw": "raw completion"}

Segments = list[tuple[str, bool]]  # (text, typed by the user) in order


def special_ids(tokenizer: object) -> set[int]:
    """Ids the tokenizer treats as control tokens (its special tokens and special added tokens)."""
    return set(tokenizer.all_special_ids) | {
        i for i, token in tokenizer.added_tokens_decoder.items() if token.special
    }


class Templating:
    """Encodes prompts for one tokenizer, shared by every user of its model.

    transformers sets the fast tokenizer's `encode_special_tokens` flag (shared Rust state) on every
    call, so `lock` guards encoding: two users' prompts never see each other's flag."""

    def __init__(self, tokenizer: object, frame: str = "") -> None:
        self.tokenizer = tokenizer
        self.chat_template = bool(getattr(tokenizer, "chat_template", None))
        self.frame = "chat" if self.chat_template else (frame or "qa")  # qa: QA_FRAME; raw: the text as is
        self.special_ids = special_ids(tokenizer)
        self.lock = threading.RLock()

    @property
    def prompt_format(self) -> str:
        return FORMATS[self.frame]

    def encode(
        self, prompt: str, system_prompt: str, specials_as_text: bool = False,
        history: Sequence[Exchange] = (),
    ) -> PromptEncoding:
        """The exact ids the model will see, with per-token pieces and typed special-token strings.

        `history` holds a conversation's earlier exchanges (this model's own answers): the whole
        conversation is templated, and the Tokens panel shows all of it.

        Normally the chat template is applied by the tokenizer itself. With
        specials_as_text, the template is rendered around placeholders and the
        typed texts are tokenized with split_special_tokens, so a literal
        "<|im_end|>" typed by the user stays text while the template's own
        control tokens stay control tokens.
        """
        with self.lock:
            return self._encode(prompt, system_prompt, specials_as_text, tuple(history))

    def _encode(
        self, prompt: str, system_prompt: str, specials_as_text: bool, history: tuple[Exchange, ...]
    ) -> PromptEncoding:
        segments, prompt_format, note = self._segments(prompt, system_prompt, history)
        ids: list[int] = []
        literals: list[SpecialLiteral] = []
        for text, typed in segments:
            normal = self._ids(text, split=False)
            if typed:
                literals += [
                    SpecialLiteral(self.tokenizer.convert_ids_to_tokens(t), t, len(ids) + k)
                    for k, t in enumerate(normal) if t in self.special_ids
                ]
            ids += self._ids(text, split=True) if typed and specials_as_text else normal
        if not specials_as_text:
            ids = self._direct_ids(prompt, system_prompt, history)  # what the library itself would feed
        if self._bos_needed(prompt_format) and (not ids or ids[0] != self.tokenizer.bos_token_id):
            ids = [self.tokenizer.bos_token_id, *ids]
        if prompt_format != "chat template" and ids and ids[0] == self.tokenizer.bos_token_id:
            literals = [replace(lit, position=lit.position + 1) for lit in literals]  # after the BOS
        return PromptEncoding(
            token_ids=ids,
            prompt_format=prompt_format,
            note=note,
            pieces=self.pieces(ids),
            user_tokens=len(self._ids(prompt, split=specials_as_text)),
            special_literals=literals,
            unk_id=self.tokenizer.unk_token_id,
            stop=[QA_STOP] if self.frame == "qa" else [],
        )

    def count_tokens(self, text: str, specials_as_text: bool = False) -> int:
        with self.lock:
            return len(self._ids(text, split=specials_as_text))

    def pieces(self, ids: list[int]) -> list[TokenPiece]:
        texts = self._piece_texts(ids)
        raws = self.tokenizer.convert_ids_to_tokens(ids)
        return [
            TokenPiece(i, text, raw or "", i in self.special_ids)
            for i, text, raw in zip(ids, texts, raws, strict=True)
        ]

    def _piece_texts(self, ids: list[int], max_wait: int = 8) -> list[str]:
        """The text each token adds, so that the pieces concatenate to the decoded sequence.

        A character split over several tokens (UTF-8 bytes of an emoji, byte
        fallback) belongs to the token that completes it; the tokens before it
        add "" and are shown by their vocabulary form.
        """
        texts: list[str] = []
        start = 0
        for i in range(len(ids)):
            text = self.tokenizer.decode(ids[start : i + 1], skip_special_tokens=False)
            if text.endswith("\ufffd") and i - start < max_wait:
                texts.append("")
                continue
            texts.append(text)
            start = i + 1
        return texts

    def _ids(self, text: str, split: bool) -> list[int]:
        return list(self.tokenizer(text, add_special_tokens=False, split_special_tokens=split)["input_ids"])

    def _bos_needed(self, prompt_format: str) -> bool:
        """Text without a chat template starts with BOS when the tokenizer would add one (Gemma does)."""
        if prompt_format == "chat template" or self.tokenizer.bos_token_id is None:
            return False
        probe = self.tokenizer("x", add_special_tokens=True)["input_ids"]
        return bool(probe) and probe[0] == self.tokenizer.bos_token_id

    def _direct_ids(self, prompt: str, system_prompt: str, history: tuple[Exchange, ...] = ()) -> list[int]:
        if self.chat_template:
            encoded = self.tokenizer.apply_chat_template(
                chat_messages(prompt, system_prompt, history), add_generation_prompt=True, tokenize=True,
                return_dict=True,
            )
            return list(encoded["input_ids"])
        text = "".join(part for part, _typed in self._segments(prompt, system_prompt, history)[0])
        return list(self.tokenizer(text, add_special_tokens=True)["input_ids"])

    def _segments(
        self, prompt: str, system_prompt: str, history: tuple[Exchange, ...] = ()
    ) -> tuple[Segments, str, str]:
        """The conversation as (text, typed-by-the-user) pieces, in order (earlier answers: not typed)."""
        if not self.chat_template:
            return self._framed(prompt, system_prompt, history)
        # The template is rendered around placeholders, then each placeholder becomes its text.
        sys_mark, user_mark = "\ue000PG-SYSTEM\ue000", "\ue000PG-USER\ue000"
        marks = {sys_mark: (system_prompt, True), user_mark: (prompt, True)}
        marked_history = []
        for k, (user, answer) in enumerate(history):
            u, a = f"\ue000PG-U{k}\ue000", f"\ue000PG-A{k}\ue000"
            marks |= {u: (user, True), a: (answer, False)}
            marked_history.append((u, a))
        rendered = self.tokenizer.apply_chat_template(
            chat_messages(user_mark, sys_mark if system_prompt else "", marked_history),
            add_generation_prompt=True, tokenize=False,
        )
        segments: Segments = []
        for part in re.split("(\ue000PG-[A-Z0-9]+\ue000)", rendered):
            if part in marks:
                segments.append(marks[part])
            elif part:
                segments.append((part, False))
        return segments, "chat template", ""

    def _framed(
        self, prompt: str, system_prompt: str, history: tuple[Exchange, ...]
    ) -> tuple[Segments, str, str]:
        """A model without a chat template: raw running text, or the question/answer frame."""
        head: Segments = [(system_prompt, True), ("\n\n", False)] if system_prompt else []
        if self.frame == "raw":
            note = "no chat template: system prompt prepended as plain text" if system_prompt else ""
            for user, answer in history:  # a raw conversation is one running text
                head += [(user, True), (answer, False), ("\n\n", False)]
            return [*head, (prompt, True)], FORMATS["raw"], note
        for user, answer in history:  # the answer follows "Answer:" as the model wrote it
            head += [(QA_FRAME[0], False), (user, True), (QA_FRAME[1], False), (answer, False),
                     ("\n", False)]
        note = ("no chat template: the prompt runs in a question/answer frame and the answer ends "
                "at a new \"Question:\"")
        if system_prompt:
            note += " (system prompt prepended as plain text)"
        framed = [(QA_FRAME[0], False), (prompt, True), (QA_FRAME[1], False)]
        return [*head, *framed], FORMATS["qa"], note
