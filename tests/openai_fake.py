"""A faithful fake of a hosted OpenAI-compatible chat endpoint, for what cannot exist here (the internet).

Built from the documented response shapes of OpenAI's streaming Chat Completions
(`chat.completion.chunk` objects as server-sent events, `logprobs.content[]`
with `top_logprobs`, a final chunk with `finish_reason`, a usage chunk with empty
`choices` when `stream_options.include_usage` is set, `data: [DONE]`) and of its
error bodies (`{"error": {"message", "type", "param", "code"}}`, `retry-after`
on 429). The model name picks a behaviour, so one server covers every case.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

WORDS = ["Paris", " is", " the", " capital", " of", " France", "."]
ERRORS = {
    "unauthorized": (401, "invalid_request_error", "invalid_api_key",
                     "Incorrect API key provided: {key}. You can find your API key at https://example.invalid."),
    "forbidden": (403, "invalid_request_error", "unsupported_country_region_territory",
                  "Country not supported."),
    "missing": (404, "invalid_request_error", "model_not_found", "The model `missing` does not exist."),
    "limited": (429, "requests", "rate_limit_exceeded", "Rate limit reached for requests."),
    "broken": (500, "server_error", None, "The server had an error processing your request (key {key})."),
}


class FakeOpenAI:
    """Serve on a free loopback port in a thread; `requests` keeps every request body received."""

    def __init__(self) -> None:
        self.requests: list[dict] = []
        self.headers: list[dict] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *_args: object) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = json.loads(self.rfile.read(int(self.headers["content-length"])))
                fake.requests.append(body)
                fake.headers.append(dict(self.headers))
                key = self.headers.get("authorization", "").removeprefix("Bearer ")
                model = body.get("model", "")
                if model in ERRORS:
                    self._error(*ERRORS[model], key=key)
                    return
                with contextlib.suppress(ConnectionError):  # the client closed the stream (Stop, timeout)
                    self._stream(body, model)

            def _error(self, status: int, kind: str, code: str | None, message: str, key: str) -> None:
                data = json.dumps({"error": {"message": message.format(key=key), "type": kind, "param": None,
                                             "code": code}}).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                if status == 429:
                    self.send_header("retry-after", "7")
                self.end_headers()
                self.wfile.write(data)

            def _stream(self, body: dict, model: str) -> None:
                self.send_response(200)
                self.send_header("content-type", "text/event-stream")
                self.send_header("connection", "close")
                self.end_headers()
                with_logprobs = body.get("logprobs") and model != "nologprobs"
                limit = body.get("max_completion_tokens") or body.get("max_tokens") or len(WORDS)
                words = WORDS[:limit]
                self._send(_chunk(model, {"role": "assistant", "content": "", "refusal": None}, None,
                                  {"content": [], "refusal": None} if with_logprobs else None))
                for i, word in enumerate(words):
                    if model == "cut" and i == 2:
                        self.wfile.flush()
                        self.connection.shutdown(2)  # the server goes away mid-stream
                        return
                    if model == "malformed" and i == 2:
                        self.wfile.write(b"data: {\"id\": \"chatcmpl-fake\", \"choices\": [}\n\n")
                        self.wfile.flush()
                    if model == "slow":
                        time.sleep(0.5)
                    logprobs = None
                    if with_logprobs:
                        top = [{"token": word, "logprob": -0.05 * (i + 1), "bytes": list(word.encode())}]
                        top += [{"token": f"alt{k}", "logprob": -2.0 - k, "bytes": None}
                                for k in range(body.get("top_logprobs", 0) - 1)]
                        logprobs = {"content": [{"token": word, "logprob": -0.05 * (i + 1),
                                                 "bytes": list(word.encode()), "top_logprobs": top}],
                                    "refusal": None}
                    self._send(_chunk(model, {"content": word}, None, logprobs))
                finish = "length" if limit < len(WORDS) else "stop"
                self._send(_chunk(model, {}, finish, None))
                if (body.get("stream_options") or {}).get("include_usage"):
                    usage = {"prompt_tokens": 13, "completion_tokens": len(words),
                             "total_tokens": 13 + len(words)}
                    self._send({"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 1,
                                "model": f"{model}-2025-08-07", "system_fingerprint": "fp_fake",
                                "choices": [], "usage": usage})
                self.wfile.write(b"data: [DONE]\n\n")
                self.wfile.flush()

            def _send(self, chunk: dict) -> None:
                self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
                self.wfile.flush()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def __enter__(self) -> FakeOpenAI:
        self.thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def _chunk(model: str, delta: dict, finish: str | None, logprobs: dict | None) -> dict:
    return {"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 1,
            "model": f"{model}-2025-08-07", "system_fingerprint": "fp_fake", "service_tier": "default",
            "choices": [{"index": 0, "delta": delta, "logprobs": logprobs, "finish_reason": finish}],
            "usage": None}
