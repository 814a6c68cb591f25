"""The History list: runs made by hand and one entry per batch, newest first (everything typed escaped).

The runs a batch saved are not listed one by one unless asked for (the "Show batch runs" box): a
24-prompt batch would bury the runs made by hand. The store knows which runs a batch saved
(batch_items, playground/sessions/store.py list_runs); each batch is one row that opens its results
(`?batch=ID`), and a batch's run, when shown, names its batch.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from typing import TYPE_CHECKING

from playground.ui import html as H
from playground.wording import plural

if TYPE_CHECKING:  # types only: the page reads the store through RunService (playground/service.py)
    from playground.batch.book import BatchListing
    from playground.sessions.store import RunListing, RunSummary

PROMPT_CHARS = 90


@dataclass(frozen=True)
class _Entry:
    created_at: float
    run: RunSummary | None = None
    batch: BatchListing | None = None


def _run_row(r: RunSummary, names: dict[str, str]) -> str:
    prompt = " ".join(r.prompt.split())
    prompt = prompt[:PROMPT_CHARS] + ("…" if len(prompt) > PROMPT_CHARS else "")
    tag = ""
    if r.batch_id:
        name = names.get(r.batch_id) or r.batch_id
        tag = (f' <a class="pg-history-tag" href="?batch={html.escape(r.batch_id)}" '
               f'title="saved by this batch">batch {html.escape(name)}</a>')
    return (f'<tr class="pg-history-run" data-run="{html.escape(r.id)}" '
            f'data-batch="{html.escape(r.batch_id)}">'
            f'<td>{H.when(r.created_at, "%Y-%m-%d %H:%M")}</td>'
            f'<td><a href="?session={html.escape(r.id)}">{html.escape(prompt)}</a>{tag}</td>'
            f"<td>{html.escape(', '.join(r.models))}</td></tr>")


def _batch_row(b: BatchListing) -> str:
    size = (f"{b.total} prompt{'s' if b.total != 1 else ''} × "
            f"{len(b.models)} model{'s' if len(b.models) != 1 else ''}")
    done = f"{b.done + b.failed}/{b.total} done" + (f", {b.failed} could not run" if b.failed else "")
    return (f'<tr class="pg-history-batch" data-batch="{html.escape(b.id)}" data-status="{b.status}">'
            f'<td>{H.when(b.created_at, "%Y-%m-%d %H:%M")}</td>'
            f'<td><span class="pg-history-kind">Batch</span> <a href="?batch={html.escape(b.id)}">'
            f'{html.escape(b.name or b.id)}</a> <span class="pg-muted">{size} · {b.status} · {done}</span>'
            "</td>"
            f"<td>{html.escape(', '.join(b.models))}</td></tr>")


def history_html(runs: RunListing, batches: list[BatchListing], query: str = "", shared: bool = False,
                 batch_runs: bool = False, limit: int = 50) -> str:
    """Runs and batches merged newest first (at most `limit` rows), with whose they are and a note on
    unreadable rows the listing left out."""
    whose = ("Everyone's saved runs (shared history)." if shared
             else "Your saved runs (this browser or login).")
    whose += (" Batch runs are listed one by one." if batch_runs
              else " A batch is one entry (its runs: tick “Show batch runs”).")
    head = f'<div class="pg-muted pg-history-scope">{html.escape(whose)}</div>'
    if runs.skipped:
        unread = plural(runs.skipped, "saved run")
        head += H.notice(f"{unread} could not be read and were left out of this list", "warn")
    entries = [_Entry(r.created_at, run=r) for r in runs.rows]
    entries += [_Entry(b.created_at, batch=b) for b in batches]
    entries.sort(key=lambda e: e.created_at, reverse=True)
    entries = entries[:limit]
    if not entries:
        empty = f"No saved run matches “{html.escape(query)}”." if query else "No saved runs yet."
        return f'{head}<span class="pg-muted">{empty}</span>'
    names = {b.id: b.name for b in batches}
    rows = "".join(_run_row(e.run, names) if e.run is not None else _batch_row(e.batch)  # type: ignore[arg-type]
                   for e in entries)
    return (f'{head}<table class="pg-history"><thead><tr><th>When</th><th>Prompt or batch</th><th>Models</th>'
            f"</tr></thead><tbody>{rows}</tbody></table>")
