"""Hosted models through their OpenAI-compatible endpoints: the adapter against a faithful fake
(tests/openai_fake.py), every error a column can meet, keys kept secret, and a live test per preset
that runs only where its key is set."""

from __future__ import annotations

import dataclasses
import json
import logging
import os

import pytest
from openai_fake import FakeOpenAI

from playground.backends.pool import ModelPool
from playground.catalog import PRESETS, Catalog, ModelSpec
from playground.engine import ColumnRequest, Engine, RunRequest
from playground.record import GenerationParams
from playground.sessions.bundle import export_bundle

pytestmark = pytest.mark.timeout(300)
SECRET = "sk-test-secret-4f9a1c77e2"
KEY_ENV = "PLAYGROUND_TEST_HOSTED_KEY"


@pytest.fixture(scope="module")
def fake():  # noqa: ANN201
    with FakeOpenAI() as server:
        yield server


@pytest.fixture
def hosted(fake: FakeOpenAI, data_dir, monkeypatch: pytest.MonkeyPatch) -> Engine:  # noqa: ANN001
    monkeypatch.setenv(KEY_ENV, SECRET)
    models = ["gpt-5-mini", "nologprobs", "unauthorized", "forbidden", "missing", "limited", "broken", "cut",
              "malformed", "slow"]
    specs = {m: ModelSpec(id=m, name=m, source="openai", location=fake.base_url, base_url=fake.base_url,
                          served_model=m, api_key_env=KEY_ENV, price_in=1.25, price_out=10.0, preset=True,
                          context_window=400_000)
             for m in models}
    return Engine(Catalog(specs), ModelPool(data_dir, device="cpu"))


def _run(engine: Engine, *models: str, **params: object):  # noqa: ANN202
    columns = [ColumnRequest(m, GenerationParams(**params)) for m in models]
    return engine.run(RunRequest("What is the capital of France?", columns, system_prompt="Be brief."))


def test_a_hosted_stream_fills_tokens_logprobs_usage_and_cost(hosted: Engine, fake: FakeOpenAI) -> None:
    (model,) = _run(hosted, "gpt-5-mini").models
    assert model.error == "" and model.finish_reason == "eos"
    assert model.text == "Paris is the capital of France."
    assert [s.text for s in model.steps][:2] == ["Paris", " is"]
    assert all(len(s.top) == 5 and s.logprob <= 0 for s in model.steps)
    m = model.metrics
    assert (m.usage_prompt_tokens, m.usage_output_tokens) == (13, 7)
    assert m.cost_usd == pytest.approx((13 * 1.25 + 7 * 10.0) / 1e6)
    assert model.identity.served_model == "gpt-5-mini-2025-08-07" and model.identity.fingerprint == "fp_fake"
    assert model.capabilities.token_ids == "approximate" and "no tokenize endpoint" in \
        model.capabilities.token_ids_note
    request = fake.requests[-1]
    assert request["logprobs"] is True and request["top_logprobs"] == 5
    assert request["max_completion_tokens"] == 256 and "temperature" not in request  # a reasoning model
    assert request["messages"][0] == {"role": "system", "content": "Be brief."}
    assert fake.headers[-1]["authorization"] == f"Bearer {SECRET}"


def test_a_server_without_logprobs_still_streams_and_says_so(hosted: Engine) -> None:
    (model,) = _run(hosted, "nologprobs").models
    assert model.error == "" and model.text == "Paris is the capital of France."
    assert not model.capabilities.logprobs
    assert "did not return logprobs" in model.capabilities.logprobs_note


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("unauthorized", f"refused the key (401); check the {KEY_ENV} environment variable"),
        ("forbidden", f"refused the key (403); check the {KEY_ENV}"),
        ("missing", "does not know the model 'missing' (404)"),
        ("limited", "rate limited by the server (429); retry after 7 s"),
        ("broken", "the server failed (500)"),
        ("cut", "closed the stream before finishing"),
        ("malformed", "the server sent a malformed chunk"),
    ],
)
def test_each_server_failure_ends_its_column_only(hosted: Engine, name: str, expected: str) -> None:
    failing, healthy = _run(hosted, name, "gpt-5-mini").models
    assert failing.finish_reason == "error"
    assert expected in failing.error, failing.error
    assert healthy.error == "" and healthy.text


def test_a_stream_cut_midway_keeps_its_partial_output(hosted: Engine) -> None:
    (model,) = _run(hosted, "cut").models
    assert model.text == "Paris is" and len(model.steps) == 2
    assert "partial output kept" in model.error


