"""Rank models from blind votes: a Bradley-Terry fit, bootstrap intervals, CSV of the votes.

Pure: votes in, standings out (numpy, no gradio, no torch).

How a vote becomes comparisons: a vote names the models of one blind run (in letter order A,
B, ...) and an outcome. "win" (A is better, or for three or more columns, A is the best) counts as
A beating each other column; "tie" and "both_bad" count as a tie between every pair. A tie is half
a win each way. "Both bad" is counted as a tie (as Chatbot Arena does): it says the two were
equally poor, which is information about their relative strength; its votes are shown apart. A
pair of columns running the same model carries no information and is skipped.

The fit is the standard minorization-maximization (MM) iteration of Hunter (2004),
    p_i <- W_i / sum_j N_ij / (p_i + p_j),
with a weak prior that keeps it finite when a model won (or lost) every comparison: every model
is treated as having tied PRIOR_GAMES games against a fixed reference of strength 1. Scores are
shown on the Elo-like scale 1000 + 400 log10(p): 400 points apart means 10:1 odds of winning.
The 95% intervals come from refitting on votes drawn with replacement (a seeded bootstrap);
the percentile interval is widened to include the estimate where resampling skews it.
"""

from __future__ import annotations

import csv
import io
import json
import math
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

OUTCOMES = ("win", "tie", "both_bad")
PRIOR_GAMES = 1.0
BASE_SCORE = 1000.0
SCALE = 400.0 / math.log(10.0)  # natural log strength -> Elo-like points
BOOTSTRAP_ROUNDS = 200
CSV_FIELDS = ("time", "run_id", "voter", "category", "outcome", "winner", "models", "references")


@dataclass(frozen=True)
class Vote:
    """One stored vote: the models of a blind run in letter order and what the voter chose."""

    run_id: str
    models: list[str]  # catalog ids, letter order (A, B, ...)
    outcome: str  # win | tie | both_bad
    winner: int = -1  # letter index of the best column, for "win"; -1 otherwise
    voter: str = ""
    category: str = ""
    created_at: float = 0.0
    references: list[str] = field(default_factory=list)  # what the user picked, letter order

    @property
    def winner_model(self) -> str:
        """The winning model, or the outcome ('tie', 'both bad')."""
        if self.outcome == "win" and 0 <= self.winner < len(self.models):
            return self.models[self.winner]
        return self.outcome.replace("_", " ")


@dataclass(frozen=True)
class Standing:
    model: str
    score: float  # Elo-like: 1000 + 400 log10(strength)
    low: float  # 95% bootstrap interval
    high: float
    votes: int  # votes this model took part in
    wins: float  # pairwise: ties count half
    losses: float
    ties: int  # pairwise ties, "both bad" included
    both_bad: int  # votes that said "both bad" (or "all bad")
    rank: int = 0


def comparisons(votes: Iterable[Vote]) -> list[tuple[str, str, float]]:
    """Every vote as pairwise results (a, b, score of a): 1 a won, 0.5 tie, 0 a lost."""
    pairs: list[tuple[str, str, float]] = []
    for vote in votes:
        models = vote.models
        if vote.outcome == "win":
            if not 0 <= vote.winner < len(models):
                continue
            best = models[vote.winner]
            pairs += [(best, other, 1.0) for i, other in enumerate(models)
                      if i != vote.winner and other != best]
        elif vote.outcome in ("tie", "both_bad"):
            pairs += [(a, b, 0.5) for i, a in enumerate(models) for b in models[i + 1:] if a != b]
    return pairs


