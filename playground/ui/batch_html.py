"""The batch panel's HTML and charts, drawn from a batch's saved results: the progress line, the
per-model summary, the saved batches list and the three charts (only those with something to plot).
The results matrix is playground/ui/batch_matrix.py; playground/ui/batch_view.py lays them out and
wires them. Everything typed is escaped.
"""

from __future__ import annotations

import html
from typing import Any

from playground.batch.book import BatchListing
from playground.batch.matrix import build_matrix
from playground.batch.runner import Progress
from playground.batch.summary import BatchResult
from playground.ui import html as H
from playground.ui import plots
from playground.ui.batch_matrix import matrix_html

ALL_MODELS = "all models"
ALL_CATEGORIES = "all categories"


def grid_html(result: BatchResult, items: Any, model: str, category: str, sort: str) -> str:
    """The results matrix with the reader's model and category filters and prompt order."""
    return matrix_html(build_matrix(result, items, "" if model == ALL_MODELS else model,
                                    "" if category == ALL_CATEGORIES else category, sort))


def plot_safe(text: str, limit: int = 40) -> str:
    """A model or category name as a chart label: no characters plotly would read as markup."""
    shown = text.replace("<", "‹").replace(">", "›").replace("&", "＆")
    return shown[:limit] + ("…" if len(shown) > limit else "")


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
    """Quality against p95 latency, latency distribution per model, score by category; None for a chart
    with nothing to plot yet (no score, no answer), which the panel then hides rather than draw empty."""
    names = [plot_safe(m.model) for m in result.models]
    scored = any(m.mean_score is not None for m in result.models)
    quality = plots.batch_quality_figure(names, [m.mean_score for m in result.models],
                                         [m.latency_p95_s for m in result.models]) if scored else None
    latencies = [[c.total_s for c in result.cells if c.column == m.column and c.status == "done"]
                 for m in result.models]
    latency = plots.batch_latency_figure(names, latencies) if any(latencies) else None
    categories = list(dict.fromkeys(c.category or "(none)" for c in result.cells))
    matrix: list[list[float | None]] = []
    for category in categories:
        row: list[float | None] = []
        for m in result.models:
            scores = [c.score for c in result.cells if c.column == m.column
                      and (c.category or "(none)") == category and c.score is not None]
            row.append(sum(scores) / len(scores) if scores else None)
        matrix.append(row)
    heatmap = (plots.category_heatmap(names, [plot_safe(c) for c in categories], matrix)
               if any(v is not None for row in matrix for v in row) else None)
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
