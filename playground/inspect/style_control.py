"""Style control for the leaderboard: answer length and Markdown as covariates of the Bradley-Terry fit.

Why: voters tend to prefer longer, more formatted answers whatever their content, so a model can top
a raw ranking by writing more. LMArena's remedy (its "style control", 2024) is used here: each
pairwise comparison is a row of a logistic regression whose inputs are the model indicator
difference (+1 for a, -1 for b) and the normalised differences of the two answers' style features,
    d_f = (f_a - f_b) / (f_a + f_b + 1),
z-scored over the rows. The model coefficients are then strengths "at equal style"; the style
coefficients say how much each feature alone sways a vote. A tie is a target of 0.5 (half a win each
way, as in the raw fit).

The model strengths carry the same weak prior as the raw fit (PRIOR_GAMES tied games against a
reference of strength 1), so the two tables are on one scale; the style coefficients carry a small
ridge, which keeps them finite when one feature happens to separate the votes. Pure numpy.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

STYLE_FEATURES = ("length", "headers", "lists", "bold")
STYLE_RIDGE = 1e-2  # on the z-scored style coefficients: finite when a feature separates the votes
_HEADER = re.compile(r"^\s{0,3}#{1,6}\s+\S", re.MULTILINE)
_LIST = re.compile(r"^\s*(?:[-*+]|\d{1,3}[.)])\s+\S", re.MULTILINE)
_BOLD = re.compile(r"\*\*[^*\n]+?\*\*|__[^_\n]+?__")


@dataclass(frozen=True)
class Style:
    """What a voter sees of an answer's style: its length in words and its Markdown elements."""

    length: int = 0
    headers: int = 0
    lists: int = 0
    bold: int = 0

    def values(self) -> np.ndarray:
        return np.array([self.length, self.headers, self.lists, self.bold], dtype=float)


def style_of(text: str) -> Style:
    """An answer's style features (words, not tokens: the same count whichever tokenizer wrote it)."""
    text = text or ""
    return Style(len(text.split()), len(_HEADER.findall(text)), len(_LIST.findall(text)),
                 len(_BOLD.findall(text)))


def style_difference(a: Style, b: Style) -> np.ndarray:
    """The normalised difference of two answers' features, each in (-1, 1)."""
    va, vb = a.values(), b.values()
    return (va - vb) / (va + vb + 1.0)


def standardise(diffs: np.ndarray) -> np.ndarray:
    """Each feature column z-scored (scaled only: a difference of 0 stays 0); a constant column is 0."""
    if not len(diffs):
        return diffs
    spread = diffs.std(axis=0)
    return np.where(spread > 1e-12, diffs / np.where(spread > 1e-12, spread, 1.0), 0.0)


@dataclass(frozen=True)
class StyleFit:
    log_strength: np.ndarray  # [n models], natural log, reference 0
    se: np.ndarray  # [n] standard errors of log_strength, from the observed information
    coef: np.ndarray  # [k] style coefficients (log-odds per standard deviation of each feature)
    beta: np.ndarray  # every coefficient, to start a bootstrap refit from


def fit_style(first: np.ndarray, second: np.ndarray, diffs: np.ndarray, target: np.ndarray,
              weight: np.ndarray, n: int, prior: float, iterations: int = 50,
              start: np.ndarray | None = None) -> StyleFit:
    """Newton's method for the penalised logistic regression of `target` (1 first won, 0.5 tie, 0 lost)
    on model indicators (rows: `first` index minus `second` index) and z-scored style `diffs` [R, k]."""
    k = diffs.shape[1] if diffs.ndim == 2 else 0
    X = np.zeros((len(target), n + k))
    rows = np.arange(len(target))
    X[rows, first] += 1.0
    X[rows, second] -= 1.0
    if k:
        X[:, n:] = diffs
    beta = np.zeros(n + k) if start is None else start.copy()  # a bootstrap starts from the full fit
    hessian = np.eye(n + k)
    for _ in range(iterations):
        theta = beta[:n]
        p = _sigmoid(X @ beta)
        prior_p = _sigmoid(theta)
        grad = X.T @ (weight * (target - p))
        grad[:n] += prior * (0.5 - prior_p)
        grad[n:] -= STYLE_RIDGE * beta[n:]
        hessian = (X * (weight * p * (1 - p))[:, None]).T @ X
        hessian[np.arange(n), np.arange(n)] += prior * prior_p * (1 - prior_p)
        hessian[np.arange(n, n + k), np.arange(n, n + k)] += STYLE_RIDGE
        step = np.linalg.solve(hessian, grad)
        beta += step
        if np.max(np.abs(step)) < 1e-7:
            break
    return StyleFit(beta[:n].copy(), contrast_se(hessian, n), beta[n:].copy(), beta.copy())


def contrast_se(hessian: np.ndarray, n: int) -> np.ndarray:
    """Per model, the standard error of its log-strength minus the models' mean (their common level
    rests on the prior alone), from the inverse of the penalised information."""
    cov = np.linalg.inv(hessian)[:n, :n]
    centre = np.eye(n) - 1.0 / n
    return np.sqrt(np.clip(np.einsum("ij,jk,ik->i", centre, cov, centre), 0.0, None))


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(x, -40.0, 40.0)))
