"""The leaderboard fit (Bradley-Terry by MM, bootstrap intervals), the votes CSV, and blind masking."""

from __future__ import annotations

import csv
import io
import json
import random

import numpy as np
import pytest
from sample_runs import make_run

from playground.inspect.blind import (
    HIDDEN_UNTIL_VOTE,
    NEUTRAL_FINISH,
    label,
    letter,
    mask,
    scrub,
    shuffled_order,
    valid_order,
)
from playground.inspect.leaderboard import (
    CSV_FIELDS,
    MIN_COMPARISONS,
    Vote,
    comparisons,
    fit,
    leaderboard,
    standings_json,
    style_coefficients,
    tally,
    votes_csv,
)
from playground.inspect.style_control import Style, style_difference, style_of


def win(a: str, b: str, n: int = 1) -> list[Vote]:
    return [Vote("r", [a, b], "win", 0) for _ in range(n)]


def by_model(standings: list) -> dict:
    return {s.model: s for s in standings}


def test_no_votes_no_standings() -> None:
    assert leaderboard([]) == []
    assert leaderboard(win("a", "b"), category="coding") == []  # no vote in that category


def test_a_model_that_wins_every_comparison_ranks_first() -> None:
    votes = win("best", "mid", 6) + win("best", "low", 6) + win("mid", "low", 6)
    standings = leaderboard(votes, rounds=50)
    assert [s.model for s in standings] == ["best", "mid", "low"]
    assert [s.rank for s in standings] == [1, 2, 3]
    assert all(np.isfinite(s.score) for s in standings)  # the prior keeps an unbeaten model finite
    best = standings[0]
    assert best.wins == 12 and best.losses == 0 and best.votes == 12


def test_symmetric_votes_give_equal_scores() -> None:
    votes = win("a", "b", 5) + win("b", "a", 5)
    a, b = leaderboard(votes, rounds=20)
    assert a.score == pytest.approx(b.score, abs=1e-6)
    assert a.score == pytest.approx(1000.0, abs=1e-6)
    cycle = win("a", "b", 3) + win("b", "c", 3) + win("c", "a", 3)
    scores = [s.score for s in leaderboard(cycle, rounds=0)]
    assert max(scores) - min(scores) < 1e-6


def test_ties_count_half_a_win_each_way() -> None:
    tie = [Vote("r", ["a", "b"], "tie")] * 4
    a, b = leaderboard(tie, rounds=0)
    assert a.score == pytest.approx(b.score) and a.ties == 4 and a.wins == 2 and a.losses == 2
    # two wins and two ties for a: exactly the evidence of three wins and one loss
    mixed = leaderboard(win("a", "b", 2) + tie[:2], rounds=0)
    same = leaderboard(win("a", "b", 3) + win("b", "a", 1), rounds=0)
    assert by_model(mixed)["a"].score == pytest.approx(by_model(same)["a"].score, abs=1e-4)


def test_both_bad_counts_as_a_tie_and_is_counted_apart() -> None:
    bad = leaderboard([Vote("r", ["a", "b"], "both_bad")] * 3, rounds=0)
    tie = leaderboard([Vote("r", ["a", "b"], "tie")] * 3, rounds=0)
    assert [s.score for s in bad] == pytest.approx([s.score for s in tie])
    assert all(s.both_bad == 3 for s in bad) and all(s.both_bad == 0 for s in tie)


def test_best_of_three_beats_each_other_column_and_same_model_pairs_are_skipped() -> None:
    vote = Vote("r", ["x", "y", "z"], "win", 1)
    assert comparisons([vote]) == [("y", "x", 1.0), ("y", "z", 1.0)]
    tie = Vote("r", ["x", "y", "z"], "tie")
    assert comparisons([tie]) == [("x", "y", .5), ("x", "z", .5), ("y", "z", .5)]
    assert comparisons([Vote("r", ["x", "x"], "win", 0)]) == []  # one model in both columns: no information
    assert comparisons([Vote("r", ["x", "y"], "win", 5)]) == []  # a winner that names no column


def test_fit_matches_the_bradley_terry_likelihood_maximum() -> None:
    """With no prior the MM fixed point is the maximum-likelihood estimate: p_a/p_b = wins_a/wins_b."""
    votes = win("a", "b", 6) + win("b", "a", 2)
    wins, games = tally(votes, ["a", "b"])
    log_p = fit(wins.sum(axis=0), games.sum(axis=0), prior=0.0)
    assert np.exp(log_p[0] - log_p[1]) == pytest.approx(3.0, rel=1e-5)


