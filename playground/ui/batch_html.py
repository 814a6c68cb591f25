"""The batch panel's HTML and charts, drawn from a batch's saved results: the progress line, the
result grid (prompt x model, everything typed escaped), the per-model summary, the saved batches
list and the three charts. playground/ui/batch_view.py lays them out and wires them.
"""

from __future__ import annotations

import html
from typing import Any

from playground.batch.book import BatchListing
from playground.batch.runner import Progress
from playground.batch.summary import BatchResult, Cell
from playground.ui import html as H
from playground.ui import plots

ALL_MODELS = "all models"
ALL_CATEGORIES = "all categories"
SORTS = {
    "prompt order": (lambda c: (c.prompt_index, c.column), False),
    "score, low first": (lambda c: (c.score is None, c.score or 0.0), False),
    "score, high first": (lambda c: (c.score is not None, c.score or 0.0), True),
    "total time, slow first": (lambda c: c.total_s, True),
    "TTFT, slow first": (lambda c: c.ttft_s, True),
    "output tokens, most first": (lambda c: c.output_tokens, True),
    "tok/s, fast first": (lambda c: c.tok_s, True),
    "cost, highest first": (lambda c: c.cost_usd, True),
}
EXCERPT_CHARS = 160


def plot_safe(text: str, limit: int = 40) -> str:
    """A model or category name as a chart label: no characters plotly would read as markup."""
    shown = text.replace("<", "‹").replace(">", "›").replace("&", "＆")
    return shown[:limit] + ("…" if len(shown) > limit else "")


def _excerpt(text: str, limit: int = EXCERPT_CHARS) -> str:
    flat = " ".join(text.split())
    return flat[:limit] + ("…" if len(flat) > limit else "")


def _num(value: float | None, spec: str, empty: str = "–") -> str:
    return empty if value is None else format(value, spec)


# -- drawing (escaped HTML from the batch result) ---------------------------------------------------


def progress_html(p: Progress) -> str:
    total = max(p.total, 1)
    share = min(p.done / total, 1.0)
    words = {"running": "running", "complete": "complete", "stopped": "stopped", "error": "error"}
    parts = [f"{p.done}/{p.total} prompts done" if p.total else "starting…"]
    if p.failed:
        parts.append(f"{p.failed} could not run")
    if p.state == "running" and p.eta_s is not None:
        parts.append(f"about {p.eta_s:.0f} s left")
    if p.current and p.state == "running":
        parts.append(f"last: {p.current}")
    if p.message:
        parts.append(p.message)
    kind = {"error": " pg-error", "stopped": " pg-warn"}.get(p.state, "")
    return (f'<div class="pg-batch-progress" data-batch="{html.escape(p.batch_id)}" '
            f'data-state="{html.escape(p.state)}" data-done="{p.done}" '
            f'data-total="{p.total}"><div class="pg-bar"><div class="pg-bar-fill" '
            f'style="width:{share * 100:.1f}%"></div></div>'
            f'<span class="pg-batch-state{kind}">Batch {html.escape(p.batch_id)} · '
            f"{html.escape(words.get(p.state, p.state))} · {html.escape(' · '.join(parts))}</span></div>")


def saved_progress(result: BatchResult, state: str = "", message: str = "") -> Progress:
    """What a batch not running in this server looks like from its saved rows."""
    state = state or ("complete" if result.complete else "stopped")
    if not message and state == "stopped":
        message = "not running: Resume continues where it stopped"
    return Progress(result.batch_id, result.done + result.failed, result.total, result.failed, None, "",
                    state, message)


def grid_html(result: BatchResult, model: str = ALL_MODELS, category: str = ALL_CATEGORIES,
              sort: str = "prompt order", prompts: dict[int, str] | None = None) -> str:
    """Prompt x model, one row per answer: output excerpt, score, timings, tokens, cost, its saved run."""
    cells = [c for c in result.cells if (model in ("", ALL_MODELS) or c.model == model)
             and (category in ("", ALL_CATEGORIES) or c.category == category)]
    key, reverse = SORTS.get(sort, SORTS["prompt order"])
    cells.sort(key=key, reverse=reverse)
    if not cells:
        return '<div class="pg-muted">No results match this filter.</div>'
    prompts = prompts or {}
    rows = "".join(_grid_row(c, prompts.get(c.prompt_index, "")) for c in cells)
    clock = f' title="{html.escape(result.timing)}"' if result.timing else ""
    return ('<div class="pg-batch-grid-wrap"><table class="pg-batch-grid"><thead><tr><th>Prompt</th>'
            f"<th>Category</th><th>Model</th><th>Output</th><th>Score</th><th{clock}>TTFT s</th>"
            f"<th{clock}>Total s</th><th>Tokens</th><th>tok/s</th><th>Cost $</th><th>Run</th></tr></thead>"
            f"<tbody>{rows}</tbody></table></div>")