def tally(votes: Sequence[Vote], models: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Per vote: wins of each model (ties half) [V, n] and games between each pair [V, n, n]."""
    index = {m: i for i, m in enumerate(models)}
    wins = np.zeros((len(votes), len(models)))
    games = np.zeros((len(votes), len(models), len(models)))
    for k, vote in enumerate(votes):
        for a, b, score in comparisons([vote]):
            i, j = index[a], index[b]
            wins[k, i] += score
            wins[k, j] += 1.0 - score
            games[k, i, j] += 1.0
            games[k, j, i] += 1.0
    return wins, games


def fit(wins: np.ndarray, games: np.ndarray, prior: float = PRIOR_GAMES, tol: float = 1e-7,
        max_iter: int = 20_000) -> np.ndarray:
    """Bradley-Terry log-strengths from total wins [n] and games [n, n], by the MM iteration."""
    wins = wins + prior / 2  # the prior: `prior` tied games against a reference of strength 1
    p = np.ones(len(wins))
    for _ in range(max_iter):
        new = wins / ((games / (p[:, None] + p[None, :])).sum(axis=1) + prior / (p + 1.0))
        done = np.max(np.abs(np.log(new) - np.log(p))) < tol
        p = new
        if done:
            break
    return np.log(p)


def to_score(log_strength: np.ndarray) -> np.ndarray:
    return BASE_SCORE + SCALE * log_strength


def leaderboard(votes: Sequence[Vote], category: str | None = None, rounds: int = BOOTSTRAP_ROUNDS,
                seed: int = 0) -> list[Standing]:
    """Models ranked by score (best first), with 95% bootstrap intervals and vote counts.

    The bootstrap draws whole votes with replacement (`rounds` times, from `seed`) and refits.
    """
    if category:
        votes = [v for v in votes if v.category == category]
    votes = [v for v in votes if v.outcome in OUTCOMES]
    models = sorted({m for v in votes for m in v.models})
    if not models:
        return []
    wins, games = tally(votes, models)
    estimate = to_score(fit(wins.sum(axis=0), games.sum(axis=0)))
    rng = np.random.default_rng(seed)
    samples = np.empty((rounds, len(models)))
    for r in range(rounds):
        weight = np.bincount(rng.integers(0, len(votes), len(votes)), minlength=len(votes)).astype(float)
        samples[r] = to_score(fit(weight @ wins, np.tensordot(weight, games, axes=1)))
    if rounds:
        low, high = np.percentile(samples, [2.5, 97.5], axis=0)
    else:
        low, high = estimate.copy(), estimate.copy()
    low, high = np.minimum(low, estimate), np.maximum(high, estimate)
    counts = _counts(votes, models)
    standings = [Standing(m, float(estimate[i]), float(low[i]), float(high[i]), *counts[m])
                 for i, m in enumerate(models)]
    standings.sort(key=lambda s: (-s.score, s.model))
    return [_ranked(s, rank) for rank, s in enumerate(standings, 1)]


def _ranked(s: Standing, rank: int) -> Standing:
    return Standing(s.model, s.score, s.low, s.high, s.votes, s.wins, s.losses, s.ties, s.both_bad, rank)


def _counts(votes: Sequence[Vote], models: Sequence[str]) -> dict[str, tuple[int, float, float, int, int]]:
    """Per model: votes taken part in, pairwise wins and losses (ties half), pairwise ties, both-bad votes."""
    out = {m: [0, 0.0, 0.0, 0, 0] for m in models}
    for vote in votes:
        for m in set(vote.models):
            out[m][0] += 1
            out[m][4] += vote.outcome == "both_bad"
        for a, b, score in comparisons([vote]):
            if score == 0.5:
                out[a][3] += 1
                out[b][3] += 1
            out[a][1] += score
            out[b][1] += 1 - score
            out[a][2] += 1 - score
            out[b][2] += score
    return {m: (c[0], c[1], c[2], c[3], c[4]) for m, c in out.items()}


def votes_csv(votes: Iterable[Vote]) -> str:
    """The votes as CSV (csv module quoting: commas, quotes and newlines in a field survive).

    `models` and `references` are JSON lists in letter order (A first); `winner` is the winning
    model, or "tie" / "both bad".
    """
    out = io.StringIO()
    writer = csv.writer(out, quoting=csv.QUOTE_MINIMAL, lineterminator="\r\n")
    writer.writerow(CSV_FIELDS)
    for v in votes:
        when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(v.created_at))
        writer.writerow([when, v.run_id, _inert(v.voter), _inert(v.category), v.outcome,
                         _inert(v.winner_model), json.dumps(v.models, ensure_ascii=False),
                         json.dumps(v.references, ensure_ascii=False)])
    return out.getvalue()


def _inert(text: str) -> str:
    """A typed field a spreadsheet would run as a formula (=, +, -, @, tab, CR first) gets a leading
    apostrophe, OWASP's advice for CSV injection; the JSON list columns start with '[' already."""
    return f"'{text}" if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def standings_json(standings: Sequence[Standing]) -> list[dict]:
    return [{"rank": s.rank, "model": s.model, "score": round(s.score, 1), "ci95": [round(s.low, 1),
             round(s.high, 1)], "votes": s.votes, "wins": s.wins, "losses": s.losses, "ties": s.ties,
             "both_bad": s.both_bad} for s in standings]