def test_intervals_contain_the_estimate_and_narrow_with_more_votes() -> None:
    few = win("a", "b", 3) + win("b", "a", 1)
    many = few * 25
    small, large = by_model(leaderboard(few, seed=1)), by_model(leaderboard(many, seed=1))
    for standings in (small, large):
        for s in standings.values():
            assert s.low <= s.score <= s.high
    assert (large["a"].high - large["a"].low) < (small["a"].high - small["a"].low) / 2
    assert large["a"].low > large["b"].high  # 75 to 25: settled


def test_bootstrap_is_seeded() -> None:
    votes = win("a", "b", 4) + win("b", "a", 2) + [Vote("r", ["a", "b"], "tie")]
    assert leaderboard(votes, seed=3) == leaderboard(votes, seed=3)


def test_category_filter() -> None:
    votes = [Vote("r", ["a", "b"], "win", 0, category="code")] * 3 + [Vote("r", ["a", "b"], "win", 1)] * 3
    assert leaderboard(votes, category="code", rounds=0)[0].model == "a"
    assert leaderboard(votes, category="code", rounds=0)[0].votes == 3
    assert leaderboard(votes, rounds=0)[0].score == pytest.approx(1000.0)


def test_csv_round_trips_names_with_commas_quotes_and_newlines() -> None:
    evil = 'my, "model"\nline two'
    votes = [Vote("run1", [evil, "plain"], "win", 0, voter="me", category='cat, "x"\n', created_at=0,
                  references=["/models/a,b.gguf", "plain"]),
             Vote("run2", ["plain", evil], "both_bad", created_at=86400)]
    rows = list(csv.reader(io.StringIO(votes_csv(votes), newline="")))
    assert tuple(rows[0]) == CSV_FIELDS
    first = dict(zip(CSV_FIELDS, rows[1], strict=True))
    assert json.loads(first["models"]) == [evil, "plain"]
    assert first["winner"] == evil and first["category"] == 'cat, "x"\n' and first["outcome"] == "win"
    assert json.loads(first["references"]) == ["/models/a,b.gguf", "plain"]
    assert first["time"] == "1970-01-01T00:00:00Z"
    second = dict(zip(CSV_FIELDS, rows[2], strict=True))
    assert second["winner"] == "both bad" and second["time"] == "1970-01-02T00:00:00Z"
    assert len(rows) == 3


def test_csv_fields_a_spreadsheet_would_run_as_formulas_are_made_inert() -> None:
    evil = '=HYPERLINK("http://x","y")'
    votes = [Vote("r", [evil, "b"], "win", 0, voter="@me", category="+cmd|' /C calc'!A0")]
    row = dict(zip(CSV_FIELDS, list(csv.reader(io.StringIO(votes_csv(votes), newline="")))[1], strict=True))
    assert row["winner"] == '\'=HYPERLINK("http://x","y")'
    assert row["voter"] == "'@me" and row["category"].startswith("'+cmd")
    assert json.loads(row["models"])[0] == '=HYPERLINK("http://x","y")'  # the JSON list keeps the name


# -- blind masking --------------------------------------------------------------------------


def test_letters_and_shuffles() -> None:
    assert [letter(i) for i in (0, 1, 25, 26, 27)] == ["A", "B", "Z", "AA", "AB"]
    for n in (2, 3, 5):
        order = shuffled_order(n, random.Random(n))
        assert valid_order(order, n)
    assert shuffled_order(1) == [0]
    assert not valid_order([0, 0], 2) and not valid_order([0, True], 2) and not valid_order("01", 2)


def test_mask_hides_every_name_and_keeps_the_answers() -> None:
    run = make_run()
    run.models[0].error = "smollm2-135m (Q4) failed to load from /models/smollm2-135m.gguf"
    masked = mask(run, [1, 0])
    assert [m.identity.catalog_id for m in masked.models] == ["Model A", "Model B"]
    assert [m.column for m in masked.models] == [0, 1]
    assert masked.models[0].text == run.models[1].text and masked.models[1].text == run.models[0].text
    assert masked.models[1].error == "Model B failed to load from Model B"
    blob = json.dumps(masked.to_dict())
    for name in ("smollm2", "gemma3", "/models/", "chat template"):
        assert name not in blob.replace(run.prompt, "")
    assert masked.models[0].metrics.output_tokens == 0  # counts, speed and memory hint at the model
    assert run.models[0].identity.catalog_id == "smollm2-135m"  # the record itself is untouched
    assert scrub("loading gemma3-270m…", run, [1, 0]) == f"loading {label(0)}…"


