"""A faithful fake of a hosted OpenAI-compatible chat endpoint, for what cannot exist here (the internet).

Built from the documented response shapes of OpenAI's streaming Chat Completions
(`chat.completion.chunk` objects as server-sent events, `logprobs.content[]`
with `top_logprobs`, a final chunk with `finish_reason`, a usage chunk with empty
`choices` when `stream_options.include_usage` is set, `data: [DONE]`) and of its
error bodies (`{"error": {"message", "type", "param", "code"}}`, `retry-after`
on 429). The model name picks a behaviour, so one server covers every case; `echo` answers with
the key it was sent (split over several tokens, as an alternative token, in the fingerprint), as a
hostile or careless server could. `redirect_to` makes every request answer 307 to another server.
"""

from __future__ import annotations

import contextlib
import json
import re
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

    def __init__(self, server: str = "openai", host: str = "127.0.0.1", port: int = 0,
                 redirect_to: str = "") -> None:
        """server: which engine's extra endpoints to have: "openai" (none), "vllm" (`/tokenize` with
        messages), "llama.cpp" (`/apply-template` + `/tokenize` with pieces, `timings` in the stream)
        or "tgi" (`/chat_tokenize`), each in the shape its documentation gives. host/port: where to
        listen; redirect_to: a base URL every request is sent on to with a 307 (path kept)."""
        self.kind = server
        self.redirect_to = redirect_to
        self.requests: list[dict] = []
        self.headers: list[dict] = []
        self.seen: list[tuple[str, str]] = []  # (path, Authorization header) of every request, any path
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *_args: object) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = json.loads(self.rfile.read(int(self.headers["content-length"])))
                fake.seen.append((self.path, self.headers.get("authorization", "")))
                if fake.redirect_to:
                    self._redirect(fake.redirect_to.rstrip("/") + self.path.removeprefix("/v1"))
                    return
                if not self.path.startswith("/v1/"):
                    self._extra(self.path, body)
                    return
                fake.requests.append(body)
                fake.headers.append(dict(self.headers))
                key = self.headers.get("authorization", "").removeprefix("Bearer ")
                model = body.get("model", "")
                if model in ERRORS:
                    self._error(*ERRORS[model], key=key)
                    return
                with contextlib.suppress(ConnectionError):  # the client closed the stream (Stop, timeout)
                    self._stream(body, model, key)

            def _extra(self, path: str, body: dict) -> None:
                """The tokenize endpoints of vLLM, llama.cpp's llama-server and TGI."""
                reply = None
                if fake.kind == "vllm" and path == "/tokenize" and "messages" in body:
                    pieces = template_pieces(body["messages"])
                    reply = {"count": len(pieces), "max_model_len": 8192, "tokens": piece_ids(pieces),
                             "token_strs": pieces}
                elif fake.kind == "llama.cpp" and path == "/apply-template":
                    reply = {"prompt": "".join(template_pieces(body["messages"]))}
                elif fake.kind == "llama.cpp" and path == "/tokenize" and "content" in body:
                    pieces = PIECE.findall(body["content"])
                    reply = {"tokens": [{"id": i, "piece": p} for i, p in zip(piece_ids(pieces), pieces,
                                                                             strict=True)]}
                elif fake.kind == "tgi" and path == "/chat_tokenize":
                    pieces = template_pieces(body["messages"])
                    reply = {"templated_text": "".join(pieces), "tokenize_response": [
                        {"id": i, "text": p, "start": 0, "stop": 0} for i, p in zip(piece_ids(pieces), pieces,
                                                                                    strict=True)]}
                data = json.dumps(reply if reply is not None else {"detail": "Not Found"}).encode()
                self.send_response(200 if reply is not None else 404)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _redirect(self, location: str) -> None:
                self.send_response(307)
                self.send_header("location", location)
                self.send_header("content-length", "0")
                self.end_headers()

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

            def _stream(self, body: dict, model: str, key: str) -> None:
                self.send_response(200)
                self.send_header("content-type", "text/event-stream")
                self.send_header("connection", "close")
                self.end_headers()
                with_logprobs = body.get("logprobs") and model not in ("nologprobs", "chunky")
                answer = echo_words(key) if model == "echo" else WORDS
                if model == "chunky":  # several tokens a chunk, as Anthropic's and Gemini's endpoints send
                    answer = ["".join(answer[i:i + 2]) for i in range(0, len(answer), 2)]
                limit = body.get("max_completion_tokens") or body.get("max_tokens") or len(answer)
                words = answer[:limit]
                fingerprint = f"fp_{key}" if model == "echo" else "fp_fake"
                self._send(_chunk(model, {"role": "assistant", "content": "", "refusal": None}, None,
                                  {"content": [], "refusal": None} if with_logprobs else None, fingerprint))
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
                        top += [{"token": key if model == "echo" and k == 0 else f"alt{k}",
                                 "logprob": -2.0 - k, "bytes": None}
                                for k in range(body.get("top_logprobs", 0) - 1)]
                        logprobs = {"content": [{"token": word, "logprob": -0.05 * (i + 1),
                                                 "bytes": list(word.encode()), "top_logprobs": top}],
                                    "refusal": None}
                    self._send(_chunk(model, {"content": word}, None, logprobs, fingerprint))
                finish = "length" if limit < len(answer) else "stop"
                last = _chunk(model, {}, finish, None, fingerprint)
                if fake.kind == "llama.cpp":  # llama-server's own figures ride on the last chunk
                    last["timings"] = {"prompt_n": 13, "prompt_per_second": 900.0, "predicted_n": len(words),
                                       "predicted_per_second": 120.5}
                self._send(last)
                if (body.get("stream_options") or {}).get("include_usage"):
                    tokens = len(WORDS) if model == "chunky" else len(words)
                    usage = {"prompt_tokens": 13, "completion_tokens": tokens,
                             "total_tokens": 13 + tokens}
                    self._send({"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 1,
                                "model": f"{model}-2025-08-07", "system_fingerprint": fingerprint,
                                "choices": [], "usage": usage})
                self.wfile.write(b"data: [DONE]\n\n")
                self.wfile.flush()

            def _send(self, chunk: dict) -> None:
                self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
                self.wfile.flush()

        self.server = ThreadingHTTPServer((host, port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def port(self) -> int:
        return self.server.server_address[1]

    @property
    def base_url(self) -> str:
        return f"http://{self.server.server_address[0]}:{self.port}/v1"

    def __enter__(self) -> FakeOpenAI:
        self.thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


PIECE = re.compile(r"<\|[a-z_]+\|>|\s*[^\s<]+|\s+")


def template_pieces(messages: list[dict]) -> list[str]:
    """A ChatML rendering split into pieces: what these fakes call tokens."""
    text = "".join(f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in messages)
    return PIECE.findall(text + "<|im_start|>assistant\n")


def piece_ids(pieces: list[str]) -> list[int]:
    return [sum(map(ord, p)) % 50_000 for p in pieces]


def echo_words(key: str) -> list[str]:
    """An answer that quotes the key in three tokens, the way a tokenizer splits an unknown string."""
    third = max(1, len(key) // 3)
    return ["Your", " key", " is", " ", key[:third], key[third:2 * third], key[2 * third:], "."]


def _chunk(model: str, delta: dict, finish: str | None, logprobs: dict | None,
           fingerprint: str = "fp_fake") -> dict:
    return {"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 1,
            "model": f"{model}-2025-08-07", "system_fingerprint": fingerprint, "service_tier": "default",
            "choices": [{"index": 0, "delta": delta, "logprobs": logprobs, "finish_reason": finish}],
            "usage": None}
