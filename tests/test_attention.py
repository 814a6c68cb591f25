"""Attention capture and token probabilities on the real bundled models (CPU)."""

from __future__ import annotations

import base64
import json
import math
import re

import numpy as np
import pytest
import torch

from playground.backends.attention import capture_attention, default_layers, plan_capture
from playground.backends.pool import ModelPool
from playground.catalog import GEMMA3, SMOLLM2
from playground.engine import AttentionLimits, ColumnRequest, Engine, RunRequest
from playground.inspect import attention as A
from playground.inspect.probs import summarize
from playground.record import AttentionCapture, GenerationParams, Run
from playground.ui import prob_view

pytestmark = pytest.mark.timeout(600)


def _run(engine: Engine, model: str, prompt: str, tokens: int = 8, **kwargs) -> Run:
    request = RunRequest(prompt, [ColumnRequest(model, GenerationParams(max_new_tokens=tokens))], **kwargs)
    return engine.run(request)


def _own_attentions(model: torch.nn.Module, ids: list[int]) -> list[np.ndarray]:
    """The model's own output_attentions on an eager forward, per layer [heads, T, T]."""
    original = model.config._attn_implementation
    model.set_attn_implementation("eager")
    try:
        with torch.inference_mode():
            out = model(input_ids=torch.tensor([ids]), output_attentions=True)
    finally:
        model.set_attn_implementation(original)
    return [a[0].float().numpy() for a in out.attentions]


@pytest.mark.parametrize("model_id", ["smollm2-135m", "gemma3-270m"])
def test_captured_attention_is_a_causal_distribution(engine: Engine, model_id: str) -> None:
    run = _run(engine, model_id, "What is the capital of France?")
    m = run.models[0]
    cap = m.attention
    assert cap is not None, m.attention_note
    seq = len(m.prompt_token_ids) + len(m.steps)
    array = A.weights(cap).astype(np.float32)
    assert array.shape == (len(cap.layers), cap.heads, seq, seq) and cap.start == 0
    assert np.allclose(array.sum(-1), 1.0, atol=2e-3)
    assert np.triu(array, k=1).max() == 0.0
    assert len(cap.sink_first) == cap.num_layers and all(0 <= v <= 1 for v in cap.sink_first)


@pytest.mark.parametrize("spec", [SMOLLM2, GEMMA3], ids=["smollm2", "gemma3"])
def test_capture_equals_the_models_own_output_attentions(pool: ModelPool, spec) -> None:  # noqa: ANN001
    backend = pool.get(spec)
    ids = backend.encode_prompt("Short input for attention.", "").token_ids
    every_layer = list(range(backend.model.config.num_hidden_layers))
    cap = capture_attention(backend.model, ids, [0], layers=every_layer)
    own = _own_attentions(backend.model, ids)
    mine = A.weights(cap).astype(np.float32)
    for index, layer in enumerate(cap.layers):
        np.testing.assert_allclose(mine[index], own[layer], atol=1e-3)
    assert backend.model.config._attn_implementation != "eager"  # switched back for decoding


def test_token_cap_windows_and_rows_stay_exact(pool: ModelPool) -> None:
    backend = pool.get(SMOLLM2)
    ids = backend.encode_prompt("word " * 150, "").token_ids
    cap = capture_attention(backend.model, ids, [0], token_cap=64, byte_budget=1 << 30)
    assert cap.tokens == 64 and cap.start == len(ids) - 64
    assert "last 64 of" in cap.notice and "token cap 64" in cap.notice
    own = _own_attentions(backend.model, ids)
    window = A.weights(cap).astype(np.float32)
    for index, layer in enumerate(cap.layers):  # the window is a block of the full matrix
        np.testing.assert_allclose(window[index], own[layer][:, cap.start :, cap.start :], atol=1e-3)


