"""HTML and Markdown renderers for the page, drawn from run records only.

Everything a user or a model typed passes through html.escape here before it
becomes HTML. Model output is shown as Markdown (so code blocks get
highlighted), with raw HTML outside code escaped so it displays as text, and
with Markdown images turned into plain links: a model's output must never make
the reader's browser fetch anything (a tracking pixel, a request to an
internal address) just by being shown.
"""

from __future__ import annotations

import html
import re
import time
from collections.abc import Sequence
from typing import Protocol

from playground.record import FINISH_LABELS, ModelRun, Run
from playground.wording import plural

_FENCE = re.compile(r"(^```.*?(?:^```[ \t]*$|\Z))", re.DOTALL | re.MULTILINE)
_INLINE_CODE = re.compile(r"(`+)(.+?)\1", re.DOTALL)
# "![" not already escaped (an even number of backslashes before it, none included): an image start
_IMAGE_START = re.compile(r"(?<!\\)((?:\\\\)*)!\[")



def _prose(text: str) -> str:
    """Markdown prose made inert: tags and entities shown as text, `![alt](url)` / `![alt][ref]`
    turned into a plain link (the `!` is escaped), so nothing is fetched when it is displayed."""
    return _IMAGE_START.sub(r"\1\\![", html.escape(text, quote=False))


def conversation_markdown(run: Run, column: int) -> str:
    """A column's output; in a conversation, its earlier turns first: each prompt (quoted, as typed)
    and this column's own answer, then the latest prompt and the answer streaming now."""
    current = markdown_safe(run.models[column].text)
    if not run.history:
        return current
    parts = []
    for turn in run.history:
        answer = turn.models[column].text or turn.models[column].error or "(no answer)"
        parts.append(f"{_quoted(turn.prompt)}\n\n{markdown_safe(answer)}")
    parts.append(f"{_quoted(run.prompt)}\n\n{current}")
    return "\n\n---\n\n".join(parts)


def _quoted(prompt: str) -> str:
    """A user's turn as a Markdown quote, every line escaped like any typed text."""
    lines = markdown_safe(prompt).replace("`", "\\`").split("\n")
    return "\n".join(f"> {'**You:** ' if i == 0 else ''}{line}" for i, line in enumerate(lines))


def markdown_safe(text: str) -> str:
    """Markdown with every HTML tag and image outside code shown literally.

    Code fences and inline code are left alone (Markdown already renders them
    as text); elsewhere `&`, `<` and `>` are escaped so `<script>` and `<img>`
    are text, and the `!` of a Markdown image is escaped so it renders as a link.
    """
    parts = []
    for i, chunk in enumerate(_FENCE.split(text)):
        if i % 2 == 1:
            parts.append(chunk)
            continue
        pos = 0
        for match in _INLINE_CODE.finditer(chunk):
            parts.append(_prose(chunk[pos : match.start()]))
            parts.append(match.group(0))
            pos = match.end()
        parts.append(_prose(chunk[pos:]))
    return "".join(parts)


def when(timestamp: object, fmt: str = "%Y-%m-%d %H:%M:%S") -> str:
    """A saved time as local time; "unknown time" for a value that is not one (a hand-edited file)."""
    try:
        return time.strftime(fmt, time.localtime(float(timestamp)))  # type: ignore[arg-type]
    except (TypeError, ValueError, OverflowError, OSError):
        return "unknown time"


def fmt_bytes(n: int) -> str:
    size = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if abs(size) < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit in ("B", "KB") else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GB"


# What each figure of a column header counts: its tooltip (README "Column header" says the same).
OWN_CLOCK_NOTE = ("on this column's own clock: its own prompt, prefill and steps (a served model: where each "
                  "chunk arrived), never its neighbours' steps, loading, graph capture or compiling")
OLD_CLOCK_NOTE = ("wall time from the column's start, neighbours' steps included (saved before columns had "
                  "their own clocks)")
TOKENS_FROM = {
    "tokenizer": "the ids it generated, from its own tokenizer",
    "server usage": "as the server's usage report counts them",
    "logprobs": "the server's token steps, one a token (it sent logprobs)",
    "tokenizer count of the text": ("the answer's text through the model's tokenizer (the server reported "
                                    "neither usage nor logprobs)"),
}
OLD_TOKENS_NOTE = ("the steps it produced, one a token (saved before tokens were counted apart: for a served "
                   "model without logprobs, its stream chunks)")