# -- honest intervals and style control ---------------------------------------------------------


def test_one_vote_needs_more_votes_instead_of_an_interval() -> None:
    standings = leaderboard(win("a", "b"))
    assert [s.settled for s in standings] == [False, False]
    assert standings[0].progress == f"needs more votes (1 of {MIN_COMPARISONS} comparisons)"
    assert standings_json(standings)[0]["ci95"] is None


def test_unanimous_votes_still_get_a_wide_interval() -> None:
    """Every vote the same way: every bootstrap resample is the same; the information keeps it honest."""
    standings = by_model(leaderboard(win("a", "b", MIN_COMPARISONS)))
    assert standings["a"].settled and standings["b"].settled
    assert standings["a"].high - standings["a"].low > 100


def test_an_interval_needs_two_opponents_when_there_are_others() -> None:
    votes = win("a", "b", 12) + win("c", "b", 1)
    standings = by_model(leaderboard(votes))
    assert standings["a"].progress == "needs more votes (1 of 2 opponents)"
    assert standings["b"].settled  # 13 comparisons against a and c


def _styled(winner: int, long_first: bool) -> Vote:
    long, short = Style(length=200, lists=6, bold=4), Style(length=20)
    return Vote("r", ["x", "y"], "win", winner, styles=(long, short) if long_first else (short, long))


def test_a_model_that_wins_only_by_being_longer_loses_its_lead_under_style_control() -> None:
    """x writes the longer answer 5 times in 6, and the longer answer wins 3 times in 4 whoever wrote it."""
    votes = ([_styled(0, True)] * 30 + [_styled(1, True)] * 10 + [_styled(1, False)] * 6
             + [_styled(0, False)] * 2)
    raw = by_model(leaderboard(votes))
    styled = by_model(leaderboard(votes, style=True))
    assert raw["x"].rank == 1 and raw["x"].score - raw["y"].score > 80
    assert abs(styled["x"].score - styled["y"].score) < 15
    assert not styled["x"].low > styled["y"].high  # no longer a settled lead
    effects = style_coefficients(votes)
    assert effects["length"] > 0.3 and effects["headers"] == 0.0


def test_a_better_model_keeps_its_lead_under_style_control() -> None:
    """Length varies at random; x wins 3 in 4 regardless: style control must not erase a real lead."""
    rng = random.Random(3)
    votes = [Vote("r", ["x", "y"], "win", 0 if rng.random() < 0.75 else 1,
                  styles=(Style(rng.randint(10, 300)), Style(rng.randint(10, 300)))) for _ in range(120)]
    styled = by_model(leaderboard(votes, style=True))
    assert styled["x"].low > styled["y"].high


def test_style_features_count_length_and_markdown() -> None:
    text = "# Title\n\nSome **bold** and __more__ text.\n\n- one\n- two\n1. three\n## Next\nend"
    assert style_of(text) == Style(length=16, headers=2, lists=3, bold=2)
    assert style_of("") == Style()
    assert style_difference(Style(10), Style(10)).tolist() == [0.0, 0.0, 0.0, 0.0]


def test_two_columns_are_not_always_swapped() -> None:
    """Blind letters: a uniform random order, the page order included (two columns always swapped
    made letter A always the second picker's model)."""
    orders = [tuple(shuffled_order(2, random.Random(seed))) for seed in range(40)]
    assert set(orders) == {(0, 1), (1, 0)}
    assert shuffled_order(3, random.Random(5)) == shuffled_order(3, random.Random(5))


def test_mask_gives_every_finished_answer_one_neutral_label_and_hides_prompt_tokens() -> None:
    run = make_run()
    run.models[0].finish_reason, run.models[1].finish_reason = "stop", "eos"
    masked = mask(run, [0, 1])
    assert {m.finish_reason for m in masked.models} == {NEUTRAL_FINISH}
    assert all(not m.prompt_pieces and not m.prompt_token_ids for m in masked.models)
    # the answer's own tokens (Probabilities) and the attention map's labels show the tokenizer too
    assert run.models[0].steps and all(not m.steps and m.attention is None for m in masked.models)
    assert all(m.attention_note == HIDDEN_UNTIL_VOTE for m in masked.models)
    assert [m.text for m in masked.models] == [m.text for m in run.models]  # the answers themselves stay
    run.models[1].finish_reason = "error"
    assert mask(run, [0, 1]).models[1].finish_reason == "error"
