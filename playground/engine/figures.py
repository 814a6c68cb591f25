"""A column's figures: its own time per step, memory, what a server reported, bounded steps.

Local columns take turns in the engine's thread, so each column's step durations are its own
work whatever its neighbours do (playground/clocks.py keeps them); the two cases where work
is shared are attributed in `charge`.
"""

from __future__ import annotations

from dataclasses import replace

from playground.backends.activity import ACTIVITY
from playground.engine.column import Column
from playground.limits import MAX_NAME_CHARS, MAX_TOKEN_CHARS, MAX_TOP_ALTERNATIVES
from playground.record import TokenStep


def clip(text: str, limit: int) -> str:
    """A message or name from a server, at most `limit` characters (an ellipsis says it was cut)."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def bounded_step(step: TokenStep, room: int) -> tuple[TokenStep, bool]:
    """A step within the record's limits: its text cut to the room left in the column (True when cut),
    at most MAX_TOP_ALTERNATIVES alternatives of at most MAX_TOKEN_CHARS each. Only a served model
    can send more; a local model's steps pass unchanged."""
    cut = len(step.text) > room
    trimmed = len(step.top) > MAX_TOP_ALTERNATIVES or any(len(a.text) > MAX_TOKEN_CHARS for a in step.top)
    if cut or trimmed:
        top = [replace(alt, text=clip(alt.text, MAX_TOKEN_CHARS)) for alt in step.top[:MAX_TOP_ALTERNATIVES]]
        step = replace(step, text=step.text[: max(room, 0)], top=top)
    return step, cut


def charge(col: Column, seconds: float, shared: dict[tuple, float]) -> None:
    """Put one step's time on the column's clock: its next() (`seconds`) and this round's launch().

    Two cases share work, and are attributed so:
    - Columns of one model and prompt batched on the fast path compute each step together: the
      first of them to be read waits for (or, on CPU, ran) the whole step, the others find it done.
      Each is charged the group's step time (the largest charge among them this round), since
      alone each would have taken about that long.
    - Steps of different models on the GPU fast path run at once on their own streams: a column
      read after another waits only for what is left of its own step. The overlapped part stays
      with the column read first, so the sum of the columns' time is the round's time; on CPU
      (and on the eager path) steps never overlap and each column's time is exactly its own.
    One-time costs met inside a step (graph capture, compiling) are kept apart by the clock."""
    seconds += col.launch_s
    col.launch_s = 0.0
    info = col.info
    if "batched" in info.decode_path and col.spec is not None:
        key = (col.spec.id, tuple(col.record.prompt_token_ids))
        seconds = shared[key] = max(seconds, shared.get(key, 0.0))
    col.clock.spend(seconds, info.graph_capture_s)


def served_figures(col: Column) -> None:
    """What the server reported: its model name, usage, own speed; cost from the catalog's prices."""
    record, info, spec = col.record, col.info, col.spec
    m = record.metrics
    served = info.served_model or record.identity.served_model
    record.identity.served_model = clip(served, MAX_NAME_CHARS)
    record.identity.fingerprint = clip(info.fingerprint, MAX_NAME_CHARS)
    m.usage_prompt_tokens, m.usage_output_tokens = info.usage_prompt_tokens, info.usage_output_tokens
    m.output_tokens, m.output_tokens_from = served_tokens(col)
    m.server_prompt_tok_s, m.server_decode_tok_s = info.server_prompt_tok_s, info.server_decode_tok_s
    prompt_tokens = info.usage_prompt_tokens or m.prompt_tokens
    output_tokens = info.usage_output_tokens or m.output_tokens
    m.cost_usd = (prompt_tokens * spec.price_in + output_tokens * spec.price_out) / 1e6
    record.capabilities.refused = list(info.dropped)
    if info.logprobs is False:
        record.capabilities.logprobs = False
        record.capabilities.logprobs_note = info.logprobs_note or "this server did not return logprobs"


def served_tokens(col: Column) -> tuple[int, str]:
    """A served column's output tokens and where the count came from: the server's usage, else its
    steps when they came with logprobs (one a token), else the column's tokenizer on the text.
    Never a count of chunks: a chunk without logprobs may hold several tokens."""
    info, record = col.info, col.record
    if info.usage_output_tokens:
        return info.usage_output_tokens, "server usage"
    if info.logprobs and record.steps:
        return len(record.steps), "logprobs"
    if not record.text or col.backend is None:
        return 0, ""
    return col.backend.count_tokens(record.text), "tokenizer count of the text"


def memory(col: Column) -> None:
    """Weights + this column's KV cache (computed); the allocator peak only if nothing else ran."""
    m = col.record.metrics
    if col.backend is not None and m.prompt_tokens:
        m.kv_cache_bytes = col.backend.kv_cache_bytes(m.prompt_tokens + m.output_tokens)
    if col.activity is None:
        return
    alone = ACTIVITY.leave(col.activity)
    col.activity = None
    if col.probe is not None and alone:
        m.peak_memory_bytes = col.probe.peak_bytes()
        m.memory_kind = col.probe.kind