HELP = {
    "load": ("Seconds this model's own load took; \"already loaded\": it was in memory. Waiting for another "
             "model's load is not counted; \"(cache)\": read from the converted cache."),
    "graph": ("One-time: capturing the fast path's decode step as a CUDA graph; kept out of TTFT, total and "
              "tok/s."),
    "mem": ("The model's weights + this column's KV cache at its last token (from the model's shape); the "
            "fast path's workspace when it has one; the allocator's peak only when the column ran alone on "
            "CUDA."),
    "file": "The served model's file size: its memory is the server's, not measured here.",
    "server": "The server's own decode speed, as it reported it (llama.cpp timings), not measured here.",
    "usage": "Prompt + output tokens as the server's usage report counts them.",
    "cost": "From the catalog's prices per million tokens, on the server's usage (else the counts here).",
    "device": "Where the model ran (device, or the serving engine) and its weights' dtype.",
}


def metric(key: str, text: str, tip: str) -> str:
    """One figure, with what it counts as its tooltip (`data-metric` names it for tests and styles)."""
    return (f'<span class="pg-metric" data-metric="{html.escape(key)}" title="{html.escape(tip)}">'
            f"{html.escape(text)}</span>")


def metrics_line(run: ModelRun) -> str:
    """The column's figures, as escaped HTML: each says what it counts in its tooltip (empty until the
    model produced something). While the column streams, the output count moves with each token."""
    m = run.metrics
    ident = run.identity
    items = [*token_figures(run), *time_figures(run)]
    if run.finish_reason and ident.device:
        load = "already loaded" if m.load_s == 0 else f"load {m.load_s:.1f} s"
        if m.load_s and m.loaded_from_cache:
            load += " (cache)"
        items.append(("load", load, HELP["load"]))
        if m.graph_capture_s:
            items.append(("graph", f"graph capture {m.graph_capture_s:.2f} s", HELP["graph"]))
    memory = memory_text(run)
    if memory:
        items.append(("mem", memory, HELP["mem" if run.capabilities.memory else "file"]))
    items += served_figures(run)
    if ident.device:
        where = f"{ident.engine or ident.device}" + (f" · {ident.dtype}" if ident.dtype else "")
        items.append(("device", where, HELP["device"]))
    return "".join(metric(*item) for item in items)


def token_figures(run: ModelRun) -> list[tuple[str, str, str]]:
    """Prompt tokens -> output tokens: the final count once the column ended, else the tokens so far."""
    m = run.metrics
    if not m.prompt_tokens:
        return []
    prompt = "the ids the model was fed (chat template and system prompt included)"
    if run.finish_reason:
        source = ("none: tokenized only, nothing was generated" if run.finish_reason == "tokenized" else
                  TOKENS_FROM.get(m.output_tokens_from, OLD_TOKENS_NOTE))
        return [("tokens", f"{m.prompt_tokens:,} → {m.output_tokens:,} tokens",
                 f"Prompt tokens: {prompt} → output tokens: {source}.")]
    so_far = len(run.steps)
    return [("tokens", f"{m.prompt_tokens:,} → {so_far:,} tokens so far",
             f"Prompt tokens: {prompt} → output tokens so far, counted as they stream (a served model "
             "without logprobs: its chunks, which may hold several tokens); the final count replaces it "
             "when the column ends.")]


def time_figures(run: ModelRun) -> list[tuple[str, str, str]]:
    """TTFT, tok/s and total, once the column produced something, with the clock they count."""
    m = run.metrics
    if not m.output_tokens:
        return []
    own = m.clock == "own"  # record.Metrics.clock: "" for a record saved before the own clocks
    clock = OWN_CLOCK_NOTE if own else OLD_CLOCK_NOTE
    items = [("ttft", f"TTFT {m.ttft_s:.2f} s",
              f"Time to first token, {clock}." + _wall(own, m.wall_ttft_s))]
    if m.decode_tok_s:
        items.append(("tok/s", f"{m.decode_tok_s:.1f} tok/s",
                      "Decode speed: the output tokens after the first, over the time from the first token "
                      f"to the last, {clock}."))
    after = " The attention pass after it is not counted." if own else ""
    items.append(("total", f"total {m.total_s:.2f} s",
                  f"From the column's start to its last token, {clock}.{after}" + _wall(own, m.wall_total_s)))
    return items


def _wall(own: bool, wall_s: float) -> str:
    return f" Wall clock: {wall_s:.2f} s, neighbours included." if own and wall_s else ""


RUN_WALL_NOTE = ("The wall clock from Run to the last column's end: what you waited, loading included. "
                 "Columns take turns on one decode thread, so each column's TTFT, total and tok/s count "
                 "only its own time (hover them) and do not add up to this.")


def run_wall(record: Run | None) -> str:
    """The run's wall time, apart from the columns' own figures, so neither is mistaken for the other.
    Empty for no run, a record saved before the run's wall time was kept (wall_s 0) or a tokenize-only
    record (nothing was generated)."""
    if record is None or record.wall_s <= 0 or not record.models:
        return ""
    if all(m.finish_reason == "tokenized" for m in record.models):
        return ""
    what = "This turn's wall time" if record.history else "Run wall time"
    text = f"{what} {record.wall_s:.1f} s (loading included)"
    return (f'<div class="pg-muted pg-run-wall" data-wall="{record.wall_s:.3f}">'
            f"{metric('run-wall', text, RUN_WALL_NOTE)}; each column's figures count its own time</div>")


