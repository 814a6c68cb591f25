"""The Leaderboard panel: models ranked from blind votes, raw or style-controlled, a table per category,
the judge's agreement with the votes, and the votes as CSV.

The ranking is the Bradley-Terry fit of playground/inspect/leaderboard.py over every vote
stored on this server (votes say nothing about who cast them). The CSV download holds the
requester's own votes in full; other voters appear under a pseudonym, without run ids
unless history is shared team-wide (see RunService.votes_csv_file).
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import gradio as gr

from playground.inspect.leaderboard import (
    BOOTSTRAP_ROUNDS,
    MIN_COMPARISONS,
    MIN_OPPONENTS,
    PRIOR_GAMES,
    Standing,
)
from playground.service import RunService
from playground.ui import html as H
from playground.ui.page import Shell, owner_of
from playground.ui.session_bar import DOWNLOAD_JS

ALL = "all categories"
RAW = "raw"
STYLED = "style-controlled"


def leaderboard_html(standings: Sequence[Standing], category: str = "", style: bool = False,
                     effects: dict[str, float] | None = None) -> str:
    """The ranking as an escaped table (model names and the category are user text). An interval only
    where the votes support one (Standing.settled): "needs more votes (k of n)" in its place otherwise."""
    scope = f" in category <b>{html.escape(category)}</b>" if category else ""
    if not standings:
        return (f'<div class="pg-muted">No votes yet{scope}. Press “Battle”, or tick “Blind” near Run and '
                "run two or more columns, then vote: the ranking appears here.</div>")
    kind = "style-controlled (answer length and Markdown held equal)" if style else "raw"
    note = (f"Bradley–Terry scores, {kind} (Elo-like: 400 points = 10:1 odds); 95% intervals from "
            f"{BOOTSTRAP_ROUNDS} bootstrap resamples of the votes, widened to the fit's standard errors, "
            f"shown once a model has {MIN_COMPARISONS} comparisons and {MIN_OPPONENTS} opponents (fewer "
            "votes cannot measure their own uncertainty). Overlapping intervals: the order is not settled. "
            "A tie counts half a win each way; “both bad” counts as a tie; every model carries a weak prior "
            f"of {PRIOR_GAMES:g} tied game, so one lucky vote does not top the table.")
    style_note = ""
    if style and effects:
        parts = ", ".join(f"{html.escape(name)} {value:+.2f}" for name, value in effects.items())
        style_note = (f'<div class="pg-muted" id="lb-style-effects">Style effects (log-odds of a win per '
                      f"standard deviation of the difference): {parts}.</div>")
    return (f'<div class="pg-muted">Ranking from blind votes{scope}, {html.escape(kind)}.</div>'
            + standings_table(standings) + style_note + f'<div class="pg-muted">{html.escape(note)}</div>')


def standings_table(standings: Sequence[Standing], compact: bool = False) -> str:
    """One table of standings; `compact` (the per-category tables) leaves out the tallies."""
    rows = []
    for s in standings:
        interval = (f"{s.low:.0f} – {s.high:.0f}" if s.settled
                    else f'<span class="pg-needs-votes">{html.escape(s.progress)}</span>')
        tallies = "" if compact else (f"<td>{_n(s.wins)} / {_n(s.losses)}</td><td>{s.ties}</td>"
                                      f"<td>{s.both_bad}</td>")
        rows.append(f'<tr data-model="{html.escape(s.model)}" data-settled="{str(s.settled).lower()}">'
                    f'<td>{s.rank}</td><td class="pg-model">{html.escape(s.model)}</td><td>{s.score:.0f}</td>'
                    f"<td>{interval}</td><td>{s.votes}</td>{tallies}</tr>")
    heads = "" if compact else "<th>Wins / losses</th><th>Ties</th><th>Both bad</th>"
    return ('<table class="pg-leaderboard"><thead><tr><th>#</th><th>Model</th><th>Score</th><th>95% CI</th>'
            f"<th>Votes</th>{heads}</tr></thead><tbody>{''.join(rows)}</tbody></table>")


def category_tables(tables: Sequence[tuple[str, Sequence[Standing]]]) -> str:
    """A compact table per prompt category (each fitted on its own votes)."""
    if not tables:
        return ""
    parts = "".join(f'<div class="pg-lb-category" data-category="{html.escape(name)}"><h4>'
                    f"{html.escape(name)}</h4>{standings_table(rows, compact=True)}</div>"
                    for name, rows in tables)
    return f'<div class="pg-lb-categories"><h4>By category</h4>{parts}</div>'


def judge_line(service: RunService, category: str = "") -> str:
    """The judge's agreement with the human votes (RunService.judge_agreement, playground/judge/), escaped;
    "" while no judge verdict meets a vote."""
    found = service.judge_agreement("", category)
    rate = found.rate
    if rate is None:
        return ""
    text = (f"Judge agreement with the blind votes: {rate:.0%} of {found.compared} compared "
            f"(decisive both ways: {found.decisive_agreed} of {found.decisive}).")
    return f'<div class="pg-muted" id="lb-judge">{html.escape(text)}</div>'


def _n(x: float) -> str:
    return f"{x:g}"


@dataclass
class LeaderboardPanel:
    box: Any
    category: Any
    style: Any  # the raw / style-controlled choice
    refresh_btn: Any
    table: Any
    csv_btn: Any
    csv_file: Any

    def choices(self, service: RunService) -> list[str]:
        return [ALL, *service.vote_categories()]

    def html(self, service: RunService, picked: str = "", fit: str = RAW) -> str:
        """The table (of one category, or all with a table per category under it) and the judge's line."""
        style = fit == STYLED
        main = leaderboard_html(service.leaderboard(picked, style=style), picked, style,
                                service.style_effects(picked) if style else None)
        below = "" if picked else category_tables(
            [(c, found) for c in service.vote_categories() if (found := service.leaderboard(c, style=style))])
        return main + below + judge_line(service, picked)

    def redraw(self, service: RunService, category: str | None = None, fit: str | None = None
               ) -> dict[Any, Any]:
        picked = "" if not category or category == ALL else category
        choices = self.choices(service)
        if picked and picked not in choices:
            picked = ""
        return {self.table: self.html(service, picked, fit or RAW),
                self.category: gr.update(choices=choices, value=picked or ALL)}

    def wire(self, shell: Shell) -> None:
        service = shell.service

        def show(category: str | None, fit: str | None) -> dict[Any, Any]:
            return self.redraw(service, category, fit)

        def export(category: str | None, browser_id: object, request: gr.Request) -> dict[Any, Any]:
            picked = "" if not category or category == ALL else category
            path = service.votes_csv_file(owner_of(request, browser_id), picked)
            return {self.csv_file: str(path)}

        for trigger in (self.refresh_btn.click, self.category.input, self.style.input, self.box.expand):
            trigger(show, inputs=[self.category, self.style], outputs=[self.table, self.category])
        written = self.csv_btn.click(export, inputs=[self.category, shell.owner], outputs=[self.csv_file])
        written.success(None, inputs=[self.csv_file], js=DOWNLOAD_JS)

    def after_vote(self, service: RunService) -> list[tuple[Any, Any]]:
        """What a vote redraws: the table (all categories, raw) and the category and fit choices."""
        return [(self.table, lambda: self.html(service)),
                (self.category, lambda: gr.update(choices=self.choices(service), value=ALL)),
                (self.style, lambda: RAW)]


def build_leaderboard_panel() -> LeaderboardPanel:
    with gr.Accordion("Leaderboard", open=False, elem_id="leaderboard-box") as box:
        with gr.Row():
            category = gr.Dropdown([ALL], value=ALL, label="Prompt category", elem_id="lb-category", scale=3)
            style = gr.Radio([RAW, STYLED], value=RAW, label="Fit", elem_id="lb-style", scale=3)
            refresh = gr.Button("Refresh", elem_id="lb-refresh", scale=0, min_width=100)
            csv_btn = gr.Button("Export votes (CSV)", elem_id="lb-csv", scale=0, min_width=160)
        csv_file = gr.DownloadButton("download", visible=False, elem_id="lb-csv-file")
        table = gr.HTML(H.notice(""), elem_id="leaderboard", padding=False)
    return LeaderboardPanel(box, category, style, refresh, table, csv_btn, csv_file)
