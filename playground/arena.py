"""The arena loop's draw: which anonymous models fight a round, on which prompt.

Why seeded: a round must be reproducible from what is recorded (the seed and the round are shown
with the reveal, and the letter order is stored with the blind run), yet unpredictable to the voter,
so the seed itself comes from the system's random source (playground/ui/arena.py).

The pool is the catalog's local models (served ones cost money and need keys), one per weights file:
two catalog entries for one file (the bundled SmolLM2 in-process and through llama.cpp) are the same
model, and a battle between them says nothing about models. Prompts come from the bundled prompt set
(assets/prompt_sets/sample.jsonl) in order, round after round, unless the user typed their own.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

from playground.batch.prompt_set import PromptItem, load_file
from playground.catalog import Catalog

PROMPT_SET = Path(__file__).resolve().parent.parent / "assets" / "prompt_sets" / "sample.jsonl"


class ArenaError(ValueError):
    """A round that cannot be drawn; the message is fit for the user."""


@dataclass(frozen=True)
class Draw:
    """One round: the models in slot order, the prompt, and what reproduces the draw."""

    models: list[str]
    prompt: PromptItem
    seed: int
    round: int
    typed: bool = False  # the prompt is the user's own, not the set's


def arena_pool(catalog: Catalog) -> list[str]:
    """The local models a battle may pick, one catalog id per weights file, in catalog order."""
    seen: set[str] = set()
    pool = []
    for spec in catalog.specs.values():
        where = f"{spec.location}#{spec.gguf_file}"
        if spec.remote or where in seen:
            continue
        seen.add(where)
        pool.append(spec.id)
    return pool


def prompt_set(path: Path = PROMPT_SET) -> list[PromptItem]:
    return load_file(path)


def draw(pool: list[str], prompts: list[PromptItem], n: int, seed: int, round_no: int,
         typed: str = "") -> Draw:
    """`n` distinct models from `pool` in a random slot order (from `seed` and the round), and the
    round's prompt: `typed` when the user wrote one, else the set's prompt for this round."""
    if n < 2:
        raise ArenaError("a battle needs two or more models")
    if len(pool) < n:
        raise ArenaError(f"a battle of {n} models needs {n} different local models; this server has "
                         f"{len(pool)} ({', '.join(pool) or 'none'}): pick fewer models per battle")
    rng = random.Random(f"{seed}:{round_no}")
    models = rng.sample(pool, n)
    if typed.strip():
        return Draw(models, PromptItem(typed, category=""), seed, round_no, typed=True)
    if not prompts:
        raise ArenaError("the arena's prompt set is empty: type a prompt instead")
    return Draw(models, prompts[round_no % len(prompts)], seed, round_no)