def served_figures(run: ModelRun) -> list[tuple[str, str, str]]:
    """What a server reported about itself: its own speed, usage tokens, cost from catalog prices."""
    m = run.metrics
    items = []
    if m.server_decode_tok_s:
        items.append(("server", f"server {m.server_decode_tok_s:.1f} tok/s", HELP["server"]))
    if m.usage_prompt_tokens or m.usage_output_tokens:
        items.append(("usage", f"usage {m.usage_prompt_tokens:,} + {m.usage_output_tokens:,}", HELP["usage"]))
    if m.cost_usd:
        cost = f"${m.cost_usd:.6f}" if m.cost_usd < 0.01 else f"${m.cost_usd:.4f}"
        items.append(("cost", cost, HELP["cost"]))
    return items


def memory_text(run: ModelRun) -> str:
    """Weights + this column's KV cache; the allocator peak only where it was measured alone (CUDA)."""
    m = run.metrics
    parts = []
    if not run.capabilities.memory:  # a served model: its memory is the server's
        return f"model file {fmt_bytes(m.weights_bytes)}" if m.weights_bytes else ""
    if m.weights_bytes or m.kv_cache_bytes:
        parts.append(f"mem {fmt_bytes(m.weights_bytes)} weights + {fmt_bytes(m.kv_cache_bytes)} KV")
    if m.workspace_bytes:  # the fast path's static cache is allocated whole, for the length bucket
        parts.append(f"+ {fmt_bytes(m.workspace_bytes)} fast-path workspace")
    if m.memory_kind and m.peak_memory_bytes:
        peak = f"{m.memory_kind} {fmt_bytes(m.peak_memory_bytes)}"
        parts.append(f"({peak})" if parts else f"mem {fmt_bytes(m.peak_memory_bytes)} ({m.memory_kind})")
    return " ".join(parts)


def column_header(run: ModelRun, status: str = "") -> str:
    """Model name, prompt format, live status or final outcome, metrics and any error."""
    ident = run.identity
    badges = []
    if ident.prompt_format:
        badges.append(f'<span class="pg-badge">{html.escape(ident.prompt_format)}</span>')
    if ident.decode_path:  # "fast path" or "eager"; the reason and details in the tooltip
        short = ident.decode_path.split(":")[0]
        badges.append(f'<span class="pg-badge pg-path" title="{html.escape(ident.decode_path)}">'
                      f"{html.escape(short)}</span>")
    outcome = FINISH_LABELS.get(run.finish_reason, "") if run.finish_reason else status
    if outcome:
        kind = "error" if run.finish_reason in ("error", "timeout") else "state"
        badges.append(f'<span class="pg-badge pg-{kind}">{html.escape(outcome)}</span>')
    parts = [
        f'<div class="pg-col-head" data-finish="{html.escape(run.finish_reason)}">',
        f'<span class="pg-model">{html.escape(ident.name or ident.catalog_id)}</span>',
        "".join(badges),
        "</div>",
    ]
    if run.error and run.finish_reason == "cancelled":  # a deliberate Stop: said plainly, not as a failure
        parts.append(f'<div class="pg-stopped">{html.escape(run.error)}</div>')
    elif run.error:
        parts.append(f'<div class="pg-error" role="alert">{html.escape(run.error)}</div>')
    missing = run.capabilities.lacks()
    if missing:
        items = "".join(f"<li>{html.escape(line)}</li>" for line in missing)
        parts.append(f'<ul class="pg-lacks pg-muted">{items}</ul>')
    warnings = [a for a in run.anomalies if a.severity != "error"]
    if warnings:
        items = "".join(
            f'<li data-kind="{html.escape(a.kind)}">⚠ {html.escape(a.message)}</li>' for a in warnings
        )
        parts.append(f'<ul class="pg-warnings">{items}</ul>')
    metrics = metrics_line(run)
    if metrics:
        parts.append(f'<div class="pg-metrics">{metrics}</div>')
    return "".join(parts)


def notice(message: str, kind: str = "info") -> str:
    """A page-level message (bad input, run state) as escaped HTML."""
    if not message:
        return ""
    return f'<div class="pg-notice pg-{html.escape(kind)}" role="status">{html.escape(message)}</div>'


class LoadedModel(Protocol):
    """What the model pool reports per loaded model (backends.pool.LoadedInfo; no torch import here)."""

    id: str
    device: str
    dtype: str
    load_s: float
    from_cache: bool
    weights_bytes: int
    in_use: int
    workspace_bytes: int


def _gb(n: int) -> str:
    return f"{n / 2**30:.1f}"


