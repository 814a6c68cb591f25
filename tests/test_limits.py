"""One set of size limits (playground/limits.py) for what a served model sends, what is saved, exported
and imported: a 30 MB chunk is cut at the limit, a run at the limits makes the whole round trip, a
run over them is refused at every step, and a conversation cannot outgrow what an import takes."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from sample_runs import make_run

from playground.backends.pool import ModelPool
from playground.catalog import Catalog, ModelSpec
from playground.engine import ColumnRequest, Engine, RequestError, RunRequest
from playground.limits import (
    MAX_COLUMNS,
    MAX_MESSAGE_CHARS,
    MAX_OUTPUT_CHARS,
    MAX_OUTPUT_STEPS,
    MAX_PROMPT_TOKENS,
    MAX_TOKEN_CHARS,
    MAX_TURNS,
    LimitError,
    cut_notice,
)
from playground.record import GenerationParams, Run, TokenAlt, TokenStep
from playground.requests import validate_request
from playground.sessions.bundle import BundleError, export_bundle, import_bundle
from playground.sessions.rerun import follow_up_from
from playground.sessions.store import SessionStore

pytestmark = pytest.mark.timeout(300)
REPO = Path(__file__).resolve().parent.parent
CHUNK_CHARS = 30 * 1024 * 1024  # the chunk: 31,457,280 characters in one delta
ALT_CHARS = 5_000


def _chunk(delta: dict, finish: str | None = None, logprobs: dict | None = None) -> bytes:
    body = {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m",
            "choices": [{"index": 0, "delta": delta, "logprobs": logprobs, "finish_reason": finish}]}
    return f"data: {json.dumps(body)}\n\n".encode()


class _Handler(BaseHTTPRequestHandler):
    """A served model that sends too much: "flood" one 30 MB chunk, "wide" alternatives of 5,000
    characters, "loud" an error body of a megabyte, "many" a prompt of 200,001 tokens from its tokenize
    endpoint (the others have none)."""

    protocol_version = "HTTP/1.1"

    def log_message(self, *_args: object) -> None:
        pass

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        body = json.loads(self.rfile.read(int(self.headers["content-length"])))
        if self.path == "/tokenize" and body.get("model") == "many":  # vLLM's endpoint, far too many ids
            n = MAX_PROMPT_TOKENS + 1
            reply = {"count": n, "max_model_len": 8192, "tokens": [7] * n, "token_strs": ["a"] * n}
            self._reply(200, json.dumps(reply).encode())
            return
        if not self.path.startswith("/v1/"):
            self._reply(404, b'{"detail": "Not Found"}')
            return
        model = body.get("model")
        if model == "loud":
            message = "overloaded " + "x" * 1_000_000
            self._reply(500, json.dumps({"error": {"message": message, "type": "server_error"}}).encode())
            return
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.send_header("connection", "close")
        self.end_headers()
        with contextlib.suppress(ConnectionError):
            if model == "flood":
                self.wfile.write(_chunk({"role": "assistant", "content": "a" * CHUNK_CHARS}))
            else:
                top = [{"token": f"{k}" * ALT_CHARS, "logprob": -1.0 - k, "bytes": None} for k in range(3)]
                entry = {"token": "ok", "logprob": -0.1, "bytes": None, "top_logprobs": top}
                self.wfile.write(_chunk({"content": "ok"}, None, {"content": [entry]}))
            self.wfile.write(_chunk({}, "stop"))
            self.wfile.write(b"data: [DONE]\n\n")
            self.wfile.flush()

    def _reply(self, status: int, data: bytes) -> None:
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture(scope="module")
def served() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    finally:
        server.shutdown()
        server.server_close()


def _run_served(url: str, model: str, data_dir: Path) -> Run:
    spec = ModelSpec(id=model, name=model, source="openai", location=url, base_url=url, served_model=model,
                     context_window=8192)
    engine = Engine(Catalog({model: spec}), ModelPool(data_dir, device="cpu"))
    column = ColumnRequest(model, GenerationParams(max_new_tokens=8))
    return engine.run(RunRequest("Say something.", [column]))


def _disk(path: Path) -> int:
    return sum(p.stat().st_size for p in path.parent.glob(path.name + "*"))


def test_one_30mb_chunk_is_cut_at_the_limit_and_the_run_makes_the_round_trip(
    served: str, data_dir: Path, tmp_path: Path,
) -> None:
    (model,) = _run_served(served, "flood", data_dir).models
    assert len(model.text) == MAX_OUTPUT_CHARS
    assert sum(len(s.text) for s in model.steps) == MAX_OUTPUT_CHARS
    assert model.finish_reason == "length"
    assert model.error == cut_notice()
    assert f"output cut at {MAX_OUTPUT_CHARS:,} characters (limit)" in model.error
    run = Run(prompt="Say something.", models=[model])
    db = tmp_path / "runs.db"
    store = SessionStore(db)
    before = _disk(db)
    store.save(run)
    assert _disk(db) - before < 8 * MAX_OUTPUT_CHARS  # text, steps and search index: not 96 MB
    imported = import_bundle(export_bundle(store.get(run.id)))
    assert imported.models[0].text == model.text and imported.models[0].error == model.error


def test_alternatives_a_server_sends_are_cut_to_a_token_s_length(served: str, data_dir: Path) -> None:
    (model,) = _run_served(served, "wide", data_dir).models
    assert model.error == "" and model.text == "ok"
    (step,) = model.steps
    assert len(step.top) == 3
    assert all(len(alt.text) == MAX_TOKEN_CHARS and alt.text.endswith("…") for alt in step.top)


def test_a_megabyte_error_body_is_kept_short(served: str, data_dir: Path) -> None:
    (model,) = _run_served(served, "loud", data_dir).models
    assert model.finish_reason == "error" and "overloaded" in model.error
    assert len(model.error) <= MAX_MESSAGE_CHARS


def test_a_prompt_of_more_tokens_than_a_run_keeps_ends_its_column(
    served: str, data_dir: Path, tmp_path: Path,
) -> None:
    run = _run_served(served, "many", data_dir)
    (model,) = run.models
    assert model.finish_reason == "error" and model.prompt_token_ids == [] and model.prompt_pieces == []
    assert f"the prompt is {MAX_PROMPT_TOKENS + 1:,} tokens; a run keeps at most {MAX_PROMPT_TOKENS:,}" \
        in model.error
    store = SessionStore(tmp_path / "runs.db")
    store.save(run)
    assert import_bundle(export_bundle(store.get(run.id))).models[0].error == model.error


def _at_the_limit(extra: int = 0) -> Run:
    """A column with the most steps and characters a run may hold (plus `extra` characters)."""
    run = make_run()
    piece = MAX_OUTPUT_CHARS // MAX_OUTPUT_STEPS
    steps = [TokenStep(7, "x" * piece, -0.5, [TokenAlt(7, "x" * MAX_TOKEN_CHARS, -0.5)])
             for _ in range(MAX_OUTPUT_STEPS)]
    steps[-1].text += "y" * (MAX_OUTPUT_CHARS - piece * MAX_OUTPUT_STEPS + extra)
    run.models[0] = replace(run.models[0], steps=steps, text="".join(s.text for s in steps))
    return run


def test_a_run_at_the_limits_saves_exports_and_imports(tmp_path: Path) -> None:
    run = _at_the_limit()
    store = SessionStore(tmp_path / "runs.db")
    store.save(run)
    assert import_bundle(export_bundle(store.get(run.id))) == run


def test_a_run_over_the_limits_is_refused_by_save_export_and_import(tmp_path: Path) -> None:
    run = _at_the_limit(extra=1)
    with pytest.raises(LimitError, match=rf"models\[0\]\.text is {MAX_OUTPUT_CHARS + 1:,} characters"):
        SessionStore(tmp_path / "runs.db").save(run)
    with pytest.raises(BundleError, match="this run cannot be exported: .*at most 200,000"):
        export_bundle(run)
    doc = json.loads(export_bundle(_at_the_limit()))
    doc["run"]["models"][0]["text"] += "z"
    with pytest.raises(BundleError, match=rf"models\[0\]\.text is {MAX_OUTPUT_CHARS + 1:,} characters"):
        import_bundle(json.dumps(doc))


def _conversation(turns: int) -> Run:
    """A saved conversation of `turns` earlier turns plus its latest."""
    run = make_run()
    run.history = [replace(make_run(prompt=f"question {t}").next_turn(), created_at=1.0e9 + t)
                   for t in range(turns)]
    return run


def test_the_longest_conversation_round_trips_and_a_follow_up_of_it_is_refused(tmp_path: Path) -> None:
    run = _conversation(MAX_TURNS)
    store = SessionStore(tmp_path / "runs.db")
    store.save(run)
    assert import_bundle(export_bundle(store.get(run.id))) == run
    with pytest.raises(RequestError, match=f"already has {MAX_TURNS + 1} turns.*start a new run"):
        validate_request(follow_up_from(run, "one more"))
    validate_request(follow_up_from(_conversation(MAX_TURNS - 1), "the last one allowed"))


def test_compare_continue_refuses_a_conversation_past_the_turn_limit(data_dir: Path, tmp_path: Path) -> None:
    db = tmp_path / "runs.db"
    run = _conversation(MAX_TURNS)
    SessionStore(db).save(run)
    env = {**os.environ, "PYTHONPATH": str(REPO), "PLAYGROUND_DATA_DIR": str(data_dir),
           "PLAYGROUND_DB": str(db), "PLAYGROUND_DEVICE": "cpu", "GRADIO_ANALYTICS_ENABLED": "False"}
    for name in ("PLAYGROUND_CATALOG", "PLAYGROUND_MODELS"):
        env.pop(name, None)
    result = subprocess.run([sys.executable, "-m", "playground", "compare", "--continue", run.id, "again"],
                            cwd=REPO, env=env, capture_output=True, text=True, timeout=240, check=False)
    assert result.returncode == 2, result.stderr
    assert f"a conversation keeps at most {MAX_TURNS + 1}" in result.stderr
    assert "Traceback" not in result.stderr
    assert SessionStore(db).count() == 1  # nothing was run or saved


def test_a_run_has_at_most_max_columns() -> None:
    columns = [ColumnRequest("smollm2-135m") for _ in range(MAX_COLUMNS + 1)]
    message = f"{MAX_COLUMNS + 1} model columns; a run has at most {MAX_COLUMNS}"
    with pytest.raises(RequestError, match=message):
        validate_request(RunRequest("hi", columns))
    validate_request(RunRequest("hi", columns[:MAX_COLUMNS]))