def _grid_row(c: Cell, prompt: str) -> str:
    if c.status == "done":
        output = html.escape(_excerpt(c.output)) or '<span class="pg-muted">(empty)</span>'
    elif c.status == "pending":
        output = '<span class="pg-muted">not run yet</span>'
    else:
        output = f'<span class="pg-error-text">{html.escape(_excerpt(c.error or "failed"))}</span>'
    score = _num(c.score, ".2f")
    note = f' title="{html.escape(c.score_note)}"' if c.score_note else ""
    link = (f'<a href="?session={html.escape(c.run_id)}" target="_blank" rel="noopener">open</a>'
            if c.run_id else "")
    ran = c.status in ("done", "error")
    score_attr = "" if c.score is None else f"{c.score:.4f}"
    return (f'<tr class="pg-batch-row" data-prompt="{html.escape(c.prompt_id)}" '
            f'data-model="{html.escape(c.model)}" data-status="{html.escape(c.status)}" '
            f'data-score="{score_attr}">'
            f'<td title="{html.escape(_excerpt(prompt, 2000))}"><b>{html.escape(c.prompt_id)}</b> '
            f'<span class="pg-batch-prompt">{html.escape(_excerpt(prompt, 80))}</span></td>'
            f"<td>{html.escape(c.category)}</td><td>{html.escape(c.model)}</td>"
            f'<td class="pg-batch-out">{output}</td><td{note}>{score}</td>'
            f"<td>{_num(c.ttft_s if ran else None, '.2f')}</td>"
            f"<td>{_num(c.total_s if ran else None, '.2f')}</td>"
            f"<td>{c.output_tokens if ran else '–'}</td><td>{_num(c.tok_s if ran else None, '.1f')}</td>"
            f"<td>{_num(c.cost_usd if c.cost_usd else None, '.4f')}</td><td>{link}</td></tr>")


def summary_html(result: BatchResult) -> str:
    """Per model: mean score, answered, p50 / p95 / max latency, TTFT, tokens, tok/s, cost, anomalies."""
    rows = []
    for m in result.models:
        anomalies = ", ".join(f"{k} {v}" for k, v in m.anomalies.items()) or "–"
        rows.append(
            f'<tr data-model="{html.escape(m.model)}"><td class="pg-model">{html.escape(m.model)}</td>'
            f"<td>{_num(m.mean_score, '.3f')}</td><td>{m.answered}/{m.prompts}</td>"
            f"<td>{m.latency_p50_s:.2f}</td><td>{m.latency_p95_s:.2f}</td><td>{m.latency_max_s:.2f}</td>"
            f"<td>{m.ttft_p50_s:.2f}</td><td>{m.output_tokens}</td><td>{m.mean_tok_s:.1f}</td>"
            f"<td>{_num(m.cost_usd if m.cost_usd else None, '.4f')}</td>"
            f"<td>{html.escape(anomalies)}</td></tr>")
    head = (f'<div class="pg-muted">Scoring: {html.escape(result.scoring.method)}'
            + (f" (reference column {result.scoring.reference_column + 1})"
               if result.scoring.method == "agreement" else "")
            + (f" (tolerance {result.scoring.tolerance:g})" if result.scoring.method == "numeric" else "")
            + f" · {result.done} of {result.total} prompts saved"
            + (f", {result.failed} could not run" if result.failed else "") + ". Latency is the whole "
            "answer's time; unscored answers are left out of the mean.</div>")
    return (f'{head}{timing_html(result)}<table class="pg-counts pg-batch-summary"><thead><tr>'
            "<th>Model</th><th>Mean score</th>"
            "<th>Answered</th><th>p50 s</th><th>p95 s</th><th>max s</th><th>TTFT p50 s</th><th>Tokens</th>"
            "<th>tok/s</th><th>Cost $</th><th>Token anomalies (prompts)</th></tr></thead>"
            f"<tbody>{''.join(rows)}</tbody></table>")


def timing_html(result: BatchResult) -> str:
    """Which clock the p50 / p95 / max latency and TTFT count (BatchResult.timing, as the CLI prints it):
    own time side by side, the wall clock for a batch run alone, so the two are never compared unknowingly."""
    timing = result.timing or "no answers yet"
    return (f'<div class="pg-muted pg-batch-timing" data-timing="{html.escape(result.timing)}">'
            f"Latency and TTFT (p50 / p95 / max): {html.escape(timing)}.</div>")


def figures(result: BatchResult) -> tuple[Any, Any, Any]:
    """Quality against p95 latency, latency distribution per model, score by category."""
    names = [plot_safe(m.model) for m in result.models]
    quality = plots.batch_quality_figure(names, [m.mean_score for m in result.models],
                                         [m.latency_p95_s for m in result.models])
    latencies = [[c.total_s for c in result.cells if c.column == m.column and c.status == "done"]
                 for m in result.models]
    latency = plots.batch_latency_figure(names, latencies)
    categories = list(dict.fromkeys(c.category or "(none)" for c in result.cells))
    matrix: list[list[float | None]] = []
    for category in categories:
        row: list[float | None] = []
        for m in result.models:
            scores = [c.score for c in result.cells if c.column == m.column
                      and (c.category or "(none)") == category and c.score is not None]
            row.append(sum(scores) / len(scores) if scores else None)
        matrix.append(row)
    heatmap = plots.category_heatmap(names, [plot_safe(c) for c in categories], matrix)
    return quality, latency, heatmap


def listing_html(rows: list[BatchListing], shared: bool) -> str:
    whose = "Everyone's saved batches (shared history)." if shared else "Your saved batches."
    head = f'<div class="pg-muted pg-batch-scope">{whose}</div>'
    if not rows:
        return f'{head}<span class="pg-muted">No saved batches yet.</span>'
    items = "".join(
        f'<tr><td>{H.when(r.created_at, "%Y-%m-%d %H:%M")}</td>'
        f'<td><a href="?batch={html.escape(r.id)}">{html.escape(r.name or r.id)}</a></td>'
        f"<td>{r.done + r.failed}/{r.total}</td><td>{html.escape(', '.join(r.models))}</td></tr>"
        for r in rows)
    return (f'{head}<table class="pg-history pg-batch-list"><thead><tr><th>When</th><th>Batch</th>'
            f"<th>Prompts done</th><th>Models</th></tr></thead><tbody>{items}</tbody></table>")


# -- the panel ------------------------------------------------------------------------------------