def loaded_models(rows: Sequence[LoadedModel], used_bytes: int = 0, budget_bytes: int = 0) -> str:
    """The models held in memory and what they weigh against the pool's budget, so users know
    what a first run will cost and why an idle model may be unloaded."""
    budget = (f" · {_gb(used_bytes)} of {_gb(budget_bytes)} GB budget" if budget_bytes else "")
    if not rows:
        return f'<span class="pg-muted">No model loaded yet: the first run loads each model{budget}.</span>'
    items = []
    for r in rows:
        details = [f"{r.device} {r.dtype}"]
        if r.weights_bytes:
            details.append(fmt_bytes(r.weights_bytes))
        if r.workspace_bytes:
            details.append(f"+ {fmt_bytes(r.workspace_bytes)} fast-path workspaces")
        details.append(f"in use by {r.in_use} column{'s' if r.in_use != 1 else ''}" if r.in_use else "idle")
        items.append(f"{r.id} ({', '.join(details)})")
    return f'<span class="pg-muted">{html.escape("Loaded: " + "; ".join(items) + budget)}</span>'


def rerun_report(saved_id: str, matches: list) -> str:  # list[ColumnMatch]
    """Per column: identical to the saved run, or where the outputs part."""
    rows = []
    for m in matches:
        name = html.escape(m.model)
        if m.identical:
            verdict = f'<span class="pg-same">identical</span> ({m.new_tokens} tokens)'
        else:
            verdict = (
                f'<span class="pg-differs">differs</span> at token {m.first_difference} '
                f"(saved {m.saved_tokens} tokens, now {m.new_tokens}): saved "
                f"<code>{html.escape(m.saved_snippet)}</code> vs now "
                f"<code>{html.escape(m.new_snippet)}</code>"
            )
        note = f' <span class="pg-muted">{html.escape(m.note)}</span>' if m.note else ""
        rows.append(f'<li data-identical="{str(m.identical).lower()}">Column {m.column + 1} '
                    f"<b>{name}</b>: {verdict}{note}</li>")
    return (f'<div class="pg-rerun"><b>Run again vs saved run {html.escape(saved_id)}</b>'
            f"<ul>{''.join(rows)}</ul></div>")


def history(rows: list, query: str = "", skipped: int = 0, shared: bool = False) -> str:  # list[RunSummary]
    """Saved runs as links to their replays (a link opens the permalink): the user's own, or
    everyone's with shared history; says how many unreadable rows the listing left out."""
    whose = ("Everyone's saved runs (shared history)." if shared
             else "Your saved runs (this browser or login).")
    head = f'<div class="pg-muted pg-history-scope">{whose}</div>'
    if skipped:
        head += notice(f"{plural(skipped, 'saved run')} could not be read and were left out of this list",
                       "warn")
    if not rows:
        empty = f"No saved run matches “{html.escape(query)}”." if query else "No saved runs yet."
        return f'{head}<span class="pg-muted">{empty}</span>'
    items = []
    for r in rows:
        when_saved = when(r.created_at, "%Y-%m-%d %H:%M")
        prompt = " ".join(r.prompt.split())
        prompt = prompt[:90] + ("…" if len(prompt) > 90 else "")
        models = ", ".join(r.models)
        items.append(
            f'<tr><td>{when_saved}</td><td><a href="?session={html.escape(r.id)}">{html.escape(prompt)}</a>'
            f"</td><td>{html.escape(models)}</td></tr>"
        )
    return (f'{head}<table class="pg-history"><thead><tr><th>When</th><th>Prompt</th><th>Models</th></tr>'
            f"</thead><tbody>{''.join(items)}</tbody></table>")


def attention_note(missing: list[str], windowed: list[str]) -> str:
    """Why a column has no attention, and which captures were windowed (escaped)."""
    lines = [f'<li class="pg-muted">{html.escape(m)}</li>' for m in missing]
    lines += [f'<li class="pg-warn-text">{html.escape(w)}</li>' for w in windowed]
    return f'<ul class="pg-attn-notes">{"".join(lines)}</ul>' if lines else ""


def plot_label(text: str, limit: int = 14) -> str:
    """A token as an axis label: visible whitespace, no characters plotly would read as markup."""
    shown = text.replace("\n", "↵").replace(" ", "·").replace("\t", "→")
    shown = shown.replace("<", "‹").replace(">", "›").replace("&", "＆")
    return shown[:limit] + ("…" if len(shown) > limit else "")


def agreement_note(skipped: list[str], model: str) -> str:
    """Which columns the matrices leave out (failed ones), and which embedding model scored them."""
    parts = [f"left out (no answer): {', '.join(skipped)}"] if skipped else []
    if model:
        parts.append(f"semantic scores from {model}")
    return f'<div class="pg-muted">{html.escape("; ".join(parts))}</div>' if parts else ""
