"""Attention arrays from the run record: decode, validate, pick a view, zoom (numpy only)."""

from __future__ import annotations

import base64

import numpy as np

from playground.record import AttentionCapture

VIEWS = ("mean over heads", "max over heads", "one head")


def weights(capture: AttentionCapture) -> np.ndarray:
    """The stored array, shape [layers, heads, tokens, tokens]; fails loudly if it does not fit."""
    raw = base64.b64decode(capture.data, validate=True)
    expected = len(capture.layers) * capture.heads * capture.tokens * capture.tokens
    array = np.frombuffer(raw, dtype=np.float16)
    if array.size != expected:
        raise ValueError(
            f"attention data holds {array.size} values, but layers={len(capture.layers)} x "
            f"heads={capture.heads} x {capture.tokens}^2 = {expected}: the record is corrupt"
        )
    return array.reshape(len(capture.layers), capture.heads, capture.tokens, capture.tokens)


def view(capture: AttentionCapture, layer: int, mode: str, head: int = 0) -> np.ndarray:
    """One [tokens, tokens] matrix: a head, or the mean / max over heads, of a captured layer."""
    if layer not in capture.layers:
        raise ValueError(f"layer {layer} was not captured (captured: {capture.layers})")
    per_head = weights(capture)[capture.layers.index(layer)].astype(np.float32)
    if mode == "mean over heads":
        return per_head.mean(axis=0)
    if mode == "max over heads":
        return per_head.max(axis=0)
    if not 0 <= head < capture.heads:
        raise ValueError(f"head {head} out of range 0..{capture.heads - 1}")
    return per_head[head]


def zoom(matrix: np.ndarray, start: int, first: int, last: int) -> tuple[np.ndarray, int]:
    """Rows and columns for absolute token positions first..last (clipped to the window)."""
    lo = max(first - start, 0)
    hi = min(last - start + 1, matrix.shape[0])
    if hi <= lo:
        lo, hi = 0, matrix.shape[0]
    return matrix[lo:hi, lo:hi], start + lo
