"""Blind comparison: a run's columns shuffled and shown as "Model A", "Model B", ... until a vote.

Pure functions over the run record. Names are hidden by drawing from a copy of the record
(dataclasses.replace) in which each column stands in its letter's place with an anonymous
identity, so every panel that draws a record draws letters without knowing about blind mode.
What would give a model away besides its name is hidden with it: its prompt format, its
metrics (token counts, speed, memory, load time), and its name inside errors, notes and live
status lines, its finish label ("done (stop string)" or "done (max new tokens)" against another
column's "done" told the base model apart: every finished answer reads NEUTRAL_FINISH), and its
tokens: the prompt's (the Tokens panel's chips and counts), the answer's (the Probabilities panel
splits the answer into its tokenizer's pieces) and the attention map's labels. The tokenizer names
the family, so those panels wait for the vote (HIDDEN_UNTIL_VOTE says so in the column).
"""

from __future__ import annotations

import random
import string
from dataclasses import replace

from playground.record import Metrics, ModelIdentity, ModelRun, Run

LETTERS = string.ascii_uppercase
# How an answer ended that would tell models apart (a base model ends on the frame's stop string, a
# chat model on its end-of-turn token): all read as a plain finish ("done") in a blind column.
FINISHED = ("eos", "stop", "length")
NEUTRAL_FINISH = "eos"
HIDDEN_UNTIL_VOTE = ("attention and token probabilities: hidden until the vote (a model's tokens "
                     "would tell it apart)")


def letter(index: int) -> str:
    """A, B, ... Z, then AA, AB, ... (for more columns than letters)."""
    return LETTERS[index] if index < len(LETTERS) else letter(index // len(LETTERS) - 1) + letter(
        index % len(LETTERS))


def label(index: int) -> str:
    return f"Model {letter(index)}"


def shuffled_order(n: int, rng: random.Random | None = None) -> list[int]:
    """order[i] = the run column shown as letter i: a uniformly random permutation, the page order
    included. (Excluding it, as this once did, made two columns always swap: letter A was always the
    second picker's model, which is no more blind than never swapping.)"""
    rng = rng or random.SystemRandom()
    order = list(range(n))
    rng.shuffle(order)
    return order


def valid_order(order: object, n: int) -> bool:
    return isinstance(order, list) and sorted(order) == list(range(n)) and all(
        isinstance(i, int) and not isinstance(i, bool) for i in order)


def names_of(model: ModelRun) -> list[str]:
    """Every string that names the model, longest first (so a path is replaced before its stem)."""
    ident = model.identity
    found = {ident.catalog_id, ident.name, ident.reference, ident.served_model, ident.location}
    return sorted((n for n in found if n and len(n) > 2), key=len, reverse=True)


def scrub(text: str, record: Run, order: list[int]) -> str:
    """`text` with every column's model names replaced by its letter label."""
    if not text:
        return text
    pairs = [(name, label(i)) for i, col in enumerate(order) if col < len(record.models)
             for name in names_of(record.models[col])]
    for name, to in sorted(pairs, key=lambda p: len(p[0]), reverse=True):
        text = text.replace(name, to)
    return text


def mask(record: Run, order: list[int]) -> Run:
    """A copy of the run with column i holding run column order[i], named label(i)."""
    models = []
    for i, col in enumerate(order):
        m = record.models[col]

        def clean(text: str) -> str:
            return scrub(text, record, order)

        name = label(i)
        caps = replace(m.capabilities, token_ids_note=clean(m.capabilities.token_ids_note),
                       logprobs_note=clean(m.capabilities.logprobs_note))
        models.append(replace(
            m, column=i, identity=ModelIdentity(catalog_id=name, name=name, source="", location=""),
            metrics=Metrics(),  # token counts, speed, memory and load time all hint at the model
            finish_reason=NEUTRAL_FINISH if m.finish_reason in FINISHED else m.finish_reason,
            prompt_pieces=[], prompt_token_ids=[], user_text_tokens=0,  # the tokenizer names the family
            steps=[], attention=None,  # the answer's tokens and the map's labels: the tokenizer again
            attention_note=HIDDEN_UNTIL_VOTE if m.steps or m.attention else clean(m.attention_note),
            error=clean(m.error), capabilities=caps, grounding_notice=clean(m.grounding_notice),
            anomalies=[replace(a, message=clean(a.message)) for a in m.anomalies],
        ))
    return replace(record, models=models)


def letter_status(status: dict[int, str], record: Run, order: list[int]) -> dict[int, str]:
    """Live status lines keyed by run column, re-keyed by letter and scrubbed of names."""
    where = {col: i for i, col in enumerate(order)}
    return {where[c]: scrub(text, record, order) for c, text in status.items() if c in where}


def letter_columns(columns: set[int], order: list[int]) -> set[int]:
    where = {col: i for i, col in enumerate(order)}
    return {where[c] for c in columns if c in where}