def test_the_key_never_reaches_a_record_an_export_a_log_or_a_message(hosted: Engine, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    run = _run(hosted, "unauthorized", "broken", "gpt-5-mini")
    dumped = json.dumps(run.to_dict()) + export_bundle(run)
    assert SECRET not in dumped
    assert SECRET not in caplog.text
    assert all(SECRET not in m.error for m in run.models)
    assert "***" in run.models[1].error  # the server echoed it; it was blanked out


def test_a_missing_key_names_the_variable_to_set(fake: FakeOpenAI, data_dir, monkeypatch) -> None:  # noqa: ANN001
    monkeypatch.delenv(KEY_ENV, raising=False)
    spec = ModelSpec(id="k", name="k", source="openai", location=fake.base_url, base_url=fake.base_url,
                     served_model="gpt-5-mini", api_key_env=KEY_ENV)
    engine = Engine(Catalog({"k": spec}), ModelPool(data_dir, device="cpu"))
    (model,) = _run(engine, "k").models
    assert f"set the {KEY_ENV} environment variable" in model.error


def test_stop_and_the_timeout_end_a_slow_hosted_stream(hosted: Engine) -> None:
    (model,) = _run(hosted, "slow", timeout_s=1.2).models
    assert model.finish_reason == "timeout" and 0 < len(model.steps) < 7


def test_presets_are_listed_with_the_variable_to_set(monkeypatch) -> None:  # noqa: ANN001
    ids = {p.id for p in PRESETS}
    assert ids == {"gpt-5", "gpt-5-mini", "claude-sonnet-4", "gemini-2.5-pro"}
    for preset in PRESETS:
        monkeypatch.delenv(preset.api_key_env, raising=False)
        assert preset.missing_key() == preset.api_key_env
        assert Catalog.build().specs[preset.id].to_dict()["available"] is False
        monkeypatch.setenv(preset.api_key_env, "x")
        assert Catalog.build().specs[preset.id].to_dict()["available"] is True


@pytest.mark.parametrize("preset", PRESETS, ids=[p.id for p in PRESETS])
def test_live_preset(preset: ModelSpec, data_dir) -> None:  # noqa: ANN001
    if not os.environ.get(preset.api_key_env):
        pytest.skip(f"{preset.api_key_env} is not set: live test of {preset.id} skipped")
    engine = Engine(Catalog({preset.id: preset}), ModelPool(data_dir, device="cpu"))
    (model,) = engine.run(RunRequest("Reply with the single word: ok",
                                     [ColumnRequest(preset.id, GenerationParams(max_new_tokens=64))])).models
    assert model.error == "", model.error
    assert model.text.strip()
    assert dataclasses.asdict(model.capabilities)["attention"] is False


def test_a_catalog_entry_can_leave_probabilities_out(fake: FakeOpenAI, data_dir, monkeypatch) -> None:  # noqa: ANN001
    monkeypatch.setenv(KEY_ENV, SECRET)
    spec = ModelSpec(id="fast", name="fast", source="openai", location=fake.base_url, base_url=fake.base_url,
                     served_model="gpt-5-mini", api_key_env=KEY_ENV, logprobs=False)
    engine = Engine(Catalog({"fast": spec}), ModelPool(data_dir, device="cpu"))
    (model,) = _run(engine, "fast").models
    assert model.error == "" and model.text
    assert "logprobs" not in fake.requests[-1] and "top_logprobs" not in fake.requests[-1]
    assert not model.capabilities.logprobs and "logprobs = false" in model.capabilities.logprobs_note


@pytest.mark.parametrize("server", ["vllm", "llama.cpp", "tgi"])
def test_exact_prompt_ids_from_each_servers_tokenize_endpoint(server: str, data_dir) -> None:  # noqa: ANN001
    from openai_fake import piece_ids, template_pieces

    with FakeOpenAI(server) as fake:
        spec = ModelSpec(id="m", name="m", source="openai", location=fake.base_url, base_url=fake.base_url,
                         served_model="served")
        engine = Engine(Catalog({"m": spec}), ModelPool(data_dir, device="cpu"))
        (model,) = _run(engine, "m").models
    assert model.error == "", model.error
    messages = [{"role": "system", "content": "Be brief."},
                {"role": "user", "content": "What is the capital of France?"}]
    assert model.prompt_token_ids == piece_ids(template_pieces(messages))
    assert [p.text for p in model.prompt_pieces] == template_pieces(messages)
    assert model.capabilities.token_ids == "server" and model.capabilities.token_ids_note == ""
    if server == "llama.cpp":  # llama-server's own figures
        assert model.metrics.server_decode_tok_s == 120.5 and model.metrics.server_prompt_tok_s == 900.0


def test_a_host_that_does_not_resolve_is_named(data_dir) -> None:  # noqa: ANN001
    engine = Engine(Catalog.build(), ModelPool(data_dir, device="cpu"))
    (model,) = _run(engine, "openai:m@http://no-such-host.invalid/v1").models
    assert model.finish_reason == "error"
    assert "DNS lookup failed for no-such-host.invalid" in model.error, model.error


def test_a_follow_up_sends_the_whole_conversation_with_the_column_system_prompt(
    hosted: Engine, fake: FakeOpenAI,
) -> None:
    from playground.sessions.rerun import follow_up_from

    poet = ColumnRequest("gpt-5-mini", GenerationParams(), system_prompt="Be a poet.")
    first = hosted.run(RunRequest("What is the capital of France?", [poet], system_prompt="Be brief."))
    second = hosted.run(follow_up_from(first, "And of Italy?"))
    assert second.models[0].error == "" and second.parent_id == first.id
    assert fake.requests[-1]["messages"] == [
        {"role": "system", "content": "Be a poet."},
        {"role": "user", "content": "What is the capital of France?"},
        {"role": "assistant", "content": "Paris is the capital of France."},
        {"role": "user", "content": "And of Italy?"},
    ]