def test_byte_budget_is_honoured_before_capture(engine: Engine) -> None:
    small = Engine(engine.catalog, engine.pool, AttentionLimits(token_cap=10_000, byte_budget=200_000))
    run = _run(small, "smollm2-135m", "Tell me about lighthouses. " * 20, tokens=4)
    cap = run.models[0].attention
    assert len(base64.b64decode(cap.data)) <= 200_000
    assert cap.tokens < len(run.models[0].prompt_token_ids) and "byte budget" in cap.notice


def test_plan_estimates_before_spending() -> None:
    plan = plan_capture(seq_len=5000, num_layers=30, heads=9, token_cap=256, byte_budget=8 << 20)
    assert plan.layers == default_layers(30) == [0, 7, 14, 22, 29]
    assert plan.estimated_bytes <= 8 << 20 and plan.start == 5000 - plan.tokens
    assert plan_capture(seq_len=20, num_layers=4, heads=2).notice == ""


def test_no_attention_when_off_or_unfinished(engine: Engine) -> None:
    off = _run(engine, "smollm2-135m", "Hi", capture_attention=False).models[0]
    assert off.attention is None and "off" in off.attention_note
    failed = _run(engine, "smollm2-135m", "x" * 60_000).models[0]
    assert failed.attention is None and "did not finish" in failed.attention_note


def test_attention_survives_the_record(engine: Engine) -> None:
    run = _run(engine, "gemma3-270m", "The sky is", tokens=4)
    back = Run.from_dict(json.loads(run.to_json()))
    assert back == run
    np.testing.assert_array_equal(A.weights(back.models[0].attention), A.weights(run.models[0].attention))


def test_views_and_zoom() -> None:
    data = np.zeros((1, 2, 3, 3), dtype=np.float16)
    data[0, 0] = np.tril(np.ones((3, 3))) / np.arange(1, 4)[:, None]
    data[0, 1] = np.eye(3)
    cap = AttentionCapture([5], 2, 10, 3, base64.b64encode(data.tobytes()).decode())
    assert np.allclose(A.view(cap, 5, "one head", 1), np.eye(3))
    assert np.allclose(A.view(cap, 5, "max over heads"), np.maximum(data[0, 0], data[0, 1]))
    expected_mean = (data[0, 0].astype(np.float32) + data[0, 1].astype(np.float32)) / 2
    assert np.allclose(A.view(cap, 5, "mean over heads"), expected_mean)
    sub, origin = A.zoom(A.view(cap, 5, "one head", 1), cap.start, 11, 12)
    assert origin == 11 and sub.shape == (2, 2)
    with pytest.raises(ValueError, match="not captured"):
        A.view(cap, 4, "mean over heads")
    broken = AttentionCapture([5], 2, 10, 4, cap.data)
    with pytest.raises(ValueError, match="corrupt"):
        A.weights(broken)


def test_probability_shading_matches_the_stored_logprobs(engine: Engine) -> None:
    run = _run(engine, "smollm2-135m", "Name three fruits.", tokens=12)
    model = run.models[0]
    page = prob_view.probs_html(run.models)
    shown = [float(p) for p in re.findall(r'data-p="([0-9.]+)"', page)]
    assert shown == pytest.approx([math.exp(s.logprob) for s in model.steps], abs=1e-6)
    summary = summarize(model.steps)
    mean = sum(s.logprob for s in model.steps) / len(model.steps)
    assert summary.perplexity == pytest.approx(math.exp(-mean))
    assert f"perplexity {summary.perplexity:.2f}" in page
    assert [s.logprob for _, s in summary.lowest] == sorted(s.logprob for s in model.steps)[:5]


def test_probabilities_panel_escapes_model_text() -> None:
    from playground.record import ModelIdentity, ModelRun, TokenAlt, TokenStep

    step = TokenStep(1, "<img src=x onerror=alert(1)>", -0.5, [TokenAlt(2, "<script>", -1.0)])
    model = ModelRun(0, ModelIdentity("m", "m", "gguf", "x"), GenerationParams(), [1], [step])
    page = prob_view.probs_html([model])
    assert "<img" not in page and "<script>" not in page
