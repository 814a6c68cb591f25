"""What a served model's failures mean, in words a user can act on (never a key).

Kept apart from remote.py, which streams: these turn the `openai` SDK's exceptions and a server's
refusals into one sentence each.
"""

from __future__ import annotations

import urllib.parse
from typing import Any

import openai

from playground.backends.keys import KeyBlanker
from playground.backends.pinned import pinned_refusal
from playground.catalog import ModelSpec


def describe_error(exc: BaseException, spec: ModelSpec) -> str:
    """A user-facing sentence for an SDK error: what happened and what to do; never a key."""
    return KeyBlanker.for_spec(spec).text(_describe(exc, spec))


def _describe(exc: BaseException, spec: ModelSpec) -> str:
    where = f"{spec.id} ({host(spec.base_url)})"
    if isinstance(exc, openai.APITimeoutError):
        return f"{where}: the server did not answer in time (connect, first byte or between chunks)"
    if isinstance(exc, openai.APIConnectionError) and pinned_refusal(exc):
        return f"{where}: {pinned_refusal(exc)}"
    if isinstance(exc, openai.APIConnectionError):
        cause = exc.__cause__ or exc
        text = str(cause)
        if "Name or service not known" in text or "nodename nor servname" in text or "getaddrinfo" in text:
            return f"{where}: DNS lookup failed for {host(spec.base_url)}"
        if "refused" in text.lower():
            return f"{where}: connection refused: is the server running at {spec.base_url}?"
        return f"{where}: could not connect ({short(cause)})"
    if isinstance(exc, openai.AuthenticationError | openai.PermissionDeniedError):
        status = getattr(exc, "status_code", "")
        if spec.api_key_env:
            return (f"{where}: the server refused the key ({status}); check the {spec.api_key_env} "
                    "environment variable")
        return f"{where}: the server asks for a key ({status}); set api_key_env for this model in the catalog"
    if isinstance(exc, openai.NotFoundError):
        return f"{where}: the server does not know the model {spec.served_model!r} (404)"
    if isinstance(exc, openai.RateLimitError):
        retry = exc.response.headers.get("retry-after", "") if exc.response is not None else ""
        after = f"; retry after {retry} s" if retry else ""
        return f"{where}: rate limited by the server (429){after}"
    if isinstance(exc, openai.APIStatusError) and 300 <= exc.status_code < 400:
        location = exc.response.headers.get("location", "") if exc.response is not None else ""
        return (f"{where}: the server answered {exc.status_code}, a redirect to "
                f"{short(location or '?', 200)}; redirects of served models are not followed: "
                "put the final address in the model's URL")
    if isinstance(exc, openai.APIStatusError):
        return f"{where}: the server failed ({exc.status_code}): {short(server_message(exc))}"
    return f"{where}: {short(exc)}"


def droppable(request: dict[str, Any], message: str) -> list[str]:
    """Optional fields the server's refusal names; removes them from the request."""
    text = message.lower()
    dropped = []
    if "logprobs" in text and "logprobs" in request:
        request.pop("logprobs"), request.pop("top_logprobs", None)
        dropped.append("logprobs")
    extra = request.get("extra_body") or {}
    for name in list(extra):
        if name in text:
            extra.pop(name)
            dropped.append(name.replace("_", " "))
    if "extra_body" in request and not extra:
        request.pop("extra_body")
    if "stream_options" in text and "stream_options" in request:
        request.pop("stream_options")
        dropped.append("usage")
    return dropped


def server_message(exc: openai.APIStatusError) -> str:
    """The server's own explanation: OpenAI's {"error": {"message"}}, FastAPI's {"detail"}, or the text."""
    body = exc.body if isinstance(exc.body, dict) else {}
    error = body.get("error", body.get("detail", body)) if isinstance(body, dict) else {}
    if isinstance(error, dict):
        error = error.get("message", "")
    return str(error or "") or exc.message


def host(url: str) -> str:
    return urllib.parse.urlsplit(url).hostname or url


def short(exc: BaseException | str, limit: int = 300) -> str:
    text = " ".join(str(exc).split())
    return text[:limit] + ("…" if len(text) > limit else "")
