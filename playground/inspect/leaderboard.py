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
the percentile interval is widened to include the estimate where resampling skews it, and to
cover +-1.96 standard errors from the fit's observed information (when every vote went one way,
every resample is the same and the bootstrap alone would claim a width of zero).

When an interval is shown at all (`settled`): a model needs MIN_COMPARISONS pairwise comparisons
and MIN_OPPONENTS distinct opponents (fewer when fewer other models were voted on). Below that the
bootstrap resamples a handful of votes, its percentiles take only a few distinct values (one vote:
a single value, an interval like "1131 - 1131"), and no interval says anything true about the
uncertainty; the table says "needs more votes (k of n)" instead. Ten is the usual rule of thumb
for a logistic model (about ten outcomes per estimated parameter, Peduzzi et al. 1996); at ten
comparisons near even odds a win rate is still only known to about +-0.3 (+-1.96 sqrt(0.25/10)),
some +-200 points, so the threshold errs on the side of showing an interval early, never late.
Two opponents: a score against one opponent only says how the two compare, not where either
stands among the rest.

Style control (`style=True`, playground/inspect/style_control.py) fits the same comparisons with
the answers' length and Markdown as covariates, as LMArena does.
"""

from __future__ import annotations

import csv
import io
import json
import math
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from playground.inspect.style_control import STYLE_FEATURES, Style, fit_style, standardise, style_difference

OUTCOMES = ("win", "tie", "both_bad")
PRIOR_GAMES = 1.0
BASE_SCORE = 1000.0
SCALE = 400.0 / math.log(10.0)  # natural log strength -> Elo-like points
BOOTSTRAP_ROUNDS = 200
MIN_COMPARISONS = 10  # pairwise comparisons a model needs before its interval is shown (see above)
MIN_OPPONENTS = 2  # distinct opponents it needs (capped at the other models in the table)
Z95 = 1.96
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
    styles: tuple[Style, ...] = ()  # each letter's answer style (style control); () when unknown

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
    comparisons: int = 0  # pairwise comparisons (ties included)
    opponents: int = 0  # distinct models it was compared with
    needed_comparisons: int = 0  # what `settled` asks for (MIN_COMPARISONS)
    needed_opponents: int = 0  # MIN_OPPONENTS, capped at the other models in the table

    @property
    def settled(self) -> bool:
        """Whether the votes support an interval (see the module docstring)."""
        return self.comparisons >= self.needed_comparisons and self.opponents >= self.needed_opponents

    @property
    def progress(self) -> str:
        """What is missing, e.g. "needs more votes (3 of 10 comparisons)"."""
        if self.comparisons < self.needed_comparisons:
            return f"needs more votes ({self.comparisons} of {self.needed_comparisons} comparisons)"
        if self.opponents < self.needed_opponents:
            return f"needs more votes ({self.opponents} of {self.needed_opponents} opponents)"
        return ""


def comparisons(votes: Iterable[Vote]) -> list[tuple[str, str, float]]:
    """Every vote as pairwise results (a, b, score of a): 1 a won, 0.5 tie, 0 a lost."""
    return [(a, b, score) for vote in votes for a, b, score, _, _ in _letter_comparisons(vote)]


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
                seed: int = 0, style: bool = False) -> list[Standing]:
    """Models ranked by score (best first), with 95% intervals (where settled) and vote counts.

    The bootstrap draws whole votes with replacement (`rounds` times, from `seed`) and refits.
    `style`: the style-controlled fit (answer length and Markdown as covariates).
    """
    if category:
        votes = [v for v in votes if v.category == category]
    votes = [v for v in votes if v.outcome in OUTCOMES]
    models = sorted({m for v in votes for m in v.models})
    if not models:
        return []
    estimator = _estimator(votes, models, style)
    log_strength, se = estimator(np.ones(len(votes)))
    estimate = to_score(log_strength)
    rng = np.random.default_rng(seed)
    samples = np.empty((rounds, len(models)))
    for r in range(rounds):
        weight = np.bincount(rng.integers(0, len(votes), len(votes)), minlength=len(votes)).astype(float)
        samples[r] = to_score(estimator(weight)[0])
    if rounds:
        low, high = np.percentile(samples, [2.5, 97.5], axis=0)
    else:
        low, high = estimate.copy(), estimate.copy()
    low = np.minimum(low, estimate - Z95 * SCALE * se)
    high = np.maximum(high, estimate + Z95 * SCALE * se)
    counts = _counts(votes, models)
    met = _opponents(votes, models)
    need_opp = min(MIN_OPPONENTS, len(models) - 1)
    standings = [Standing(m, float(estimate[i]), float(low[i]), float(high[i]), *counts[m], 0,
                          _n_comparisons(counts[m]),
                          len(met[m]), MIN_COMPARISONS, need_opp)
                 for i, m in enumerate(models)]
    standings.sort(key=lambda s: (-s.score, s.model))
    return [replace(s, rank=rank) for rank, s in enumerate(standings, 1)]


Estimator = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]


def _estimator(votes: Sequence[Vote], models: Sequence[str], style: bool) -> Estimator:
    """Vote weights -> (log-strengths, their standard errors relative to the models' mean).

    One row per comparison, with its vote's index for the bootstrap; both fits are the same penalised
    logistic regression (Newton's method, the full fit's solution as each resample's start), the raw
    one without style columns: it maximises the same likelihood as `fit`'s MM iteration, faster.
    A vote whose answers are unknown (`styles` empty) counts with no style difference."""
    index = {m: i for i, m in enumerate(models)}
    first, second, target, diffs, owner = [], [], [], [], []
    none = np.zeros(len(STYLE_FEATURES))
    for k, vote in enumerate(votes):
        styles = vote.styles if len(vote.styles) == len(vote.models) else None
        for a, b, score, ia, ib in _letter_comparisons(vote):
            first.append(index[a])
            second.append(index[b])
            target.append(score)
            diffs.append(style_difference(styles[ia], styles[ib]) if styles else none)
            owner.append(k)
    width = len(STYLE_FEATURES) if style else 0
    X = standardise(np.array(diffs).reshape(len(target), len(STYLE_FEATURES)))[:, :width]
    rows = np.array(owner, dtype=int)
    fa, fb, y = np.array(first, dtype=int), np.array(second, dtype=int), np.array(target)
    full = fit_style(fa, fb, X, y, np.ones(len(y)), len(models), PRIOR_GAMES)

    def estimate(weight: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        result = fit_style(fa, fb, X, y, weight[rows], len(models), PRIOR_GAMES, start=full.beta)
        return result.log_strength, result.se

    return estimate


def style_coefficients(votes: Sequence[Vote], category: str | None = None) -> dict[str, float]:
    """How much each style feature alone sways a vote: log-odds per standard deviation of its difference."""
    if category:
        votes = [v for v in votes if v.category == category]
    votes = [v for v in votes if v.outcome in OUTCOMES]
    models = sorted({m for v in votes for m in v.models})
    if not models:
        return {}
    rows = [(ia, ib, score, v) for v in votes for _, _, score, ia, ib in _letter_comparisons(v)]
    if not rows:
        return {}
    index = {m: i for i, m in enumerate(models)}
    diffs = np.array([style_difference(v.styles[ia], v.styles[ib]) if len(v.styles) == len(v.models)
                      else np.zeros(len(STYLE_FEATURES)) for ia, ib, _, v in rows])
    result = fit_style(np.array([index[v.models[ia]] for ia, _, _, v in rows]),
                       np.array([index[v.models[ib]] for _, ib, _, v in rows]), standardise(diffs),
                       np.array([score for _, _, score, _ in rows]), np.ones(len(rows)), len(models),
                       PRIOR_GAMES)
    return {name: float(c) for name, c in zip(STYLE_FEATURES, result.coef, strict=True)}


def _letter_comparisons(vote: Vote) -> list[tuple[str, str, float, int, int]]:
    """The vote's comparisons with the letter index of each side (to find the answers' styles)."""
    models, found = vote.models, []
    if vote.outcome == "win":
        if 0 <= vote.winner < len(models):
            best = models[vote.winner]
            found = [(best, other, 1.0, vote.winner, i) for i, other in enumerate(models)
                     if i != vote.winner and other != best]
    elif vote.outcome in ("tie", "both_bad"):
        found = [(a, models[j], 0.5, i, j) for i, a in enumerate(models) for j in range(i + 1, len(models))
                 if a != models[j]]
    return found


def _n_comparisons(count: tuple[int, float, float, int, int]) -> int:
    return round(count[1] + count[2])


def _opponents(votes: Sequence[Vote], models: Sequence[str]) -> dict[str, set[str]]:
    met: dict[str, set[str]] = {m: set() for m in models}
    for a, b, _ in comparisons(votes):
        met[a].add(b)
        met[b].add(a)
    return met


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
    return [{"rank": s.rank, "model": s.model, "score": round(s.score, 1),
             "ci95": [round(s.low, 1), round(s.high, 1)] if s.settled else None, "settled": s.settled,
             "needs": s.progress, "comparisons": s.comparisons, "opponents": s.opponents,
             "votes": s.votes, "wins": s.wins, "losses": s.losses, "ties": s.ties,
             "both_bad": s.both_bad} for s in standings]
