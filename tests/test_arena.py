"""The arena's draw (playground/arena.py): the local pool, seeded and recorded picks, the prompt order."""

from __future__ import annotations

import pytest

from playground.arena import ArenaError, arena_pool, draw, prompt_set
from playground.catalog import Catalog


def test_the_pool_is_the_local_models_one_per_weights_file() -> None:
    pool = arena_pool(Catalog.build())
    assert pool[:2] == ["smollm2-135m", "gemma3-270m"]
    assert "smollm2-135m-llamacpp" not in pool  # the same file as smollm2-135m: no battle between them
    assert not any(spec.remote for spec in Catalog.build().specs.values() if spec.id in pool)


def test_a_draw_is_seeded_random_and_walks_the_prompt_set() -> None:
    prompts = prompt_set()
    assert len(prompts) >= 20 and all(p.prompt and p.category for p in prompts)
    pool = ["a", "b", "c", "d"]
    first = draw(pool, prompts, 2, seed=7, round_no=0)
    assert first == draw(pool, prompts, 2, seed=7, round_no=0)  # recorded seed + round: the same draw
    assert first.prompt == prompts[0] and draw(pool, prompts, 2, 7, 1).prompt == prompts[1]
    assert len(set(first.models)) == 2 and set(first.models) <= set(pool)
    picks = {tuple(draw(pool, prompts, 2, seed, 0).models) for seed in range(30)}
    assert len(picks) > 4 and any(m[0] > m[1] for m in picks)  # slot order random too
    typed = draw(pool, prompts, 3, 7, 4, typed="my own question")
    assert typed.typed and typed.prompt.prompt == "my own question" and len(typed.models) == 3


def test_a_draw_that_cannot_be_made_says_why() -> None:
    with pytest.raises(ArenaError, match="needs 3 different local models; this server has 2"):
        draw(["a", "b"], prompt_set(), 3, 1, 0)
    with pytest.raises(ArenaError, match="two or more"):
        draw(["a", "b"], prompt_set(), 1, 1, 0)
    with pytest.raises(ArenaError, match="type a prompt"):
        draw(["a", "b"], [], 2, 1, 0)
