"""The converted cache's key (a GGUF file's sha256) is remembered across launches, never stale."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from playground.backends import converted, model_files


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_the_hash_is_remembered_and_read_back_without_hashing(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    model = tmp_path / "m.gguf"
    model.write_bytes(b"GGUF one")
    assert converted.file_sha256(model, tmp_path / "cache") == _sha(b"GGUF one")
    monkeypatch.setattr(converted, "sha256_file", lambda _p: pytest.fail("hashed again"))
    assert converted.file_sha256(model, tmp_path / "cache") == _sha(b"GGUF one")


def test_a_changed_file_is_hashed_again_even_with_its_old_size_and_mtime(tmp_path: Path) -> None:
    model = tmp_path / "m.gguf"
    model.write_bytes(b"GGUF one")
    before = model.stat()
    assert converted.file_sha256(model, tmp_path / "cache") == _sha(b"GGUF one")
    model.write_bytes(b"GGUF two")  # same size
    os.utime(model, ns=(before.st_atime_ns, before.st_mtime_ns))  # mtime put back; ctime moves on
    model_files._HASHES.clear()  # the in-process memo is keyed by mtime too: leave only the file to tell
    assert converted.file_sha256(model, tmp_path / "cache") == _sha(b"GGUF two")


def test_an_unreadable_record_only_costs_a_hash(tmp_path: Path) -> None:
    model = tmp_path / "m.gguf"
    model.write_bytes(b"GGUF one")
    (tmp_path / "cache").mkdir()
    (tmp_path / "cache" / converted.HASHES).write_text("{not json")
    assert converted.file_sha256(model, tmp_path / "cache") == _sha(b"GGUF one")
    assert converted.file_sha256(model, tmp_path / "cache") == _sha(b"GGUF one")
