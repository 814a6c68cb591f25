"""HTML and Markdown renderers for the page, drawn from run records only.

Everything a user or a model typed passes through html.escape here before it
becomes HTML. Model output is shown as Markdown (so code blocks get
highlighted), with raw HTML outside code escaped so it displays as text.
"""

from __future__ import annotations

import html
import re
import time

from playground.record import ModelRun

_FENCE = re.compile(r"(^```.*?(?:^```[ \t]*$|\Z))", re.DOTALL | re.MULTILINE)
_INLINE_CODE = re.compile(r"(`+)(.+?)\1", re.DOTALL)

FINISH_LABELS = {
    "eos": "done",
    "stop": "done (stop string)",
    "length": "done (max new tokens)",
    "cancelled": "stopped",
    "timeout": "timed out",
    "error": "error",
    "tokenized": "tokenized only",
}


def markdown_safe(text: str) -> str:
    """Markdown with every HTML tag outside code shown literally.

    Code fences and inline code are left alone (Markdown already renders them
    as text); elsewhere `&`, `<` and `>` are escaped so `<script>` is text.
    """
    parts = []
    for i, chunk in enumerate(_FENCE.split(text)):
        if i % 2 == 1:
            parts.append(chunk)
            continue
        pos = 0
        for match in _INLINE_CODE.finditer(chunk):
            parts.append(html.escape(chunk[pos : match.start()], quote=False))
            parts.append(match.group(0))
            pos = match.end()
        parts.append(html.escape(chunk[pos:], quote=False))
    return "".join(parts)


def _fmt_bytes(n: int) -> str:
    size = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if abs(size) < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit in ("B", "KB") else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GB"


def metrics_line(run: ModelRun) -> str:
    """One line of numbers, as escaped HTML (empty until the model produced something)."""
    m = run.metrics
    ident = run.identity
    items = []
    if m.prompt_tokens:
        items.append(f"{m.prompt_tokens:,} → {m.output_tokens:,} tokens")
    if m.output_tokens:
        items.append(f"TTFT {m.ttft_s:.2f} s")
        if m.decode_tok_s:
            items.append(f"{m.decode_tok_s:.1f} tok/s")
        items.append(f"total {m.total_s:.2f} s")
    if run.finish_reason and ident.device:
        load = "already loaded" if m.load_s == 0 else f"load {m.load_s:.1f} s"
        if m.load_s and m.loaded_from_cache:
            load += " (cache)"
        items.append(load)
    if m.memory_kind:
        items.append(f"mem {_fmt_bytes(m.peak_memory_bytes)} ({m.memory_kind})")
    if ident.device:
        items.append(f"{ident.device} · {ident.dtype}")
    return "".join(f'<span class="pg-metric">{html.escape(item)}</span>' for item in items)


def column_header(run: ModelRun, status: str = "") -> str:
    """Model name, prompt format, live status or final outcome, metrics and any error."""
    ident = run.identity
    badges = []
    if ident.prompt_format:
        badges.append(f'<span class="pg-badge">{html.escape(ident.prompt_format)}</span>')
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
    if run.error:
        parts.append(f'<div class="pg-error" role="alert">{html.escape(run.error)}</div>')
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


def loaded_models(rows: list[tuple[str, str, str, float, bool]]) -> str:
    """The models held in memory, so users know what a first run will cost."""
    if not rows:
        return '<span class="pg-muted">No model loaded yet: the first run loads each model.</span>'
    items = [
        f"{html.escape(mid)} ({html.escape(device)} {html.escape(dtype)}, loaded in {load_s:.1f} s"
        + (" from cache" if cached else "")
        + ")"
        for mid, device, dtype, load_s, cached in rows
    ]
    return '<span class="pg-muted">Loaded: ' + "; ".join(items) + "</span>"


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


def history(rows: list, query: str = "") -> str:  # list[RunSummary]
    """Recent saved runs as links to their replays (a link opens the permalink)."""
    if not rows:
        empty = f"No saved run matches “{html.escape(query)}”." if query else "No saved runs yet."
        return f'<span class="pg-muted">{empty}</span>'
    items = []
    for r in rows:
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(r.created_at))
        prompt = " ".join(r.prompt.split())
        prompt = prompt[:90] + ("…" if len(prompt) > 90 else "")
        models = ", ".join(r.models)
        items.append(
            f'<tr><td>{when}</td><td><a href="?session={html.escape(r.id)}">{html.escape(prompt)}</a></td>'
            f"<td>{html.escape(models)}</td></tr>"
        )
    return ('<table class="pg-history"><thead><tr><th>When</th><th>Prompt</th><th>Models</th></tr></thead>'
            f"<tbody>{''.join(items)}</tbody></table>")


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
